//! Semantics 1: concurrent calls with equal keys share one execution;
//! different keys never wait on each other.

use std::sync::Arc;
use std::time::Duration;

use idem::{Outcome, SingleFlight};
use idem_tests::{Counter, Gate, Probe};

#[tokio::test]
async fn concurrent_equal_keys_share_one_execution() {
    let flight: SingleFlight<&str, Arc<String>> = SingleFlight::new();
    let runs = Counter::new();
    let gate = Gate::new();
    let work = || async {
        runs.hit();
        gate.wait().await;
        Ok(Arc::new("value".to_string()))
    };
    let mut callers: Vec<_> = (0..100)
        .map(|_| Probe::new(flight.run_with_outcome("k", work)))
        .collect();
    for c in &mut callers {
        c.pending();
    }
    assert_eq!(runs.get(), 1, "only the first caller runs the work");
    assert_eq!(flight.len(), 1);

    gate.open();
    let (leader, waiters) = callers.split_first_mut().unwrap();
    let (v0, o0) = leader.ready();
    assert_eq!(o0, Outcome::Executed);
    let v0 = v0.unwrap();
    for w in waiters {
        assert!(w.woken(), "every waiter is woken when the flight ends");
        let (v, o) = w.ready();
        assert_eq!(o, Outcome::Coalesced);
        // A clone of the one value, not a value of its own.
        assert!(Arc::ptr_eq(&v.unwrap(), &v0));
    }
    assert_eq!(runs.get(), 1);
    let s = flight.stats();
    assert_eq!((s.executions, s.coalesced, s.hits), (1, 99, 0));
    assert!(flight.is_empty(), "a table without ttl keeps nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_storm_on_threads_runs_once() {
    // With a ttl, a caller that arrives after the execution ended gets the
    // stored value, so exactly one execution whatever the interleaving.
    let flight: SingleFlight<u64, u64> = SingleFlight::builder()
        .ttl(Duration::from_secs(3600))
        .build()
        .unwrap();
    let runs = Counter::new();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (flight, runs, barrier) = (flight.clone(), runs.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                flight
                    .run(7, || async {
                        runs.hit();
                        tokio::task::yield_now().await;
                        Ok(49)
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(49));
    }
    assert_eq!(runs.get(), 1);
    let s = flight.stats();
    assert_eq!(s.executions, 1);
    assert_eq!(s.coalesced + s.hits, 63);
}

#[tokio::test]
async fn different_keys_in_one_shard_do_not_wait_on_each_other() {
    let flight: SingleFlight<u32, u32> = SingleFlight::builder()
        .shards(1)
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let gate = Gate::new();
    let mut slow = Probe::new(flight.run(1, || async {
        gate.wait().await;
        Ok(1)
    }));
    slow.pending();
    // Key 2 lives in the same (only) shard and completes while key 1 runs.
    let mut fast = Probe::new(flight.run(2, || async { Ok(2) }));
    assert_eq!(fast.ready(), Ok(2));
    assert_eq!(flight.get(&2), Some(2));
    slow.pending();
    gate.open();
    assert_eq!(slow.ready(), Ok(1));
}

#[tokio::test]
async fn equal_keys_of_a_borrowed_type_coalesce() {
    // Keys are compared by value, not identity.
    let flight: SingleFlight<String, usize> = SingleFlight::new();
    let gate = Gate::new();
    let runs = Counter::new();
    let work = || async {
        gate.wait().await;
        Ok(runs.hit())
    };
    let mut a = Probe::new(flight.run(format!("user-{}", 1), work));
    let mut b = Probe::new(flight.run("user-1".to_owned(), work));
    a.pending();
    b.pending();
    gate.open();
    assert_eq!(a.ready(), Ok(1));
    assert_eq!(b.ready(), Ok(1));
}

#[tokio::test]
async fn work_may_borrow_from_the_caller() {
    struct Service {
        flight: SingleFlight<u8, String>,
        name: String,
    }
    impl Service {
        async fn describe(&self, id: u8) -> String {
            let local = format!("#{id}");
            self.flight
                .run(id, || async { Ok(format!("{} {}", self.name, local)) })
                .await
                .unwrap()
        }
    }
    let s = Service {
        flight: SingleFlight::new(),
        name: "svc".into(),
    };
    assert_eq!(s.describe(3).await, "svc #3");
}
