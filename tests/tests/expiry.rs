//! Issue 7, defects 2, 3 and 8: expired results leave the table, from any
//! runtime that can time a sweep, and before a fresh result is evicted.

use std::time::Duration;

use idem::SingleFlight;
use tokio::time::advance;

const TTL: Duration = Duration::from_secs(10);

/// Defect 8: the adaptive policy's age queue was trimmed past twice the
/// capacity, dropping the tickets of live results with the stale ones. A
/// hot result whose ticket went kept its slot once expired, and a fresh
/// result was evicted in its place: a retry of that one ran again.
#[tokio::test(start_paused = true)]
async fn an_expired_hot_result_makes_room_before_a_fresh_one_is_evicted() {
    let flight: SingleFlight<u64, u64> = SingleFlight::builder()
        .ttl(TTL)
        .max_entries(10)
        .shards(1)
        .sweep_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    // The hot key, stored first and hit often: S3-FIFO keeps it.
    flight.run(0, || async { Ok(0) }).await.unwrap();
    advance(Duration::from_secs(5)).await;
    // Enough one-off stores to trim the age queue (past 2 × 10 + 32).
    for k in 1..=100 {
        assert_eq!(flight.run(0, || async { Ok(99) }).await, Ok(0), "a hit");
        flight.run(k, || async { Ok(k) }).await.unwrap();
    }
    let fresh: Vec<u64> = (1..=100).filter(|k| flight.get(k).is_some()).collect();
    assert_eq!(fresh.len(), 9, "the hot key and nine fresh results");
    // The hot key has expired; the others have five seconds to go.
    advance(Duration::from_secs(6)).await;
    assert_eq!(flight.get(&0), None);
    flight.run(1000, || async { Ok(1000) }).await.unwrap();
    for k in &fresh {
        assert_eq!(
            flight.get(k),
            Some(*k),
            "fresh result {k} evicted while an expired one held a slot"
        );
    }
    assert_eq!(flight.stats().evictions, 91, "only the earlier one-offs");
}

/// Defect 2: a table whose first sweeper landed on a runtime without
/// timers never swept again, even when later used from runtimes with
/// timers: a macro's table is a process-wide `static`, so its expired
/// one-off keys stayed in memory for good.
#[test]
fn a_table_first_used_without_timers_sweeps_once_used_with_them() {
    let flight: SingleFlight<u64, u64> = SingleFlight::builder()
        .ttl(Duration::from_secs(1))
        .sweep_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let no_timers = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    no_timers.block_on(async {
        flight.run(1, || async { Ok(1) }).await.unwrap();
        // Lets a sweeper task run, if one was spawned here.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    });
    let timers = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    timers.block_on(async {
        flight.run(2, || async { Ok(2) }).await.unwrap();
        assert_eq!(flight.len(), 2);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(flight.len(), 0, "both expired results were swept");
    });
    drop(no_timers);
}

/// The sweeper sleeps until the oldest result is due (and at least
/// `sweep_interval`), then removes it.
#[tokio::test(start_paused = true)]
async fn the_sweeper_removes_a_result_once_it_is_due() {
    let flight: SingleFlight<u64, u64> = SingleFlight::builder()
        .ttl(Duration::from_secs(100))
        .sweep_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    flight.run(1, || async { Ok(1) }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(99)).await;
    flight.run(2, || async { Ok(2) }).await.unwrap();
    assert_eq!(flight.len(), 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(flight.len(), 1, "the first swept once due");
    tokio::time::sleep(Duration::from_secs(99)).await;
    assert_eq!(flight.len(), 0, "the second too");
    assert_eq!(flight.stats().expirations, 2);
}
