//! What depends on the executor a `flight = ...` names, a `SingleFlight` or
//! a `Durable`, decided by the type checker, as for the
//! [return kind](super::return_probe): each is a method call on a probe of
//! the executor [`fit`](super::fit()) found (see
//! [`user_flight`](super::user_flight) and
//! [`durable_flight`](super::durable_flight)), and the first level whose
//! impl applies (see [`autoref`](super::autoref)) returns a marker.
//!
//! * [`DurableFailureProbe`], spanned at the return type: a `Durable` can
//!   fail without the body failing (another process holds the key, the
//!   lease was lost, the store failed), which the function returns as
//!   `Err(E::from(DurableError::<Infallible>::..))`: its error type must
//!   implement that `From`, or this is a compile error there.
//! * [`TextKeyProbe`], spanned at the key: a `Durable`'s keys are strings.
//!   A key that is `AsRef<str>` is copied into a `String` (a `String` is
//!   moved), any other `Display` key is formatted, and any other key is a
//!   compile error there. A `SingleFlight`'s key is kept as it is.
//! * [`FenceProbe`], spanned at `fence = ...`: only a `Durable`'s work has
//!   a fence.
//! * [`DetachProbe`], spanned at `detached`: `detached` takes a
//!   `SingleFlight` (the expansion runs a `Durable`'s body in the caller's
//!   future).
//! * [`RecordProbe`], spanned at the flight: a `Durable` records its
//!   values and errors with its codec, which must encode both (the
//!   default, `Json`, encodes `serde` types).
//!
//! The `Durable` levels are written for any `X: IsDurable`, so that this
//! module compiles without the `durable` feature (nothing is then
//! `IsDurable`). A table whose type is an error (its `flight` did not fit
//! the return type, reported already) matches no level, and rustc reports
//! nothing more about it.

use std::fmt;
use std::marker::PhantomData;

use super::autoref::Fine;
use super::diagnostics::{
    DetachedNeedsSingleFlight, DurableKeyMustBeText, ErrorMustBeRecordable,
    ErrorMustCarryDurableFailures, FenceNeedsDurable, ValueMustBeRecordable,
};
use super::return_probe::{InvalidReturn, ResultReturn, ReturnKind};
use crate::SingleFlight;

/// Implemented by `idem::durable::Durable` only: what the levels below
/// need to know of it.
pub trait IsDurable {
    /// Its value type.
    type Value;
    /// Its error type.
    type Error;
    /// The failures of its own that a function returns as
    /// `Err(E::from(failure))`: `DurableError<Infallible>`.
    type Failure;
    /// Its codec.
    type Codec;
    /// The same executor with values and errors of `()`: what the work of
    /// a function whose types were reported runs in, so that they are not
    /// reported again.
    type StandIn;
}

/// Implemented by the codecs that encode `T`: `idem::durable::Codec<T>`,
/// without naming it (it needs the `durable` feature).
pub trait Encodes<T> {}

macro_rules! markers {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl $name {
            const NEW: Self = $name;
        }
    )*};
}

macro_rules! probe {
    ($(#[$doc:meta])* $name:ident<$($p:ident),*>) => {
        $(#[$doc])*
        pub struct $name<$($p: ?Sized),*>(PhantomData<fn() -> ($(PhantomData<$p>,)*)>);
        impl<$($p: ?Sized),*> fmt::Debug for $name<$($p),*> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($name))
            }
        }
    };
}

// ---- The failures of a `Durable` ------------------------------------------

