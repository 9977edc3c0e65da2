//! The traits whose `#[diagnostic::on_unimplemented]` messages are the
//! user's compile errors: a bound on one of them fails, and rustc reports
//! its message, naming the culprit type and saying how to fix it.
//!
//! The value, error and key traits are implemented only for a type that
//! never reaches their check (`Arc`, `String`), which rustc then shows as a
//! hint. They are required by the levels of the probes that reject a type
//! ([`return_probe`](super::return_probe), [`key_probe`](super::key_probe),
//! [`refusal_probe`](super::refusal_probe),
//! [`fingerprint_probe`](super::fingerprint_probe)),
//! so each error is reported once, where the type is classified. The other
//! message of this kind, [`FitsFlight`](super::FitsFlight)'s, is with the
//! impls that decide which flights fit.

/// The bound that fails, with this message, when a function's value type
/// cannot be shared by coalesced callers. Implemented only for `Arc`, which
/// never reaches this check (its impl is there as a hint in the error).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is returned by an `#[idempotent]` fn, so it must be `Clone + Send + Sync + 'static`",
    label = "`{Self}` is not `Clone + Send + Sync + 'static`",
    note = "every coalesced caller gets a clone of one result, kept in a table shared by all threads",
    note = "if it is not `Clone`, wrap it in `std::sync::Arc`: return `Arc<{Self}>`",
    note = "if it is not `Send` or `Sync`, use thread-safe parts instead: `Arc` rather than `Rc`, `Mutex` rather than `RefCell` (an `Arc` does not make them thread-safe)"
)]
pub trait ValueMustBeShareable {}
impl<T: ?Sized + Send + Sync + 'static> ValueMustBeShareable for std::sync::Arc<T> {}

/// The bound that fails, with this message, when a function's error type
/// cannot be shared by coalesced callers. Implemented only for `Arc`, which
/// never reaches this check (its impl is there as a hint in the error).
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` of an `#[idempotent]` fn must be `Clone + Send + Sync + 'static`",
    label = "`{Self}` is not `Clone + Send + Sync + 'static`",
    note = "every caller coalesced on a failed execution gets a clone of its error",
    note = "if it is not `Clone`, wrap it in `std::sync::Arc`: return `Result<_, Arc<{Self}>>` and convert with `.map_err(Arc::new)`",
    note = "if it is not `Send` or `Sync`, use thread-safe parts instead: `Arc` rather than `Rc`, `Mutex` rather than `RefCell` (an `Arc` does not make them thread-safe)"
)]
pub trait ErrorMustBeShareable {}
impl<T: ?Sized + Send + Sync + 'static> ErrorMustBeShareable for std::sync::Arc<T> {}

/// The bound that fails, with this message, when a key borrows.
/// Implemented only for a type that never reaches this check.
#[diagnostic::on_unimplemented(
    message = "the key of an `#[idempotent]` fn must own its data, but `{Self}` is a reference",
    label = "this key borrows",
    note = "the key is stored in the function's table, which outlives the call",
    note = "use an owned key: `key = *id` for a `Copy` type such as `&u64`, `key = name.to_string()` for a `&str` (or `.to_owned()`, `.clone()`)"
)]
pub trait KeyMustOwnItsData {}
impl KeyMustOwnItsData for String {}

/// The bound that fails, with this message, when a key cannot be one.
/// Implemented only for a type that never reaches this check.
#[diagnostic::on_unimplemented(
    message = "the key of an `#[idempotent]` fn must be `Hash + Eq + Clone + Send + Sync + 'static`, but `{Self}` is not",
    label = "key of type `{Self}`",
    note = "keys are compared and stored in a table shared by all threads",
    note = "use a type that is, e.g. a `String`, an integer or a tuple of them (floats are not `Eq`: use their `to_bits()`)"
)]
pub trait KeyMustBeHashable {}
impl KeyMustBeHashable for String {}

/// What `detached` needs of the body: it runs on its own task.
///
/// Its message is seldom what the user sees: rustc reports a body that is
/// not `Send` with its own "future cannot be sent between threads safely"
/// (the failing bound is the `Send` this trait's blanket impl requires),
/// and a type parameter that is not `'static` with E0310.
#[diagnostic::on_unimplemented(
    message = "the body of a `detached` `#[idempotent]` fn must be `Send + 'static`: it runs on its own tokio task",
    label = "not `Send + 'static`",
    note = "hold no `!Send` value (`Rc`, `RefCell` borrow, `MutexGuard`) across an `.await`, and borrow nothing from the caller; or remove `detached`"
)]
pub trait DetachedWork: Send + 'static {}
impl<T: Send + 'static> DetachedWork for T {}

