//! `#[idempotent]` return types that mention references only inside a
//! signature (a fn pointer, the arguments of an `Fn` trait, a higher-ranked
//! binder) own their data: they are accepted, stored and shared like any
//! other `'static` value. Likewise, arguments whose `&mut` is only in a
//! signature (`fn(&mut Vec<u8>)`) are not `&mut` arguments.

use std::sync::Arc;

use idem::idempotent;
use idem_tests::{Counter, Gate, Probe};

type Pred = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[idempotent(key = min, ttl = "1m")]
async fn longer_than(min: usize, runs: Counter) -> Arc<dyn Fn(&str) -> bool + Send + Sync> {
    runs.hit();
    Arc::new(move |s: &str| s.len() > min)
}

fn count_chars(s: &str) -> usize {
    s.chars().count()
}

#[idempotent(key = id, ttl = "1m")]
async fn measure(id: u8, runs: Counter) -> fn(&str) -> usize {
    runs.hit();
    let _ = id;
    count_chars
}

fn first_word(s: &str) -> &str {
    s.split(' ').next().unwrap_or(s)
}

#[idempotent(key = id)]
async fn splitter(
    id: u8,
    gate: Gate,
    runs: Counter,
) -> Arc<dyn for<'x> Fn(&'x str) -> &'x str + Send + Sync> {
    runs.hit();
    gate.wait().await;
    let _ = id;
    Arc::new(first_word)
}

#[idempotent(key = id, ttl = "1m")]
async fn parser(id: u8, runs: Counter) -> Result<Box<fn(&str) -> Option<u32>>, String> {
    runs.hit();
    let _ = id;
    Ok(Box::new(|s| s.parse().ok()))
}

#[test]
fn an_fn_trait_object_with_reference_arguments_is_stored() {
    let runs = Counter::new();
    let a: Pred = Probe::new(longer_than(2, runs.clone())).ready();
    let b = Probe::new(longer_than(2, runs.clone())).ready();
    assert!(Arc::ptr_eq(&a, &b), "the stored value is shared");
    assert!(a("abc") && !b("ab"));
    assert_eq!(runs.get(), 1);
}

#[test]
fn a_fn_pointer_with_reference_arguments_is_stored() {
    let runs = Counter::new();
    let f = Probe::new(measure(1, runs.clone())).ready();
    let g = Probe::new(measure(1, runs.clone())).ready();
    assert_eq!((f("héllo"), g("ab")), (5, 2));
    assert_eq!(runs.get(), 1);
    let p = Probe::new(parser(1, runs.clone())).ready().unwrap();
    let q = Probe::new(parser(1, runs.clone())).ready().unwrap();
    assert_eq!((p("42"), q("x")), (Some(42), None));
    assert_eq!(runs.get(), 2);
}

#[test]
fn a_higher_ranked_fn_trait_object_coalesces() {
    let (gate, runs) = (Gate::new(), Counter::new());
    let mut a = Probe::new(splitter(1, gate.clone(), runs.clone()));
    let mut b = Probe::new(splitter(1, gate.clone(), runs.clone()));
    a.pending();
    b.pending();
    gate.open();
    let (f, g) = (a.ready(), b.ready());
    assert!(
        Arc::ptr_eq(&f, &g),
        "both callers got the one execution's value"
    );
    assert_eq!(f("hello world"), "hello");
    assert_eq!(runs.get(), 1);
}

type Fill = Arc<dyn Fn(&mut Vec<u8>) + Send + Sync>;

#[idempotent(key = id)]
async fn with_callbacks(id: u8, fill: fn(&mut Vec<u8>), more: Fill) -> usize {
    let mut v = vec![id];
    fill(&mut v);
    more(&mut v);
    v.len()
}

#[test]
fn mut_references_in_callback_signatures_are_accepted() {
    let fill: fn(&mut Vec<u8>) = |v| v.push(1);
    let more = Arc::new(|v: &mut Vec<u8>| v.extend([2, 3]));
    assert_eq!(Probe::new(with_callbacks(0, fill, more)).ready(), 4);
}
