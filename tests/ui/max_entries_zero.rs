use idem::idempotent;

#[idempotent(key = id, ttl = "30s", max_entries = 0)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
