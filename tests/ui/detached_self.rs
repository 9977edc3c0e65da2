use idem::idempotent;

struct Service {
    base: u64,
}

impl Service {
    #[idempotent(key = id, detached)]
    async fn charge(&self, id: u64) -> u64 {
        self.base + id
    }
}

fn main() {}
