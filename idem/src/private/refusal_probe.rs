//! What an `#[idempotent]` fn does when its table refuses a call
//! ([`Error::Full`](crate::Error::Full), [`Error::Busy`](crate::Error::Busy)):
//! return `Err(E::from(Refused::..))`, or panic naming the function.
//!
//! Which one depends on the return type, so the type checker decides, as it
//! does for the [return kind](super::return_probe): the expansion calls a
//! method on `RefusalProbe::of(return_kind)` (a probe of the function's
//! return type, found through the return kind so that the type is not
//! written, nor reported, again) with the levels below in scope, and the
//! first level whose impl applies (see [`autoref`](super::autoref)) returns
//! a marker implementing [`OnRefusal`].
//!
//! * A function whose own table can refuse calls (`max_in_flight`, or
//!   `eviction = "never"` with `max_entries`) must return `Result<_, E>`
//!   with `E: From<Refused>`: `(&&&probe).__idem_refusals()`, spanned at
//!   the option, gets [`CarryRefusals`], or a compile error there (one of
//!   the [diagnostics](super::diagnostics) traits) and [`RefusalsReported`].
//! * A function with `flight = ...` runs in a table whose bounds are not
//!   known at compile time: `(&&probe).__idem_flight_refusals()` gets
//!   [`CarryRefusals`] if its error type can carry a refusal, and
//!   [`PanicOnRefusal`] otherwise, never an error.
//! * A function whose own table cannot refuse calls passes
//!   [`PanicOnRefusal`], which is then never used.

use std::fmt;
use std::marker::PhantomData;

use super::autoref::Fine;
use super::diagnostics::{ErrorMustCarryRefusals, ReturnMustCarryRefusals};
use super::return_probe::{InvalidReturn, ResultReturn, ReturnKind};
use crate::Refused;

/// What a function of return kind `Ret` does with a refusal.
pub trait OnRefusal<Ret: ReturnKind> {
    /// The refusal as the function's error, or a panic naming the function
    /// `name`.
    fn refused(refused: Refused, name: &'static str) -> Ret::Error;
}

/// A refusal is returned: `Err(E::from(refused))`.
#[derive(Debug, Clone, Copy)]
pub struct CarryRefusals;

/// A refusal is a panic naming the function: its return type cannot carry
/// one, and the table is the user's (`flight = ...`), whose bounds the
/// macro cannot see; or the table cannot refuse calls.
#[derive(Debug, Clone, Copy)]
pub struct PanicOnRefusal;

/// The return type cannot carry the refusals of a table that can refuse
/// calls: the error was reported where the marker was picked, and this
/// marker keeps the rest of the expansion from reporting it again.
#[derive(Debug, Clone, Copy)]
pub struct RefusalsReported;

impl CarryRefusals {
    const NEW: Self = CarryRefusals;
}

impl PanicOnRefusal {
    const NEW: Self = PanicOnRefusal;
}

impl RefusalsReported {
    const NEW: Self = RefusalsReported;
}

impl<T, E> OnRefusal<ResultReturn<T, E>> for CarryRefusals
where
    ResultReturn<T, E>: ReturnKind<Error = E>,
    E: From<Refused>,
{
    #[inline]
    fn refused(refused: Refused, _name: &'static str) -> E {
        E::from(refused)
    }
}

/// A `Result` whose error can carry a refusal, but whose value or error
/// cannot be shared: reported by the return probe already.
impl<R> OnRefusal<InvalidReturn<R>> for CarryRefusals {
    fn refused(_: Refused, _: &'static str) -> std::convert::Infallible {
        unreachable!("a program with an invalid #[idempotent] return type does not compile")
    }
}

impl<Ret: ReturnKind> OnRefusal<Ret> for PanicOnRefusal {
    fn refused(refused: Refused, name: &'static str) -> Ret::Error {
        refused_call(name, &refused)
    }
}

impl<Ret: ReturnKind> OnRefusal<Ret> for RefusalsReported {
    fn refused(_: Refused, _: &'static str) -> Ret::Error {
        unreachable!("a program whose #[idempotent] fn cannot carry refusals does not compile")
    }
}

/// The panic of a caller refused by its table's bounds: nothing ran.
#[cold]
#[inline(never)]
fn refused_call(name: &'static str, refused: &Refused) -> ! {
    let why = match refused {
        Refused::Busy => "max_in_flight flights are running".to_string(),
        Refused::Full { retry_after } => {
            format!("its table is full (Eviction::Never); retry after {retry_after:?}")
        }
    };
    panic!(
        "idem: a call of `#[idempotent]` fn `{name}` was refused and nothing ran: {why} \
         (to get an `Err` instead, implement `From<idem::Refused>` for its error type)"
    )
}

/// Classifies a return type `R` by what it can do with a refusal; see the
/// [module docs](self).
pub struct RefusalProbe<R>(PhantomData<fn() -> R>);

impl<R> RefusalProbe<R> {
    const NEW: Self = Self(PhantomData);

    /// The probe of `R`, the return type of the kind `Ret`.
    #[inline]
    pub fn of<Ret: ReturnKind<Output = R>>(_return_kind: Ret) -> Self {
        Self::NEW
    }
}

impl<R> fmt::Debug for RefusalProbe<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefusalProbe")
    }
}

level!(
    /// A table that can refuse calls, level 0: a `Result` whose error can
    /// carry a refusal.
    MustCarry::__idem_refusals for &&RefusalProbe<Result<T, E>> => CarryRefusals,
    [T, E] where { E: From<Refused> },
    check (): Fine
);
level!(
    /// A table that can refuse calls, level 1: a `Result` whose error
    /// cannot carry a refusal.
    ErrorCannotCarry::__idem_refusals for &RefusalProbe<Result<T, E>> => RefusalsReported,
    [T, E],
    check E: ErrorMustCarryRefusals
);
level!(
    /// A table that can refuse calls, level 2: any other type.
    ValueCannotCarry::__idem_refusals for RefusalProbe<R> => RefusalsReported,
    [R],
    check R: ReturnMustCarryRefusals
);
level!(
    /// A `flight = ...` table, level 0: a `Result` whose error can carry a
    /// refusal.
    FlightCarries::__idem_flight_refusals for &RefusalProbe<Result<T, E>> => CarryRefusals,
    [T, E] where { E: From<Refused> },
    check (): Fine
);
level!(
    /// A `flight = ...` table, level 1: any other type.
    FlightPanics::__idem_flight_refusals for RefusalProbe<R> => PanicOnRefusal,
    [R],
    check (): Fine
);
