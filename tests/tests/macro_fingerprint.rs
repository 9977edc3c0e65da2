//! `#[idempotent(fingerprint = ...)]` (issue 7, section 5): a key reused
//! for another request (an order id sent again with another amount) gets
//! `Err(E::from(idem::Mismatch))`, and the body does not run, instead of
//! the first request's result. Tried as a new user would, without the
//! option the second call silently got the first one's receipt.

use std::sync::Arc;

use idem::{idempotent, Mismatch, SingleFlight};
use idem_tests::{Counter, Gate, Probe};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq)]
enum MyError {
    Mismatch,
    Declined,
}

impl From<Mismatch> for MyError {
    fn from(_: Mismatch) -> Self {
        MyError::Mismatch
    }
}

#[derive(Debug, Clone)]
struct Order {
    id: u64,
    amount: u64,
    currency: String,
}

fn order(id: u64, amount: u64, currency: &str) -> Order {
    Order {
        id,
        amount,
        currency: currency.to_string(),
    }
}

#[idempotent(key = order.id, fingerprint = (order.amount, &order.currency), ttl = "1h")]
async fn pay(order: Order, runs: Counter) -> Result<String, MyError> {
    runs.hit();
    Ok(format!("{} {} {}", order.id, order.amount, order.currency))
}

#[tokio::test]
async fn a_reused_key_with_another_payload_is_a_mismatch_and_runs_nothing() {
    let runs = Counter::new();
    let receipt = Ok("7 1250 EUR".to_string());
    assert_eq!(pay(order(7, 1250, "EUR"), runs.clone()).await, receipt);
    assert_eq!(
        pay(order(7, 9999, "EUR"), runs.clone()).await,
        Err(MyError::Mismatch)
    );
    assert_eq!(
        pay(order(7, 1250, "USD"), runs.clone()).await,
        Err(MyError::Mismatch),
        "every part of the fingerprint counts"
    );
    assert_eq!(runs.get(), 1, "the mismatched calls' bodies did not run");
    // The genuine retry: the stored result, still without running.
    assert_eq!(pay(order(7, 1250, "EUR"), runs.clone()).await, receipt);
    assert_eq!(runs.get(), 1);
    // Another key is another request.
    assert_eq!(
        pay(order(8, 9999, "EUR"), runs.clone()).await,
        Ok("8 9999 EUR".to_string())
    );
    assert_eq!(runs.get(), 2);
}

#[idempotent(key = id, fingerprint = amount)]
async fn held(id: u64, amount: u64, gate: Gate, runs: Counter) -> Result<u64, MyError> {
    runs.hit();
    gate.wait().await;
    Ok(amount)
}

#[tokio::test]
async fn a_call_with_another_fingerprint_does_not_wait_for_the_running_one() {
    let (gate, runs) = (Gate::new(), Counter::new());
    let mut first = Probe::new(held(1, 5, gate.clone(), runs.clone()));
    first.pending();
    assert_eq!(runs.get(), 1, "the first call is held in its body");
    // Answered at once, while the first call is still running.
    let mut other = Probe::new(held(1, 6, gate.clone(), runs.clone()));
    assert_eq!(other.ready(), Err(MyError::Mismatch));
    // The same request joins the running execution.
    let mut same = Probe::new(held(1, 5, gate.clone(), runs.clone()));
    same.pending();
    gate.open();
    assert_eq!(first.ready(), Ok(5));
    assert_eq!(same.ready(), Ok(5));
    assert_eq!(runs.get(), 1);
    // Nothing is stored without a ttl: the key is free for any request.
    assert_eq!(held(1, 6, gate, runs.clone()).await, Ok(6));
    assert_eq!(runs.get(), 2);
}

#[idempotent(key = id, fingerprint = amount, ttl = "1m", detached)]
async fn held_detached(
    id: u64,
    amount: u64,
    entered: Arc<Notify>,
    gate: Gate,
) -> Result<u64, Mismatch> {
    entered.notify_one();
    gate.wait().await;
    Ok(amount)
}

/// `detached`, and `Mismatch` itself as the error type.
#[tokio::test]
async fn a_detached_fn_returns_mismatches_too() {
    let (entered, gate) = (Arc::new(Notify::new()), Gate::new());
    let first = tokio::spawn(held_detached(1, 5, entered.clone(), gate.clone()));
    entered.notified().await;
    assert_eq!(
        held_detached(1, 6, entered.clone(), gate.clone()).await,
        Err(Mismatch),
        "while the first call runs"
    );
    gate.open();
    assert_eq!(first.await.unwrap(), Ok(5));
    assert_eq!(
        held_detached(1, 6, entered.clone(), gate.clone()).await,
        Err(Mismatch),
        "once its result is stored"
    );
    assert_eq!(held_detached(1, 5, entered, gate).await, Ok(5));
}