/// The bound that fails, with this message, when the error type of a
/// function whose own table can refuse calls cannot carry a refusal.
/// Implemented only for `Refused`, which never reaches this check (its impl
/// is there as a hint in the error).
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` of this `#[idempotent]` fn must implement `From<idem::Refused>`: its table can refuse calls",
    label = "this option makes the table refuse calls, returned as `Err(E::from(idem::Refused::..))`",
    note = "with `max_in_flight`, or `eviction = \"never\"` and `max_entries`, a call can be refused without running the body",
    note = "implement `From<idem::Refused>` for `{Self}` (a variant that holds the `idem::Refused`, say), or remove the option"
)]
pub trait ErrorMustCarryRefusals {}
impl ErrorMustCarryRefusals for crate::Refused {}

/// The bound that fails, with this message, when a function whose own
/// table can refuse calls does not return a `Result`. Implemented only for
/// a type that never reaches this check.
#[diagnostic::on_unimplemented(
    message = "this `#[idempotent]` fn returns `{Self}`, but its table can refuse calls: refusals need a `Result<_, E>` return with `E: From<idem::Refused>`",
    label = "this option makes the table refuse calls, returned as `Err(E::from(idem::Refused::..))`",
    note = "with `max_in_flight`, or `eviction = \"never\"` and `max_entries`, a call can be refused without running the body",
    note = "return `Result<{Self}, E>` with an error type `E` that implements `From<idem::Refused>` (`idem::Refused` itself does), or remove the option"
)]
pub trait ReturnMustCarryRefusals {}
impl<T> ReturnMustCarryRefusals for Result<T, crate::Refused> {}

/// The bound that fails, with this message, when the value of a
/// `fingerprint = <expr>` is not `Hash`. Implemented only for a type that
/// never reaches this check.
#[diagnostic::on_unimplemented(
    message = "the `fingerprint` of an `#[idempotent]` fn must be `Hash`, but `{Self}` is not",
    label = "fingerprint of type `{Self}`",
    note = "the fingerprint is hashed once, before the body, and compared with the fingerprint of the execution or stored result that the call's key finds",
    note = "derive `Hash` for the types in it, or fingerprint only parts that are `Hash` (floats are not: use their `to_bits()`)"
)]
pub trait FingerprintMustBeHashable {}
impl FingerprintMustBeHashable for String {}

/// The bound that fails, with this message, when the error type of a
/// function with a `fingerprint` cannot carry a mismatch. Implemented only
/// for `Mismatch`, which never reaches this check (its impl is there as a
/// hint in the error).
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` of this `#[idempotent]` fn must implement `From<idem::Mismatch>`: it has a `fingerprint`",
    label = "a call whose key was used with another fingerprint returns `Err(E::from(idem::Mismatch))`",
    note = "with a `fingerprint`, a call whose key is running or stored for another fingerprint gets a mismatch, and the body does not run",
    note = "implement `From<idem::Mismatch>` for `{Self}` (a variant for a reused key, say), or remove `fingerprint`"
)]
pub trait ErrorMustCarryMismatch {}
impl ErrorMustCarryMismatch for crate::Mismatch {}

/// The bound that fails, with this message, when a function with a
/// `fingerprint` does not return a `Result`. Implemented only for a type
/// that never reaches this check.
#[diagnostic::on_unimplemented(
    message = "this `#[idempotent]` fn returns `{Self}`, but it has a `fingerprint`: a mismatch needs a `Result<_, E>` return with `E: From<idem::Mismatch>`",
    label = "a call whose key was used with another fingerprint returns `Err(E::from(idem::Mismatch))`",
    note = "with a `fingerprint`, a call whose key is running or stored for another fingerprint gets a mismatch, and the body does not run",
    note = "return `Result<{Self}, E>` with an error type `E` that implements `From<idem::Mismatch>` (`idem::Mismatch` itself does), or remove `fingerprint`"
)]
pub trait ReturnMustCarryMismatch {}
impl<T> ReturnMustCarryMismatch for Result<T, crate::Mismatch> {}

