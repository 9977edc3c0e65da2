//! `#[idempotent]` on a table that can refuse calls (issue 7, section 1):
//! `eviction = "never"` with `max_entries`, and `max_in_flight`. A refused
//! call runs nothing and returns `Err(E::from(Refused::..))`; calls for keys
//! that are stored or running are served as usual. With `flight = ...`, a
//! refusal is an `Err` if the error type can carry one, a panic naming the
//! function otherwise.

use std::sync::Arc;
use std::time::Duration;

use idem::{idempotent, Eviction, Refused, SingleFlight};
use idem_tests::{Counter, Gate, Probe};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq)]
enum MyError {
    Refused(Refused),
}

impl From<Refused> for MyError {
    fn from(r: Refused) -> Self {
        MyError::Refused(r)
    }
}

/// Behind an alias: the type checker, not the macro, finds the `Result`.
type MyResult<T> = Result<T, MyError>;

#[idempotent(key = id, ttl = "1h", max_entries = 2, eviction = "never")]
async fn store(id: u64, runs: Counter) -> MyResult<u64> {
    runs.hit();
    Ok(id * 10)
}

#[tokio::test(start_paused = true)]
async fn a_full_never_table_refuses_a_new_key_and_keeps_what_it_holds() {
    let runs = Counter::new();
    assert_eq!(store(1, runs.clone()).await, Ok(10));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(store(2, runs.clone()).await, Ok(20));
    assert_eq!(
        store(3, runs.clone()).await,
        Err(MyError::Refused(Refused::Full {
            retry_after: Some(Duration::from_secs(3600 - 60))
        })),
        "refused until the oldest result, stored a minute ago, expires"
    );
    assert_eq!(runs.get(), 2, "the refused call's body ran");
    // What the table holds is kept and replayed.
    assert_eq!(store(1, runs.clone()).await, Ok(10));
    assert_eq!(store(2, runs.clone()).await, Ok(20));
    assert_eq!(runs.get(), 2);
    // Once the oldest expires, its slot is free.
    tokio::time::advance(Duration::from_secs(3600 - 60)).await;
    assert_eq!(store(3, runs.clone()).await, Ok(30));
    assert_eq!(runs.get(), 3);
}

#[idempotent(key = id, max_in_flight = 1)]
async fn held(id: u64, gate: Gate, runs: Counter) -> Result<u64, MyError> {
    runs.hit();
    gate.wait().await;
    Ok(id)
}

#[tokio::test]
async fn max_in_flight_refuses_another_execution_but_lets_a_caller_join() {
    let (gate, runs) = (Gate::new(), Counter::new());
    let mut first = Probe::new(held(1, gate.clone(), runs.clone()));
    first.pending();
    assert_eq!(runs.get(), 1, "the first call is held in its body");
    // Another key would start a second execution: refused, without running.
    let mut other = Probe::new(held(2, gate.clone(), runs.clone()));
    assert_eq!(other.ready(), Err(MyError::Refused(Refused::Busy)));
    // The same key joins the running execution.
    let mut same = Probe::new(held(1, gate.clone(), runs.clone()));
    same.pending();
    gate.open();
    assert_eq!(first.ready(), Ok(1));
    assert_eq!(same.ready(), Ok(1));
    assert_eq!(runs.get(), 1);
    // Nothing is running now: another key runs.
    assert_eq!(held(2, gate, runs.clone()).await, Ok(2));
    assert_eq!(runs.get(), 2);
}

#[idempotent(key = id, ttl = "1m", max_in_flight = 1, detached)]
async fn held_detached(id: u64, entered: Arc<Notify>, gate: Gate) -> Result<u64, Refused> {
    entered.notify_one();
    gate.wait().await;
    Ok(id)
}

/// `detached`, and `Refused` itself as the error type.
#[tokio::test]
async fn a_detached_fn_returns_refusals_too() {
    let (entered, gate) = (Arc::new(Notify::new()), Gate::new());
    let first = tokio::spawn(held_detached(1, entered.clone(), gate.clone()));
    entered.notified().await;
    assert_eq!(
        held_detached(2, entered.clone(), gate.clone()).await,
        Err(Refused::Busy)
    );
    gate.open();
    assert_eq!(first.await.unwrap(), Ok(1));
}

/// A never-mode table of the user's: the macro cannot see its bounds.
struct Payments {
    flight: SingleFlight<u64, u64, MyError>,
    plain: SingleFlight<u64, u64, String>,
    value: SingleFlight<u64, u64>,
}

impl Payments {
    fn new() -> Self {
        fn never<E: Send + Sync + 'static>() -> SingleFlight<u64, u64, E> {
            SingleFlight::builder()
                .ttl(Duration::from_secs(3600))
                .max_entries(1)
                .eviction(Eviction::Never)
                .build()
                .unwrap()
        }
        Self {
            flight: never(),
            plain: never(),
            value: never(),
        }
    }

    #[idempotent(key = id, flight = self.flight)]
    async fn pay(&self, id: u64, runs: Counter) -> Result<u64, MyError> {
        runs.hit();
        Ok(id)
    }

    #[idempotent(key = id, flight = self.plain)]
    async fn pay_plain(&self, id: u64) -> Result<u64, String> {
        Ok(id)
    }

    #[idempotent(key = id, flight = self.value)]
    async fn pay_value(&self, id: u64) -> u64 {
        id
    }
}

#[tokio::test(start_paused = true)]
async fn a_flight_whose_error_can_carry_a_refusal_returns_it() {
    let (p, runs) = (Payments::new(), Counter::new());
    assert_eq!(p.pay(1, runs.clone()).await, Ok(1));
    assert_eq!(
        p.pay(2, runs.clone()).await,
        Err(MyError::Refused(Refused::Full {
            retry_after: Some(Duration::from_secs(3600))
        }))
    );
    assert_eq!(runs.get(), 1);
    assert_eq!(p.pay(1, runs.clone()).await, Ok(1));
}

#[tokio::test]
#[should_panic = "a call of `#[idempotent]` fn `macro_refusals::pay_plain` was refused and nothing ran: its table is full"]
async fn a_flight_whose_error_cannot_carry_a_refusal_panics_naming_the_function() {
    let p = Payments::new();
    assert_eq!(p.pay_plain(1).await, Ok(1));
    let _ = p.pay_plain(2).await;
}

#[tokio::test]
#[should_panic = "a call of `#[idempotent]` fn `macro_refusals::pay_value` was refused and nothing ran: its table is full"]
async fn a_flight_of_plain_values_panics_on_a_refusal() {
    let p = Payments::new();
    assert_eq!(p.pay_value(1).await, 1);
    let _ = p.pay_value(2).await;
}

const LIMIT: usize = 1;

/// The settings as expressions, and `"adaptive"` said out loud: a cache,
/// which evicts rather than refuse (only `max_in_flight` refuses here).
#[idempotent(key = id, ttl = "1h", max_entries = LIMIT, eviction = "adaptive", max_in_flight = LIMIT + 1)]
async fn cache(id: u64, runs: Counter) -> Result<u64, MyError> {
    runs.hit();
    Ok(id)
}

#[tokio::test]
async fn an_adaptive_table_evicts_instead_of_refusing() {
    let runs = Counter::new();
    for id in 0..4 {
        assert_eq!(cache(id, runs.clone()).await, Ok(id));
    }
    assert_eq!(runs.get(), 4);
}
