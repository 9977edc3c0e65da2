use std::time::Duration;

use idem::idempotent;

// `ttl` and `max_entries` are evaluated once, when the table is created:
// one that uses `self` or an argument is an error at that name.

struct Service {
    ttl: Duration,
}

impl Service {
    #[idempotent(key = id, ttl = self.ttl)]
    async fn uses_self(&self, id: u64) -> u64 {
        id
    }
}

#[idempotent(key = id, ttl = Duration::from_secs(secs))]
async fn uses_an_argument(id: u64, secs: u64) -> u64 {
    id + secs
}

#[idempotent(key = id, ttl = "1m", max_entries = limit * 2)]
async fn max_entries_uses_an_argument(id: u64, limit: usize) -> u64 {
    id + limit as u64
}

// Hidden in a macro, the name is caught by the type checker instead.
macro_rules! secs {
    ($e:expr) => {
        Duration::from_secs($e)
    };
}

#[idempotent(key = id, ttl = secs!(secs))]
async fn hidden_in_a_macro(id: u64, secs: u64) -> u64 {
    id + secs
}

// Constants, statics, `Self::` and generic constants are fine.
static TTL: Duration = Duration::from_secs(5);

trait HasTtl {
    const TTL: Duration;
}

#[idempotent(key = id, ttl = TTL, max_entries = 10)]
async fn from_a_static(id: u64) -> u64 {
    id
}

#[idempotent(key = id, ttl = T::TTL)]
async fn from_a_generic<T: HasTtl>(id: u64) -> u64 {
    id
}

fn main() {}
