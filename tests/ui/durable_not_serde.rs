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

#[derive(Debug, Clone)]
struct Receipt;

#[derive(Debug, Clone)]
struct Declined;

impl From<DurableError<Infallible>> for Declined {
    fn from(_: DurableError<Infallible>) -> Self {
        Declined
    }
}

struct Service {
    receipts: Durable<MemoryStore, Receipt, PayError>,
    declines: Durable<MemoryStore, String, Declined>,
}

impl Service {
    // A `Durable` records values with its codec (`Json`: serde types): one
    // error, at the flight.
    #[idempotent(key = id, flight = self.receipts)]
    async fn pay(&self, id: u64) -> Result<Receipt, PayError> {
        let _ = id;
        Ok(Receipt)
    }

    // And errors.
    #[idempotent(key = id, flight = self.declines)]
    async fn decline(&self, id: u64) -> Result<String, Declined> {
        Ok(id.to_string())
    }
}

fn main() {}
