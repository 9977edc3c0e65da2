use idem::idempotent;

#[idempotent(key = id, ttl = "1h", max_entries = 10, eviction = "never", eviction = "adaptive")]
async fn pay(id: u64) -> Result<u64, idem::Refused> {
    Ok(id)
}

#[idempotent(key = id, max_in_flight = 10, max_in_flight = 20)]
async fn refund(id: u64) -> Result<u64, idem::Refused> {
    Ok(id)
}

fn main() {}
