//! `#[idempotent]`: concurrent duplicates share one execution; the key is
//! evaluated once, before the body, which can still use what it names.
//!
//! Futures are polled by hand ([`Probe`]), so every interleaving is chosen by
//! the test, not by a scheduler.

use std::sync::atomic::{AtomicUsize, Ordering};

use idem::idempotent;
use idem_tests::{Counter, Gate, Probe};

#[derive(Debug, Clone, PartialEq)]
struct Order {
    id: String,
    cents: u64,
}

static PLACED: AtomicUsize = AtomicUsize::new(0);

/// The key (`order.id`, a `String`) is cloned, so the body still has all of
/// `order`.
#[idempotent(key = order.id)]
async fn place(order: Order, gate: Gate) -> Result<String, String> {
    PLACED.fetch_add(1, Ordering::SeqCst);
    gate.wait().await;
    Ok(format!("receipt {} for {} cents", order.id, order.cents))
}

fn order(id: &str) -> Order {
    Order {
        id: id.to_string(),
        cents: 1_250,
    }
}

#[test]
fn concurrent_duplicates_share_one_execution() {
    let gate = Gate::new();
    let mut callers: Vec<_> = (0..5)
        .map(|_| Probe::new(place(order("o-1"), gate.clone())))
        .collect();
    for c in &mut callers {
        c.pending();
    }
    assert_eq!(
        PLACED.load(Ordering::SeqCst),
        1,
        "one execution for five callers"
    );
    gate.open();
    for c in &mut callers {
        assert_eq!(c.ready().as_deref(), Ok("receipt o-1 for 1250 cents"));
    }
    assert_eq!(PLACED.load(Ordering::SeqCst), 1);
}

static FETCHED: AtomicUsize = AtomicUsize::new(0);

#[idempotent(key = id)]
async fn fetch(id: u64, gate: Gate) -> u64 {
    FETCHED.fetch_add(1, Ordering::SeqCst);
    gate.wait().await;
    id * 10
}

#[test]
fn different_keys_run_separately_and_nothing_is_kept_without_ttl() {
    let gate = Gate::new();
    let mut a = Probe::new(fetch(1, gate.clone()));
    let mut b = Probe::new(fetch(2, gate.clone()));
    let mut a2 = Probe::new(fetch(1, gate.clone()));
    a.pending();
    b.pending();
    a2.pending();
    assert_eq!(FETCHED.load(Ordering::SeqCst), 2);
    gate.open();
    assert_eq!((a.ready(), b.ready(), a2.ready()), (10, 20, 10));
    // Without a ttl, a later call runs again.
    assert_eq!(Probe::new(fetch(1, gate)).ready(), 10);
    assert_eq!(FETCHED.load(Ordering::SeqCst), 3);
}

/// Counts how often the key expression is evaluated.
#[derive(Debug)]
struct Request {
    user: u32,
    path: String,
    evaluations: Counter,
}

impl Request {
    fn key(&self) -> (u32, String) {
        self.evaluations.hit();
        (self.user, self.path.clone())
    }
}

#[idempotent(key = req.key())]
async fn handle(req: Request) -> String {
    // The body still owns `req`.
    format!("{}:{}", req.user, req.path)
}

#[test]
fn the_key_is_evaluated_once_before_the_body() {
    let evaluations = Counter::new();
    let req = Request {
        user: 7,
        path: "/a".into(),
        evaluations: evaluations.clone(),
    };
    assert_eq!(Probe::new(handle(req)).ready(), "7:/a");
    assert_eq!(evaluations.get(), 1);
}

#[idempotent(key = (user, day.clone()))]
async fn report(user: u32, day: String, runs: Counter) -> String {
    runs.hit();
    format!("{user}/{day}")
}

#[idempotent(key = format!("{tenant}/{id}"))]
async fn tenant_lookup(tenant: String, id: u64, runs: Counter) -> String {
    runs.hit();
    format!("{tenant}#{id}")
}

#[test]
fn tuples_and_computed_keys() {
    let runs = Counter::new();
    let gate_free = |fut| Probe::new(fut).ready();
    assert_eq!(gate_free(report(1, "mon".into(), runs.clone())), "1/mon");
    assert_eq!(runs.get(), 1);

    let runs = Counter::new();
    let mut a = Probe::new(tenant_lookup("acme".into(), 1, runs.clone()));
    assert_eq!(a.ready(), "acme#1");
    assert_eq!(runs.get(), 1);
}

/// A key named by a place is cloned: the argument is still whole in the
/// body, even when it is not `Copy`.
#[idempotent(key = name)]
async fn greet(name: String) -> String {
    format!("hello {name}")
}

#[test]
fn a_place_key_leaves_the_argument_to_the_body() {
    assert_eq!(Probe::new(greet("ada".into())).ready(), "hello ada");
}

/// Unit-returning functions coalesce too.
#[idempotent(key = id)]
async fn notify(id: u8, gate: Gate, sent: Counter) {
    sent.hit();
    gate.wait().await;
}

#[test]
fn unit_results_coalesce() {
    let (gate, sent) = (Gate::new(), Counter::new());
    let mut a = Probe::new(notify(1, gate.clone(), sent.clone()));
    let mut b = Probe::new(notify(1, gate.clone(), sent.clone()));
    a.pending();
    b.pending();
    gate.open();
    a.ready();
    b.ready();
    assert_eq!(sent.get(), 1);
}
