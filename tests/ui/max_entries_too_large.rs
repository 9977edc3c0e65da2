use idem::idempotent;

#[idempotent(key = id, ttl = "1m", max_entries = 99999999999999999999999)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
