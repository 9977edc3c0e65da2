use idem::{idempotent, SingleFlight};

struct Service {
    flight: SingleFlight<u64, u64>,
}

impl Service {
    #[idempotent(key = id, flight = self.flight, ttl = "30s", max_entries = 10)]
    async fn lookup(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