/// What a function of return kind `Ret` does with a failure `F` of its
/// executor's own (not the body's `Err`).
pub trait OnDurableFailure<Ret: ReturnKind, F> {
    /// The failure as the function's error.
    fn failure(failure: F, name: &'static str) -> Ret::Error;
}

markers!(
    /// A `Durable`'s failure is returned: `Err(E::from(failure))`.
    CarryDurableFailures,
    /// The return type cannot carry a `Durable`'s failures: the error was
    /// reported where the marker was picked, and this marker keeps the rest
    /// of the expansion from reporting it again.
    DurableFailuresReported,
    /// The executor is not a `Durable`: it has no failures of its own
    /// beyond its refusals and mismatches, which have their own markers.
    NoDurableFailures,
);

impl<T, E, F> OnDurableFailure<ResultReturn<T, E>, F> for CarryDurableFailures
where
    ResultReturn<T, E>: ReturnKind<Error = E>,
    E: From<F>,
{
    #[inline]
    fn failure(failure: F, _name: &'static str) -> E {
        E::from(failure)
    }
}

/// A `Result` whose error can carry the failures, but whose value or error
/// cannot be shared: reported by the return probe already.
impl<R, F> OnDurableFailure<InvalidReturn<R>, F> for CarryDurableFailures {
    fn failure(_: F, _: &'static str) -> std::convert::Infallible {
        unreachable!("a program with an invalid #[idempotent] return type does not compile")
    }
}

impl<Ret: ReturnKind, F> OnDurableFailure<Ret, F> for DurableFailuresReported {
    fn failure(_: F, _: &'static str) -> Ret::Error {
        unreachable!(
            "a program whose #[idempotent] fn cannot carry its Durable's failures does not compile"
        )
    }
}

impl<Ret: ReturnKind, F> OnDurableFailure<Ret, F> for NoDurableFailures {
    fn failure(_: F, name: &'static str) -> Ret::Error {
        unreachable!(
            "idem: `#[idempotent]` fn `{name}` got a Durable's failure from a SingleFlight"
        )
    }
}

probe!(
    /// Classifies an executor `X` and a return type `R` by what the
    /// function does with the executor's own failures; see the
    /// [module docs](self).
    DurableFailureProbe<X, R>
);

impl<X: ?Sized, R> DurableFailureProbe<X, R> {
    const NEW: Self = Self(PhantomData);

    /// The probe of the executor `table` and of `R`, the return type of
    /// the kind `Ret`.
    #[inline]
    pub fn of<Ret: ReturnKind<Output = R>>(_table: &X, _return_kind: Ret) -> Self {
        Self::NEW
    }
}

level!(
    /// Level 0: a `Durable`, and a `Result` whose error can carry its
    /// failures.
    DurableFailuresCarried::__idem_durable_failures for &&DurableFailureProbe<X, Result<T, E>> => CarryDurableFailures,
    [X: IsDurable + ?Sized, T, E] where { E: From<X::Failure> },
    check (): Fine
);
level!(
    /// Level 1: a `Durable`, and a `Result` whose error cannot carry its
    /// failures. (Any other return type does not fit a `Durable`: `fit`
    /// reports it.)
    DurableFailuresNotCarried::__idem_durable_failures for &DurableFailureProbe<X, Result<T, E>> => DurableFailuresReported,
    [X: IsDurable + ?Sized, T, E],
    check E: ErrorMustCarryDurableFailures
);
level!(
    /// Level 2: any other executor (a `SingleFlight`), or a `Durable` whose
    /// return type was reported already.
    NotDurable::__idem_durable_failures for DurableFailureProbe<X, R> => NoDurableFailures,
    [X: ?Sized, R],
    check (): Fine
);

// ---- Keys ----------------------------------------------------------------

/// How a key expression's value `Q` becomes the executor's key.
pub trait TextKey<Q> {
    /// What the executor takes.
    type Key;
    /// The key.
    fn text_key(key: Q) -> Self::Key;
}

markers!(
    /// A `SingleFlight`'s key: kept as it is.
    TableKey,
    /// A `String` key of a `Durable`: moved.
    OwnedText,
    /// An `AsRef<str>` key of a `Durable`: copied into a `String`.
    BorrowedText,
    /// A `Display` key of a `Durable`: formatted into a `String`.
    DisplayedText,
    /// A key that is neither: the error was reported where the marker was
    /// picked.
    InvalidTextKey,
);

impl<Q> TextKey<Q> for TableKey {
    type Key = Q;
    #[inline]
    fn text_key(key: Q) -> Q {
        key
    }
}

impl TextKey<String> for OwnedText {
    type Key = String;
    #[inline]
    fn text_key(key: String) -> String {
        key
    }
}

impl<Q: AsRef<str>> TextKey<Q> for BorrowedText {
    type Key = String;
    #[inline]
    fn text_key(key: Q) -> String {
        key.as_ref().to_owned()
    }
}

impl<Q: fmt::Display> TextKey<Q> for DisplayedText {
    type Key = String;
    #[inline]
    fn text_key(key: Q) -> String {
        key.to_string()
    }
}

impl<Q> TextKey<Q> for InvalidTextKey {
    type Key = String;
    fn text_key(_: Q) -> String {
        unreachable!("a program with an invalid #[idempotent] key does not compile")
    }
}

/// The key an executor takes, once [`TextKeyProbe`] has classified it.
#[inline]
pub fn text_key<M: TextKey<Q>, Q>(_kind: M, key: Q) -> M::Key {
    M::text_key(key)
}

probe!(
    /// Classifies a key of type `Q` for the executor `X`; see the
    /// [module docs](self).
    TextKeyProbe<X, Q>
);

impl<X: ?Sized, Q> TextKeyProbe<X, Q> {
    const NEW: Self = Self(PhantomData);

