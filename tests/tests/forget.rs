//! Semantics 7: `forget` fences a running flight. Calls after it start a
//! fresh execution; the old flight answers its own callers but never
//! overwrites or removes the newer one (golang/go#31420, guava#1881).

use std::time::Duration;

use idem::{Outcome, SingleFlight};
use idem_tests::{Counter, Gate, Probe};

fn table() -> SingleFlight<u8, &'static str> {
    SingleFlight::builder()
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test]
async fn forget_drops_a_stored_result() {
    let flight = table();
    flight.run(1, || async { Ok("old") }).await.unwrap();
    assert!(flight.forget(&1));
    assert!(!flight.forget(&1), "nothing left to forget");
    assert_eq!(flight.get(&1), None);
    assert_eq!(
        flight.run_with_outcome(1, || async { Ok("new") }).await,
        (Ok("new"), Outcome::Executed)
    );
}

#[tokio::test]
async fn an_old_flight_never_overwrites_the_result_of_a_newer_one() {
    let flight = table();
    let old_gate = Gate::new();
    let mut old = Probe::new(flight.run(1, || async {
        old_gate.wait().await;
        Ok("stale")
    }));
    let mut old_waiter = Probe::new(flight.run_with_outcome(1, || async { Ok("unused") }));
    old.pending();
    old_waiter.pending();

    assert!(flight.forget(&1));
    assert_eq!(
        flight.run_with_outcome(1, || async { Ok("fresh") }).await,
        (Ok("fresh"), Outcome::Executed)
    );

    old_gate.open();
    // The old flight still answers its own callers...
    assert_eq!(old.ready(), Ok("stale"));
    assert_eq!(old_waiter.ready(), (Ok("stale"), Outcome::Coalesced));
    // ...but the stored result is the newer one.
    assert_eq!(flight.get(&1), Some("fresh"));
}

#[tokio::test]
async fn an_old_flight_never_removes_a_newer_running_one() {
    let flight = table();
    let runs = Counter::new();
    let (old_gate, new_gate) = (Gate::new(), Gate::new());
    let mut old = Probe::new(flight.run(1, || async {
        runs.hit();
        old_gate.wait().await;
        Ok("old")
    }));
    old.pending();
    flight.forget(&1);
    let mut new = Probe::new(flight.run(1, || async {
        runs.hit();
        new_gate.wait().await;
        Ok("new")
    }));
    new.pending();

    old_gate.open();
    assert_eq!(old.ready(), Ok("old"));
    // The new flight is still the one callers find.
    let mut joiner = Probe::new(flight.run_with_outcome(1, || async { Ok("third") }));
    joiner.pending();
    assert_eq!(runs.get(), 2);
    new_gate.open();
    assert_eq!(new.ready(), Ok("new"));
    assert_eq!(joiner.ready(), (Ok("new"), Outcome::Coalesced));
    assert_eq!(flight.get(&1), Some("new"));
}

#[tokio::test]
async fn an_old_leader_cancelled_after_forget_leaves_the_newer_flight_alone() {
    let flight = table();
    let gate = Gate::new();
    let mut old = Probe::new(flight.run(1, || async {
        gate.wait().await;
        Ok("old")
    }));
    old.pending();
    flight.forget(&1);
    let mut new = Probe::new(flight.run(1, || async {
        gate.wait().await;
        Ok("new")
    }));
    new.pending();
    drop(old);
    assert_eq!(flight.len(), 1, "the newer flight is still there");
    gate.open();
    assert_eq!(new.ready(), Ok("new"));
}

#[tokio::test]
async fn clear_forgets_everything() {
    let flight = table();
    let gate = Gate::new();
    flight.run(1, || async { Ok("a") }).await.unwrap();
    let mut running = Probe::new(flight.run(2, || async {
        gate.wait().await;
        Ok("b")
    }));
    running.pending();
    flight.clear();
    assert!(flight.is_empty());
    gate.open();
    assert_eq!(running.ready(), Ok("b"));
    assert!(flight.is_empty(), "a forgotten flight stores nothing");
}
