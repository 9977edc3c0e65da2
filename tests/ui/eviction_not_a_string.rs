use idem::idempotent;

#[idempotent(key = id, ttl = "1h", max_entries = 100, eviction = idem::Eviction::Never)]
async fn pay(id: u64) -> Result<u64, idem::Refused> {
    Ok(id)
}

#[idempotent(key = id, ttl = "1h", max_entries = 100, eviction = never)]
async fn refund(id: u64) -> Result<u64, idem::Refused> {
    Ok(id)
}

fn main() {}
