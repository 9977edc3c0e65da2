use idem::idempotent;

#[idempotent(key = name)]
async fn greet(name: &str) -> String {
    format!("hello {name}")
}

#[idempotent(key = name.as_str())]
async fn greet_owned(name: String) -> String {
    format!("hello {name}")
}

fn main() {}
