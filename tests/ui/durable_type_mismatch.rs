use std::convert::Infallible;

use idem::durable::{Durable, DurableError};
use idem::idempotent;
use idem::store::MemoryStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PayError;

impl From<DurableError<Infallible>> for PayError {
    fn from(_: DurableError<Infallible>) -> Self {
        PayError
    }
}

struct Service {
    payments: Durable<MemoryStore, String, PayError>,
}

impl Service {
    // A value type that is not the executor's: one error, at the flight.
    #[idempotent(key = id, flight = self.payments)]
    async fn pay(&self, id: u64) -> Result<u64, PayError> {
        Ok(id)
    }

    // A plain value: a `Durable` needs a `Result`, at the flight too.
    #[idempotent(key = id, flight = self.payments)]
    async fn receipt(&self, id: u64) -> String {
        id.to_string()
    }
}

fn main() {}
