//! Semantics 5: a dropped leader hands the flight to exactly one waiter; a
//! waiter that leaves disturbs nobody.

use std::time::Duration;

use idem::{Outcome, SingleFlight};
use idem_tests::{Counter, Gate, Probe};

#[tokio::test]
async fn a_cancelled_leader_hands_over_to_exactly_one_waiter() {
    let flight: SingleFlight<u8, usize> = SingleFlight::new();
    let runs = Counter::new();
    let gate = Gate::new();
    let work = || async {
        let n = runs.hit();
        gate.wait().await;
        Ok(n)
    };
    let mut leader = Probe::new(flight.run_with_outcome(1, work));
    leader.pending();
    let mut waiters: Vec<_> = (0..5)
        .map(|_| Probe::new(flight.run_with_outcome(1, work)))
        .collect();
    waiters.iter_mut().for_each(Probe::pending);
    assert_eq!(runs.get(), 1);

    drop(leader);
    assert!(waiters.iter().all(Probe::woken), "every waiter is woken");
    // The first waiter to look again leads with its own work; the others
    // join it.
    waiters.iter_mut().for_each(Probe::pending);
    assert_eq!(runs.get(), 2, "one extra execution, not one per waiter");
    gate.open();
    let results: Vec<_> = waiters.iter_mut().map(Probe::ready).collect();
    assert_eq!(results[0], (Ok(2), Outcome::Executed));
    for r in &results[1..] {
        assert_eq!(*r, (Ok(2), Outcome::Coalesced));
    }
    let s = flight.stats();
    assert_eq!((s.executions, s.takeovers, s.coalesced), (2, 1, 4));
    assert!(flight.is_empty());
}

#[tokio::test]
async fn leaders_cancelled_again_and_again_never_fail_the_waiters() {
    let flight: SingleFlight<u8, usize> = SingleFlight::new();
    let runs = Counter::new();
    let gate = Gate::new();
    let work = || async {
        let n = runs.hit();
        gate.wait().await;
        Ok(n)
    };
    let mut callers: Vec<_> = (0..60)
        .map(|_| Probe::new(flight.run_with_outcome(1, work)))
        .collect();
    callers.iter_mut().for_each(Probe::pending);
    // Cancel whoever leads, 50 times over.
    for round in 1..=50 {
        callers.remove(0);
        callers.iter_mut().for_each(Probe::pending);
        assert_eq!(runs.get(), round + 1);
    }
    gate.open();
    let (first, rest) = callers.split_first_mut().unwrap();
    assert_eq!(first.ready(), (Ok(51), Outcome::Executed));
    for c in rest {
        assert_eq!(c.ready(), (Ok(51), Outcome::Coalesced));
    }
    assert_eq!(flight.stats().takeovers, 50);
}

#[tokio::test]
async fn a_waiter_that_leaves_disturbs_nobody() {
    let flight: SingleFlight<u8, u8> = SingleFlight::new();
    let gate = Gate::new();
    let runs = Counter::new();
    let work = || async {
        runs.hit();
        gate.wait().await;
        Ok(1)
    };
    let mut leader = Probe::new(flight.run_with_outcome(1, work));
    let mut leaving = Probe::new(flight.run_with_outcome(1, work));
    let mut staying = Probe::new(flight.run_with_outcome(1, work));
    leader.pending();
    leaving.pending();
    staying.pending();
    drop(leaving);
    assert!(!leader.woken() && !staying.woken());
    gate.open();
    assert_eq!(leader.ready(), (Ok(1), Outcome::Executed));
    assert_eq!(staying.ready(), (Ok(1), Outcome::Coalesced));
    assert_eq!(runs.get(), 1);
    assert_eq!(flight.stats().takeovers, 0);
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_times_out_is_taken_over_by_a_waiter() {
    let flight: SingleFlight<u8, &str> = SingleFlight::new();
    let slow = || async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok("slow")
    };
    let leader = tokio::time::timeout(Duration::from_secs(1), flight.run(1, slow));
    let waiter = async {
        tokio::task::yield_now().await; // let the leader start first
        flight
            .run_with_outcome(1, || async { Ok("taken over") })
            .await
    };
    let (leader, waiter) = tokio::join!(leader, waiter);
    assert!(leader.is_err(), "the leader timed out");
    assert_eq!(waiter, (Ok("taken over"), Outcome::Executed));
    assert_eq!(flight.stats().takeovers, 1);
}

