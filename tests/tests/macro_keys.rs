//! `#[idempotent]` keys built from the arguments: the body can still use
//! every argument the key names, whatever expression names it (a call, a
//! struct literal, an array, a nested call, a tuple, an operator).
//!
//! Each function's body uses the arguments its key names; before the key
//! cloned them, these were E0382 "use of moved value". Each also counts its
//! executions, so that equal keys are seen to coalesce (a `ttl` keeps the
//! first result).

use idem::{idempotent, SingleFlight};
use idem_tests::{Counter, Probe};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    name: String,
    n: u64,
}

#[idempotent(key = Some(name), ttl = "1m")]
async fn in_option(name: String, runs: Counter) -> String {
    runs.hit();
    name.to_uppercase()
}

#[idempotent(key = Key { name, n }, ttl = "1m")]
async fn in_struct(name: String, n: u64, runs: Counter) -> String {
    runs.hit();
    format!("{name}{n}")
}

#[idempotent(key = Key { name: other.name, ..base }, ttl = "1m")]
async fn in_struct_with_base(base: Key, other: Key, runs: Counter) -> String {
    runs.hit();
    format!("{}/{}", base.name, other.name)
}

#[idempotent(key = [first, second], ttl = "1m")]
async fn in_array(first: String, second: String, runs: Counter) -> String {
    runs.hit();
    first + &second
}

fn join(a: String, b: Option<String>) -> String {
    format!("{a}+{}", b.unwrap_or_default())
}

#[idempotent(key = join(name, Some(other)), ttl = "1m")]
async fn in_nested_call(name: String, other: String, runs: Counter) -> String {
    runs.hit();
    format!("{name}{other}")
}

#[idempotent(key = (id, Some(name), [tag]), ttl = "1m")]
async fn in_tuple(id: u64, name: String, tag: String, runs: Counter) -> String {
    runs.hit();
    format!("{id}{name}{tag}")
}

#[idempotent(key = Vec::from([name.to_lowercase(), prefix.clone() + &suffix]), ttl = "1m")]
async fn in_method_args(name: String, prefix: String, suffix: String, runs: Counter) -> String {
    runs.hit();
    format!("{name}{prefix}{suffix}")
}

#[idempotent(key = name + "!", ttl = "1m")]
async fn in_operator(name: String, runs: Counter) -> String {
    runs.hit();
    name
}

// A reference argument passed to a function taking a coarser reference:
// the clone must not stop `&String` from coercing to `&str`.
fn shout(s: &str) -> String {
    s.to_uppercase()
}

#[idempotent(key = shout(name), ttl = "1m")]
async fn coerces(name: &String, runs: Counter) -> usize {
    runs.hit();
    name.len()
}

/// Not `Clone`: a key may consume it when the body does not use it.
struct Request {
    id: u64,
}

fn request_key(r: Request) -> u64 {
    r.id
}

#[idempotent(key = request_key(req), ttl = "1m")]
async fn consumes_an_unused_argument(req: Request, runs: Counter) -> u64 {
    runs.hit();
    7
}

fn parse(s: String) -> Result<u64, String> {
    s.parse().map_err(|_| s)
}

async fn canon(s: String) -> String {
    s.trim().to_string()
}

#[idempotent(key = parse(text)?, ttl = "1m")]
async fn behind_try(text: String, runs: Counter) -> Result<String, String> {
    runs.hit();
    Ok(text)
}

#[idempotent(key = canon(text).await, ttl = "1m")]
async fn behind_await(text: String, runs: Counter) -> String {
    runs.hit();
    text
}

#[idempotent(key = if loud { shout(&text) } else { text }, ttl = "1m")]
async fn in_a_branch(text: String, loud: bool, runs: Counter) -> String {
    runs.hit();
    text
}

/// Parts of arguments behind references: cloned even when the body does not
/// use the argument (moving out of a reference would not compile).
struct Tenant {
    name: String,
}

fn tenant_key(name: String, id: u64) -> (String, u64) {
    (name, id)
}

#[idempotent(key = tenant_key(tenant.name, id), ttl = "1m")]
async fn a_field_behind_a_reference(tenant: &Tenant, id: u64, runs: Counter) -> u64 {
    runs.hit();
    id
}

#[idempotent(key = tenant_key(names[0], id), ttl = "1m")]
async fn an_element_of_an_unused_argument(names: Vec<String>, id: u64, runs: Counter) -> u64 {
    runs.hit();
    id
}

