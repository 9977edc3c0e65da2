use idem::{idempotent, SingleFlight};

struct Receipt;

struct Service {
    flight: SingleFlight<u64, Receipt>,
}

impl Service {
    // One error, at the return type: the flight's own `Receipt: Clone`
    // requirement is not reported a second time.
    #[idempotent(key = id, flight = self.flight)]
    async fn pay(&self, id: u64) -> Receipt {
        let _ = id;
        Receipt
    }
}

fn main() {}