#[tokio::test]
async fn a_leader_dropped_before_its_first_poll_leaves_no_trace() {
    let flight: SingleFlight<u8, u8> = SingleFlight::new();
    let never_polled = flight.run(1, || async { Ok(1) });
    drop(never_polled);
    assert!(flight.is_empty());
    assert_eq!(flight.stats().executions, 0);
}

/// Issue 7, defect 0: the woken waiters of a cancelled leader used to look
/// their key up again; those polled after the takeover had finished found
/// it free and each ran their own work (11 executions, 10 results).
#[tokio::test]
async fn waiters_polled_after_the_takeover_finished_get_its_result() {
    let flight: SingleFlight<u8, usize> = SingleFlight::new();
    let runs = Counter::new();
    let work = || async { Ok(runs.hit()) };
    let mut leader = Probe::new(flight.run_with_outcome(1, || async {
        runs.hit();
        std::future::pending().await
    }));
    leader.pending();
    let mut waiters: Vec<_> = (0..10)
        .map(|_| Probe::new(flight.run_with_outcome(1, work)))
        .collect();
    waiters.iter_mut().for_each(Probe::pending);
    drop(leader);
    // Polled in turn: the first drives the flight to its end in one poll,
    // before any other is polled.
    let results: Vec<_> = waiters.iter_mut().map(Probe::ready).collect();
    assert_eq!(results[0], (Ok(2), Outcome::Executed));
    for r in &results[1..] {
        assert_eq!(*r, (Ok(2), Outcome::Coalesced));
    }
    assert_eq!(runs.get(), 2, "one extra execution per cancelled leader");
    assert!(flight.is_empty());
}