static BY_ID: std::sync::LazyLock<SingleFlight<u64, u64>> = std::sync::LazyLock::new(|| {
    SingleFlight::builder()
        .ttl(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
});

/// The flight's key type drives the key's inference.
#[idempotent(key = id.into(), flight = BY_ID)]
async fn key_typed_by_its_flight(id: u32, runs: Counter) -> u64 {
    runs.hit();
    u64::from(id) * 2
}

/// The body uses `name` only inside a raw format string: still a use.
#[idempotent(key = Some(name), ttl = "1m")]
async fn used_in_a_raw_format_string(name: String, runs: Counter) -> String {
    runs.hit();
    format!(r"hello {name}")
}

struct Service {
    prefix: String,
    flight: SingleFlight<Option<String>, String>,
    by_tenant: SingleFlight<(String, u64), u64>,
}

impl Service {
    /// `self` is not used by the body: its field is still cloned, not
    /// moved out of the `&self` borrow.
    #[idempotent(key = tenant_key(self.prefix, id), flight = self.by_tenant)]
    async fn unused_self_in_the_body(&self, id: u64, runs: Counter) -> u64 {
        runs.hit();
        id
    }

    /// A field of `self` in a call: cloned, not moved out of the borrow.
    #[idempotent(key = Some(self.prefix), flight = self.flight)]
    async fn in_method(&self, runs: Counter) -> String {
        runs.hit();
        self.prefix.clone()
    }
}

/// Runs `call` twice with the same arguments: the body ran once.
fn twice<F: std::future::Future>(call: impl Fn(Counter) -> F) -> F::Output
where
    F::Output: PartialEq + std::fmt::Debug,
{
    let runs = Counter::new();
    let first = Probe::new(call(runs.clone())).ready();
    let second = Probe::new(call(runs.clone())).ready();
    assert_eq!(first, second);
    assert_eq!(runs.get(), 1, "the second call gets the stored result");
    first
}

#[test]
fn a_key_in_a_call_leaves_the_argument_to_the_body() {
    assert_eq!(twice(|r| in_option("ada".into(), r)), "ADA");
}

#[test]
fn a_key_in_a_struct_literal_leaves_the_arguments_to_the_body() {
    assert_eq!(twice(|r| in_struct("ada".into(), 7, r)), "ada7");
    let key = |name: &str| Key {
        name: name.into(),
        n: 1,
    };
    assert_eq!(twice(|r| in_struct_with_base(key("a"), key("b"), r)), "a/b");
}

#[test]
fn a_key_in_an_array_leaves_the_arguments_to_the_body() {
    assert_eq!(twice(|r| in_array("a".into(), "b".into(), r)), "ab");
}

#[test]
fn a_key_in_a_nested_call_leaves_the_arguments_to_the_body() {
    assert_eq!(twice(|r| in_nested_call("a".into(), "b".into(), r)), "ab");
    assert_eq!(twice(|r| in_tuple(1, "a".into(), "b".into(), r)), "1ab");
    assert_eq!(
        twice(|r| in_method_args("A".into(), "b".into(), "c".into(), r)),
        "Abc"
    );
    assert_eq!(twice(|r| in_operator("a".into(), r)), "a");
}

#[test]
fn a_field_of_self_in_a_call_is_cloned() {
    let svc = Service {
        prefix: "p".into(),
        flight: SingleFlight::builder()
            .ttl(std::time::Duration::from_secs(60))
            .build()
            .unwrap(),
        by_tenant: SingleFlight::builder()
            .ttl(std::time::Duration::from_secs(60))
            .build()
            .unwrap(),
    };
    assert_eq!(twice(|r| svc.in_method(r)), "p");
    assert_eq!(twice(|r| svc.unused_self_in_the_body(5, r)), 5);
}

#[test]
fn distinct_keys_do_not_coalesce() {
    let runs = Counter::new();
    assert_eq!(Probe::new(in_option("a".into(), runs.clone())).ready(), "A");
    assert_eq!(Probe::new(in_option("b".into(), runs.clone())).ready(), "B");
    assert_eq!(runs.get(), 2);
}

#[test]
fn a_reference_argument_still_coerces() {
    let name = "abc".to_string();
    assert_eq!(twice(|r| coerces(&name, r)), 3);
}

#[test]
fn an_argument_the_body_does_not_use_is_consumed_not_cloned() {
    assert_eq!(
        twice(|r| consumes_an_unused_argument(Request { id: 1 }, r)),
        7
    );
}

#[test]
fn arguments_behind_try_await_and_branches_are_left_to_the_body() {
    assert_eq!(twice(|r| behind_try("12".into(), r)), Ok("12".into()));
    let runs = Counter::new();
    let err = Probe::new(behind_try("x".into(), runs.clone())).ready();
    assert_eq!(err, Err("x".to_string()), "the key's `?` returns early");
    assert_eq!(runs.get(), 0, "before the body runs");
    assert_eq!(twice(|r| behind_await(" a ".into(), r)), " a ");
    assert_eq!(twice(|r| in_a_branch("b".into(), false, r)), "b");
}

#[test]
fn parts_of_arguments_are_cloned_even_when_the_body_does_not_use_them() {
    let tenant = Tenant { name: "t".into() };
    assert_eq!(twice(|r| a_field_behind_a_reference(&tenant, 3, r)), 3);
    assert_eq!(
        twice(|r| an_element_of_an_unused_argument(vec!["n".into()], 4, r)),
        4
    );
}

#[test]
fn a_key_can_take_its_type_from_the_flight() {
    assert_eq!(twice(|r| key_typed_by_its_flight(3, r)), 6);
}

#[test]
fn a_capture_in_a_raw_format_string_counts_as_a_use() {
    assert_eq!(
        twice(|r| used_in_a_raw_format_string("ada".into(), r)),
        "hello ada"
    );
}
