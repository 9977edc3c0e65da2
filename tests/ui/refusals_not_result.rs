use idem::idempotent;

#[idempotent(key = id, max_in_flight = 10)]
async fn lookup(id: u64) -> u64 {
    id
}

#[idempotent(key = id, ttl = "1h", max_entries = 100, eviction = "never")]
async fn touch(id: u64) {
    let _ = id;
}

fn main() {}
