//! Make async operations idempotent under concurrency.
//!
//! The same logical request often arrives more than once: a double-clicked
//! "pay" button, a client retrying after a timeout, a queue redelivering a
//! message, a cache miss stampeding a database. idem's contract, for one
//! key:
//!
//! * concurrent calls share **one execution**, and every caller gets a clone
//!   of its result;
//! * calls within a **time window** (the ttl) after a success get the stored
//!   result instead of running the work again;
//! * **failures and panics never hang anyone** and are never replayed as if
//!   they had succeeded: they go to the callers of the execution that
//!   produced them, and the next call runs again.
//!
//! The core is [`SingleFlight`], a sharded in-memory table:
//!
//! ```
//! use std::time::Duration;
//! use idem::{Outcome, SingleFlight};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let orders: SingleFlight<u64, String> = SingleFlight::builder()
//!     .ttl(Duration::from_secs(30))
//!     .max_entries(100_000)
//!     .build()
//!     .unwrap();
//!
//! let charge = || async {
//!     // ... talk to the payment provider ...
//!     Ok(String::from("receipt-1"))
//! };
//! let (receipt, outcome) = orders.run_with_outcome(1, charge).await;
//! assert_eq!((receipt.unwrap().as_str(), outcome), ("receipt-1", Outcome::Executed));
//!
//! // The retry, within 30 s: the stored receipt, no second charge.
//! let (receipt, outcome) = orders.run_with_outcome(1, charge).await;
//! assert_eq!((receipt.unwrap().as_str(), outcome), ("receipt-1", Outcome::Cached));
//! # }
//! ```
//!
//! # Choosing a mode
//!
//! * [`SingleFlight::run`]: the caller that starts a flight drives the work
//!   inside its own future, so the work may borrow (`&self`, locals) and
//!   needs neither `Send` nor `'static`. If that caller is dropped, a waiting
//!   caller drives the same flight on with its own work, and the other
//!   waiters get that execution's result.
//! * [`SingleFlight::run_detached`]: the work runs on its own tokio task and
//!   completes even if every caller leaves. Use it for side effects, where a
//!   client that times out and retries must get the first execution's result
//!   rather than cause a second execution.
//!
//! # What we chose where the contract was silent
//!
//! - **Cancellation.** With `run`, the caller that starts a flight drives the
//!   work. If it is dropped (timeout, client gone), its work is dropped too, and
//!   the first waiting caller to be polled drives the same flight on with its own
//!   work; the other waiters stay attached to it and get its result, however late
//!   they are polled: one extra execution per cancelled leader, never one per
//!   waiter, and never a "too many retries" error. A waiter that leaves disturbs nobody. A leader that is
//!   polled once and then kept alive *without being polled* stalls its waiters:
//!   use `run_detached` for side effects, or put a timeout on callers.
//! - **Re-entrancy.** Work that calls `run` on its own table with the same key
//!   would wait for itself. idem detects it and panics inside that work with a
//!   message that says so; the outer callers get `Error::Panicked`.
//! - **`forget` fences.** After `forget(&key)`, calls start a fresh execution.
//!   The old one still answers its own callers, but its result never overwrites
//!   the newer one and its completion never removes the newer flight.
//! - **Expiry and memory.** A background sweeper task (one per table, on the
//!   first tokio runtime with timers that stores a result, only while the table
//!   stores something) sleeps until the oldest result is due, at least
//!   `sweep_interval` apart, and removes what expired in O(expired). Expired
//!   results are never returned, and make room before any fresh result is
//!   evicted. `Eviction::Adaptive` (the default) is a cache: S3-FIFO per
//!   shard, which keeps hot keys, and drops a fresh result nobody asked for
//!   again after as little as one newer store when many keys are retried.
//!   **For retry protection use `Eviction::Never`**: results are kept for
//!   their whole ttl and a new key is refused (`Error::Full { retry_after }`)
//!   when `max_entries` (table-wide, exact) are held.
//! - **Fingerprints.** A key says which calls are the same; a
//!   [`Fingerprint`] says what a call asked for. A call made with
//!   [`run_with_fingerprint`](SingleFlight::run_with_fingerprint) whose key
//!   is running or stored with another fingerprint gets
//!   [`Error::Mismatch`] and runs nothing: a reused key is a bug to surface,
//!   not a request to answer with someone else's result. Calls without a
//!   fingerprint are not checked.
//! - **Keys by reference.** [`run_by_ref`](SingleFlight::run_by_ref) and
//!   [`get`](SingleFlight::get) look a `String` key up by `&str`: a hit or a
//!   join builds no owned key (a hit allocates nothing).
//! - **Hashing.** Keys may come from the network, so the default hasher
//!   ([`RandomState`]: SipHash-1-3 with random keys per table) resists hash
//!   flooding; [`Builder::hasher`] takes a faster one for keys you control.
//! - **Time**: see *Time* below.
//! - **Invalid settings** (`max_entries(0)`, `max_entries` without a ttl,
//!   `max_in_flight(0)`, a shard count that is zero, not a power of two or
//!   above 65,536, a zero sweep interval) are errors from `build()`, each
//!   naming the setting.
//! - **Hostile types.** No user code runs under a shard lock but `Hash`/`Eq`
//!   and the `Clone` of a hit: entries leaving the table are dropped after the
//!   lock. A `Clone` or `Drop` that panics reaches the caller that ran it and
//!   never leaves a key stuck or a waiter asleep. A ttl of zero means "store
//!   nothing"; `Duration::MAX` means "until evicted or forgotten".
//!
//! # Time
//!
//! A cache hit reads the clock once to check the ttl. A precise monotonic
//! read costs more than the rest of a hit, so hits read the kernel's coarse
//! monotonic clock, which lags the precise one by up to a scheduler tick or
//! two (1–5 ms measured at `HZ=250`), more while the virtual machine's CPUs
//! are stalled (21 ms seen), and fall back on a precise read near an expiry.
//! What this guarantees:
//!
//! * **A ttl never ends early.** The expiry counts from a precise read when
//!   the result is stored.
//! * **A result is not served late** unless the coarse clock lags by more
//!   than a margin of eight ticks (clamped to 8–100 ms; 32 ms at `HZ=250`),
//!   and then by at most the excess: that takes the CPU keeping time to
//!   have been stopped for most of the margin.
//! * **Memory is freed** by a background sweeper at most about one
//!   [`sweep_interval`](Builder::sweep_interval) after an expiry (never
//!   early), and at once when a call for the key, or room for a new result,
//!   needs the slot.
//!
//! A hit far from its expiry costs one coarse read and a compare; within the
//! margin, one precise read more. Platforms without a coarse clock use
//! `std::time::Instant` throughout. `benches/src/bin/clock_lag.rs` measures
//! the lag on your machine.
//!
//! **Testing ttls.** Enable the `test-util` feature in your
//! dev-dependencies. idem then reads `tokio::time::Instant`, so a paused
//! tokio clock controls expiry exactly:
//!
//! ```toml
//! [dev-dependencies]
//! idem = { version = "0.1", features = ["test-util"] }
//! ```
//!
//! ```ignore
//! #[tokio::test(start_paused = true)]
//! async fn replays_within_ttl() {
//!     let flight = SingleFlight::<u8, u8>::builder().ttl(Duration::from_secs(30)).build().unwrap();
//!     flight.run(1, || async { Ok(1) }).await.unwrap();
//!     tokio::time::advance(Duration::from_secs(29)).await;
//!     assert_eq!(flight.get(&1), Some(1));
//!     tokio::time::advance(Duration::from_secs(1)).await;
//!     assert_eq!(flight.get(&1), None);
//! }
//! ```
//!
//! # Observability
//!
//! With the `tracing` feature (off by default), each execution of a work is
//! an `idem.execution` span with the table's [name](Builder::name), a hash
//! of the key (never the key: keys may hold personal data) and the outcome;
//! takeovers, panics, refusals, fingerprint mismatches and evictions are
//! events. Without the feature none of this is compiled; hits record
//! nothing either way. [`SingleFlight::stats`] counts the same things.
//!
//! # Memory
//!
//! Running flights are removed when they end, whatever the ending. Stored
//! results are bounded by [`Builder::max_entries`] (S3-FIFO eviction per
//! shard, or a table-wide exact bound with [`Eviction::Never`]) and removed
//! when they expire: a background sweeper task sleeps until the oldest
//! result is due (and at least [`Builder::sweep_interval`]: by default the
//! ttl, clamped to 1–60 s) and removes what expired in O(expired), even if
//! the keys are never asked for again; the shard's hash table shrinks once
//! most of it is gone.
//!
//! The sweeper runs on the first tokio runtime with timers that stores a
//! result in the table, only while the table stores something. Where it
//! cannot run (no tokio runtime, a runtime built without the time driver, or
//! a runtime that is never driven), expired results are still never
//! returned, and are removed when their key is next called or when room is
//! needed for a new result; `max_entries` then bounds memory.
//!
//! Under a paused test clock the sweeper's timer is one more timer: when the
//! runtime is idle, tokio auto-advances the clock to it, so stored results
//! can expire while a test waits on something outside the runtime.

#![cfg_attr(docsrs, feature(doc_cfg))]
// The loom model has no sweeper: its parts are unused there.
#![cfg_attr(idem_loom, allow(dead_code, unused_imports))]

mod builder;
mod clock;
#[cfg(feature = "durable")]
pub mod durable;
mod error;
mod fingerprint;
mod flight;
mod hash;
mod stats;
pub mod store;
mod sync;
mod table;
mod trace;
mod work;

#[doc(hidden)]
#[path = "private/mod.rs"]
pub mod __private;

pub use idem_macros::idempotent;

pub use builder::{BuildError, Builder, Eviction, MAX_SHARDS};
pub use error::{Error, Mismatch, Panicked, Refused};
pub use fingerprint::Fingerprint;
pub use hash::{DefaultHasher, RandomState};
pub use stats::{Outcome, Stats};
pub use table::SingleFlight;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
