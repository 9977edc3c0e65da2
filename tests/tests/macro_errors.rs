//! `#[idempotent]` and return types: `Err`s reach the callers of their
//! execution and are never stored, also behind a type alias; other types are
//! stored as they are.

use std::sync::Arc;

use idem::idempotent;
use idem_tests::{Counter, Gate, Probe};

#[derive(Debug, Clone, PartialEq)]
enum PayError {
    Declined,
}

#[idempotent(key = id, ttl = "1m")]
async fn charge(id: u32, fail: bool, gate: Gate, runs: Counter) -> Result<String, PayError> {
    runs.hit();
    gate.wait().await;
    if fail {
        return Err(PayError::Declined);
    }
    Ok(format!("charged {id}"))
}

#[tokio::test(start_paused = true)]
async fn an_error_goes_to_its_callers_and_is_not_stored() {
    let (gate, runs) = (Gate::new(), Counter::new());
    let mut a = Probe::new(charge(1, true, gate.clone(), runs.clone()));
    let mut b = Probe::new(charge(1, false, gate.clone(), runs.clone()));
    a.pending();
    b.pending();
    gate.open();
    // `b` joined `a`'s execution: it gets `a`'s error, not its own success.
    assert_eq!(a.ready(), Err(PayError::Declined));
    assert_eq!(b.ready(), Err(PayError::Declined));
    assert_eq!(runs.get(), 1);
    // The error was not stored: the next call runs, and its success is.
    assert_eq!(
        charge(1, false, gate.clone(), runs.clone())
            .await
            .as_deref(),
        Ok("charged 1")
    );
    assert_eq!(
        charge(1, true, gate.clone(), runs.clone()).await.as_deref(),
        Ok("charged 1")
    );
    assert_eq!(runs.get(), 2);
}

/// A `Result` behind an alias keeps the `Result` rules.
type PayResult<T> = Result<T, PayError>;

#[idempotent(key = id, ttl = "1m")]
async fn charge_aliased(id: u32, fail: bool, runs: Counter) -> PayResult<u32> {
    runs.hit();
    if fail {
        Err(PayError::Declined)
    } else {
        Ok(id)
    }
}

#[tokio::test(start_paused = true)]
async fn a_result_behind_an_alias_is_still_a_result() {
    let runs = Counter::new();
    assert_eq!(
        charge_aliased(1, true, runs.clone()).await,
        Err(PayError::Declined)
    );
    assert_eq!(charge_aliased(1, false, runs.clone()).await, Ok(1));
    assert_eq!(
        charge_aliased(1, true, runs.clone()).await,
        Ok(1),
        "the Ok is stored"
    );
    assert_eq!(runs.get(), 2);
}

/// `std::io::Result` with the error in an `Arc`, as the compile error for
/// `io::Error` suggests.
#[idempotent(key = path.clone(), ttl = "1m")]
async fn read(path: String, runs: Counter) -> Result<String, Arc<std::io::Error>> {
    runs.hit();
    Err(Arc::new(std::io::Error::other(format!("no {path}"))))
}

#[tokio::test(start_paused = true)]
async fn shared_errors_in_an_arc() {
    let runs = Counter::new();
    let e = read("a".into(), runs.clone()).await.unwrap_err();
    assert_eq!(e.to_string(), "no a");
    read("a".into(), runs.clone()).await.unwrap_err();
    assert_eq!(runs.get(), 2, "errors are never stored");
}

/// An `Option` (or any non-`Result` type) is a value: `None` is stored.
#[idempotent(key = id, ttl = "1m")]
async fn find(id: u32, runs: Counter) -> Option<u32> {
    runs.hit();
    None
}

#[tokio::test(start_paused = true)]
async fn any_other_type_is_stored_as_is() {
    let runs = Counter::new();
    assert_eq!(find(1, runs.clone()).await, None);
    assert_eq!(find(1, runs.clone()).await, None);
    assert_eq!(runs.get(), 1);
}

/// `?` in the body converts into the function's error type.
#[derive(Debug, Clone, PartialEq)]
struct ParseError(String);

impl From<std::num::ParseIntError> for ParseError {
    fn from(e: std::num::ParseIntError) -> Self {
        ParseError(e.to_string())
    }
}

#[idempotent(key = text.clone())]
async fn parse(text: String) -> Result<u32, ParseError> {
    let n: u32 = text.parse()?;
    Ok(n * 2)
}

#[tokio::test]
async fn question_mark_converts_errors() {
    assert_eq!(parse("21".into()).await, Ok(42));
    assert!(parse("x".into()).await.is_err());
}
