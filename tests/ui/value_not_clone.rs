use idem::idempotent;

struct Report {
    lines: Vec<String>,
}

#[idempotent(key = id)]
async fn report(id: u64) -> Report {
    Report { lines: vec![id.to_string()] }
}

fn main() {}
