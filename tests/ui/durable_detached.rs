use std::convert::Infallible;
use std::sync::LazyLock;

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

static PAYMENTS: LazyLock<Durable<MemoryStore, String, PayError>> = LazyLock::new(|| {
    Durable::builder(MemoryStore::new())
        .namespace("payments")
        .build()
        .unwrap()
});

// `#[idempotent]` runs a `Durable`'s body in the caller's future: one
// error, at `detached`.
#[idempotent(key = id, flight = PAYMENTS, detached)]
async fn pay(id: u64) -> Result<String, PayError> {
    Ok(id.to_string())
}

fn main() {}
