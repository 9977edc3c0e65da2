//! `#[idempotent]` on generic functions: one table per instantiation, so
//! results are never shared across types, even when the key and value types
//! are the same.

use std::fmt::Display;

use idem::idempotent;
use idem_tests::{Counter, Gate, Probe};

#[idempotent(key = x.to_string(), ttl = "1m")]
async fn render<T: Display>(x: T, runs: Counter) -> String {
    runs.hit();
    format!("{x} as {}", std::any::type_name::<T>())
}

#[tokio::test(start_paused = true)]
async fn instantiations_never_share_results() {
    let runs = Counter::new();
    // Same key ("1"), same key and value types: different instantiations.
    assert_eq!(render(1u32, runs.clone()).await, "1 as u32");
    assert_eq!(render(1i64, runs.clone()).await, "1 as i64");
    assert_eq!(runs.get(), 2);
    // The same instantiation replays.
    assert_eq!(render(1u32, runs.clone()).await, "1 as u32");
    assert_eq!(render(1i64, runs.clone()).await, "1 as i64");
    assert_eq!(runs.get(), 2);
}

/// Also for const generics, `impl Trait` arguments, and non-`'static` type
/// parameters that appear in neither the key nor the value.
#[idempotent(key = id, ttl = "1m")]
async fn scaled<const N: u64>(id: u64, runs: Counter) -> u64 {
    runs.hit();
    id * N
}

#[idempotent(key = id, ttl = "1m")]
async fn labelled(id: u64, label: impl Display, runs: Counter) -> String {
    runs.hit();
    format!("{label}{id}")
}

#[idempotent(key = id)]
async fn borrowing<T: AsRef<str>>(id: u64, text: T, gate: Gate, runs: Counter) -> usize {
    runs.hit();
    gate.wait().await;
    text.as_ref().len() + id as usize
}

#[tokio::test(start_paused = true)]
async fn const_generics_and_impl_trait_arguments() {
    let runs = Counter::new();
    assert_eq!(scaled::<2>(5, runs.clone()).await, 10);
    assert_eq!(scaled::<3>(5, runs.clone()).await, 15);
    assert_eq!(scaled::<2>(5, runs.clone()).await, 10);
    assert_eq!(runs.get(), 2);

    let runs = Counter::new();
    assert_eq!(labelled(1, "a", runs.clone()).await, "a1");
    assert_eq!(labelled(1, 'b', runs.clone()).await, "b1");
    assert_eq!(runs.get(), 2);
}

#[test]
fn non_static_type_parameters_coalesce() {
    let (gate, runs) = (Gate::new(), Counter::new());
    let text = String::from("abc");
    let mut a = Probe::new(borrowing(1, text.as_str(), gate.clone(), runs.clone()));
    let mut b = Probe::new(borrowing(1, text.as_str(), gate.clone(), runs.clone()));
    a.pending();
    b.pending();
    gate.open();
    assert_eq!((a.ready(), b.ready()), (4, 4));
    assert_eq!(runs.get(), 1);
}
