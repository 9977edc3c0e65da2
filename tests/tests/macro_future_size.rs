//! The future of an `#[idempotent]` fn is the table's, plus the function's
//! arguments: the expansion adds no state machine of its own around it
//! (an `async fn` driver did, at 40 more bytes, and moving the bigger
//! future was most of the macro's cost on a cache hit).

use std::sync::LazyLock;
use std::time::Duration;

use idem::{idempotent, SingleFlight};

static TABLE: LazyLock<SingleFlight<u64, u64, String>> = LazyLock::new(|| {
    SingleFlight::builder()
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap()
});

async fn by_hand(id: u64) -> Result<u64, String> {
    TABLE
        .run(id, || async move { Ok(id * 2) })
        .await
        .map_err(|e| e.resume_panic().failed().expect("not aborted"))
}

#[idempotent(key = id, ttl = "1m")]
async fn via_macro(id: u64) -> Result<u64, String> {
    Ok(id * 2)
}

struct Svc {
    flight: SingleFlight<u64, u64, String>,
}

impl Svc {
    #[idempotent(key = id, flight = self.flight)]
    async fn via_flight(&self, id: u64) -> Result<u64, String> {
        Ok(id * 2)
    }
}

#[test]
fn the_expansions_future_is_a_hand_written_calls_plus_a_word() {
    let svc = Svc {
        flight: SingleFlight::new(),
    };
    let hand = size_of_val(&by_hand(1));
    let word = size_of::<usize>();
    for (what, size) in [
        ("own table", size_of_val(&via_macro(1))),
        ("flight", size_of_val(&svc.via_flight(1))),
    ] {
        assert!(
            size <= hand + word,
            "{what}: {size} bytes, a hand-written call's future is {hand}"
        );
    }
}
