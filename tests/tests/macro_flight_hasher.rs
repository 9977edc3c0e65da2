//! `flight = <expr>` with a table built with a hasher of its own
//! (`Builder::hasher`): the macro's support is generic over the table's
//! `BuildHasher`, not tied to `idem::RandomState`.

use std::collections::hash_map::RandomState;
use std::sync::Arc;
use std::time::Duration;

use idem::{idempotent, SingleFlight};
use idem_tests::Counter;

/// `std`'s own `RandomState`, a hasher idem does not default to.
type StdHashed<V, E = std::convert::Infallible> = SingleFlight<String, V, E, RandomState>;

struct Catalog {
    prices: StdHashed<u64, String>,
    names: Arc<StdHashed<String>>,
    runs: Counter,
}

impl Catalog {
    fn new() -> Self {
        fn table<V, E>() -> StdHashed<V, E>
        where
            V: Clone + Send + Sync + 'static,
            E: Send + 'static,
        {
            SingleFlight::builder()
                .ttl(Duration::from_secs(60))
                .hasher(RandomState::new())
                .build()
                .unwrap()
        }
        Self {
            prices: table(),
            names: Arc::new(table()),
            runs: Counter::new(),
        }
    }

    /// A `Result`, so a `SingleFlight<_, T, E, S>`.
    #[idempotent(key = sku.clone(), flight = self.prices)]
    async fn price(&self, sku: String) -> Result<u64, String> {
        self.runs.hit();
        Ok(sku.len() as u64)
    }

    /// A plain value, through an `Arc`, so a `SingleFlight<_, T, Infallible, S>`.
    #[idempotent(key = sku.clone(), flight = self.names)]
    async fn name(&self, sku: String) -> String {
        self.runs.hit();
        sku.to_uppercase()
    }
}

#[tokio::test]
async fn a_flight_with_another_hasher_coalesces_and_stores() {
    let c = Catalog::new();
    let (a, b) = tokio::join!(c.price("apple".into()), c.price("apple".into()));
    assert_eq!((a, b), (Ok(5), Ok(5)));
    assert_eq!(c.price("apple".into()).await, Ok(5));
    assert_eq!(c.runs.get(), 1, "joined, then stored");
    assert_eq!(c.prices.get("apple"), Some(5));

    assert_eq!(c.name("pear".into()).await, "PEAR");
    assert_eq!(c.name("pear".into()).await, "PEAR");
    assert_eq!(c.runs.get(), 2);
    assert_eq!(c.names.get("pear"), Some("PEAR".to_string()));
}

/// The same table used directly and through the macro: one hasher, so the
/// macro's calls find what direct calls stored.
#[tokio::test]
async fn the_macro_and_direct_calls_share_the_tables_keys() {
    let c = Catalog::new();
    let direct = c.prices.run("fig".to_string(), || async { Ok(42) }).await;
    assert_eq!(direct, Ok(42));
    assert_eq!(c.price("fig".into()).await, Ok(42));
    assert_eq!(c.runs.get(), 0);
}
