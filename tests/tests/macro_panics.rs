//! `#[idempotent]`: a panic in the body is a panic, with its message, for
//! every caller coalesced on it, even in functions that return `Result`;
//! nobody hangs, and the next call runs again.

use std::panic::{catch_unwind, AssertUnwindSafe};

use idem::idempotent;
use idem_tests::{Counter, Gate, Probe};

#[idempotent(key = id, ttl = "1m")]
async fn explode(id: u32, gate: Gate, runs: Counter) -> Result<u32, String> {
    if runs.hit() == 1 {
        gate.wait().await;
        panic!("boom {id}");
    }
    Ok(id)
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "<not a string>".into()
    }
}

#[test]
fn a_panic_reaches_every_coalesced_caller_as_a_panic() {
    let (gate, runs) = (Gate::new(), Counter::new());
    let mut callers: Vec<_> = (0..3)
        .map(|_| Probe::new(explode(7, gate.clone(), runs.clone())))
        .collect();
    for c in &mut callers {
        c.pending();
    }
    gate.open();
    for mut c in callers {
        let payload = catch_unwind(AssertUnwindSafe(|| c.poll())).expect_err("a panic, not an Err");
        assert_eq!(panic_message(payload), "boom 7");
    }
    assert_eq!(runs.get(), 1);
    // The key is free again: the next call runs, and succeeds.
    assert_eq!(Probe::new(explode(7, gate, runs.clone())).ready(), Ok(7));
    assert_eq!(runs.get(), 2);
}

#[idempotent(key = id)]
async fn explode_value(id: u32) -> u32 {
    panic!("value {id}");
}

#[tokio::test]
#[should_panic(expected = "value 3")]
async fn a_panic_in_a_value_function_is_a_panic() {
    explode_value(3).await;
}