#[idempotent(key = id, fingerprint = amount, ttl = "1h")]
async fn declined_once(id: u64, amount: u64, runs: Counter) -> Result<u64, MyError> {
    if runs.hit() == 1 {
        return Err(MyError::Declined);
    }
    Ok(amount)
}

#[tokio::test]
async fn a_failure_is_not_stored_so_it_holds_no_fingerprint_either() {
    let runs = Counter::new();
    assert_eq!(
        declined_once(1, 5, runs.clone()).await,
        Err(MyError::Declined)
    );
    assert_eq!(declined_once(1, 6, runs.clone()).await, Ok(6));
    assert_eq!(
        declined_once(1, 5, runs.clone()).await,
        Err(MyError::Mismatch)
    );
    assert_eq!(runs.get(), 2);
}

/// A fingerprint that borrows the arguments and is neither `'static` nor
/// `Clone`: it is only hashed.
#[derive(Hash)]
struct Payload<'a> {
    amount: u64,
    currency: &'a str,
}

struct Request {
    id: u64,
    order: Order,
}

fn request_key(req: Request) -> u64 {
    req.id
}

/// The key consumes `req` (the body does not use it): the fingerprint,
/// which borrows it, is evaluated first.
#[idempotent(
    key = request_key(req),
    fingerprint = Payload { amount: req.order.amount, currency: &req.order.currency },
    ttl = "1h"
)]
async fn submit(req: Request, runs: Counter) -> Result<usize, MyError> {
    Ok(runs.hit())
}

#[tokio::test]
async fn a_fingerprint_may_borrow_what_the_key_then_consumes() {
    let runs = Counter::new();
    let req = |amount| Request {
        id: 3,
        order: order(3, amount, "EUR"),
    };
    assert_eq!(submit(req(10), runs.clone()).await, Ok(1));
    assert_eq!(submit(req(10), runs.clone()).await, Ok(1));
    assert_eq!(submit(req(11), runs.clone()).await, Err(MyError::Mismatch));
    assert_eq!(runs.get(), 1);
}

struct Payments {
    tenant: String,
    runs: Counter,
    flight: SingleFlight<u64, String, MyError>,
}

impl Payments {
    fn new(tenant: &str) -> Self {
        Self {
            tenant: tenant.to_string(),
            runs: Counter::new(),
            flight: SingleFlight::builder()
                .ttl(std::time::Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    /// A method's own table; the places of a tuple fingerprint are
    /// borrowed, so `order.currency` (a `String`) stays the body's.
    #[idempotent(key = order.id, fingerprint = (self.tenant, order.amount, order.currency), ttl = "1h")]
    async fn pay(&self, order: Order) -> Result<String, MyError> {
        self.runs.hit();
        Ok(format!(
            "{}: {} {}",
            self.tenant, order.amount, order.currency
        ))
    }

    /// A table of the instance's: the check is the same.
    #[idempotent(key = order.id, fingerprint = order.amount, flight = self.flight)]
    async fn refund(&self, order: Order) -> Result<String, MyError> {
        self.runs.hit();
        Ok(format!("refunded {}", order.amount))
    }
}

#[tokio::test]
async fn methods_with_self_check_fingerprints_in_their_own_table_and_in_a_flight() {
    let (a, b) = (Payments::new("a"), Payments::new("b"));
    assert_eq!(a.pay(order(1, 5, "EUR")).await, Ok("a: 5 EUR".to_string()));
    assert_eq!(a.pay(order(1, 6, "EUR")).await, Err(MyError::Mismatch));
    // A method's own table is shared by every instance: `self.tenant` is
    // part of the request, so the other tenant's call is a mismatch too.
    assert_eq!(b.pay(order(1, 5, "EUR")).await, Err(MyError::Mismatch));
    assert_eq!(a.pay(order(1, 5, "EUR")).await, Ok("a: 5 EUR".to_string()));
    assert_eq!((a.runs.get(), b.runs.get()), (1, 0));

    assert_eq!(a.refund(order(2, 5, "EUR")).await, Ok("refunded 5".into()));
    assert_eq!(a.refund(order(2, 6, "EUR")).await, Err(MyError::Mismatch));
    // Each instance's flight is its own.
    assert_eq!(b.refund(order(2, 6, "EUR")).await, Ok("refunded 6".into()));
    assert_eq!((a.runs.get(), b.runs.get()), (2, 1));
    assert_eq!(a.flight.stats().mismatches, 1);
}
