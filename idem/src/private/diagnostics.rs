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
