//! `#[idempotent(detached)]`: the body runs on its own task and finishes,
//! and its result is stored, even if every caller goes away.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use idem::{idempotent, SingleFlight};
use idem_tests::{Counter, Gate, Probe};
use tokio::time::{sleep, timeout};

#[idempotent(key = id, ttl = "1m", detached)]
async fn pay(id: u32, runs: Counter) -> Result<String, String> {
    runs.hit();
    sleep(Duration::from_millis(50)).await;
    Ok(format!("paid {id}"))
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_gives_up_does_not_cancel_the_work() {
    let runs = Counter::new();
    let first = timeout(Duration::from_millis(10), pay(1, runs.clone())).await;
    assert!(first.is_err(), "the first caller timed out");
    // Its retry gets the first execution's result, without a second run.
    assert_eq!(pay(1, runs.clone()).await.as_deref(), Ok("paid 1"));
    assert_eq!(runs.get(), 1);
}

struct Payments {
    flight: Arc<SingleFlight<u32, String>>,
}

impl Payments {
    /// `detached` with `flight`: the body does not use `self`.
    #[idempotent(key = id, flight = self.flight, detached)]
    async fn pay(&self, id: u32, runs: Counter) -> String {
        runs.hit();
        sleep(Duration::from_millis(50)).await;
        format!("paid {id}")
    }
}

#[tokio::test(start_paused = true)]
async fn detached_with_a_flight_of_ones_own() {
    let p = Payments {
        flight: Arc::new(
            SingleFlight::builder()
                .ttl(Duration::from_secs(60))
                .build()
                .unwrap(),
        ),
    };
    let runs = Counter::new();
    assert!(timeout(Duration::from_millis(10), p.pay(1, runs.clone()))
        .await
        .is_err());
    assert_eq!(p.pay(1, runs.clone()).await, "paid 1");
    assert_eq!(runs.get(), 1);
}

#[idempotent(key = id, detached)]
async fn explode(id: u32) -> Result<u32, String> {
    panic!("detached boom {id}");
}

#[tokio::test]
#[should_panic(expected = "detached boom 4")]
async fn a_detached_panic_is_a_panic() {
    let _ = explode(4).await;
}

#[idempotent(key = id, detached)]
async fn stalled(id: u32, gate: Gate) -> u32 {
    gate.wait().await;
    id
}

/// The one way a detached flight ends without a result: its task is
/// dropped before it finishes, because the runtime it was spawned on shuts
/// down. The function's return type has no room for that: the caller
/// panics, with a message that names the function and says why.
#[test]
fn a_detached_flight_whose_runtime_shuts_down_panics_naming_the_function() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let gate = Gate::new();
    // Polled inside the runtime's context, so the work is spawned on it; the
    // runtime is never driven, then shut down with the work pending.
    let mut caller = {
        let _enter = rt.enter();
        let mut c = Probe::new(stalled(1, gate.clone()));
        c.pending();
        c
    };
    drop(rt);
    let payload = catch_unwind(AssertUnwindSafe(|| caller.poll())).expect_err("a panic");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        message,
        "idem: the detached work of `#[idempotent]` fn `macro_detached::stalled` was dropped \
         before it finished: the tokio runtime it was spawned on shut down"
    );
    // The key is free again.
    let rt = tokio::runtime::Runtime::new().unwrap();
    gate.open();
    assert_eq!(rt.block_on(stalled(1, gate)), 1);
}
