//! `#[idempotent(detached)]`: the body runs on its own task and finishes,
//! and its result is stored, even if every caller goes away.

use std::sync::Arc;
use std::time::Duration;

use idem::{idempotent, SingleFlight};
use idem_tests::Counter;
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
