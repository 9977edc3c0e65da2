use idem::idempotent;

struct Service {
    count: u64,
}

impl Service {
    // A flight that is not a `SingleFlight`: rustc's "no method named
    // `__idem_flight`", at the flight expression.
    #[idempotent(key = id, flight = self.count)]
    async fn lookup(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
