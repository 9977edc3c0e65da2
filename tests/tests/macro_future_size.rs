//! The future of an `#[idempotent]` fn is the table's, plus the function's
//! arguments: the expansion adds no state machine of its own around it
//! (an `async fn` driver did, at 40 more bytes, and moving the bigger
//! future was most of the macro's cost on a cache hit). The same holds
//! with a `fingerprint`, against a hand-written `run_with_fingerprint`.

use std::sync::LazyLock;
use std::time::Duration;

use idem::{idempotent, Fingerprint, Mismatch, SingleFlight};

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

static FINGERPRINTED: LazyLock<SingleFlight<u64, u64, Mismatch>> = LazyLock::new(|| {
    SingleFlight::builder()
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap()
});

async fn by_hand_with_fingerprint(id: u64, amount: u64) -> Result<u64, Mismatch> {
    FINGERPRINTED
        .run_with_fingerprint(id, Fingerprint::of(&amount), || async move { Ok(amount) })
        .await
        .map_err(|e| match e.resume_panic() {
            idem::Error::Failed(e) => e,
            idem::Error::Mismatch => Mismatch,
            other => panic!("{other:?}"),
        })
}

#[idempotent(key = id, fingerprint = amount, ttl = "1m")]
async fn via_macro_with_fingerprint(id: u64, amount: u64) -> Result<u64, Mismatch> {
    Ok(amount)
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
    let word = size_of::<usize>();
    // A fingerprint costs a word more: the argument it borrows keeps its
    // slot in the future across the `.await` (rustc keeps a local whose
    // address was taken), as the key's borrow does for the first word.
    // Measured: borrowing `amount` in the expansion, not hashing it, is
    // what adds the word.
    for (what, size, hand, words) in [
        (
            "own table",
            size_of_val(&via_macro(1)),
            size_of_val(&by_hand(1)),
            1,
        ),
        (
            "flight",
            size_of_val(&svc.via_flight(1)),
            size_of_val(&by_hand(1)),
            1,
        ),
        (
            "fingerprint",
            size_of_val(&via_macro_with_fingerprint(1, 2)),
            size_of_val(&by_hand_with_fingerprint(1, 2)),
            2,
        ),
    ] {
        assert!(
            size <= hand + words * word,
            "{what}: {size} bytes, a hand-written call's future is {hand}"
        );
    }
}
