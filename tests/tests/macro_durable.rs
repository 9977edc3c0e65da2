//! `#[idempotent(key = .., flight = self.payments)]` with a `Durable`: the
//! body runs at most once per key across the processes that share a store.
//! Two services on one `Arc<MemoryStore>` stand for two processes; the
//! clock is tokio's, paused.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use idem::durable::{Durable, DurableError, OnRunning};
use idem::store::{Claimed, Lease, MemoryStore, Owner, Store, StoreError, StoreKey};
use idem::{idempotent, Fingerprint, Mismatch};
use idem_tests::{Counter, Gate, Probe};
use serde::{Deserialize, Serialize};

const LEASE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum PayError {
    /// Final: recorded, and replayed to every later call.
    Declined,
    /// Transient: released, so that the next call runs again.
    Timeout,
    /// The key was used for another request (`fingerprint`).
    KeyReused,
    /// Another process is running the key.
    Busy { retry_after: Duration },
    /// Any other failure of the `Durable`'s: the lease, the store.
    Unavailable(String),
}

impl From<DurableError<Infallible>> for PayError {
    fn from(e: DurableError<Infallible>) -> Self {
        match e {
            DurableError::Running { retry_after } => PayError::Busy { retry_after },
            other => PayError::Unavailable(other.to_string()),
        }
    }
}

impl From<Mismatch> for PayError {
    fn from(_: Mismatch) -> Self {
        PayError::KeyReused
    }
}

#[derive(Debug, Clone)]
struct Order {
    id: u64,
    cents: u64,
}

/// A ticket prints as its number: a key as good as the order id.
#[derive(Debug, Clone)]
struct Ticket(u64);

impl std::fmt::Display for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

type Payments<S = Arc<MemoryStore>> = Durable<S, String, PayError>;

fn payments<S: Store>(store: S, on_running: OnRunning) -> Payments<S> {
    Durable::builder(store)
        .namespace("payments")
        .lease(LEASE)
        .on_running(on_running)
        .record_errors(|e: &PayError| *e == PayError::Declined)
        .build()
        .unwrap()
}

const WAIT: OnRunning = OnRunning::Wait {
    timeout: Duration::from_secs(60),
};

/// One process of a payment service.
struct Service<S = Arc<MemoryStore>> {
    payments: Payments<S>,
    /// Executions of the bodies, in this process.
    charges: Counter,
    /// What the bodies wait on: open unless a test holds it.
    gate: Gate,
    /// The fencing tokens `attempt` ran under.
    fences: Mutex<Vec<u64>>,
}

impl<S: Store> Service<S> {
    fn new(store: S, on_running: OnRunning) -> Self {
        let gate = Gate::new();
        gate.open();
        Self::gated(store, on_running, gate)
    }

    fn gated(store: S, on_running: OnRunning, gate: Gate) -> Self {
        Self {
            payments: payments(store, on_running),
            charges: Counter::new(),
            gate,
            fences: Mutex::new(Vec::new()),
        }
    }

    /// A `Display` key (`u64`). `cents == 0` is declined for good,
    /// `cents == 1` times out, `cents == 666` panics.
    #[idempotent(key = order.id, flight = self.payments)]
    async fn pay(&self, order: Order) -> Result<String, PayError> {
        self.charges.hit();
        self.gate.wait().await;
        match order.cents {
            0 => Err(PayError::Declined),
            1 => Err(PayError::Timeout),
            666 => panic!("card reader on fire"),
            cents => Ok(format!("receipt for order {} ({cents} cents)", order.id)),
        }
    }

    /// The same payments, with a fingerprint of what is paid.
    #[idempotent(key = order.id, fingerprint = order.cents, flight = self.payments)]
    async fn pay_exactly(&self, order: Order) -> Result<String, PayError> {
        self.charges.hit();
        Ok(format!("{} cents for order {}", order.cents, order.id))
    }

