//! `#[idempotent]` hygiene: the expansion refers to the runtime by absolute
//! paths, its locals cannot clash with the user's names, equal keys passed
//! to different functions never meet, and futures stay `Send`.
//!
//! This file shadows every name the expansion might use, and is compiled
//! with the workspace's lints and `clippy -D warnings`.

#![allow(
    dead_code,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unused_macros,
    clippy::disallowed_names
)]

use idem::idempotent;
use idem_tests::Counter;

mod shadowed {
    use ::idem::idempotent;

    // Names the expansion must not pick up.
    struct Option;
    struct Result;
    struct Some;
    struct Slot;
    struct Config;
    struct Probe;
    struct ReturnProbe;
    struct KeyProbe;
    struct Duration;
    struct SingleFlight;
    struct Box;
    struct Vec;
    struct String;
    struct Clone;
    struct Send;
    struct Fn;
    struct Refused;
    struct Eviction;
    struct RefusalProbe;
    struct From;
    type usize = u8;
    type u64 = i8;
    type u32 = i16;
    mod core {}
    mod std {}
    mod idem {}
    fn run() {}
    fn key_of() {}
    fn fit() {}
    fn own_table() {}
    fn run_detached() {}
    macro_rules! concat {
        () => {};
    }
    macro_rules! module_path {
        () => {};
    }

    #[idempotent(key = __idem_key, ttl = "1m")]
    pub(super) async fn shadowing(
        __idem_key: ::core::primitive::u32,
        __idem_return_kind: ::core::primitive::u32,
        __idem_kind: ::core::primitive::u32,
        __idem_table: ::core::primitive::u32,
        __idem_fn: ::core::primitive::u32,
    ) -> ::core::primitive::u32 {
        let __idem_ret = __idem_key + __idem_return_kind + __idem_kind + __idem_table + __idem_fn;
        static __IDEM_SLOT: ::core::primitive::u32 = 1;
        __idem_ret + __IDEM_SLOT
    }

    /// `usize` is `u8` here: the expansion's `max_entries` must not care.
    #[idempotent(key = id, ttl = "1m", max_entries = 300)]
    pub(super) async fn max_entries_with_usize_shadowed(id: u64) -> u64 {
        id
    }

    const LIMIT: ::core::primitive::usize = 1_000;

    #[idempotent(key = id, ttl = ::core::time::Duration::from_secs(60), max_entries = LIMIT)]
    pub(super) async fn settings_from_expressions(id: u32) -> u32 {
        id
    }

    /// The refusal marker, the settings and `Eviction` are the expansion's.
    #[idempotent(
        key = __idem_refusals,
        ttl = "1m",
        max_entries = 10,
        eviction = "never",
        max_in_flight = 10
    )]
    pub(super) async fn refusing(
        __idem_refusals: ::core::primitive::u32,
        __idem_max_in_flight: ::core::primitive::u32,
    ) -> ::core::result::Result<::core::primitive::u32, ::idem::Refused> {
        ::core::result::Result::Ok(__idem_refusals + __idem_max_in_flight)
    }

    /// The slot's `static` is invisible to the body: a parameter...
    #[idempotent(key = __IDEM_SLOT)]
    pub(super) async fn slot_named_parameter(__IDEM_SLOT: u64) -> u64 {
        __IDEM_SLOT + 1
    }

    /// ... or a `let` may be named like it.
    #[idempotent(key = id, ttl = "1m")]
    pub(super) async fn slot_named_local(id: u64) -> u64 {
        let __IDEM_SLOT = 2;
        id + __IDEM_SLOT
    }

    pub(super) mod with_static {
        /// A `static` of the user's named like the slot, at module level.
        static __IDEM_SLOT: ::core::primitive::u64 = 40;

        #[::idem::idempotent(key = id)]
        pub(crate) async fn slot_named_static(
            id: ::core::primitive::u64,
        ) -> ::core::primitive::u64 {
            id + __IDEM_SLOT
        }
    }
}

