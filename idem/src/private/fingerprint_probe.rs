//! What `fingerprint = <expr>` needs: a value that is `Hash`, and a return
//! type that can carry a mismatch ([`Error::Mismatch`](crate::Error::Mismatch)),
//! both decided by the type checker, as for the
//! [refusals](super::refusal_probe).
//!
//! * The expression's value is only hashed, once, before the body: it may
//!   borrow the arguments, and need not be `'static` or `Clone`. The
//!   expansion calls `(&&FingerprintProbe::of(&value)).__idem_fingerprint_kind()`,
//!   spanned at the expression, with the levels below in scope:
//!   [`HashableFingerprint`], or for a value that is not `Hash` a compile
//!   error there (one of the [diagnostics](super::diagnostics) traits) and
//!   [`InvalidFingerprint`]. [`fingerprint`] then hashes the value.
//! * A call whose key is running or stored for another fingerprint gets a
//!   mismatch, which the function returns as `Err(E::from(Mismatch))`: it
//!   must return `Result<_, E>` with `E: From<Mismatch>`.
//!   `(&&&MismatchProbe::of(return_kind)).__idem_mismatch()`, spanned at the
//!   option, gets [`CarryMismatch`], or a compile error there and
//!   [`MismatchReported`]. This holds with `flight = ...` too: unlike a
//!   refusal, a mismatch comes from the call, not from the table's bounds,
//!   so the macro knows that it can happen.
//!
//! A function without the option passes nothing of this: its drivers use
//! [`NoFingerprint`], and its expansion is the same as before the option
//! existed.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use super::autoref::Fine;
use super::diagnostics::{
    ErrorMustCarryMismatch, FingerprintMustBeHashable, ReturnMustCarryMismatch,
};
use super::return_probe::{InvalidReturn, ResultReturn, ReturnKind};
use crate::{Fingerprint, Mismatch};

/// What a function of return kind `Ret` returns when its call mismatches.
pub trait OnMismatch<Ret: ReturnKind> {
    /// The mismatch as the function's error.
    fn mismatch(name: &'static str) -> Ret::Error;
}

/// A mismatch is returned: `Err(E::from(Mismatch))`.
#[derive(Debug, Clone, Copy)]
pub struct CarryMismatch;

/// The calls of a function without `fingerprint`: a call without a
/// fingerprint matches every flight and stored result, so it never gets a
/// mismatch.
#[derive(Debug, Clone, Copy)]
pub struct NoFingerprint;

/// The return type cannot carry a mismatch: the error was reported where
/// the marker was picked, and this marker keeps the rest of the expansion
/// from reporting it again.
#[derive(Debug, Clone, Copy)]
pub struct MismatchReported;

impl CarryMismatch {
    const NEW: Self = CarryMismatch;
}

impl MismatchReported {
    const NEW: Self = MismatchReported;
}

impl<T, E> OnMismatch<ResultReturn<T, E>> for CarryMismatch
where
    ResultReturn<T, E>: ReturnKind<Error = E>,
    E: From<Mismatch>,
{
    #[inline]
    fn mismatch(_name: &'static str) -> E {
        E::from(Mismatch)
    }
}

/// A `Result` whose error can carry a mismatch, but whose value or error
/// cannot be shared: reported by the return probe already.
impl<R> OnMismatch<InvalidReturn<R>> for CarryMismatch {
    fn mismatch(_: &'static str) -> std::convert::Infallible {
        unreachable!("a program with an invalid #[idempotent] return type does not compile")
    }
}

impl<Ret: ReturnKind> OnMismatch<Ret> for NoFingerprint {
    fn mismatch(name: &'static str) -> Ret::Error {
        unreachable!(
            "idem: a call of `#[idempotent]` fn `{name}`, which has no fingerprint, got a \
             mismatch: a call without a fingerprint matches every flight"
        )
    }
}

impl<Ret: ReturnKind> OnMismatch<Ret> for MismatchReported {
    fn mismatch(_: &'static str) -> Ret::Error {
        unreachable!("a program whose #[idempotent] fn cannot carry mismatches does not compile")
    }
}

/// Classifies a return type `R` by whether it can carry a mismatch; see the
/// [module docs](self).
pub struct MismatchProbe<R>(PhantomData<fn() -> R>);

impl<R> MismatchProbe<R> {
    const NEW: Self = Self(PhantomData);

