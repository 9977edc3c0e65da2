use idem::idempotent;

// A `Result` behind an alias is still a `Result`: its error type is checked.
#[idempotent(key = path.clone())]
async fn read(path: String) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

fn main() {}
