use idem::idempotent;

#[idempotent(key = path.clone())]
async fn read(path: String) -> Result<String, std::io::Error> {
    std::fs::read_to_string(path)
}

fn main() {}
