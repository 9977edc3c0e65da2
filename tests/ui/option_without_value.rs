use idem::idempotent;

#[idempotent(key = id, ttl = )]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
