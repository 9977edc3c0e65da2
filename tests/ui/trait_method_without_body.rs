use idem::idempotent;

trait Service {
    #[idempotent(key = id)]
    async fn lookup(&self, id: u64) -> u64;
}

fn main() {}
