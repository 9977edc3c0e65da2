use idem::idempotent;

#[idempotent(key = id, ttl = "30 parsecs")]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
