use idem::idempotent;

#[idempotent(key = id, ttl = 30u64 * 1000)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