/// The bound that fails, with this message, when the error type of a
/// function whose `flight` is a `Durable` cannot carry the `Durable`'s own
/// failures. Implemented by no type: `DurableError<Infallible>` itself
/// carries them, but a `Durable` whose errors they were could not record
/// them (its codec would have to encode an `Arc<StoreError>`).
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` of this `#[idempotent]` fn must implement `From<idem::durable::DurableError<Infallible>>`: its `flight` is a `Durable`",
    label = "a `Durable`'s own failures are returned as `Err(E::from(DurableError::..))`",
    note = "a `Durable` call can fail without the body failing: another process holds the key (`Running`), the lease was lost before the result was recorded (`LeaseLost`), or the store failed (`Store`)",
    note = "implement `From<idem::durable::DurableError<std::convert::Infallible>>` for `{Self}` (a variant that keeps what you need of it: `retry_after`, or its message)"
)]
pub trait ErrorMustCarryDurableFailures {}

/// The bound that fails, with this message, when the key of a function
/// whose `flight` is a `Durable` is not text. Implemented only for a type
/// that never reaches this check.
#[diagnostic::on_unimplemented(
    message = "the key of an `#[idempotent]` fn whose `flight` is a `Durable` must be `AsRef<str>` or `Display`, but `{Self}` is neither",
    label = "key of type `{Self}`",
    note = "a `Durable` keys its records with strings: an `AsRef<str>` key (`String`, `&str`) is used as it is, any other `Display` key (`u64`, `Uuid`) as it prints",
    note = "implement `Display` for `{Self}`, or write the key as a string: `key = format!(\"{{}}/{{}}\", order.user, order.id)`"
)]
pub trait DurableKeyMustBeText {}
impl DurableKeyMustBeText for String {}

/// The bound that fails, with this message, when `fence = name` is given
/// with a `flight` that is not a `Durable`. Implemented by no type.
#[diagnostic::on_unimplemented(
    message = "`fence` binds the fencing token of a `Durable`'s lease, but this `#[idempotent]` fn's `flight` is a `{Self}`",
    label = "only a `Durable`'s work runs under a lease",
    note = "`fence = name` needs `flight = <an idem::durable::Durable>`; with a `SingleFlight`, remove `fence`"
)]
pub trait FenceNeedsDurable {}

/// The bound that fails, with this message, when a `detached` function's
/// `flight` is not a `SingleFlight`. Implemented by no type.
#[diagnostic::on_unimplemented(
    message = "`detached` takes a `SingleFlight`, but this `#[idempotent]` fn's `flight` is a `{Self}`",
    label = "`#[idempotent]` runs a `Durable`'s body in the caller's future",
    note = "a `Durable` call dropped mid-body releases its key, and the next call runs the body again",
    note = "for work that must finish once started, call `.call(key).run_detached(..)` on the `Durable` yourself; or remove `detached`"
)]
pub trait DetachedNeedsSingleFlight {}

/// The bound that fails, with this message, when the codec of a `Durable`
/// named by a `flight` cannot encode its value type. Implemented only for
/// a type that never reaches this check.
#[diagnostic::on_unimplemented(
    message = "the `Durable` of this `#[idempotent]` fn records its values with its codec, which cannot encode `{Self}`",
    label = "this `Durable`'s values are `{Self}`",
    note = "a value is encoded when it is recorded, and decoded when another call or process replays it",
    note = "with the default codec, `idem::durable::Json`, derive `serde::Serialize` and `serde::Deserialize` for `{Self}`; with a codec of your own, implement `idem::durable::Codec<{Self}>` for it"
)]
pub trait ValueMustBeRecordable {}
impl ValueMustBeRecordable for String {}

/// The bound that fails, with this message, when the codec of a `Durable`
/// named by a `flight` cannot encode its error type. Implemented only for
/// a type that never reaches this check.
#[diagnostic::on_unimplemented(
    message = "the `Durable` of this `#[idempotent]` fn can record its errors with its codec, which cannot encode `{Self}`",
    label = "this `Durable`'s errors are `{Self}`",
    note = "an error that `record_errors` picks is encoded when it is recorded, and decoded when another call or process replays it",
    note = "with the default codec, `idem::durable::Json`, derive `serde::Serialize` and `serde::Deserialize` for `{Self}`; with a codec of your own, implement `idem::durable::Codec<{Self}>` for it"
)]
pub trait ErrorMustBeRecordable {}
impl ErrorMustBeRecordable for String {}
