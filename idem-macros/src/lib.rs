//! The `#[idempotent]` attribute macro. Use it through the `idem` crate, as
//! `idem::idempotent`: the code it generates refers to `::idem`.
//!
//! The crate is split by stage, like `thiserror`'s derive:
//! `args` parses the options, `duration` reads `ttl = "30s"`, `validate`
//! checks the function (every error spanned at the token at fault), and
//! `expand` generates the code, or, on any error, emits the function as
//! written beside the errors so that the user sees those errors only.

mod args;
mod duration;
mod expand;
mod validate;

use proc_macro::TokenStream;

/// Makes an `async fn` idempotent under concurrency: concurrent calls with
/// equal keys share one execution of the body, and, with a `ttl`, later
/// calls within the ttl get its stored result.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use idem::idempotent;
///
/// static CHARGES: AtomicUsize = AtomicUsize::new(0);
///
/// #[derive(Clone)]
/// struct Order {
///     id: u64,
///     cents: u64,
/// }
///
/// #[idempotent(key = order.id, ttl = "30s")]
/// async fn place_order(order: Order) -> Result<String, String> {
///     CHARGES.fetch_add(1, Ordering::SeqCst);
///     tokio::task::yield_now().await; // ... talk to the payment provider ...
///     Ok(format!("receipt for order {} ({} cents)", order.id, order.cents))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let order = Order { id: 7, cents: 1_250 };
/// // A double click: two concurrent calls, one charge.
/// let (a, b) = tokio::join!(place_order(order.clone()), place_order(order.clone()));
/// assert_eq!(a, b);
/// // A retry within 30 s: the stored receipt, no second charge.
/// assert_eq!(place_order(order).await, a);
/// assert_eq!(CHARGES.load(Ordering::SeqCst), 1);
/// # }
/// ```
///
/// The signature callers see is unchanged. The attribute applies to free
/// `async fn`s and to `async fn` methods that take `&self`.
///
/// # Options
///
/// | option | meaning |
/// |---|---|
/// | `key = <expr>` | **Required.** What makes two calls the same: any expression over the arguments (`order.id`, `(user, day)`, `req.idempotency_key.clone()`, `format!("{a}/{b}")`). Evaluated once, before the body; the body can still use what it names. Its value must own its data (no reference, not even a `&'static str`: use a `String` or an enum) and be `Hash + Eq + Clone + Send + Sync + 'static`; with a `Durable`, it is text instead (see *Across processes*). |
/// | `fingerprint = <expr>` | What the call asks for (its payload), checked against the execution or stored result its key finds: any expression over the arguments, such as `(order.amount, &order.currency)`. Evaluated once, before the body and the key, and only hashed ([`Fingerprint::of`]), so it may borrow the arguments and need not be `'static` or `Clone`, only `Hash`; the places in a tuple (`(order.amount, order.currency)`) are borrowed, not moved. A call whose key is running or stored with another fingerprint does not run the body and returns `Err(E::from(`[`Mismatch`]`))` (see *Fingerprints*). |
/// | `ttl = "30s"` | How long a success is replayed: `"500ms"`, `"30s"`, `"5m"`, `"1h30m"`, `"2d"` (units `ns`, `us`, `ms`, `s`, `m`, `h`, `d`), checked at compile time; or any `Duration` expression, evaluated once, when the table is created (so it cannot use `self` or the arguments). Without it, concurrent calls are coalesced and nothing is kept afterwards. |
/// | `max_entries = N` | The most results kept (needs `ttl`); a literal, or a `usize` expression evaluated when the table is created (so it cannot use `self` or the arguments). |
/// | `eviction = "never"` | What the table does when it holds `max_entries` results (needs `max_entries`). `"adaptive"`, the default: a cache, which drops a result to make room, possibly well before its ttl. `"never"`: retry protection; a result is kept for its whole ttl, and a call for a new key is **refused** (see *Refusals*). |
/// | `max_in_flight = N` | The most executions running at once; a call that would start another is **refused** (see *Refusals*), while calls that join a running execution or get a stored result are served. A literal, or a `usize` expression evaluated when the table is created. |
/// | `flight = <expr>` | A [`SingleFlight`] of yours to run in (e.g. `self.flight`), with any hasher, instead of the function's own table; or a [`Durable`], to run at most once per key across processes (see *Across processes*). A `SingleFlight`'s key type must be the key's; either's types must be the return type's; and its own settings apply, so `ttl`, `max_entries`, `eviction` and `max_in_flight` cannot be given with it. |
/// | `fence = <name>` | With a `Durable` only: the body gets the lease it runs under, an [`idem::durable::Fence`][Fence], by this name (see *Across processes*). |
/// | `detached` | The body runs on its own tokio task and finishes (and its result is stored) even if every caller goes away; see [`SingleFlight::run_detached`]. The body must then be `Send + 'static`: it cannot use `self` or borrowed arguments. Not with a `Durable`. |
///
/// # Tables
///
/// Without `flight`, each function has a table of its own, created on its
/// first call, so equal keys passed to different functions never share a
/// result. A method's table is shared by **all instances** of its type:
/// give each instance its own [`SingleFlight`] and pass it with
/// `flight = self.flight` if two instances must not share results.
///
/// Keys are stored exactly as typed: the key's type is inferred from the
/// key expression, never hashed down to an integer, so distinct keys never
/// collide.
///
/// **Generic functions** get one table per instantiation: `f::<u32>` and
/// `f::<i64>` never share results, even when their key and value types are
/// the same. This also holds for methods of a generic `impl`.
///
/// # Return types
///
/// * `Result<T, E>`: `Ok` values are stored for the ttl. An `Err` goes to
///   the callers coalesced on the execution that returned it and is never
///   stored: the next call runs the body again. This holds for a `Result`
///   behind a type alias too (`io::Result<T>`, `anyhow::Result<T>`, your
///   own `type Res<T> = Result<T, MyError>`): the type checker, not the
///   macro, tells a `Result` from other types. A generic return type `T`
///   is a plain value, even if an instantiation makes it a `Result`.
/// * Any other type is stored as it is.
///
/// Values and errors are cloned for each caller and kept in a table shared
/// by all threads, so they must be `Clone + Send + Sync + 'static`; the
/// compile error for a type that is not names it and suggests wrapping it
/// in an `Arc` if it is not `Clone` (`std::io::Error`, say), or thread-safe
/// parts (`Arc` rather than `Rc`) if it is not `Send` or `Sync`.
///
/// # Refusals
///
/// With `max_in_flight`, or `eviction = "never"` and `max_entries`, the
/// table can refuse a call: the body does not run, and the function returns
/// `Err(E::from(`[`Refused`]`::Busy))` or `Err(E::from(Refused::Full {
/// retry_after }))`. The function must therefore return `Result<T, E>` with
/// `E: From<idem::Refused>` (`Refused` itself will do); any other return
/// type is a compile error at the option, which says so. Refusals are never
/// stored: the next call for the key is tried afresh.
///
/// ```
/// use idem::{idempotent, Refused};
///
/// #[derive(Debug, Clone, PartialEq)]
/// enum PayError {
///     TryLater(Refused),
/// }
///
/// impl From<Refused> for PayError {
///     fn from(r: Refused) -> Self {
///         PayError::TryLater(r)
///     }
/// }
///
/// // Each receipt is kept for a day; at most 100,000 of them, and 64 payments running.
/// #[idempotent(key = id, ttl = "1d", max_entries = 100_000, eviction = "never", max_in_flight = 64)]
/// async fn pay(id: u64) -> Result<String, PayError> {
///     Ok(format!("receipt {id}"))
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # assert_eq!(pay(1).await, Ok("receipt 1".to_string()));
/// # }
/// ```
///
/// With `flight = ...` the macro cannot see the table's bounds: a refusal is
/// an `Err` as above if the error type implements `From<idem::Refused>`, and
/// otherwise a panic naming the function.
///
/// # Fingerprints
///
/// A key says which calls are the same; it does not say that they ask for
/// the same thing. With `key = order.id` alone, a second call with the same
/// id and another amount gets the first call's result. With a
/// `fingerprint`, it gets `Err(E::from(`[`Mismatch`]`))` instead, at once,
/// whether the first call is still running or its result is stored, and
/// the body does not run. The function must therefore return
/// `Result<T, E>` with `E: From<idem::Mismatch>` (`Mismatch` itself will
/// do), with its own table or a `flight` alike; any other return type is a
/// compile error at the option, which says so. A value that is not `Hash`
/// is a compile error at the expression. Without the option, nothing is
/// checked, and nothing is added to the expansion.
///
/// ```
/// use idem::{idempotent, Mismatch};
///
/// #[derive(Debug, Clone, PartialEq)]
/// enum PayError {
///     KeyReused,
/// }
///
/// impl From<Mismatch> for PayError {
///     fn from(_: Mismatch) -> Self {
///         PayError::KeyReused
///     }
/// }
///
/// #[idempotent(key = id, fingerprint = (cents, &currency), ttl = "1h")]
/// async fn pay(id: u64, cents: u64, currency: String) -> Result<String, PayError> {
///     Ok(format!("charged {cents} {currency}"))
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(pay(7, 1_250, "EUR".into()).await, Ok("charged 1250 EUR".to_string()));
/// assert_eq!(pay(7, 9_999, "EUR".into()).await, Err(PayError::KeyReused));
/// # }
/// ```
///
/// # Across processes
///
/// With a [`Durable`] (feature `durable` of `idem`) as its `flight`, the
/// body runs at most once per key across every process that shares the
/// `Durable`'s store: duplicates in one process share one execution, the
/// first process to claim the key runs the body under a lease, and its
/// result is recorded and replayed, here and in the other processes, for
/// the `Durable`'s `retain`. Two executors on one `Arc<MemoryStore>` stand
/// for two processes here; `idem_redis::RedisStore` is the real thing.
///
/// ```
/// use std::convert::Infallible;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use idem::durable::{Durable, DurableError};
/// use idem::idempotent;
/// use idem::store::MemoryStore;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// enum PayError {
///     Declined,
///     /// The `Durable`'s own failures: another process holds the key, the
///     /// store cannot be reached, ...
///     Unavailable(String),
/// }
///
/// impl From<DurableError<Infallible>> for PayError {
///     fn from(e: DurableError<Infallible>) -> Self {
///         PayError::Unavailable(e.to_string())
///     }
/// }
///
/// /// One process of the payment service.
/// struct Payments {
///     durable: Durable<Arc<MemoryStore>, String, PayError>,
///     charges: AtomicUsize,
/// }
///
/// impl Payments {
///     fn new(store: Arc<MemoryStore>) -> Self {
///         let durable = Durable::builder(store)
///             .namespace("payments")
///             .retain(Duration::from_secs(24 * 3600))
///             .build()
///             .unwrap();
///         Self { durable, charges: AtomicUsize::new(0) }
///     }
///
///     #[idempotent(key = order_id, flight = self.durable, fence = fence)]
///     async fn charge(&self, order_id: u64, cents: u64) -> Result<String, PayError> {
///         self.charges.fetch_add(1, Ordering::SeqCst);
///         // Downstream writes carry the lease's token, so that a stalled
///         // owner's late writes are refused: `... WHERE fence < $1`.
///         let token = fence.token();
///         Ok(format!("receipt for order {order_id}: {cents} cents (fence {token})"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = Arc::new(MemoryStore::new());
/// let (first, second) = (Payments::new(Arc::clone(&store)), Payments::new(store));
/// let receipt = first.charge(7, 1_250).await.unwrap();
/// // A retry that lands on the other process gets the recorded receipt.
/// assert_eq!(second.charge(7, 1_250).await, Ok(receipt));
/// assert_eq!(first.charges.load(Ordering::SeqCst), 1);
/// assert_eq!(second.charges.load(Ordering::SeqCst), 0);
/// # }
/// ```
///
/// What changes with a `Durable`:
///
/// * **Keys are text**, in the `Durable`'s namespace: a key that is
///   `AsRef<str>` (`String`, `&str`, `Cow<str>`) is used as it is, any
///   other `Display` key (`u64`, `Uuid`) as it prints. It is turned into a
///   `String` before the body starts, so it may borrow the arguments, and
///   need not be `Hash`. Any other key is a compile error at the key.
///   Functions that share a `Durable` share its records: equal keys are the
///   same record (`order.id` and `"7"` name one), so give each operation a
///   `Durable` (a namespace) of its own, or keys of its own.
/// * **The return type is `Result<V, E>`**, for a `Durable<S, V, E, C>`;
///   anything else is a compile error at the flight. `V` and `E` are
///   recorded with the `Durable`'s codec (the default, `Json`, takes
///   `serde` types); one that cannot encode them is a compile error at the
///   flight.
/// * **Errors.** The body's `Err(e)` is returned as it is, and released
///   (the next call, in any process, runs again) unless the `Durable`'s
///   `record_errors` picks it, which records it and replays it like a
///   value. The `Durable`'s own failures, which are not the body's: another
///   process holds the key (`DurableError::Running`, with
///   `OnRunning::Reject` or once the wait times out), the lease was lost
///   before the result was recorded (`LeaseLost`: the body ran, its result
///   was not recorded), the store failed or holds a record it cannot read
///   (`Store`: if the key could not be claimed, the body did not run; if
///   the result could not be recorded, it did), are returned as
///   `Err(E::from(DurableError::<Infallible>::..))`. `E` must therefore
///   implement `From<idem::durable::DurableError<Infallible>>` (the
///   `Infallible`: the body's own errors never come this way); otherwise
///   this is a compile error at the return type.
/// * **Panics** are as with a `SingleFlight` (see *Panics*): a panic of
///   each caller coalesced on the execution, in this process. The lease is
///   released: the next call, in any process, runs the body again.
/// * **`fingerprint`** is checked by the store too: a key leased or
///   recorded for another fingerprint, in any process, returns
///   `Err(E::from(Mismatch))` (`Durable::run_with_fingerprint`).
/// * **`fence = name`** binds the lease the body runs under, an
///   [`idem::durable::Fence`][Fence], to `name` in the body: its `token()`
///   grows with every lease of the key, for downstream writes to refuse a
///   stalled owner's, and `is_lost()` says whether the lease was lost.
///   With a `SingleFlight`, or without a `flight`, `fence` is a compile
///   error.
/// * **Settings** are the `Durable`'s (`retain`, `lease`, `max_run`,
///   `on_running`, set with `Durable::builder()`): `ttl`, `max_entries`,
///   `eviction` and `max_in_flight` are compile errors at the option, as
///   with any `flight`; so is `detached`: the body runs in the caller's
///   future (`Durable::run`), which renews its lease. A caller dropped
///   mid-body drops its body: a caller of this process coalesced on it
///   takes the work over, and with none the key is released (see
///   [`Durable::run`][DurableRun]). For work that must finish once
///   started, call `.call(key).run_detached(..)` on the `Durable`
///   yourself.
///
/// # Panics
///
/// A panic in the body is a panic, with the original message, for every
/// caller coalesced on that execution, also in functions that return
/// `Result`: a panic never turns into an `Err`. Nobody hangs, and the next
/// call runs the body again. Only the message is kept: a panic whose
/// payload is not a string reaches the callers as a panic with the message
/// `<panic payload is not a string>`.
///
/// A function that calls itself with the same key from its own body would
/// wait for itself forever (recursion with other keys is fine). idem
/// detects this and panics instead, but only when the inner call is awaited
/// inline, on the task and thread polling the body: through `tokio::spawn`
/// or `spawn_local`, it hangs.
///
/// # Compile errors
///
/// `&mut self`, `self` by value, `&mut` anywhere in an argument, non-`async`
/// and `const` functions, borrowed or `impl Trait` return types, borrowed
/// keys (`&'static str` included), settings (`ttl`, `max_entries`,
/// `max_in_flight`) that use `self` or an argument, a return type that
/// cannot carry refusals (see *Refusals*) or mismatches (see
/// *Fingerprints*), a `fingerprint` that is not `Hash`, a `flight` whose
/// types do not fit the return type, and unknown, repeated or malformed
/// options are compile errors that point at the token at fault. So are,
/// with a `Durable` (see *Across processes*), a key that is neither
/// `AsRef<str>` nor `Display`, an error type without
/// `From<DurableError<Infallible>>`, values or errors its codec cannot
/// encode, and `detached`; and `fence` without a `Durable`.
/// (Unknown, repeated and malformed options list the accepted ones; a value
/// an option cannot take, `ttl = 30`, `max_entries = 0`, `eviction = "lru"`,
/// says what to write instead; so do `max_entries` without `ttl` and
/// `eviction` without `max_entries`.)
///
/// With `detached`, a body that is not `Send` gets rustc's own "future
/// cannot be sent between threads safely" at `detached`, and a type
/// parameter that is not `'static` rustc's E0310, twice, also at `detached`.
///
/// ```compile_fail
/// #[idem::idempotent(key = name)] // error: the key `&str` is a reference; use `name.to_string()`
/// async fn greet(name: &str) -> String {
///     format!("hello {name}")
/// }
/// ```
///
/// # Methods and `flight`
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
/// use idem::{idempotent, SingleFlight};
///
/// struct Inventory {
///     reads: AtomicUsize,
///     flight: SingleFlight<String, u32>,
/// }
///
/// impl Inventory {
///     fn new() -> Self {
///         let flight = SingleFlight::builder().ttl(Duration::from_secs(5)).build().unwrap();
///         Self { reads: AtomicUsize::new(0), flight }
///     }
///
///     /// One table per `Inventory`.
///     #[idempotent(key = sku.clone(), flight = self.flight)]
///     async fn stock(&self, sku: String) -> u32 {
///         self.reads.fetch_add(1, Ordering::SeqCst);
///         u32::try_from(sku.len()).unwrap()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (a, b) = (Inventory::new(), Inventory::new());
/// assert_eq!(a.stock("apple".into()).await, 5);
/// assert_eq!(a.stock("apple".into()).await, 5);
/// assert_eq!(b.stock("apple".into()).await, 5);
/// assert_eq!(a.reads.load(Ordering::SeqCst), 1);
/// assert_eq!(b.reads.load(Ordering::SeqCst), 1);
/// # }
/// ```
///
/// # Limits
///
/// * The `&mut` check reads argument types as written: a `&mut` behind a type
///   alias (`type Out<'a> = &'a mut Vec<u8>`) or a generic parameter
///   (`out: T` with `T: AsMut<Vec<u8>>`) is not seen, and coalesced callers'
///   arguments are then silently not written. Don't coalesce functions whose
///   effect is writing into their arguments.
/// * The expansion carries a few `#[allow]`s (`unused_imports` on its trait
///   imports, `unreachable_code` on the dead `return` that types the body,
///   `clippy::let_and_return` on key clones): a crate that `forbid`s one of
///   these lints cannot use the macro (`forbid(warnings)` is fine).
/// * `ttl` and `max_entries` may not name an argument or `self`; the check is
///   by name, so a closure parameter that happens to share an argument's name
///   (`ttl = [1, 2].iter().map(|id| ..)` in a function with an `id` argument)
///   is rejected too: rename it.
/// * A key is checked to be owned at its top level and, for a tuple written in
///   the attribute, element by element: `key = name` and `key = (id, name)` with
///   `name: &str` are rejected with a suggestion. A borrow deeper inside (a
///   struct with a lifetime, `Option<&str>`) is rejected by the borrow checker
///   instead, with an error about lifetimes.
/// * A key that names a place is cloned; write a method call
///   (`key = order.key()`) to build the key without cloning.
/// * Macro invocations in a key are opaque: the macro does not look inside
///   them, so `key = vec![name]` moves `name` and a body that uses it fails to
///   compile (E0382, use of moved value). Write `vec![name.clone()]`, or
///   `Vec::from([name])`. The same goes for closures and for statements inside
///   blocks in a key: only call and method-call arguments, struct literal
///   fields, array and tuple elements, arithmetic and cast operands, the
///   operands of `?` and `.await`, and the values `if`, `match` and blocks end
///   in are cloned. (`format!("{a}/{b}")` only borrows, so it needs nothing.)
///   Whether the body uses an argument is decided by its name appearing in the
///   body's tokens: a local of the same name counts as a use (a harmless
///   extra clone).
/// * `flight = <expr>` is evaluated while the body owns the arguments: use
///   `self.flight`, a `static`, or a reference argument, not a field of an
///   argument passed by value.
/// * A typo in the key (`key = idd`, `key = id.nope()`) is reported once, by
///   rustc. A typo in a plain return type (`-> Strin`) is reported twice, at
///   the same token, because the return type is written twice in the
///   expansion (once for the signature, once for the body's type): the second
///   copy adds rustc's "you might be missing a type parameter" help.
/// * The attribute cannot see whether an associated function without `self`
///   belongs to a generic `impl`; it needs no such knowledge either: the
///   per-instantiation tables cover it.
///
/// [`SingleFlight`]: https://docs.rs/idem/latest/idem/struct.SingleFlight.html
/// [`Refused`]: https://docs.rs/idem/latest/idem/enum.Refused.html
/// [`Mismatch`]: https://docs.rs/idem/latest/idem/struct.Mismatch.html
/// [`Fingerprint::of`]: https://docs.rs/idem/latest/idem/struct.Fingerprint.html#method.of
/// [`SingleFlight::run_detached`]: https://docs.rs/idem/latest/idem/struct.SingleFlight.html#method.run_detached
/// [`Durable`]: https://docs.rs/idem/latest/idem/durable/struct.Durable.html
/// [Fence]: https://docs.rs/idem/latest/idem/durable/struct.Fence.html
/// [DurableRun]: https://docs.rs/idem/latest/idem/durable/struct.Durable.html#method.run
#[proc_macro_attribute]
pub fn idempotent(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::idempotent(args.into(), item.into()).into()
}
