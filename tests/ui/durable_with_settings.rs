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
    // A `Durable` has its settings (`retain`, `lease`, ...) where it is
    // built: each table setting is an error, at its name.
    #[idempotent(
        key = id,
        flight = self.payments,
        ttl = "1h",
        max_entries = 100,
        eviction = "never",
        max_in_flight = 8
    )]
    async fn pay(&self, id: u64) -> Result<String, PayError> {
        Ok(id.to_string())
    }
}

fn main() {}
