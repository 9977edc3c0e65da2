use idem::idempotent;

#[idempotent(key, ttl = "30s")]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
