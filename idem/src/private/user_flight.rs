//! A `flight = ...` of the user's that is a [`SingleFlight`]:
//! [`AsFlight::__idem_flight`] finds it behind the expression, [`fit`]
//! checks its value and error types against the return type's
//! [`ReturnKind`], once, and [`TableRun`] types the key as the flight's
//! and runs the body in it.
//!
//! The other executor a `flight` can name, a `Durable`, has the same
//! methods under the same names, on traits of its own
//! ([`durable_flight`](super::durable_flight)): the expansion is the same
//! tokens for both, and method resolution picks the executor's.
//!
//! A flight may have any hasher (`Builder::hasher`): everything here is
//! generic over its `S`, which the macro never needs to name.

use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, Hash};

use super::drivers;
use super::fingerprint_probe::OnMismatch;
use super::refusal_probe::OnRefusal;
use super::return_probe::{InvalidReturn, ResultReturn, ReturnKind, ValueReturn};
use crate::{Fingerprint, SingleFlight};

/// Implemented by an executor a `flight = ...` can name for the kind of
/// every return type it can serve: a `SingleFlight<K, V, E, S>` serves
/// `Result<V, E>`, or `V` when `E` is `Infallible`; a `Durable<S, V, E, C>`
/// serves `Result<V, E>` (see [`durable_flight`](super::durable_flight)).
///
/// The trait is on the executor, not on the return kind, so that an error
/// blames the `flight` expression: rustc points at the argument of [`fit`]
/// whose type holds the unsatisfied bound's `Self`.
#[diagnostic::on_unimplemented(
    message = "the return type of this `#[idempotent]` fn does not fit its `flight`, a `{Self}`",
    label = "this flight stores `{V}` values and `{E}` errors",
    note = "a function returning `Result<T, E>` needs a `SingleFlight<K, T, E>` or a `Durable<S, T, E>`; one returning any other type `T` needs a `SingleFlight<K, T>` (a `Durable` can fail without the body failing, so its functions return `Result`s)"
)]
pub trait FitsFlight<Ret: ReturnKind, V, E> {
    /// The executor the work runs in: `Self`, or for an invalid return type
    /// (reported already) a stand-in of the types [`InvalidReturn`] names,
    /// so that the executor's types are not reported again.
    type Fitted: ?Sized;
    /// The executor, as [`Self::Fitted`].
    fn fitted(&self) -> &Self::Fitted;
}

// Not listed as "other implementations" in errors: they are ours, not
// the user's to pick from.
#[diagnostic::do_not_recommend]
impl<K, T, E, S> FitsFlight<ResultReturn<T, E>, T, E> for SingleFlight<K, T, E, S>
where
    ResultReturn<T, E>: ReturnKind<Output = Result<T, E>, Value = T, Error = E>,
{
    type Fitted = Self;
    #[inline]
    fn fitted(&self) -> &Self {
        self
    }
}

#[diagnostic::do_not_recommend]
impl<K, R, S> FitsFlight<ValueReturn<R>, R, Infallible> for SingleFlight<K, R, Infallible, S>
where
    ValueReturn<R>: ReturnKind<Output = R, Value = R, Error = Infallible>,
{
    type Fitted = Self;
    #[inline]
    fn fitted(&self) -> &Self {
        self
    }
}

/// An invalid return type was reported already: fit anything, so that it
/// is not reported again.
#[diagnostic::do_not_recommend]
impl<K, V, E, S, R> FitsFlight<InvalidReturn<R>, V, E> for SingleFlight<K, V, E, S> {
    type Fitted = SingleFlight<K, (), Infallible, S>;
    fn fitted(&self) -> &Self::Fitted {
        unreachable!("a program with an invalid #[idempotent] return type does not compile")
    }
}

/// The value and error types of an executor a `flight = ...` can name.
pub trait FlightTypes {
    /// What it returns (and stores, or records).
    type Value;
    /// What its work fails with.
    type Error;
}

impl<K, V, E, S> FlightTypes for SingleFlight<K, V, E, S> {
    type Value = V;
    type Error = E;
}

/// Finds the `SingleFlight` behind a `flight = ...` expression: the
/// generated code calls `flight.__idem_flight()`, so that method-call
/// auto-deref sees through `Arc`, `Box` and other smart pointers. (A
/// `Durable`'s is [`DurableFlight`](super::DurableFlight).)
pub trait AsFlight {
    /// The flight itself.
    fn __idem_flight(&self) -> &Self;
}

impl<K, V, E, S> AsFlight for SingleFlight<K, V, E, S> {
    #[inline]
    fn __idem_flight(&self) -> &Self {
        self
    }
}

