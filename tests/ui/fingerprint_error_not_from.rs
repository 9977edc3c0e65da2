use idem::{idempotent, SingleFlight};

#[derive(Debug, Clone)]
enum PayError {
    Declined,
}

#[idempotent(key = id, fingerprint = amount)]
async fn pay(id: u64, amount: u64) -> Result<u64, PayError> {
    if amount == 0 {
        return Err(PayError::Declined);
    }
    Ok(id)
}

type PayResult<T> = Result<T, PayError>;

struct Service {
    flight: SingleFlight<u64, u64, PayError>,
}

impl Service {
    // With a flight of the user's, the same check: a mismatch comes from
    // the call, whatever the table.
    #[idempotent(key = id, flight = self.flight, fingerprint = (id, amount))]
    async fn refund(&self, id: u64, amount: u64) -> PayResult<u64> {
        Ok(id + amount)
    }
}

fn main() {}
