//! Whether a function returns a `Result` (its `Err`s are not stored) or any
//! other value (stored as is), decided by the type checker.
//!
//! The macro cannot tell a `Result` behind a type alias (`io::Result<T>`,
//! `anyhow::Result<T>`, `type Res<T> = ...`) from any other type, so it
//! asks: the expansion calls
//! `(&&&&&ReturnProbe::<R>::new()).__idem_return_kind()` with the levels
//! below in scope, and the first level whose impl applies (see
//! [`autoref`](super::autoref)) returns a marker implementing
//! [`ReturnKind`]. The levels for a type that cannot be stored require a
//! [diagnostic](super::diagnostics) trait it does not implement, and return
//! [`InvalidReturn`], which the rest of the expansion accepts, so that the
//! error is reported once, not again at each use.

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;

use super::autoref::Fine;
use super::diagnostics::{ErrorMustBeShareable, ValueMustBeShareable};

/// How a function's return type maps to a table's value and error types.
pub trait ReturnKind {
    /// The function's return type.
    type Output;
    /// What the table stores.
    type Value: Clone + Send + Sync + 'static;
    /// What the table hands to every caller of a failed execution.
    type Error: Clone + Send + Sync + 'static;
    /// The work's output, as the table sees it.
    fn into_result(out: Self::Output) -> Result<Self::Value, Self::Error>;
    /// A value or an error of the work's, as the function returns it.
    fn from_result(res: Result<Self::Value, Self::Error>) -> Self::Output;
}

/// A `Result<T, E>`: `Ok` values are stored, `Err`s go to the callers of
/// their execution only.
pub struct ResultReturn<T, E>(PhantomData<fn() -> (T, E)>);

/// Any other type `R`: stored as is.
pub struct ValueReturn<R>(PhantomData<fn() -> R>);

/// A return type that cannot be stored: the error was reported where the
/// kind was picked, and this marker keeps the rest of the expansion from
/// reporting it again.
pub struct InvalidReturn<R>(PhantomData<fn() -> R>);

/// Classifies a return type `R`; see the [module docs](self).
pub struct ReturnProbe<R>(PhantomData<fn() -> R>);

impl<R> ReturnProbe<R> {
    /// The probe for `R`.
    #[allow(clippy::new_without_default)] // never used but by the expansion
    pub const fn new() -> Self {
        Self::NEW
    }
}

macro_rules! markers {
    ($($name:ident<$($p:ident),*>),*) => {$(
        impl<$($p),*> Clone for $name<$($p),*> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<$($p),*> Copy for $name<$($p),*> {}
        impl<$($p),*> fmt::Debug for $name<$($p),*> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($name))
            }
        }
        impl<$($p),*> $name<$($p),*> {
            const NEW: Self = Self(PhantomData);
        }
    )*};
}

markers!(
    ResultReturn<T, E>,
    ValueReturn<R>,
    InvalidReturn<R>,
    ReturnProbe<R>
);

impl<T, E> ReturnKind for ResultReturn<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    type Output = Result<T, E>;
    type Value = T;
    type Error = E;

    #[inline]
    fn into_result(out: Result<T, E>) -> Result<T, E> {
        out
    }

    #[inline]
    fn from_result(res: Result<T, E>) -> Result<T, E> {
        res
    }
}

impl<R> ReturnKind for ValueReturn<R>
where
    R: Clone + Send + Sync + 'static,
{
    type Output = R;
    type Value = R;
    type Error = Infallible;

    #[inline]
    fn into_result(out: R) -> Result<R, Infallible> {
        Ok(out)
    }

    #[inline]
    fn from_result(res: Result<R, Infallible>) -> R {
        match res {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }
}

impl<R> ReturnKind for InvalidReturn<R> {
    type Output = R;
    type Value = ();
    type Error = Infallible;

    fn into_result(_: R) -> Result<(), Infallible> {
        unreachable!("a program with an invalid #[idempotent] return type does not compile")
    }

    fn from_result(_: Result<(), Infallible>) -> R {
        unreachable!("a program with an invalid #[idempotent] return type does not compile")
    }
}

level!(
    /// Level 0: a `Result` whose value and error can be shared.
    ResultOk::__idem_return_kind for &&&&ReturnProbe<Result<T, E>> => ResultReturn<T, E>,
    [T, E] where { T: Clone + Send + Sync + 'static, E: Clone + Send + Sync + 'static },
    check (): Fine
);
level!(
    /// Level 1: a `Result` whose error cannot be shared.
    ResultBadError::__idem_return_kind for &&&ReturnProbe<Result<T, E>> => InvalidReturn<Result<T, E>>,
    [T, E] where { T: Clone + Send + Sync + 'static },
    check E: ErrorMustBeShareable
);
level!(
    /// Level 2: a `Result` whose value cannot be shared.
    ResultBadValue::__idem_return_kind for &&ReturnProbe<Result<T, E>> => InvalidReturn<Result<T, E>>,
    [T, E],
    check T: ValueMustBeShareable
);
level!(
    /// Level 3: any other type that can be shared.
    ValueOk::__idem_return_kind for &ReturnProbe<R> => ValueReturn<R>,
    [R] where { R: Clone + Send + Sync + 'static },
    check (): Fine
);
level!(
    /// Level 4: any other type.
    ValueBad::__idem_return_kind for ReturnProbe<R> => InvalidReturn<R>,
    [R],
    check R: ValueMustBeShareable
);