    /// The probe of `R`, the return type of the kind `Ret`.
    #[inline]
    pub fn of<Ret: ReturnKind<Output = R>>(_return_kind: Ret) -> Self {
        Self::NEW
    }
}

impl<R> fmt::Debug for MismatchProbe<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MismatchProbe")
    }
}

level!(
    /// Level 0: a `Result` whose error can carry a mismatch.
    MismatchCarried::__idem_mismatch for &&MismatchProbe<Result<T, E>> => CarryMismatch,
    [T, E] where { E: From<Mismatch> },
    check (): Fine
);
level!(
    /// Level 1: a `Result` whose error cannot carry a mismatch.
    MismatchErrorCannotCarry::__idem_mismatch for &MismatchProbe<Result<T, E>> => MismatchReported,
    [T, E],
    check E: ErrorMustCarryMismatch
);
level!(
    /// Level 2: any other type.
    MismatchValueCannotCarry::__idem_mismatch for MismatchProbe<R> => MismatchReported,
    [R],
    check R: ReturnMustCarryMismatch
);

/// How a fingerprint expression's value is hashed.
pub trait FingerprintKind<T: ?Sized> {
    /// The fingerprint of `value`.
    fn fingerprint(value: &T) -> Fingerprint;
}

/// A value that is `Hash`.
#[derive(Debug, Clone, Copy)]
pub struct HashableFingerprint;

/// A value that is not `Hash`: the error was reported where the kind was
/// picked, and this marker keeps the rest of the expansion from reporting
/// it again.
#[derive(Debug, Clone, Copy)]
pub struct InvalidFingerprint;

impl HashableFingerprint {
    const NEW: Self = HashableFingerprint;
}

impl InvalidFingerprint {
    const NEW: Self = InvalidFingerprint;
}

impl<T: Hash + ?Sized> FingerprintKind<T> for HashableFingerprint {
    #[inline]
    fn fingerprint(value: &T) -> Fingerprint {
        Fingerprint::of(value)
    }
}

impl<T: ?Sized> FingerprintKind<T> for InvalidFingerprint {
    fn fingerprint(_: &T) -> Fingerprint {
        unreachable!("a program with an invalid #[idempotent] fingerprint does not compile")
    }
}

/// The fingerprint of a `fingerprint = <expr>` value, once
/// [`FingerprintProbe`] has classified it: `Fingerprint::of(value)`.
#[inline]
pub fn fingerprint<C: FingerprintKind<T>, T: ?Sized>(_kind: C, value: &T) -> Fingerprint {
    C::fingerprint(value)
}

/// Classifies the type `T` of a fingerprint expression's value; see the
/// [module docs](self).
///
/// It dereferences to the value, as [`KeyProbe`](super::key_probe::KeyProbe)
/// does, so that a typo in the expression is reported once, by rustc,
/// rather than with every level applying to the error type as well.
pub struct FingerprintProbe<'v, T: ?Sized>(&'v T);

impl<'v, T: ?Sized> FingerprintProbe<'v, T> {
    /// The probe for the type of `value`.
    #[inline]
    pub const fn of(value: &'v T) -> Self {
        Self(value)
    }
}

impl<T: ?Sized> std::ops::Deref for FingerprintProbe<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.0
    }
}

impl<T: ?Sized> fmt::Debug for FingerprintProbe<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintProbe")
    }
}

level!(
    /// Level 0: a value that is `Hash`.
    FingerprintHashable::__idem_fingerprint_kind for &FingerprintProbe<'_, T> => HashableFingerprint,
    [T: ?Sized] where { T: Hash },
    check (): Fine
);
level!(
    /// Level 1: anything else.
    FingerprintNotHashable::__idem_fingerprint_kind for FingerprintProbe<'_, T> => InvalidFingerprint,
    [T: ?Sized],
    check T: FingerprintMustBeHashable
);