    /// An `AsRef<str>` key that borrows an argument.
    #[idempotent(key = reference, flight = self.payments)]
    async fn pay_by_reference(&self, reference: &str) -> Result<String, PayError> {
        self.charges.hit();
        Ok(format!("paid {reference}"))
    }

    /// A `Display` key that is not `Hash`.
    #[idempotent(key = ticket, flight = self.payments)]
    async fn pay_by_ticket(&self, ticket: Ticket) -> Result<String, PayError> {
        self.charges.hit();
        Ok(format!("paid ticket {ticket}"))
    }

    /// The body gets the lease's fence by the name `fence` gives.
    #[idempotent(key = format!("attempt-{id}"), flight = self.payments, fence = fence)]
    async fn attempt(&self, id: u64, fail: bool) -> Result<String, PayError> {
        assert!(!fence.is_lost());
        self.fences.lock().unwrap().push(fence.token());
        if fail {
            return Err(PayError::Timeout);
        }
        Ok(format!("attempt {id} under fence {}", fence.token()))
    }
}

/// Two processes on one store.
fn two_processes() -> (Service, Service) {
    let store = Arc::new(MemoryStore::new());
    (
        Service::new(Arc::clone(&store), WAIT),
        Service::new(store, WAIT),
    )
}

fn order(id: u64, cents: u64) -> Order {
    Order { id, cents }
}

