//! A runtime built without the time driver cannot run idem's sweeper. The
//! table must still work, and must not try (and panic) again for every
//! result it stores. Its own binary, because it installs a panic hook.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use idem::SingleFlight;

#[test]
fn a_runtime_without_timers_gets_one_failed_sweeper_not_one_per_store() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counted = panics.clone();
    std::panic::set_hook(Box::new(move |_| {
        counted.fetch_add(1, SeqCst);
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let flight: SingleFlight<u32, u32> = SingleFlight::builder()
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    rt.block_on(async {
        for k in 0..100 {
            assert_eq!(flight.run(k, || async move { Ok(k) }).await, Ok(k));
            tokio::task::yield_now().await;
        }
        assert_eq!(flight.get(&7), Some(7));
    });
    let _ = std::panic::take_hook();
    assert!(panics.load(SeqCst) <= 1, "{} panics", panics.load(SeqCst));
}
