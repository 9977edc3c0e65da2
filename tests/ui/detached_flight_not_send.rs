use std::rc::Rc;

use idem::{idempotent, SingleFlight};

struct Service {
    flight: SingleFlight<u64, u64>,
}

impl Service {
    // With `flight`, the same error as with the function's own table: at
    // `detached`, in rustc's words.
    #[idempotent(key = id, flight = self.flight, detached)]
    async fn lookup(&self, id: u64) -> u64 {
        let local = Rc::new(id);
        tokio::task::yield_now().await;
        *local
    }
}

fn main() {}
