//! The store conformance suite on `MemoryStore`, on tokio's paused clock.

use idem::store::MemoryStore;
use idem_tests::conformance::{self, Timing};

#[tokio::test(start_paused = true)]
async fn memory_store_conforms() {
    conformance::run(&MemoryStore::new(), "conformance", Timing::PAUSED).await;
}

#[tokio::test(start_paused = true)]
async fn memory_store_conforms_on_a_shared_store_under_two_namespaces() {
    let store = MemoryStore::new();
    conformance::run(&store, "a", Timing::PAUSED).await;
    conformance::run(&store, "b", Timing::PAUSED).await;
}