/// Checks a `flight` against the return type's kind, once, and returns
/// the executor to run in. The generated code calls
/// `fit(flight.__idem_flight(), return_kind)`: an executor that does not
/// fit is reported at the flight expression, with [`FitsFlight`]'s message,
/// and the executor's type is then an error type, which the rest of the
/// expansion does not report again.
#[inline]
pub fn fit<X, Ret>(flight: &X, _return_kind: Ret) -> &X::Fitted
where
    Ret: ReturnKind,
    X: FlightTypes + FitsFlight<Ret, X::Value, X::Error> + ?Sized,
{
    flight.fitted()
}

/// The fence a `SingleFlight`'s work gets: none. The work of a
/// `flight = ...` takes one argument whatever the executor; a
/// `SingleFlight` passes this.
#[derive(Debug, Clone, Copy)]
pub struct NoFence;

/// The key and the run of a `SingleFlight` found by [`fit`]: the drivers of the function's own table,
/// with the work's [`NoFence`] argument.
pub trait TableRun {
    /// The table's key type.
    type Key;
    /// The table's hasher.
    type Hasher;
    /// The table's value type.
    type Value;
    /// The table's error type.
    type Error;

    /// Fixes the key to the table's key type. A plain parameter, so that
    /// a key whose type comes from that expectation (`id.into()`,
    /// `s.parse().unwrap_or_default()`) infers it; a key of another type is
    /// a "mismatched types" error at the key expression.
    fn __idem_key(&self, key: Self::Key) -> Self::Key;

    /// [`drivers::run`] in this table.
    fn __idem_run<Ret, Rf, Df, N, W, Fut>(
        &self,
        return_kind: Ret,
        refusals: Rf,
        failures: Df,
        name: N,
        key: Self::Key,
        work: W,
    ) -> impl Future<Output = Ret::Output>
    where
        Ret: ReturnKind<Value = Self::Value, Error = Self::Error>,
        Rf: OnRefusal<Ret>,
        Self::Key: Hash + Eq,
        Self::Hasher: BuildHasher,
        W: FnOnce(NoFence) -> Fut,
        Fut: Future<Output = Ret::Output>,
        N: Fn() -> &'static str;

    /// [`drivers::run_with_fingerprint`] in this table.
    #[allow(
        clippy::too_many_arguments,
        reason = "each is one thing the expansion found; a struct would be one more to build"
    )]
    fn __idem_run_with_fingerprint<Ret, Rf, Mm, Df, N, W, Fut>(
        &self,
        return_kind: Ret,
        refusals: Rf,
        mismatch: Mm,
        failures: Df,
        name: N,
        key: Self::Key,
        fingerprint: Fingerprint,
        work: W,
    ) -> impl Future<Output = Ret::Output>
    where
        Ret: ReturnKind<Value = Self::Value, Error = Self::Error>,
        Rf: OnRefusal<Ret>,
        Mm: OnMismatch<Ret>,
        Self::Key: Hash + Eq,
        Self::Hasher: BuildHasher,
        W: FnOnce(NoFence) -> Fut,
        Fut: Future<Output = Ret::Output>,
        N: Fn() -> &'static str;
}

impl<K, V, E, S> TableRun for SingleFlight<K, V, E, S> {
    type Key = K;
    type Hasher = S;
    type Value = V;
    type Error = E;

    #[inline]
    fn __idem_key(&self, key: K) -> K {
        key
    }

    #[inline]
    fn __idem_run<Ret, Rf, Df, N, W, Fut>(
        &self,
        return_kind: Ret,
        refusals: Rf,
        _failures: Df,
        name: N,
        key: K,
        work: W,
    ) -> impl Future<Output = Ret::Output>
    where
        Ret: ReturnKind<Value = V, Error = E>,
        Rf: OnRefusal<Ret>,
        K: Hash + Eq,
        S: BuildHasher,
        W: FnOnce(NoFence) -> Fut,
        Fut: Future<Output = Ret::Output>,
        N: Fn() -> &'static str,
    {
        drivers::run(self, return_kind, refusals, name, key, move || {
            work(NoFence)
        })
    }

    #[inline]
    fn __idem_run_with_fingerprint<Ret, Rf, Mm, Df, N, W, Fut>(
        &self,
        return_kind: Ret,
        refusals: Rf,
        mismatch: Mm,
        _failures: Df,
        name: N,
        key: K,
        fingerprint: Fingerprint,
        work: W,
    ) -> impl Future<Output = Ret::Output>
    where
        Ret: ReturnKind<Value = V, Error = E>,
        Rf: OnRefusal<Ret>,
        Mm: OnMismatch<Ret>,
        K: Hash + Eq,
        S: BuildHasher,
        W: FnOnce(NoFence) -> Fut,
        Fut: Future<Output = Ret::Output>,
        N: Fn() -> &'static str,
    {
        drivers::run_with_fingerprint(
            self,
            return_kind,
            refusals,
            mismatch,
            name,
            key,
            fingerprint,
            move || work(NoFence),
        )
    }
}