#[tokio::test]
async fn waiters_polled_after_a_failed_takeover_get_its_error() {
    let flight: SingleFlight<u8, usize, String> = SingleFlight::builder()
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let runs = Counter::new();
    let work = || async { Err(format!("failure #{}", runs.hit())) };
    let mut leader = Probe::new(flight.run_with_outcome(1, || async {
        runs.hit();
        std::future::pending().await
    }));
    leader.pending();
    let mut waiters: Vec<_> = (0..10)
        .map(|_| Probe::new(flight.run_with_outcome(1, work)))
        .collect();
    waiters.iter_mut().for_each(Probe::pending);
    drop(leader);
    let results: Vec<_> = waiters.iter_mut().map(Probe::ready).collect();
    let failed = Err(idem::Error::Failed("failure #2".to_string()));
    assert_eq!(results[0], (failed.clone(), Outcome::Executed));
    for r in &results[1..] {
        assert_eq!(*r, (failed.clone(), Outcome::Coalesced));
    }
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn a_waiter_woken_to_take_over_but_dropped_unpolled_passes_the_flight_on() {
    let flight: SingleFlight<u8, usize> = SingleFlight::new();
    let runs = Counter::new();
    let work = || async { Ok(runs.hit()) };
    let mut leader = Probe::new(flight.run_with_outcome(1, || async {
        runs.hit();
        std::future::pending().await
    }));
    leader.pending();
    let mut first = Probe::new(flight.run_with_outcome(1, work));
    let mut second = Probe::new(flight.run_with_outcome(1, work));
    first.pending();
    second.pending();
    drop(leader);
    assert!(first.woken() && second.woken());
    drop(first);
    assert_eq!(second.ready(), (Ok(2), Outcome::Executed));
    assert_eq!(runs.get(), 2);
    assert!(flight.is_empty());
}

#[tokio::test]
async fn an_orphan_whose_waiters_all_leave_is_removed() {
    let flight: SingleFlight<u8, usize> = SingleFlight::new();
    let work = || async { Ok(1) };
    let mut leader = Probe::new(flight.run_with_outcome(1, std::future::pending));
    leader.pending();
    let mut waiters: Vec<_> = (0..3)
        .map(|_| Probe::new(flight.run_with_outcome(1, work)))
        .collect();
    waiters.iter_mut().for_each(Probe::pending);
    drop(leader);
    assert_eq!(flight.len(), 1, "the orphan waits for a driver");
    drop(waiters);
    assert!(flight.is_empty(), "nobody is left to drive it");
    assert_eq!(
        flight.run_with_outcome(1, || async { Ok(7) }).await,
        (Ok(7), Outcome::Executed)
    );
}

#[tokio::test]
async fn a_new_caller_finding_an_orphan_drives_it_for_the_waiters() {
    let flight: SingleFlight<u8, usize> = SingleFlight::new();
    let mut leader = Probe::new(flight.run_with_outcome(1, std::future::pending));
    leader.pending();
    let gate = Gate::new();
    let slow = || async {
        gate.wait().await;
        Ok(2)
    };
    let mut waiter = Probe::new(flight.run_with_outcome(1, slow));
    waiter.pending();
    drop(leader);
    // A newcomer is polled before the woken waiter: it drives.
    let mut newcomer = Probe::new(flight.run_with_outcome(1, || async { Ok(3) }));
    assert_eq!(newcomer.ready(), (Ok(3), Outcome::Executed));
    assert_eq!(waiter.ready(), (Ok(3), Outcome::Coalesced));
    assert_eq!(flight.stats().takeovers, 1);
}

/// 2,000 waiting tasks on two workers, one cancelled leader, a takeover
/// that yields once: every task gets the takeover's result (it was 51
/// executions on the previous design).
#[test]
fn a_storm_of_waiters_survives_a_cancelled_leader_with_one_extra_execution() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let flight: SingleFlight<u8, usize> = SingleFlight::new();
        let runs = Counter::new();
        let started = std::sync::Arc::new(tokio::sync::Notify::new());
        let leader = tokio::spawn({
            let (flight, runs, started) = (flight.clone(), runs.clone(), started.clone());
            async move {
                flight
                    .run(1, || async {
                        runs.hit();
                        started.notify_one();
                        std::future::pending().await
                    })
                    .await
            }
        });
        started.notified().await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2_001));
        let waiters: Vec<_> = (0..2_000)
            .map(|_| {
                let (flight, runs, barrier) = (flight.clone(), runs.clone(), barrier.clone());
                tokio::spawn(async move {
                    let call = flight.run_with_outcome(1, || async {
                        let n = runs.hit();
                        tokio::task::yield_now().await;
                        Ok(n)
                    });
                    let mut call = std::pin::pin!(call);
                    // Registered as a waiter before the leader goes.
                    assert!(futures_poll_once(call.as_mut()).await.is_none());
                    barrier.wait().await;
                    call.await
                })
            })
            .collect();
        barrier.wait().await;
        leader.abort();
        let mut executed = 0;
        for w in waiters {
            let (v, outcome) = w.await.unwrap();
            assert_eq!(v, Ok(2));
            executed += usize::from(outcome == Outcome::Executed);
        }
        assert_eq!((runs.get(), executed), (2, 1));
    });
}

/// Polls a future once; `Some` if it was ready.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// 400 callers; whoever drives the flight is cancelled, 100 times in a
/// row, and only the next caller is polled in between (it takes over). The
/// others are polled once the last driver has finished: they are still
/// attached to the one flight (on the previous design each found the key
/// free and ran its own work: 400 executions).
#[tokio::test]
async fn a_hundred_cancelled_drivers_in_a_row_cost_a_hundred_executions() {
    let flight: SingleFlight<u16, usize> = SingleFlight::new();
    let runs = Counter::new();
    let gate = Gate::new();
    let work = || async {
        let n = runs.hit();
        gate.wait().await;
        Ok(n)
    };
    let mut callers: std::collections::VecDeque<_> = (0..400)
        .map(|_| Probe::new(flight.run_with_outcome(1, work)))
        .collect();
    callers.iter_mut().for_each(Probe::pending);
    for round in 1..=100 {
        callers.pop_front(); // the driver
        callers[0].pending(); // takes over
        assert_eq!(runs.get(), round + 1);
    }
    gate.open();
    assert_eq!(callers[0].ready(), (Ok(101), Outcome::Executed));
    for c in callers.iter_mut().skip(1) {
        assert_eq!(c.ready(), (Ok(101), Outcome::Coalesced));
    }
    assert_eq!(runs.get(), 101);
    assert_eq!(flight.stats().takeovers, 100);
}
