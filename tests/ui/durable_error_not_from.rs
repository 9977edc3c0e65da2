use idem::durable::Durable;
use idem::idempotent;
use idem::store::MemoryStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
enum PayError {
    Declined,
}

type PayResult<T> = Result<T, PayError>;

struct Service {
    payments: Durable<MemoryStore, String, PayError>,
}

impl Service {
    // The `Durable`'s own failures (another process running the key, a
    // lost lease, the store) need somewhere to go: at the return type.
    #[idempotent(key = id, flight = self.payments)]
    async fn pay(&self, id: u64) -> Result<String, PayError> {
        if id == 0 {
            return Err(PayError::Declined);
        }
        Ok(id.to_string())
    }

    // Through an alias, the same.
    #[idempotent(key = id, flight = self.payments)]
    async fn refund(&self, id: u64) -> PayResult<String> {
        Ok(id.to_string())
    }
}

fn main() {}
