use std::pin::Pin;

use idem::idempotent;

struct Service;

impl Service {
    #[idempotent(key = id)]
    async fn pinned(self: Pin<&Self>, id: u64) -> u64 {
        id
    }

    #[idempotent(key = id)]
    async fn pinned_mut(self: Pin<&mut Self>, id: u64) -> u64 {
        id
    }

    #[idempotent(key = id)]
    async fn explicit(self: &Self, id: u64) -> u64 {
        id
    }
}

fn main() {}
