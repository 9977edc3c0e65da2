use idem::idempotent;

#[idempotent(key = id, ttl = "1h", eviction = "never")]
async fn pay(id: u64) -> Result<u64, idem::Refused> {
    Ok(id)
}

fn main() {}
