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
        // A takeover if the thread registered before the drop, else a
        // new flight.
        assert!(flight.stats().takeovers <= 1);
    });
}

/// A call for key 1 that owns its handle, so that another thread can drop
/// it.
fn owned<F, Fut>(
    flight: &SingleFlight<u8, usize>,
    work: F,
) -> std::pin::Pin<
    Box<
        dyn Future<
                Output = (
                    Result<usize, idem::Error<std::convert::Infallible>>,
                    Outcome,
                ),
            > + Send,
    >,
>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<usize, std::convert::Infallible>> + Send + 'static,
{
    let flight = flight.clone();
    Box::pin(async move { flight.run_with_outcome(1, work).await })
}

/// A waiter woken by a cancelled leader but polled only after another
/// waiter's takeover has finished still gets the takeover's result: it
/// stays attached to the flight, whatever the interleaving of the cancel
/// and the takeover.
#[test]
fn a_waiter_polled_after_the_takeover_finished_gets_its_result() {
    loom::model(|| {
        let flight: SingleFlight<u8, usize> = SingleFlight::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let work = |n: usize| {
            let runs = runs.clone();
            move || async move {
                runs.fetch_add(1, SeqCst);
                Ok(n)
            }
        };
        let mut cx = Context::from_waker(Waker::noop());
        let mut leader = owned(&flight, {
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, SeqCst);
                std::future::pending()
            }
        });
        assert!(leader.as_mut().poll(&mut cx).is_pending());
        let mut late = Box::pin(flight.run_with_outcome(1, work(1)));
        let mut taking_over = Box::pin(flight.run_with_outcome(1, work(2)));
        assert!(late.as_mut().poll(&mut cx).is_pending());
        assert!(taking_over.as_mut().poll(&mut cx).is_pending());
        let t = thread::spawn(move || drop(leader));
        assert_eq!(block_on(taking_over), (Ok(2), Outcome::Executed));
        t.join().unwrap();
        assert_eq!(
            late.as_mut().poll(&mut cx),
            Poll::Ready((Ok(2), Outcome::Coalesced))
        );
        assert_eq!(runs.load(SeqCst), 2);
        assert!(flight.is_empty());
    });
}

/// The driver and its only waiter are dropped at the same time: whichever
/// goes last takes the flight out of the table (an orphan nobody waits for
/// must not hold its key, and its slot, forever).
#[test]
fn a_driver_and_its_waiter_dropped_together_leave_nothing_behind() {
    loom::model(|| {
        let flight: SingleFlight<u8, usize> = SingleFlight::new();
        let mut cx = Context::from_waker(Waker::noop());
        let mut leader = owned(&flight, std::future::pending);
        assert!(leader.as_mut().poll(&mut cx).is_pending());
        let mut waiter = owned(&flight, || async { Ok(1) });
        assert!(waiter.as_mut().poll(&mut cx).is_pending());
        let t = thread::spawn(move || drop(waiter));
        drop(leader);
        t.join().unwrap();
        assert!(flight.is_empty());
    });
}

/// The last waiter of an orphan leaves while a newcomer arrives: the
/// newcomer either drives the orphan or, once it is gone, a new flight;
/// never waits forever, and the table is empty afterwards.
#[test]
fn the_last_waiter_leaving_an_orphan_races_a_newcomer() {
    loom::model(|| {
        let flight: SingleFlight<u8, usize> = SingleFlight::new();
        let mut cx = Context::from_waker(Waker::noop());
        let mut leader = owned(&flight, std::future::pending);
        assert!(leader.as_mut().poll(&mut cx).is_pending());
        let mut waiter = owned(&flight, || async { Ok(1) });
        assert!(waiter.as_mut().poll(&mut cx).is_pending());
        drop(leader);
        let t = thread::spawn(move || drop(waiter));
        let newcomer = block_on(flight.run_with_outcome(1, || async { Ok(3) }));
        t.join().unwrap();
        assert_eq!(newcomer, (Ok(3), Outcome::Executed));
        assert!(flight.is_empty());
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

/// A never-mode table with room for one entry: a flight that fails (and
/// gives its slot back) races a call for another key, which is either
/// refused while the slot is taken or runs and is stored. The bound holds
/// in every interleaving, and a refused call ran nothing.
#[test]
fn a_never_mode_refusal_races_a_completion() {
    loom::model(|| {
        let flight: SingleFlight<u8, usize, &'static str> = SingleFlight::builder()
            .ttl(Duration::from_secs(60))
            .max_entries(1)
            .eviction(idem::Eviction::Never)
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
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let b = block_on(flight.run_with_outcome(2, || {
            let ran = ran.clone();
            async move {
                ran.store(true, SeqCst);
                Ok(2)
            }
        }));
        let a = t.join().unwrap();
        assert!(flight.len() <= 1);
        match b {
            (Ok(2), Outcome::Executed) => assert_eq!(flight.get(&2), Some(2)),
            (Err(idem::Error::Full { retry_after: None }), Outcome::Refused) => {
                assert!(!ran.load(SeqCst));
                assert_eq!(a, Err(idem::Error::Failed("failed")));
            }
            other => panic!("impossible outcome {other:?}"),
        }
        // Key 1 either failed, or was refused because 2 was stored first.
        assert!(matches!(
            a,
            Err(idem::Error::Failed(_)) | Err(idem::Error::Full { .. })
        ));
    });
}