    /// The probe of the executor `table` and of the key `key`.
    #[inline]
    pub fn of(_table: &X, _key: &Q) -> Self {
        Self::NEW
    }
}

level!(
    /// Level 0: a `SingleFlight`'s key (of its key type, which
    /// `__idem_key` fixed).
    TableKeyKept::__idem_text_key for &&&&TextKeyProbe<SingleFlight<K, V, E, S>, K> => TableKey,
    [K, V, E, S],
    check (): Fine
);
level!(
    /// Level 1: a `String` key of a `Durable`.
    TextKeyOwned::__idem_text_key for &&&TextKeyProbe<X, String> => OwnedText,
    [X: IsDurable + ?Sized],
    check (): Fine
);
level!(
    /// Level 2: an `AsRef<str>` key of a `Durable`.
    TextKeyBorrowed::__idem_text_key for &&TextKeyProbe<X, Q> => BorrowedText,
    [X: IsDurable + ?Sized, Q] where { Q: AsRef<str> },
    check (): Fine
);
level!(
    /// Level 3: a `Display` key of a `Durable`.
    TextKeyDisplayed::__idem_text_key for &TextKeyProbe<X, Q> => DisplayedText,
    [X: IsDurable + ?Sized, Q] where { Q: fmt::Display },
    check (): Fine
);
level!(
    /// Level 4: any other key of a `Durable`.
    TextKeyInvalid::__idem_text_key for TextKeyProbe<X, Q> => InvalidTextKey,
    [X: IsDurable + ?Sized, Q],
    check Q: DurableKeyMustBeText
);

// ---- `fence = name` ------------------------------------------------------

/// What `fence = name` binds in the body, from the argument `F` of the
/// work.
pub trait FenceKind<F> {
    /// The type of `name`.
    type Fence;
    /// The value of `name`.
    fn bind(fence: F) -> Self::Fence;
}

markers!(
    /// The executor is a `Durable`: its work's fence is bound.
    FenceBound,
    /// The executor is not a `Durable`: the error was reported where the
    /// marker was picked. The name is still bound, to a `Fence` if the
    /// `durable` feature is on, so that the body's uses of it are not
    /// reported as well.
    FenceReported,
);

impl<F> FenceKind<F> for FenceBound {
    type Fence = F;
    #[inline]
    fn bind(fence: F) -> F {
        fence
    }
}

#[cfg(feature = "durable")]
type StandInFence = crate::durable::Fence;
#[cfg(not(feature = "durable"))]
type StandInFence = super::user_flight::NoFence;

impl<F> FenceKind<F> for FenceReported {
    type Fence = StandInFence;
    fn bind(_: F) -> StandInFence {
        unreachable!(
            "a program whose #[idempotent] fn has a `fence` without a Durable does not compile"
        )
    }
}

/// The value `fence = name` binds, once [`FenceProbe`] has classified the
/// executor.
#[inline]
pub fn bind_fence<M: FenceKind<F>, F>(_kind: M, fence: F) -> M::Fence {
    M::bind(fence)
}

probe!(
    /// Classifies the executor `X` of a function with `fence = name`; see
    /// the [module docs](self).
    FenceProbe<X>
);

impl<X: ?Sized> FenceProbe<X> {
    const NEW: Self = Self(PhantomData);

