use idem::idempotent;

#[derive(Debug, Clone)]
enum PayError {
    Declined,
}

#[idempotent(key = id, ttl = "1h", max_entries = 100, eviction = "never")]
async fn pay(id: u64) -> Result<u64, PayError> {
    if id == 0 {
        return Err(PayError::Declined);
    }
    Ok(id)
}

type PayResult<T> = Result<T, PayError>;

#[idempotent(key = id, max_in_flight = 10)]
async fn refund(id: u64) -> PayResult<u64> {
    Ok(id)
}

fn main() {}
