//! `#[idempotent]` on `&self` methods: by default one table per method,
//! shared by all instances; with `flight = self.flight`, one per instance.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use idem::{idempotent, SingleFlight};
use idem_tests::{Gate, Probe};

struct Catalog {
    name: &'static str,
    loads: AtomicUsize,
}

impl Catalog {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            loads: AtomicUsize::new(0),
        }
    }

    /// The body borrows `self`.
    #[idempotent(key = sku, ttl = "1m")]
    async fn title(&self, sku: u32) -> String {
        self.loads.fetch_add(1, Ordering::SeqCst);
        format!("{}: item {sku}", self.name)
    }
}

#[tokio::test(start_paused = true)]
async fn a_methods_own_table_is_shared_by_all_instances() {
    let (a, b) = (Catalog::new("a"), Catalog::new("b"));
    assert_eq!(a.title(1).await, "a: item 1");
    // Documented: the static table is the method's, not the instance's.
    assert_eq!(b.title(1).await, "a: item 1");
    assert_eq!(
        a.loads.load(Ordering::SeqCst) + b.loads.load(Ordering::SeqCst),
        1
    );
}

struct Service {
    name: &'static str,
    loads: AtomicUsize,
    flight: SingleFlight<u32, String>,
}

impl Service {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            loads: AtomicUsize::new(0),
            flight: SingleFlight::builder()
                .ttl(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    #[idempotent(key = sku, flight = self.flight)]
    async fn title(&self, sku: u32, gate: Gate) -> String {
        self.loads.fetch_add(1, Ordering::SeqCst);
        gate.wait().await;
        format!("{}: item {sku}", self.name)
    }
}

#[test]
fn flight_gives_each_instance_its_own_table() {
    let (a, b) = (Service::new("a"), Service::new("b"));
    let gate = Gate::new();
    let mut a1 = Probe::new(a.title(1, gate.clone()));
    let mut a2 = Probe::new(a.title(1, gate.clone()));
    let mut b1 = Probe::new(b.title(1, gate.clone()));
    a1.pending();
    a2.pending();
    b1.pending();
    gate.open();
    assert_eq!(a1.ready(), "a: item 1");
    assert_eq!(a2.ready(), "a: item 1");
    assert_eq!(b1.ready(), "b: item 1");
    assert_eq!(a.loads.load(Ordering::SeqCst), 1);
    assert_eq!(b.loads.load(Ordering::SeqCst), 1);
    // The instance's table applies its own ttl: stored.
    assert_eq!(a.flight.get(&1).as_deref(), Some("a: item 1"));
}

/// `flight` takes any expression that derefs to a `SingleFlight`.
struct Shared {
    flight: Arc<SingleFlight<String, u64, String>>,
}

impl Shared {
    #[idempotent(key = user.clone(), flight = self.flight)]
    async fn balance(&self, user: String, fail: bool) -> Result<u64, String> {
        if fail {
            Err(format!("{user} is locked"))
        } else {
            Ok(42)
        }
    }
}

static GLOBAL: std::sync::LazyLock<SingleFlight<u64, u64>> =
    std::sync::LazyLock::new(SingleFlight::new);

#[idempotent(key = id, flight = GLOBAL)]
async fn from_a_global(id: u64) -> u64 {
    id + 1
}

#[tokio::test]
async fn flight_accepts_arcs_and_statics() {
    let s = Shared {
        flight: Arc::new(SingleFlight::new()),
    };
    assert_eq!(
        s.balance("ann".into(), true).await,
        Err("ann is locked".into())
    );
    assert_eq!(s.balance("ann".into(), false).await, Ok(42));
    assert_eq!(from_a_global(1).await, 2);
}

/// Methods of a generic `impl` get one table per instantiation of the impl.
struct Repo<T> {
    _t: std::marker::PhantomData<T>,
}

impl<T> Repo<T> {
    #[idempotent(key = id, ttl = "1m")]
    async fn describe(&self, id: u32) -> String {
        format!("{}#{id}", std::any::type_name::<T>())
    }
}

#[tokio::test(start_paused = true)]
async fn generic_impls_get_one_table_per_instantiation() {
    let a = Repo::<u8> {
        _t: std::marker::PhantomData,
    };
    let b = Repo::<String> {
        _t: std::marker::PhantomData,
    };
    assert_eq!(a.describe(1).await, "u8#1");
    assert_eq!(b.describe(1).await, "alloc::string::String#1");
    assert_eq!(a.describe(1).await, "u8#1");
}
