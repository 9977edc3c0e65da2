use idem::{idempotent, SingleFlight};

struct Service {
    flight: SingleFlight<u64, String>,
}

impl Service {
    #[idempotent(key = id, flight = self.flight)]
    async fn lookup(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
