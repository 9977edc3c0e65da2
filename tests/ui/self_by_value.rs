use std::sync::Arc;

use idem::idempotent;

struct Service;

impl Service {
    #[idempotent(key = id)]
    async fn consume(self, id: u64) -> u64 {
        id
    }

    #[idempotent(key = id)]
    async fn shared(self: Arc<Self>, id: u64) -> u64 {
        id
    }
}

fn main() {}
