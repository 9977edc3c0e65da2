//! Semantics 6: detached work completes, and is stored, when every caller
//! has left; a stalled caller cannot stall it.

use std::sync::Arc;
use std::time::Duration;

use idem::{Error, Outcome, SingleFlight};
use idem_tests::{Counter, Gate, Probe};
use tokio::sync::Notify;

fn table() -> SingleFlight<u32, u32> {
    SingleFlight::builder()
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Work that waits for `gate`, counts itself, and signals `done` as it
/// returns. On a current-thread runtime the spawned task stores the result
/// in the same poll in which the work returns, so once the test sees `done`
/// the result is stored.
fn work(
    gate: &Gate,
    done: &Arc<Notify>,
    runs: &Counter,
    value: u32,
) -> impl FnOnce() -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<u32, std::convert::Infallible>> + Send>,
> + Send
       + 'static {
    let (gate, done, runs) = (gate.clone(), done.clone(), runs.clone());
    move || {
        Box::pin(async move {
            runs.hit();
            gate.wait().await;
            done.notify_one();
            Ok(value)
        })
    }
}

#[tokio::test]
async fn detached_work_completes_and_is_stored_after_every_caller_left() {
    let flight = table();
    let (gate, done, runs) = (Gate::new(), Arc::new(Notify::new()), Counter::new());
    let mut caller = Probe::new(flight.run_detached(1, work(&gate, &done, &runs, 10)));
    caller.pending();
    drop(caller);
    gate.open();
    done.notified().await;
    assert_eq!(flight.get(&1), Some(10));
    // The client's retry gets the first execution's result.
    let retry = flight
        .run_detached_with_outcome(1, work(&gate, &done, &runs, 20))
        .await;
    assert_eq!(retry, (Ok(10), Outcome::Cached));
    assert_eq!(runs.get(), 1);
}

#[tokio::test]
async fn a_stalled_caller_cannot_stall_detached_work() {
    let flight = table();
    let (gate, done, runs) = (Gate::new(), Arc::new(Notify::new()), Counter::new());
    // Polled once, then kept alive and never polled again.
    let mut stalled = Probe::new(flight.run_detached(1, work(&gate, &done, &runs, 10)));
    stalled.pending();
    let mut other = Probe::new(flight.run_detached_with_outcome(1, work(&gate, &done, &runs, 20)));
    other.pending();
    gate.open();
    done.notified().await;
    assert!(other.woken());
    assert_eq!(other.ready(), (Ok(10), Outcome::Coalesced));
    assert_eq!(runs.get(), 1);
    // The stalled caller gets the same result whenever it is polled again.
    assert_eq!(stalled.ready(), Ok(10));
}

#[tokio::test]
async fn detached_errors_and_panics_reach_the_callers() {
    let flight: SingleFlight<u32, u32, String> = SingleFlight::new();
    let res = flight
        .run_detached(1, || async { Err("no".to_string()) })
        .await;
    assert_eq!(res, Err(Error::Failed("no".into())));
    let res = flight
        .run_detached(1, || async { panic!("detached boom") })
        .await;
    let Err(Error::Panicked(p)) = res else {
        panic!("expected a panic, got {res:?}")
    };
    assert_eq!(p.message(), "detached boom");
    assert!(flight.is_empty());
}

#[test]
fn a_detached_flight_whose_runtime_shuts_down_is_aborted_not_stuck() {
    let flight: SingleFlight<u32, u32> = SingleFlight::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    // Polled inside the runtime's context, so the work is spawned on it; the
    // runtime is never driven, then shut down with the work pending.
    let mut caller = {
        let _enter = rt.enter();
        let mut c = Probe::new(flight.run_detached(1, move || async move {
            g.wait().await;
            Ok(1)
        }));
        c.pending();
        c
    };
    drop(rt);
    assert!(caller.woken());
    assert_eq!(caller.ready(), Err(Error::Aborted));
    assert!(flight.is_empty(), "the key is free again");
}

#[test]
fn run_detached_outside_a_runtime_panics_with_a_clear_message() {
    let flight: SingleFlight<u32, u32> = SingleFlight::new();
    let mut caller = Probe::new(flight.run_detached(1, || async { Ok(1) }));
    let payload =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| caller.poll())).unwrap_err();
    let msg = payload.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("within a tokio runtime"), "{msg}");
    assert!(flight.is_empty());
}

#[tokio::test]
async fn run_and_run_detached_share_flights() {
    let flight = table();
    let gate = Gate::new();
    let runs = Counter::new();
    let mut borrowed = Probe::new(flight.run_with_outcome(1, || async {
        runs.hit();
        gate.wait().await;
        Ok(5)
    }));
    borrowed.pending();
    let (g, r) = (gate.clone(), runs.clone());
    let mut detached = Probe::new(flight.run_detached_with_outcome(1, move || async move {
        r.hit();
        g.wait().await;
        Ok(6)
    }));
    detached.pending();
    gate.open();
    assert_eq!(borrowed.ready(), (Ok(5), Outcome::Executed));
    assert_eq!(detached.ready(), (Ok(5), Outcome::Coalesced));
    assert_eq!(runs.get(), 1);
}

/// Issue 7, defect 5: the runtime check came before the lookup, so a hit
/// (which needs no runtime) panicked outside one.
#[test]
fn a_hit_needs_no_runtime() {
    let flight = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let flight = table();
            flight.run_detached(1, || async { Ok(1) }).await.unwrap();
            flight
        })
    };
    let mut caller = Probe::new(flight.run_detached_with_outcome(1, || async { Ok(2) }));
    assert_eq!(caller.ready(), (Ok(1), Outcome::Cached));
}

/// A detached flight whose task is dropped (its runtime shut down) is
/// orphaned: a caller that joined it with work of its own takes it over,
/// on its own runtime, and the spawning caller (whose work went to the
/// dropped task) gets `Aborted`.
#[test]
fn a_joined_caller_takes_over_a_detached_flight_whose_runtime_shut_down() {
    let flight: SingleFlight<u32, u32> = SingleFlight::new();
    let doomed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut spawner = {
        let _enter = doomed.enter();
        let mut c = Probe::new(flight.run_detached(1, std::future::pending));
        c.pending();
        c
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut joined = {
        let _enter = rt.enter();
        let mut c = Probe::new(flight.run_detached_with_outcome(1, || async { Ok(7) }));
        c.pending();
        c
    };
    drop(doomed);
    assert_eq!(spawner.ready(), Err(Error::Aborted));
    assert!(joined.woken());
    let _enter = rt.enter();
    joined.pending(); // spawns its own work on `rt`
    rt.block_on(tokio::task::yield_now());
    assert_eq!(joined.ready(), (Ok(7), Outcome::Executed));
    assert!(flight.is_empty());
}
