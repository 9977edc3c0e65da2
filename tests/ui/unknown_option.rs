use idem::idempotent;

#[idempotent(key = id, tll = "30s")]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
