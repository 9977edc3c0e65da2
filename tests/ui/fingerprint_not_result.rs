use idem::{idempotent, SingleFlight};

#[idempotent(key = id, fingerprint = amount, ttl = "1h")]
async fn lookup(id: u64, amount: u64) -> u64 {
    id + amount
}

#[idempotent(key = id, fingerprint = amount, detached)]
async fn touch(id: u64, amount: u64) {
    let _ = (id, amount);
}

struct Service {
    flight: SingleFlight<u64, u64>,
}

impl Service {
    #[idempotent(key = id, fingerprint = amount, flight = self.flight)]
    async fn get(&self, id: u64, amount: u64) -> u64 {
        id + amount
    }
}

fn main() {}
