//! Model checks of the flight protocol with loom: every interleaving (up to
//! loom's preemption bound) of leaders, waiters, cancellation and `forget`
//! over the table's real code, with its locks and `Arc`s swapped for loom's.
//!
//! Run with (as `.ci/run` does):
//!
//! ```sh
//! RUSTFLAGS="--cfg idem_loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p idem --test loom --release
//! ```
#![cfg(idem_loom)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use idem::{Outcome, SingleFlight};
use loom::future::block_on;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

/// Returns `Pending` once (waking itself), so that loom can interleave other
/// threads while a work is in progress.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

#[derive(Default)]
struct Probe {
    runs: AtomicUsize,
    running: AtomicBool,
}

impl Probe {
    /// A work that checks no other execution of the key runs beside it.
    async fn work(&self) -> Result<usize, std::convert::Infallible> {
        let n = self.runs.fetch_add(1, SeqCst) + 1;
        assert!(!self.running.swap(true, SeqCst), "two executions at once");
        yield_once().await;
        self.running.store(false, SeqCst);
        Ok(n)
    }
}

#[test]
fn concurrent_callers_share_or_serialize_executions() {
    loom::model(|| {
        let flight: SingleFlight<u8, usize> = SingleFlight::new();
        let probe = Arc::new(Probe::default());
        let t = thread::spawn({
            let (flight, probe) = (flight.clone(), probe.clone());
            move || block_on(flight.run_with_outcome(1, || probe.work()))
        });
        let (b, ob) = block_on(flight.run_with_outcome(1, || probe.work()));
        let (a, oa) = t.join().unwrap();
        let runs = probe.runs.load(SeqCst);
        match (oa, ob) {
            (Outcome::Executed, Outcome::Executed) => assert_eq!(runs, 2),
            (Outcome::Coalesced, Outcome::Executed) | (Outcome::Executed, Outcome::Coalesced) => {
                assert_eq!(runs, 1);
                assert_eq!(a, b);
            }
            other => panic!("impossible outcomes {other:?}"),
        }
        assert!(flight.is_empty());
    });
}

#[test]
fn a_cancelled_leader_is_taken_over() {
    loom::model(|| {
        let flight: SingleFlight<u8, usize> = SingleFlight::new();
        // The leader claims the key and stalls; then it is dropped while
        // another thread calls for the same key.
        let mut leader = Box::pin(flight.run(1, || std::future::pending()));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(leader.as_mut().poll(&mut cx).is_pending());
        let t = thread::spawn({
            let flight = flight.clone();
            move || block_on(flight.run_with_outcome(1, || async { Ok(2) }))
        });
        drop(leader);
        assert_eq!(t.join().unwrap(), (Ok(2), Outcome::Executed));
        assert!(flight.is_empty());
        assert!(flight.stats().takeovers <= 1);
    });
}

#[test]
fn forget_racing_a_running_flight_never_loses_the_newer_result() {
    loom::model(|| {
        let flight: SingleFlight<u8, usize> = SingleFlight::builder()
            .ttl(Duration::from_secs(60))
            .build()
            .unwrap();
        let t = thread::spawn({
            let flight = flight.clone();
            move || {
                block_on(async {
                    let mut work = pin!(flight.run(1, || async {
                        yield_once().await;
                        Ok(1)
                    }));
                    work.as_mut().await
                })
            }
        });
        flight.forget(&1);
        let last = block_on(flight.run(1, || async { Ok(2) })).unwrap();
        t.join().unwrap().unwrap();
        // The last call's result came from a flight that started after the
        // forget; an older flight must not have overwritten it.
        assert_eq!(flight.get(&1), Some(last));
    });
}

#[test]
fn a_failed_flight_reaches_its_waiter_and_is_not_stored() {
    loom::model(|| {
        let flight: SingleFlight<u8, usize, &'static str> = SingleFlight::builder()
            .ttl(Duration::from_secs(60))
            .build()
            .unwrap();
        let t = thread::spawn({
            let flight = flight.clone();
            move || {
                block_on(flight.run(1, || async {
                    yield_once().await;
                    Err("failed")
                }))
            }
        });
        let b = block_on(flight.run(1, || async { Ok(7) }));
        let a = t.join().unwrap();
        // b joined a's failing flight (both fail), or ran after it (and
        // stored 7), or ran before it (and a got the stored 7). A failure is
        // never stored nor replayed to a later call.
        match (&a, &b) {
            (Err(_), Err(_)) => assert_eq!(flight.get(&1), None),
            (Err(_), Ok(7)) | (Ok(7), Ok(7)) => assert_eq!(flight.get(&1), Some(7)),
            other => panic!("impossible results {other:?}"),
        }
    });
}
