//! `Eviction::Never` and `max_in_flight` (issue 7, section 1): a stored
//! result is kept for its whole ttl; a table that is full refuses new keys,
//! without running their work, instead of dropping a result a retry may
//! need; the bound is table-wide and exact.

use std::time::Duration;

use idem::{Error, Eviction, Outcome, SingleFlight};
use idem_tests::{Counter, Gate, Probe};
use rand::{rngs::SmallRng, Rng, SeedableRng};

fn never(max_entries: usize, shards: usize) -> SingleFlight<u64, u64> {
    SingleFlight::builder()
        .ttl(Duration::from_secs(3600))
        .max_entries(max_entries)
        .shards(shards)
        .eviction(Eviction::Never)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_one_off_result_survives_a_hundred_times_max_entries_later_stores() {
    for max_entries in [1, 7, 100, 10_000] {
        for shards in [1, 8, 64] {
            let flight = never(max_entries, shards);
            let what = format!("max_entries {max_entries}, {shards} shards");
            flight.run(u64::MAX, || async { Ok(42) }).await.unwrap();
            // The table is kept full: the one-off, long-lived fillers, and
            // one slot for the later stores, each forgotten once stored.
            let fillers = max_entries.saturating_sub(2) as u64;
            for k in 0..fillers {
                flight
                    .run(u64::MAX - 1 - k, || async { Ok(k) })
                    .await
                    .unwrap();
            }
            let runs = Counter::new();
            for k in 0..100 * max_entries as u64 {
                let r = flight.run(k, || async { Ok(runs.hit() as u64) }).await;
                if max_entries == 1 {
                    assert!(matches!(r, Err(Error::Full { .. })), "{what}: {r:?}");
                } else {
                    assert!(r.is_ok(), "{what}: {r:?}");
                }
                assert!(
                    flight.len() <= max_entries,
                    "{what}: {} entries",
                    flight.len()
                );
                flight.forget(&k);
            }
            assert_eq!(
                flight.get(&u64::MAX),
                Some(42),
                "{what}: the one-off is gone"
            );
            assert_eq!(flight.stats().evictions, 0, "{what}");
            if max_entries == 1 {
                assert_eq!(runs.get(), 0, "{what}: a refused call ran its work");
            }
        }
    }
}

#[tokio::test]
async fn the_bound_is_exact_whatever_the_hash_distribution() {
    // 64 shards and 10 entries: an adaptive table would cut the shards;
    // a never table fits exactly 10, wherever the keys land.
    let flight = never(10, 64);
    for k in 0..10 {
        flight.run(k, || async { Ok(k) }).await.unwrap();
    }
    assert_eq!(flight.len(), 10);
    assert!(matches!(
        flight.run(10, || async { Ok(10) }).await,
        Err(Error::Full { .. })
    ));
    // Stored and running keys are served as usual.
    for k in 0..10 {
        assert_eq!(
            flight.run_with_outcome(k, || async { Ok(99) }).await,
            (Ok(k), Outcome::Cached)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusal_says_when_the_oldest_result_expires_and_that_slot_is_free_then() {
    let flight: SingleFlight<u64, u64> = SingleFlight::builder()
        .ttl(Duration::from_secs(10))
        .max_entries(2)
        .eviction(Eviction::Never)
        // Nothing is swept while the test runs: the expired result must
        // free its slot by itself.
        .sweep_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    flight.run(1, || async { Ok(1) }).await.unwrap();
    tokio::time::advance(Duration::from_secs(3)).await;
    flight.run(2, || async { Ok(2) }).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    let ran = Counter::new();
    let (r, outcome) = flight
        .run_with_outcome(3, || async { Ok(ran.hit() as u64) })
        .await;
    assert_eq!(
        (r, outcome),
        (
            Err(Error::Full {
                retry_after: Some(Duration::from_secs(5))
            }),
            Outcome::Refused
        )
    );
    assert_eq!(ran.get(), 0, "a refused call never runs its work");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(
        flight.run_with_outcome(3, || async { Ok(3) }).await,
        (Ok(3), Outcome::Executed),
        "key 1 expired: its slot is free at once"
    );
    assert_eq!(flight.get(&2), Some(2));
    assert!(flight.len() <= 2);
}

#[tokio::test]
async fn a_table_full_of_running_flights_cannot_say_when() {
    let flight = never(2, 1);
    let gate = Gate::new();
    let slow = |v| {
        let gate = gate.clone();
        move || async move {
            gate.wait().await;
            Ok(v)
        }
    };
    let mut a = Probe::new(flight.run(1, slow(1)));
    let mut b = Probe::new(flight.run(2, slow(2)));
    a.pending();
    b.pending();
    assert_eq!(
        flight.run(3, || async { Ok(3) }).await,
        Err(Error::Full { retry_after: None })
    );
    // A caller of a running key joins it.
    let mut joined = Probe::new(flight.run_with_outcome(1, slow(10)));
    joined.pending();
    gate.open();
    assert_eq!(a.ready(), Ok(1));
    assert_eq!(joined.ready(), (Ok(1), Outcome::Coalesced));
    assert_eq!(b.ready(), Ok(2));
}

#[tokio::test]
async fn failures_panics_cancellations_and_forget_give_their_slots_back() {
    let flight: SingleFlight<u64, u64, String> = SingleFlight::builder()
        .ttl(Duration::from_secs(3600))
        .max_entries(1)
        .eviction(Eviction::Never)
        .build()
        .unwrap();
    for round in 0..3 {
        let r = flight.run(round, || async { Err("no".to_string()) }).await;
        assert_eq!(r, Err(Error::Failed("no".to_string())));
        let r = flight.run(round, || async { panic!("boom") }).await;
        assert!(matches!(r, Err(Error::Panicked(_))));
        // A cancelled lone leader: its flight is dropped.
        let mut cancelled = Probe::new(flight.run(round, std::future::pending));
        cancelled.pending();
        drop(cancelled);
        // A cancelled leader whose waiter leaves too: the orphan goes.
        let mut leader = Probe::new(flight.run(round, std::future::pending));
        leader.pending();
        let mut waiter = Probe::new(flight.run(round, || async { Ok(1) }));
        waiter.pending();
        drop(leader);
        drop(waiter);
        // A running flight forgotten.
        let mut forgotten = Probe::new(flight.run(round, std::future::pending));
        forgotten.pending();
        flight.forget(&round);
        assert!(flight.is_empty());
        assert_eq!(flight.run(100 + round, || async { Ok(1) }).await, Ok(1));
        flight.forget(&(100 + round));
    }
}

#[tokio::test]
async fn max_in_flight_refuses_new_flights_but_serves_joins_and_hits() {
    let flight: SingleFlight<u64, u64> = SingleFlight::builder()
        .ttl(Duration::from_secs(60))
        .max_in_flight(2)
        .build()
        .unwrap();
    let gate = Gate::new();
    let slow = |v| {
        let gate = gate.clone();
        move || async move {
            gate.wait().await;
            Ok(v)
        }
    };
    flight.run(9, || async { Ok(9) }).await.unwrap();
    let mut a = Probe::new(flight.run(1, slow(1)));
    let mut b = Probe::new(flight.run(2, slow(2)));
    a.pending();
    b.pending();
    let ran = Counter::new();
    assert_eq!(
        flight
            .run_with_outcome(3, || async { Ok(ran.hit() as u64) })
            .await,
        (Err(Error::Busy), Outcome::Refused)
    );
    assert_eq!(ran.get(), 0);
    assert_eq!(
        flight.run_with_outcome(9, slow(0)).await,
        (Ok(9), Outcome::Cached)
    );
    let mut joined = Probe::new(flight.run_with_outcome(1, slow(0)));
    joined.pending();
    gate.open();
    assert_eq!(a.ready(), Ok(1));
    assert_eq!(joined.ready(), (Ok(1), Outcome::Coalesced));
    assert_eq!(flight.run(3, || async { Ok(3) }).await, Ok(3));
    assert_eq!(b.ready(), Ok(2));
    assert_eq!(flight.stats().refusals, 1);
}

#[test]
fn max_in_flight_zero_is_a_build_error() {
    let e = SingleFlight::<u8, u8>::builder()
        .max_in_flight(0)
        .build()
        .unwrap_err();
    assert_eq!(e, idem::BuildError::ZeroMaxInFlight);
}

/// Threads storm a small never table with random keys (fixed seeds): the
/// table never holds more than its bound, every refused call ran nothing,
/// and every stored result stays until forgotten.
#[test]
fn a_storm_of_random_keys_never_breaks_the_bound() {
    for seed in 0..4u64 {
        let flight = never(16, 8);
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (stored, refused) = rt.block_on(async {
            let tasks: Vec<_> = (0..4)
                .map(|t| {
                    let (flight, runs) = (flight.clone(), runs.clone());
                    tokio::spawn(async move {
                        let mut rng = SmallRng::seed_from_u64(seed * 10 + t);
                        let (mut stored, mut refused) = (0usize, 0usize);
                        for _ in 0..2_000 {
                            let k = rng.random_range(0..64u64);
                            let r = flight
                                .run(k, || async {
                                    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                    tokio::task::yield_now().await;
                                    Ok(k)
                                })
                                .await;
                            match r {
                                Ok(v) => {
                                    assert_eq!(v, k);
                                    stored += 1;
                                }
                                Err(Error::Full { .. }) => refused += 1,
                                other => panic!("seed {seed}: {other:?}"),
                            }
                            let len = flight.len();
                            assert!(len <= 16, "seed {seed}: {len} entries");
                            if rng.random_bool(0.3) {
                                flight.forget(&k);
                            }
                        }
                        (stored, refused)
                    })
                })
                .collect();
            let mut totals = (0, 0);
            for t in tasks {
                let (s, r) = t.await.unwrap();
                totals.0 += s;
                totals.1 += r;
            }
            totals
        });
        assert!(
            refused > 0 && stored > 0,
            "seed {seed}: {stored} stored, {refused} refused"
        );
        assert!(flight.len() <= 16);
        assert_eq!(flight.stats().refusals as usize, refused, "seed {seed}");
        assert!(
            runs.load(std::sync::atomic::Ordering::SeqCst) <= stored,
            "seed {seed}"
        );
    }
}
