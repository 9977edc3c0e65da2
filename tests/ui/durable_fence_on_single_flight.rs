use idem::{idempotent, SingleFlight};

struct Service {
    flight: SingleFlight<u64, u64>,
}

impl Service {
    // A `SingleFlight` runs no lease: one error, at `fence`, and none at
    // the body's use of the fence.
    #[idempotent(key = id, flight = self.flight, fence = fence)]
    async fn lookup(&self, id: u64) -> u64 {
        id + fence.token()
    }
}

fn main() {}
