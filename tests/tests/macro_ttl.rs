//! `#[idempotent(ttl = ...)]`: successes are replayed for the ttl, on
//! tokio's paused clock (idem-tests builds idem with `test-util`).

use std::time::Duration;

use idem::idempotent;
use idem_tests::Counter;
use tokio::time::advance;

#[idempotent(key = id, ttl = "30s")]
async fn price(id: u32, runs: Counter) -> u64 {
    runs.hit();
    u64::from(id) * 100
}

#[tokio::test(start_paused = true)]
async fn a_success_is_replayed_for_the_ttl_then_runs_again() {
    let runs = Counter::new();
    assert_eq!(price(1, runs.clone()).await, 100);
    advance(Duration::from_secs(29)).await;
    assert_eq!(price(1, runs.clone()).await, 100);
    assert_eq!(runs.get(), 1, "replayed within the ttl");
    advance(Duration::from_secs(1)).await;
    assert_eq!(price(1, runs.clone()).await, 100);
    assert_eq!(runs.get(), 2, "expired after 30 s");
}

const TTL: Duration = Duration::from_millis(1_500);

#[idempotent(key = id, ttl = TTL)]
async fn by_expression(id: u32, runs: Counter) -> u32 {
    runs.hit();
    id
}

#[tokio::test(start_paused = true)]
async fn ttl_takes_any_duration_expression() {
    let runs = Counter::new();
    by_expression(1, runs.clone()).await;
    advance(Duration::from_millis(1_499)).await;
    by_expression(1, runs.clone()).await;
    assert_eq!(runs.get(), 1);
    advance(Duration::from_millis(1)).await;
    by_expression(1, runs.clone()).await;
    assert_eq!(runs.get(), 2);
}

#[idempotent(key = id, ttl = "1h 30m")]
async fn long_lived(id: u32, runs: Counter) -> u32 {
    runs.hit();
    id
}

#[tokio::test(start_paused = true)]
async fn combined_human_durations() {
    let runs = Counter::new();
    long_lived(1, runs.clone()).await;
    advance(Duration::from_secs(5_399)).await;
    long_lived(1, runs.clone()).await;
    assert_eq!(runs.get(), 1);
    advance(Duration::from_secs(1)).await;
    long_lived(1, runs.clone()).await;
    assert_eq!(runs.get(), 2);
}

#[idempotent(key = id, ttl = "1m", max_entries = 1)]
async fn bounded(id: u32, runs: Counter) -> u32 {
    runs.hit();
    id
}

#[tokio::test(start_paused = true)]
async fn max_entries_bounds_what_is_kept() {
    let runs = Counter::new();
    bounded(1, runs.clone()).await;
    bounded(2, runs.clone()).await;
    assert_eq!(runs.get(), 2);
    // A table of one entry cannot hold both results: asking for both again
    // runs at least one of them again.
    bounded(1, runs.clone()).await;
    bounded(2, runs.clone()).await;
    assert!(runs.get() >= 3, "one entry kept, not two");
}

#[idempotent(key = id, ttl = "0s")]
async fn zero_ttl(id: u32, runs: Counter) -> u32 {
    runs.hit();
    id
}

#[tokio::test(start_paused = true)]
async fn a_zero_ttl_keeps_nothing() {
    let runs = Counter::new();
    zero_ttl(1, runs.clone()).await;
    zero_ttl(1, runs.clone()).await;
    assert_eq!(runs.get(), 2);
}
