use idem::idempotent;

#[idempotent(key = name.to_string(), detached)]
async fn greet(name: &str) -> String {
    format!("hello {name}")
}

fn main() {}
