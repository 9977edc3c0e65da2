use idem::idempotent;

#[idempotent(key = id, ttl = 30)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}

// A suffix is not a unit: suggests "5s", not "5u64s".
#[idempotent(key = id, ttl = 5u64)]
async fn suffixed(id: u64) -> u64 {
    id
}

// The strings take no fractions: suggests "1500ms".
#[idempotent(key = id, ttl = 1.5)]
async fn fractional(id: u64) -> u64 {
    id
}
