use idem::idempotent;

struct Service;

impl Service {
    #[idempotent(key = id)]
    async fn lookup(&mut self, id: u64) -> u64 {
        id
    }
}

fn main() {}
