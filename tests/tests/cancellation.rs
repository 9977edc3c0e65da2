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