#[tokio::test(start_paused = true)]
async fn generated_names_do_not_clash_with_the_users() {
    assert_eq!(shadowed::shadowing(1, 2, 3, 4, 5).await, 16);
    assert_eq!(shadowed::max_entries_with_usize_shadowed(-1).await, -1);
    assert_eq!(shadowed::settings_from_expressions(5).await, 5);
    assert_eq!(shadowed::refusing(1, 2).await, Ok(3));
    assert_eq!(shadowed::slot_named_parameter(1).await, 2);
    assert_eq!(shadowed::slot_named_local(1).await, 3);
    assert_eq!(shadowed::with_static::slot_named_static(2).await, 42);
}

#[idempotent(key = id, ttl = "1m")]
async fn first(id: u32, runs: Counter) -> u32 {
    runs.hit();
    id
}

#[idempotent(key = id, ttl = "1m")]
async fn second(id: u32, runs: Counter) -> u32 {
    runs.hit();
    id + 100
}

#[tokio::test(start_paused = true)]
async fn equal_keys_passed_to_different_functions_never_share_a_result() {
    let runs = Counter::new();
    assert_eq!(first(1, runs.clone()).await, 1);
    assert_eq!(second(1, runs.clone()).await, 101);
    assert_eq!(runs.get(), 2);
}

/// Attributes, doc comments, visibility, lifetimes and where-clauses are
/// kept; the signature callers see is the one written.
pub(crate) mod service {
    use idem::idempotent;

    /// A documented, attributed, public function.
    #[must_use = "the name is the point"]
    #[idempotent(key = (id, prefix.to_string()))]
    pub async fn name<'a, P>(id: u32, prefix: &'a P) -> String
    where
        P: std::fmt::Display + ?Sized,
    {
        #![allow(clippy::needless_return)]
        return format!("{prefix}-{id}");
    }
}

#[tokio::test]
async fn signatures_are_kept() {
    let f: fn(u32, &'static str) -> _ = |id, p| service::name(id, p);
    assert_eq!(f(1, "a").await, "a-1");
}

/// One-expression bodies on one line: the expansion must not nest them in
/// braces that rustc's `unused_braces` lint flags (it fires on one-line
/// blocks only, hence `rustfmt::skip`), or `clippy -D warnings`, which
/// compiles this file, fails.
#[rustfmt::skip]
mod one_line {
    use idem::idempotent;

    #[idempotent(key = id)]
    pub(crate) async fn double(id: u64) -> u64 { id * 2 }

    #[idempotent(key = id, ttl = "1m")]
    pub(crate) async fn triple(id: u64) -> Result<u64, String> { Ok(id * 3) }

    pub(crate) struct Svc(pub(crate) ::idem::SingleFlight<u64, u64>);

    impl Svc {
        #[idempotent(key = id, flight = self.0)]
        pub(crate) async fn quadruple(&self, id: u64) -> u64 { id * 4 }
    }
}

#[tokio::test]
async fn one_line_bodies_compile_without_lints() {
    assert_eq!(one_line::double(2).await, 4);
    assert_eq!(one_line::triple(2).await, Ok(6));
    let svc = one_line::Svc(::idem::SingleFlight::new());
    assert_eq!(svc.quadruple(2).await, 8);
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[idempotent(key = id, ttl = "1m")]
async fn sendable(id: u32) -> Result<u32, String> {
    tokio::task::yield_now().await;
    Ok(id)
}

struct Svc {
    flight: ::idem::SingleFlight<u32, u32>,
}

impl Svc {
    #[idempotent(key = id)]
    async fn method(&self, id: u32) -> u32 {
        id
    }

    #[idempotent(key = id, flight = self.flight)]
    async fn in_flight(&self, id: u32) -> u32 {
        id
    }
}

#[tokio::test]
async fn futures_are_send_when_the_body_is() {
    let svc = Svc {
        flight: ::idem::SingleFlight::new(),
    };
    assert_eq!(assert_send(sendable(1)).await, Ok(1));
    assert_eq!(assert_send(svc.method(2)).await, 2);
    assert_eq!(assert_send(svc.in_flight(3)).await, 3);
    // And they can be spawned.
    assert_eq!(tokio::spawn(sendable(4)).await.unwrap(), Ok(4));
}