    /// The probe of the executor `table`.
    #[inline]
    pub fn of(_table: &X) -> Self {
        Self::NEW
    }
}

level!(
    /// Level 0: a `Durable`.
    FenceOfDurable::__idem_fence for &FenceProbe<X> => FenceBound,
    [X: IsDurable + ?Sized],
    check (): Fine
);
level!(
    /// Level 1: any other executor.
    FenceWithoutDurable::__idem_fence for FenceProbe<X> => FenceReported,
    [X: ?Sized],
    check X: FenceNeedsDurable
);

// ---- `detached` ----------------------------------------------------------

/// The table a `detached` function's work runs in, for the executor `X`
/// and the return kind `Ret`.
pub trait Detach<X: ?Sized, Ret: ReturnKind> {
    /// A `SingleFlight`.
    type Table: ?Sized;
    /// The table.
    fn detach(table: &X) -> &Self::Table;
}

markers!(
    /// The executor is a `SingleFlight`: its work runs detached.
    Detachable,
    /// The executor is not a `SingleFlight`: the error was reported where
    /// the marker was picked, and a stand-in table of the return kind's
    /// types keeps the rest of the expansion from reporting more.
    DetachReported,
);

impl<K, V, E, S, Ret: ReturnKind> Detach<SingleFlight<K, V, E, S>, Ret> for Detachable {
    type Table = SingleFlight<K, V, E, S>;
    #[inline]
    fn detach(table: &Self::Table) -> &Self::Table {
        table
    }
}

impl<X: ?Sized, Ret: ReturnKind> Detach<X, Ret> for DetachReported {
    type Table = SingleFlight<String, Ret::Value, Ret::Error>;
    fn detach(_: &X) -> &Self::Table {
        unreachable!("a program whose #[idempotent] fn is `detached` on a Durable does not compile")
    }
}

/// The table of a `detached` function, once [`DetachProbe`] has classified
/// the executor.
#[inline]
pub fn detach<M: Detach<X, Ret>, X: ?Sized, Ret: ReturnKind>(
    _kind: M,
    table: &X,
    _return_kind: Ret,
) -> &M::Table {
    M::detach(table)
}

probe!(
    /// Classifies the executor `X` of a `detached` function; see the
    /// [module docs](self).
    DetachProbe<X>
);

impl<X: ?Sized> DetachProbe<X> {
    const NEW: Self = Self(PhantomData);

    /// The probe of the executor `table`.
    #[inline]
    pub fn of(_table: &X) -> Self {
        Self::NEW
    }
}

level!(
    /// Level 0: a `SingleFlight`.
    DetachTable::__idem_detached for &DetachProbe<SingleFlight<K, V, E, S>> => Detachable,
    [K, V, E, S],
    check (): Fine
);
level!(
    /// Level 1: any other executor (a `Durable`).
    DetachOther::__idem_detached for DetachProbe<X> => DetachReported,
    [X: ?Sized],
    check X: DetachedNeedsSingleFlight
);

// ---- What a `Durable` records --------------------------------------------

/// The executor a function's work runs in, once [`RecordProbe`] has
/// classified it.
pub trait RecordsOf<X: ?Sized> {
    /// `X`, or for a `Durable` whose types were reported its stand-in.
    type Table: ?Sized;
    /// The executor.
    fn table(table: &X) -> &Self::Table;
}

markers!(
    /// A `Durable` whose codec encodes its values and errors, or another
    /// executor: run in as it is.
    Records,
    /// A `Durable` whose codec cannot encode its value or error type: the
    /// error was reported where the marker was picked, and the work runs in
    /// a stand-in, so that the run's own bounds are not reported again.
    RecordsReported,
);

impl<X: ?Sized> RecordsOf<X> for Records {
    type Table = X;
    #[inline]
    fn table(table: &X) -> &X {
        table
    }
}

impl<X: IsDurable + ?Sized> RecordsOf<X> for RecordsReported {
    type Table = X::StandIn;
    fn table(_: &X) -> &X::StandIn {
        unreachable!("a program whose Durable cannot encode its types does not compile")
    }
}

/// The executor to run in, once [`RecordProbe`] has classified it.
#[inline]
pub fn records<M: RecordsOf<X>, X: ?Sized>(_kind: M, table: &X) -> &M::Table {
    M::table(table)
}

probe!(
    /// Classifies the executor `X` by what it records; see the
    /// [module docs](self).
    RecordProbe<X>
);

impl<X: ?Sized> RecordProbe<X> {
    const NEW: Self = Self(PhantomData);

    /// The probe of the executor `table`.
    #[inline]
    pub fn of(_table: &X) -> Self {
        Self::NEW
    }
}

level!(
    /// Level 0: a `Durable` whose codec encodes its values and errors.
    RecordsBoth::__idem_records for &&&RecordProbe<X> => Records,
    [X: IsDurable + ?Sized] where { X::Codec: Encodes<X::Value> + Encodes<X::Error> },
    check (): Fine
);
level!(
    /// Level 1: a `Durable` whose codec cannot encode its errors.
    RecordsNoErrors::__idem_records for &&RecordProbe<X> => RecordsReported,
    [X: IsDurable + ?Sized] where { X::Codec: Encodes<X::Value> },
    check X::Error: ErrorMustBeRecordable
);
level!(
    /// Level 2: a `Durable` whose codec cannot encode its values.
    RecordsNoValues::__idem_records for &RecordProbe<X> => RecordsReported,
    [X: IsDurable + ?Sized],
    check X::Value: ValueMustBeRecordable
);
level!(
    /// Level 3: any other executor (a `SingleFlight`): it records nothing.
    RecordsNothing::__idem_records for RecordProbe<X> => Records,
    [X: ?Sized],
    check (): Fine
);
