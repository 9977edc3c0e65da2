use std::sync::LazyLock;

use idem::{idempotent, SingleFlight};

// A flight whose value type does not fit the return type: one error, at the
// flight.
static FL: LazyLock<SingleFlight<String, u64>> = LazyLock::new(SingleFlight::new);

#[idempotent(key = id.to_string(), flight = FL)]
async fn lookup(id: u64) -> Result<u64, String> {
    Ok(id)
}

#[idempotent(key = id.to_string(), flight = FL, detached)]
async fn lookup_detached(id: u64) -> Result<u64, String> {
    Ok(id)
}

// A flight whose key type is not the key's: one error, at the key.
static BY_ID: LazyLock<SingleFlight<u64, u64>> = LazyLock::new(SingleFlight::new);

#[idempotent(key = id.to_string(), flight = BY_ID)]
async fn by_name(id: u64) -> u64 {
    id
}
fn main() {}
