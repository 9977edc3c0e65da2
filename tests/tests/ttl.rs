//! Semantics 2: results are replayed within the ttl and run again after it;
//! expired and evicted results leave memory.

use std::time::Duration;

use idem::{Outcome, SingleFlight};
use idem_tests::{Counter, Gate, Probe};
use tokio::time::advance;

const TTL: Duration = Duration::from_secs(30);

fn table(ttl: Duration) -> SingleFlight<u64, u64> {
    SingleFlight::builder().ttl(ttl).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn replays_within_ttl_and_runs_again_after() {
    let flight = table(TTL);
    let runs = Counter::new();
    let work = || async { Ok(runs.hit() as u64) };

    assert_eq!(
        flight.run_with_outcome(1, work).await,
        (Ok(1), Outcome::Executed)
    );
    advance(TTL - Duration::from_millis(1)).await;
    assert_eq!(
        flight.run_with_outcome(1, work).await,
        (Ok(1), Outcome::Cached)
    );
    assert_eq!(flight.get(&1), Some(1));
    advance(Duration::from_millis(1)).await;
    assert_eq!(flight.get(&1), None, "expired exactly at the ttl");
    assert_eq!(
        flight.run_with_outcome(1, work).await,
        (Ok(2), Outcome::Executed)
    );
    let s = flight.stats();
    assert_eq!((s.executions, s.hits, s.expirations), (2, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn ttl_counts_from_when_the_work_finished() {
    let flight = table(TTL);
    let mut call = Probe::new(flight.run(1, || async {
        tokio::time::sleep(Duration::from_secs(100)).await;
        Ok(5)
    }));
    call.pending();
    advance(Duration::from_secs(100)).await;
    assert_eq!(call.ready(), Ok(5));
    advance(TTL - Duration::from_secs(1)).await;
    assert_eq!(flight.get(&1), Some(5));
}

#[tokio::test(start_paused = true)]
async fn zero_ttl_still_coalesces_and_stores_nothing() {
    let flight = table(Duration::ZERO);
    let runs = Counter::new();
    let gate = Gate::new();
    let work = || async {
        gate.wait().await;
        Ok(runs.hit() as u64)
    };
    let mut a = Probe::new(flight.run_with_outcome(1, work));
    let mut b = Probe::new(flight.run_with_outcome(1, work));
    a.pending();
    b.pending();
    gate.open();
    assert_eq!(a.ready(), (Ok(1), Outcome::Executed));
    assert_eq!(b.ready(), (Ok(1), Outcome::Coalesced));
    assert!(flight.is_empty());
    assert_eq!(
        flight.run_with_outcome(1, work).await,
        (Ok(2), Outcome::Executed)
    );
}

#[tokio::test(start_paused = true)]
async fn expired_results_are_swept_without_being_touched() {
    let flight = table(Duration::from_secs(1));
    for round in 0..2 {
        for k in 0..1_000 {
            flight.run(k, || async move { Ok(k) }).await.unwrap();
        }
        assert_eq!(flight.len(), 1_000);
        // The sweeper runs every second (the ttl clamped to at least 1 s);
        // the paused clock jumps to its timers while this task sleeps.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(flight.len(), 0, "round {round}: expired results still held");
        assert_eq!(flight.stats().expirations, 1_000 * (round + 1));
        // The second round checks that a sweeper that stopped for lack of
        // work starts again.
    }
}

#[tokio::test(start_paused = true)]
async fn sweep_interval_is_configurable() {
    let flight: SingleFlight<u64, u64> = SingleFlight::builder()
        .ttl(Duration::from_secs(1))
        .sweep_interval(Duration::from_secs(10))
        .build()
        .unwrap();
    flight.run(1, || async { Ok(1) }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(flight.len(), 1, "expired but not yet swept");
    assert_eq!(flight.get(&1), None, "an expired result is never returned");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(flight.len(), 0);
}

#[tokio::test]
async fn max_entries_bounds_stored_results() {
    let flight: SingleFlight<u64, u64> = SingleFlight::builder()
        .ttl(TTL)
        .max_entries(100)
        .shards(4)
        .build()
        .unwrap();
    for k in 0..1_000 {
        flight.run(k, || async move { Ok(k) }).await.unwrap();
        assert!(flight.len() <= 100);
    }
    assert_eq!(flight.len(), 100);
    assert_eq!(flight.stats().evictions, 900);
}

#[tokio::test]
async fn a_new_result_is_not_evicted_by_its_own_store() {
    // A full shard whose results were all asked for again: the newcomer used
    // to enter the probationary queue first and be evicted to make room for
    // itself, so a retry within the ttl ran the work again.
    let flight: SingleFlight<u64, u64> = SingleFlight::builder()
        .ttl(TTL)
        .max_entries(10)
        .shards(1)
        .build()
        .unwrap();
    for k in 0..10 {
        flight.run(k, || async move { Ok(k) }).await.unwrap();
        flight.run(k, || async move { Ok(k) }).await.unwrap();
    }
    for k in 10..200 {
        assert_eq!(
            flight.run_with_outcome(k, || async move { Ok(k) }).await,
            (Ok(k), Outcome::Executed)
        );
        assert_eq!(
            flight.run_with_outcome(k, || async { Ok(0) }).await,
            (Ok(k), Outcome::Cached),
            "a retry right after the store of {k}"
        );
        assert_eq!(flight.len(), 10);
    }
}

#[tokio::test(start_paused = true)]
async fn expired_results_make_room_before_a_fresh_one_is_evicted() {
    // Results that were hit (so promoted past probation) then expired,
    // with the next sweep a minute away: new results take their places
    // instead of evicting each other.
    let flight: SingleFlight<u64, u64> = SingleFlight::builder()
        .ttl(Duration::from_secs(100))
        .max_entries(10)
        .shards(1)
        .build()
        .unwrap();
    for k in 0..10 {
        flight.run(k, || async move { Ok(k) }).await.unwrap();
        flight.run(k, || async move { Ok(k) }).await.unwrap();
    }
    advance(Duration::from_secs(101)).await;
    for k in 100..110 {
        flight.run(k, || async move { Ok(k) }).await.unwrap();
    }
    for k in 100..110 {
        assert_eq!(
            flight.run_with_outcome(k, || async { Ok(0) }).await,
            (Ok(k), Outcome::Cached),
            "{k} was evicted while expired results stayed"
        );
    }
    let stats = flight.stats();
    assert_eq!((stats.expirations, stats.evictions), (10, 0));
}

#[tokio::test]
async fn running_flights_are_never_evicted() {
    let flight: SingleFlight<u64, u64> = SingleFlight::builder()
        .ttl(TTL)
        .max_entries(1)
        .build()
        .unwrap();
    let gate = Gate::new();
    let mut slow = Probe::new(flight.run(0, || async {
        gate.wait().await;
        Ok(0)
    }));
    slow.pending();
    for k in 1..10 {
        flight.run(k, || async move { Ok(k) }).await.unwrap();
    }
    // One stored result plus the running flight.
    assert_eq!(flight.len(), 2);
    let mut joiner = Probe::new(flight.run_with_outcome(0, || async { Ok(99) }));
    joiner.pending();
    gate.open();
    assert_eq!(slow.ready(), Ok(0));
    assert_eq!(joiner.ready(), (Ok(0), Outcome::Coalesced));
}

#[tokio::test]
async fn hot_keys_survive_a_scan_of_cold_keys() {
    // A scan of one-off keys must not flush keys that are asked for again
    // and again: what S3-FIFO's probationary queue is for.
    let flight: SingleFlight<u64, u64> = SingleFlight::builder()
        .ttl(TTL)
        .max_entries(100)
        .shards(1)
        .build()
        .unwrap();
    let hot_runs = Counter::new();
    let hot = 0..20u64;
    for cold in 1_000..11_000u64 {
        flight.run(cold, || async move { Ok(cold) }).await.unwrap();
        for k in hot.clone() {
            flight
                .run(k, || async {
                    hot_runs.hit();
                    Ok(k)
                })
                .await
                .unwrap();
        }
    }
    // Each hot key runs once, when first seen; a recency-only policy would
    // evict and re-run each of them every few dozen cold keys.
    assert_eq!(hot_runs.get(), 20, "hot keys were evicted by the scan");
    for k in hot {
        assert_eq!(flight.get(&k), Some(k));
    }
    assert_eq!(flight.len(), 100);
}

#[tokio::test(start_paused = true)]
async fn ttl_of_duration_max_never_expires() {
    let flight = table(Duration::MAX);
    flight.run(1, || async { Ok(1) }).await.unwrap();
    advance(Duration::from_secs(10 * 365 * 86_400)).await;
    assert_eq!(flight.get(&1), Some(1));
}

#[tokio::test]
async fn get_never_runs_or_waits() {
    let flight = table(TTL);
    let gate = Gate::new();
    let mut running = Probe::new(flight.run(1, || async {
        gate.wait().await;
        Ok(1)
    }));
    running.pending();
    assert_eq!(flight.get(&1), None, "a running flight has no result yet");
    assert_eq!(flight.get(&2), None);
    assert_eq!(flight.stats().executions, 1);
    gate.open();
    running.ready().unwrap();
    assert_eq!(flight.get(&1), Some(1));
    assert_eq!(flight.stats().hits, 0, "get is not counted");
}

#[test]
fn invalid_settings_are_reported_at_build() {
    let err = SingleFlight::<u8, u8>::builder()
        .ttl(TTL)
        .max_entries(0)
        .build()
        .unwrap_err();
    assert_eq!(err, idem::BuildError::ZeroMaxEntries);
    assert!(err.to_string().contains("max_entries"));
    let err = SingleFlight::<u8, u8>::builder()
        .shards(3)
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "shards must be a power of two, got 3");
}
