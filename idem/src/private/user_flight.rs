//! A `flight = ...` of the user's, checked against the function's return
//! type: [`AsFlight`] finds the `SingleFlight` behind the expression,
//! [`fit`] checks its value and error types against the return type's
//! [`ReturnKind`], once, and [`flight_key`] types the key as the flight's.
//!
//! A flight may have any hasher (`Builder::hasher`): everything here is
//! generic over its `S`, which the macro never needs to name.

use std::convert::Infallible;

use super::return_probe::{InvalidReturn, ResultReturn, ReturnKind, ValueReturn};
use crate::SingleFlight;

/// Implemented by a `SingleFlight<K, V, E, S>` for the kind of every return
/// type it can serve: `Result<V, E>`, or `V` when `E` is `Infallible`.
///
/// The trait is on the flight, not on the return kind, so that an error
/// blames the `flight` expression: rustc points at the argument whose type
/// holds the unsatisfied bound's `Self`.
#[diagnostic::on_unimplemented(
    message = "the return type of this `#[idempotent]` fn does not fit its `flight`, a `SingleFlight<_, {V}, {E}>`",
    label = "this flight stores `{V}` values and `{E}` errors",
    note = "a function returning `Result<T, E>` needs a `SingleFlight<K, T, E>`; one returning any other type `T` needs a `SingleFlight<K, T>`"
)]
pub trait FitsFlight<Ret: ReturnKind, V, E> {
    /// The table the work runs in: `Self`, or for an invalid return type
    /// (reported already) a stand-in of the types [`InvalidReturn`] names,
    /// so that the flight's types are not reported again.
    type Fitted;
    /// The flight, as [`Self::Fitted`].
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

/// Finds the `SingleFlight` behind a `flight = ...` expression: the
/// generated code calls `(&flight).__idem_flight()`, so that method-call
/// auto-deref sees through `Arc`, `Box` and other smart pointers.
pub trait AsFlight {
    /// The table's key type.
    type Key;
    /// The table's value type.
    type Value;
    /// The table's error type.
    type Error;
    /// The table's hasher.
    type Hasher;
    /// The flight itself.
    fn __idem_flight(&self) -> &SingleFlight<Self::Key, Self::Value, Self::Error, Self::Hasher>;
}

impl<K, V, E, S> AsFlight for SingleFlight<K, V, E, S> {
    type Key = K;
    type Value = V;
    type Error = E;
    type Hasher = S;

    #[inline]
    fn __idem_flight(&self) -> &Self {
        self
    }
}

/// Checks a `flight` against the return type's kind, once, and returns
/// the table to run in. The generated code calls
/// `fit((&flight).__idem_flight(), return_kind)`.
#[inline]
pub fn fit<K, V, E, S, Ret>(
    flight: &SingleFlight<K, V, E, S>,
    _return_kind: Ret,
) -> &<SingleFlight<K, V, E, S> as FitsFlight<Ret, V, E>>::Fitted
where
    Ret: ReturnKind,
    SingleFlight<K, V, E, S>: FitsFlight<Ret, V, E>,
{
    flight.fitted()
}

/// Fixes the key of an `#[idempotent(flight = ...)]` fn to the flight's key
/// type. A plain `K` parameter, so that a key whose type comes from that
/// expectation (`id.into()`, `s.parse().unwrap_or_default()`) infers it; a
/// key of another type is a "mismatched types" error at the key expression.
#[inline]
pub fn flight_key<K, V, E, S>(_flight: &SingleFlight<K, V, E, S>, key: K) -> K {
    key
}
