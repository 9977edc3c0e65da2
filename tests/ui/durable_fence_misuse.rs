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

// Without a `flight`, there is no `Durable` to get a fence from.
#[idempotent(key = id, fence = fence)]
async fn own_table(id: u64) -> u64 {
    id
}

impl Service {
    // A fence is a name.
    #[idempotent(key = id, flight = self.payments, fence = self.fence)]
    async fn not_a_name(&self, id: u64) -> Result<String, PayError> {
        Ok(id.to_string())
    }

    // A name that would hide an argument.
    #[idempotent(key = id, flight = self.payments, fence = id)]
    async fn hides_an_argument(&self, id: u64) -> Result<String, PayError> {
        Ok(id.to_string())
    }

    // `detached` takes a `SingleFlight`.
    #[idempotent(key = id, flight = self.payments, fence = fence, detached)]
    async fn detached(&self, id: u64) -> Result<String, PayError> {
        Ok(id.to_string())
    }

    #[idempotent(key = id, flight = self.payments, fence = fence, fence = lease)]
    async fn twice(&self, id: u64) -> Result<String, PayError> {
        Ok(id.to_string())
    }
}

fn main() {}