#[tokio::test(start_paused = true)]
async fn the_body_runs_once_per_key_and_another_process_replays_its_result() {
    let (a, b) = two_processes();
    let receipt = a.pay(order(7, 1250)).await;
    assert_eq!(receipt.as_deref(), Ok("receipt for order 7 (1250 cents)"));
    assert_eq!(a.charges.get(), 1);
    // The other process gets the record; so does a retry in the first one
    // (the local tier keeps nothing once a call ends).
    assert_eq!(b.pay(order(7, 1250)).await, receipt);
    assert_eq!(a.pay(order(7, 1250)).await, receipt);
    assert_eq!((a.charges.get(), b.charges.get()), (1, 0));
    // Another key runs.
    assert_eq!(
        b.pay(order(8, 99)).await.as_deref(),
        Ok("receipt for order 8 (99 cents)")
    );
    assert_eq!(b.charges.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_duplicates_in_one_process_share_one_execution() {
    let gate = Gate::new();
    let a = Service::gated(Arc::new(MemoryStore::new()), WAIT, gate.clone());
    let mut calls: Vec<_> = (0..50).map(|_| Probe::new(a.pay(order(9, 500)))).collect();
    for call in &mut calls {
        call.pending();
    }
    assert_eq!(a.charges.get(), 1, "one execution while the others wait");
    gate.open();
    for call in &mut calls {
        assert_eq!(
            call.ready().as_deref(),
            Ok("receipt for order 9 (500 cents)")
        );
    }
    assert_eq!(a.charges.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_error_is_released_or_recorded_as_the_durable_says() {
    let (a, b) = two_processes();
    // Released: the next call, in any process, runs again.
    assert_eq!(a.pay(order(1, 1)).await, Err(PayError::Timeout));
    assert_eq!(b.pay(order(1, 1)).await, Err(PayError::Timeout));
    assert_eq!((a.charges.get(), b.charges.get()), (1, 1));
    // Recorded (`record_errors`): returned as it is, and replayed.
    assert_eq!(a.pay(order(2, 0)).await, Err(PayError::Declined));
    assert_eq!(b.pay(order(2, 5)).await, Err(PayError::Declined));
    assert_eq!((a.charges.get(), b.charges.get()), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_key_reused_for_another_request_is_a_mismatch_in_every_process() {
    let (a, b) = two_processes();
    let first = a.pay_exactly(order(3, 100)).await;
    assert_eq!(first.as_deref(), Ok("100 cents for order 3"));
    // Another amount under the same key: `Err(E::from(Mismatch))`, here
    // and in the other process, and nothing runs.
    assert_eq!(a.pay_exactly(order(3, 200)).await, Err(PayError::KeyReused));
    assert_eq!(b.pay_exactly(order(3, 200)).await, Err(PayError::KeyReused));
    // The same request is replayed.
    assert_eq!(b.pay_exactly(order(3, 100)).await, first);
    assert_eq!((a.charges.get(), b.charges.get()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn the_body_runs_under_the_leases_fence() {
    let (a, b) = two_processes();
    assert_eq!(a.attempt(4, true).await, Err(PayError::Timeout));
    let receipt = a.attempt(4, false).await.unwrap();
    let fences = a.fences.lock().unwrap().clone();
    let [failed, succeeded] = fences[..] else {
        panic!("two executions, got {fences:?}")
    };
    // Each execution holds a lease of its own, with a greater token.
    assert!(succeeded > failed, "{fences:?}");
    assert_eq!(receipt, format!("attempt 4 under fence {succeeded}"));
    // Replayed in the other process: its body does not run.
    assert_eq!(b.attempt(4, false).await.as_deref(), Ok(receipt.as_str()));
    assert!(b.fences.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn string_keys_from_display_and_as_ref_str_name_the_same_record() {
    let (a, b) = two_processes();
    // `key = order.id`, a `u64`, is the text "5"; so is `key = ticket`, as
    // it prints; `key = reference`, a `&str`, is used as it is: one
    // namespace, one record.
    let receipt = a.pay(order(5, 300)).await;
    assert_eq!(b.pay_by_reference("5").await, receipt);
    assert_eq!(b.pay_by_ticket(Ticket(5)).await, receipt);
    assert_eq!(b.charges.get(), 0);
    assert_eq!(
        b.pay_by_reference("order-5").await.as_deref(),
        Ok("paid order-5")
    );
    assert_eq!(b.charges.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn another_process_running_the_key_is_an_error_of_the_callers_type() {
    let store = Arc::new(MemoryStore::new());
    let gate = Gate::new();
    let a = Service::gated(Arc::clone(&store), WAIT, gate.clone());
    let b = Service::new(store, OnRunning::Reject);
    let mut running = Probe::new(a.pay(order(10, 400)));
    running.pending();
    // `DurableError::Running`, through `From<DurableError<Infallible>>`.
    match b.pay(order(10, 400)).await {
        Err(PayError::Busy { retry_after }) => assert!(retry_after <= LEASE, "{retry_after:?}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert_eq!(b.charges.get(), 0);
    gate.open();
    let receipt = running.ready();
    assert_eq!(b.pay(order(10, 400)).await, receipt);
    assert_eq!(b.charges.get(), 0);
}

/// A store that cannot be reached.
struct Down;

impl Store for Down {
    async fn claim(
        &self,
        _: StoreKey<'_>,
        _: Option<Fingerprint>,
        _: Owner,
        _: Duration,
    ) -> Result<Claimed, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }

    async fn renew(&self, _: StoreKey<'_>, _: &Lease, _: Duration) -> Result<(), StoreError> {
        unreachable!("nothing is claimed")
    }

    async fn complete(
        &self,
        _: StoreKey<'_>,
        _: &Lease,
        _: &[u8],
        _: Duration,
    ) -> Result<(), StoreError> {
        unreachable!("nothing is claimed")
    }

    async fn release(&self, _: StoreKey<'_>, _: &Lease) -> Result<(), StoreError> {
        unreachable!("nothing is claimed")
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_that_fails_is_an_error_and_the_body_does_not_run() {
    let a = Service::new(Down, WAIT);
    match a.pay(order(11, 100)).await {
        Err(PayError::Unavailable(why)) => assert!(why.contains("connection refused"), "{why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(a.charges.get(), 0, "fail closed");
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_a_panic_of_the_caller_and_releases_the_key() {
    let store = Arc::new(MemoryStore::new());
    let a = Arc::new(Service::new(Arc::clone(&store), WAIT));
    let b = Service::new(store, OnRunning::Reject);
    let panicked = tokio::spawn({
        let a = Arc::clone(&a);
        async move { a.pay(order(12, 666)).await }
    })
    .await
    .expect_err("the body panicked");
    let message = panicked.into_panic().downcast::<String>().unwrap();
    assert_eq!(*message, "card reader on fire");
    // Released: another process runs the key at once (it would get
    // `Busy` if the key were still leased).
    assert_eq!(
        b.pay(order(12, 100)).await.as_deref(),
        Ok("receipt for order 12 (100 cents)")
    );
    assert_eq!((a.charges.get(), b.charges.get()), (1, 1));
}

static REFUNDS: LazyLock<Payments<MemoryStore>> =
    LazyLock::new(|| payments(MemoryStore::new(), WAIT));

static REFUNDED: AtomicUsize = AtomicUsize::new(0);

/// A free function on a `static` executor, seen through its `LazyLock`.
#[idempotent(key = id, flight = REFUNDS)]
async fn refund(id: u64) -> Result<String, PayError> {
    REFUNDED.fetch_add(1, SeqCst);
    Ok(format!("refund {id}"))
}

struct Shared {
    captures: Arc<Durable<Arc<MemoryStore>, u64, PayError>>,
}

impl Shared {
    /// A `Durable` behind an `Arc`.
    #[idempotent(key = id, flight = self.captures)]
    async fn capture(&self, id: u64) -> Result<u64, PayError> {
        Ok(id * 2)
    }
}

#[tokio::test(start_paused = true)]
async fn a_flight_behind_a_static_or_an_arc_is_found() {
    assert_eq!(refund(1).await.as_deref(), Ok("refund 1"));
    assert_eq!(refund(1).await.as_deref(), Ok("refund 1"));
    assert_eq!(REFUNDED.load(SeqCst), 1);
    let shared = Shared {
        captures: Arc::new(
            Durable::builder(Arc::new(MemoryStore::new()))
                .namespace("captures")
                .build()
                .unwrap(),
        ),
    };
    assert_eq!(shared.capture(21).await, Ok(42));
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::test(start_paused = true)]
async fn the_futures_are_send() {
    let (a, _) = two_processes();
    assert_eq!(
        assert_send(a.pay(order(13, 100))).await.as_deref(),
        Ok("receipt for order 13 (100 cents)")
    );
    assert!(assert_send(a.attempt(13, false)).await.is_ok());
    let _ = assert_send(a.pay_exactly(order(14, 1))).await;
}

/// What the expansion does, by hand: the future the size is compared with.
async fn by_hand(payments: &Payments, id: u64) -> Result<String, PayError> {
    let key = id.to_string();
    let (r, _) = payments
        .run(&key, |_| async move { Ok(format!("{id}")) })
        .await;
    r.map_err(|e| match e {
        DurableError::Failed(e) => e,
        other => panic!("{other:?}"),
    })
}

struct Measured {
    payments: Payments,
}

impl Measured {
    #[idempotent(key = id, flight = self.payments)]
    async fn via_macro(&self, id: u64) -> Result<String, PayError> {
        Ok(format!("{id}"))
    }
}

/// Measured on rustc 1.95: 1,568 bytes against 1,504, 8 words more. The
/// driver is an `async` block that owns the key's `String`, which
/// `Durable::run` borrows, and keeps its captures (the key, the body's
/// closure, `&self`) beside the call's future, as rustc keeps every capture
/// of an `async` block; by hand, the key is a local of the caller's. (A
/// driver that owned the key without an `async` block would borrow from
/// itself.) The bound leaves two words of slack, and catches a copy of the
/// call's future (188 words).
#[test]
fn the_expansions_future_is_a_hand_written_calls_plus_eight_words() {
    let svc = Measured {
        payments: payments(Arc::new(MemoryStore::new()), WAIT),
    };
    let macro_size = size_of_val(&svc.via_macro(1));
    let hand_size = size_of_val(&by_hand(&svc.payments, 1));
    assert!(
        macro_size <= hand_size + 10 * size_of::<usize>(),
        "via the macro {macro_size} bytes, by hand {hand_size}"
    );
}
