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

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct OrderId(u64);

struct Service {
    payments: Durable<MemoryStore, String, PayError>,
}

impl Service {
    // A `Durable`'s keys are text: a key that is neither `AsRef<str>` nor
    // `Display` is reported at the key, even if it is `Hash`.
    #[idempotent(key = (user, order), flight = self.payments)]
    async fn pay(&self, user: u64, order: OrderId) -> Result<String, PayError> {
        Ok(format!("{user}/{}", order.0))
    }
}

fn main() {}
