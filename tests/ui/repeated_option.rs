use idem::idempotent;

#[idempotent(key = id, ttl = "30s", ttl = "1m")]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
