use idem::{idempotent, Refused, SingleFlight};

struct Service {
    flight: SingleFlight<u64, u64, Refused>,
}

impl Service {
    #[idempotent(key = id, flight = self.flight, eviction = "never", max_in_flight = 10)]
    async fn lookup(&self, id: u64) -> Result<u64, Refused> {
        Ok(id)
    }
}

fn main() {}
