//! A `flight = ...` of the user's that is an `idem::durable::Durable`: the
//! same methods as a `SingleFlight`'s ([`user_flight`](super::user_flight)),
//! on traits of their own, so that the expansion is the same tokens for
//! both executors and method resolution picks the executor's.
//!
//! * [`DurableFlight::__idem_flight`] finds the `Durable` behind the
//!   expression, and [`fit`](super::fit()) checks it against the return
//!   type ([`FitsFlight`](super::FitsFlight)): a `Durable<S, T, E, C>`
//!   serves a function returning `Result<T, E>`.
//! * [`DurableFlight::__idem_key`] takes a key of any type, which
//!   [`TextKeyProbe`](super::flight_probe::TextKeyProbe) then turns into a
//!   `String` (or reports).
//! * [`DurableRun`] runs the body as the `Durable`'s work, which gets the
//!   lease's `Fence`, and maps the `DurableError` back into the return
//!   type: the body's own `Err(e)` as it is; a panic as a panic of each
//!   caller, as with a `SingleFlight`; a mismatch as
//!   `Err(E::from(Mismatch))`, as with a `SingleFlight`; any other
//!   failure of the `Durable`'s (`Running`, `LeaseLost`, `Store`) as
//!   `Err(E::from(DurableError::<Infallible>::..))`, which
//!   [`DurableFailureProbe`](super::flight_probe::DurableFailureProbe)
//!   requires of the return type.
//!
//! The expansion imports these traits whether or not the `durable`
//! feature is on: [`DurableFlight`] and [`DurableReturn`] are declared
//! without naming the `durable` module's types, and [`DurableRun`], which
//! names them, is an empty placeholder without the feature. Only their
//! impls for `Durable` need it.

#[cfg(feature = "durable")]
use std::future::Future;

#[cfg(feature = "durable")]
use super::fingerprint_probe::OnMismatch;
#[cfg(feature = "durable")]
use super::flight_probe::OnDurableFailure;
use super::return_probe::{InvalidReturn, ResultReturn, ReturnKind};
#[cfg(feature = "durable")]
use crate::Fingerprint;

/// Finds the `Durable` behind a `flight = ...` expression, and types the
/// key; see the [module docs](self).
pub trait DurableFlight {
    /// The executor itself.
    fn __idem_flight(&self) -> &Self;

    /// The key, of any type: a `Durable` takes text, which the key probe
    /// makes of it (or reports, at the key).
    fn __idem_key<Q>(&self, key: Q) -> Q;
}

/// How the return kind `Ret` maps to a `Durable<_, V, E>`'s values and
/// errors: one to one for `Result<V, E>`; never, for a return type
/// reported already.
pub trait DurableReturn<V, E>: ReturnKind {
    /// The body's output, as the `Durable`'s work returns it.
    fn into_durable(out: Self::Output) -> Result<V, E>;
    /// A value of the `Durable`'s, as the return kind's.
    fn value(value: V) -> Self::Value;
    /// An error of the body's, as the return kind's.
    fn error(error: E) -> Self::Error;
}

impl<V, E> DurableReturn<V, E> for ResultReturn<V, E>
where
    ResultReturn<V, E>: ReturnKind<Output = Result<V, E>, Value = V, Error = E>,
{
    #[inline]
    fn into_durable(out: Result<V, E>) -> Result<V, E> {
        out
    }
    #[inline]
    fn value(value: V) -> V {
        value
    }
    #[inline]
    fn error(error: E) -> E {
        error
    }
}

impl<R, V, E> DurableReturn<V, E> for InvalidReturn<R> {
    fn into_durable(_: R) -> Result<V, E> {
        unreachable!("a program with an invalid #[idempotent] return type does not compile")
    }
    fn value(_: V) {
        unreachable!("a program with an invalid #[idempotent] return type does not compile")
    }
    fn error(_: E) -> std::convert::Infallible {
        unreachable!("a program with an invalid #[idempotent] return type does not compile")
    }
}

/// The runs of a `Durable` found by [`fit`](super::fit()): the body as
/// its work, the answer mapped back into the return type.
///
/// The `Durable`'s bounds are the methods', not the impl's, so that one
/// that fails them is reported as such, at the flight expression, rather
/// than as a method that "exists but whose trait bounds were not
/// satisfied" (the record probe reports a codec that cannot encode the
/// types first, and then stands in a `Durable` that can). The trait names
/// the `durable` module's types, so without the feature it is a
/// placeholder, which nothing implements.
#[cfg(feature = "durable")]
pub trait DurableRun {
    /// The executor's store.
    type Store;
    /// The executor's codec.
    type Codec;
    /// The executor's value type.
    type Value;
    /// The executor's error type.
    type Error;

    /// `Durable::run` for `key`, with the body as its work.
    fn __idem_run<Ret, Rf, Df, N, W, Fut>(
        &self,
        return_kind: Ret,
        refusals: Rf,
        failures: Df,
        name: N,
        key: String,
        work: W,
    ) -> impl Future<Output = Ret::Output>
    where
        Self::Store: crate::store::Store,
        Self::Value: Clone + Send + Sync + 'static,
        Self::Error: Clone + Send + Sync + 'static,
        Self::Codec: crate::durable::Codec<Self::Value> + crate::durable::Codec<Self::Error>,
        Ret: DurableReturn<Self::Value, Self::Error>,
        Df: OnDurableFailure<Ret, crate::durable::DurableError<std::convert::Infallible>>,
        W: FnOnce(crate::durable::Fence) -> Fut,
        Fut: Future<Output = Ret::Output>,
        N: Fn() -> &'static str;

    /// `Durable::run_with_fingerprint` for `key`, with the body as its
    /// work; a mismatch is returned as `mismatch` says.
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
        key: String,
        fingerprint: Fingerprint,
        work: W,
    ) -> impl Future<Output = Ret::Output>
    where
        Self::Store: crate::store::Store,
        Self::Value: Clone + Send + Sync + 'static,
        Self::Error: Clone + Send + Sync + 'static,
        Self::Codec: crate::durable::Codec<Self::Value> + crate::durable::Codec<Self::Error>,
        Ret: DurableReturn<Self::Value, Self::Error>,
        Mm: OnMismatch<Ret>,
        Df: OnDurableFailure<Ret, crate::durable::DurableError<std::convert::Infallible>>,
        W: FnOnce(crate::durable::Fence) -> Fut,
        Fut: Future<Output = Ret::Output>,
        N: Fn() -> &'static str;
}

/// Without the `durable` feature there is no `Durable`: a placeholder, so
/// that the expansion's imports resolve.
#[cfg(not(feature = "durable"))]
pub trait DurableRun {}

#[cfg(feature = "durable")]
mod imp {
    use std::convert::Infallible;
    use std::future::Future;

    use super::{DurableFlight, DurableReturn, DurableRun};
    use crate::__private::fingerprint_probe::{NoFingerprint, OnMismatch};
    use crate::__private::flight_probe::{Encodes, IsDurable, OnDurableFailure};
    use crate::__private::return_probe::{InvalidReturn, ResultReturn, ReturnKind};
    use crate::__private::{FitsFlight, FlightTypes};
    use crate::durable::{Codec, Durable, DurableError, Fence};
    use crate::store::Store;
    use crate::Fingerprint;

    impl<S, V, E, C> IsDurable for Durable<S, V, E, C> {
        type Value = V;
        type Error = E;
        type Failure = DurableError<Infallible>;
        type Codec = C;
        type StandIn = Durable<S, Unrecorded<V>, Unrecorded<E>, Unrecording>;
    }

    /// A value or error type that the `Durable`'s codec cannot encode, in
    /// the stand-in executor of a function whose `Durable` was reported for
    /// it: with [`Unrecording`], it meets the run's bounds, so that they are
    /// not reported again. Never built.
    pub struct Unrecorded<T>(T);

    /// The codec of that stand-in. Never built.
    #[derive(Debug)]
    pub struct Unrecording;

    impl<T> std::fmt::Debug for Unrecorded<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Unrecorded")
        }
    }

    impl<T> Clone for Unrecorded<T> {
        fn clone(&self) -> Self {
            unreachable!("a program whose Durable cannot encode its types does not compile")
        }
    }

    impl<T: 'static> Codec<Unrecorded<T>> for Unrecording {
        fn encode(&self, _: &Unrecorded<T>) -> Result<Vec<u8>, String> {
            unreachable!("a program whose Durable cannot encode its types does not compile")
        }
        fn decode(&self, _: &[u8]) -> Result<Unrecorded<T>, String> {
            unreachable!("a program whose Durable cannot encode its types does not compile")
        }
    }

    /// The return kind of a function whose `Durable` was reported for its
    /// types, in the stand-in's.
    impl<V, E> DurableReturn<Unrecorded<V>, Unrecorded<E>> for ResultReturn<V, E>
    where
        ResultReturn<V, E>: ReturnKind<Output = Result<V, E>, Value = V, Error = E>,
    {
        fn into_durable(_: Result<V, E>) -> Result<Unrecorded<V>, Unrecorded<E>> {
            unreachable!("a program whose Durable cannot encode its types does not compile")
        }
        fn value(_: Unrecorded<V>) -> V {
            unreachable!("a program whose Durable cannot encode its types does not compile")
        }
        fn error(_: Unrecorded<E>) -> E {
            unreachable!("a program whose Durable cannot encode its types does not compile")
        }
    }

    impl<C: Codec<T>, T> Encodes<T> for C {}

    impl<S, V, E, C> FlightTypes for Durable<S, V, E, C> {
        type Value = V;
        type Error = E;
    }

    // Not listed as "other implementations" in errors.
    #[diagnostic::do_not_recommend]
    impl<S, T, E, C> FitsFlight<ResultReturn<T, E>, T, E> for Durable<S, T, E, C>
    where
        ResultReturn<T, E>: ReturnKind<Output = Result<T, E>, Value = T, Error = E>,
    {
        type Fitted = Self;
        #[inline]
        fn fitted(&self) -> &Self {
            self
        }
    }

    /// An invalid return type was reported already: fit anything, so that
    /// it is not reported again, and run in a stand-in whose value and
    /// error types (`()`) meet every bound of the run.
    #[diagnostic::do_not_recommend]
    impl<S, V, E, C, R> FitsFlight<InvalidReturn<R>, V, E> for Durable<S, V, E, C> {
        type Fitted = Durable<S, (), (), C>;
        fn fitted(&self) -> &Self::Fitted {
            unreachable!("a program with an invalid #[idempotent] return type does not compile")
        }
    }

    impl<S, V, E, C> DurableFlight for Durable<S, V, E, C> {
        #[inline]
        fn __idem_flight(&self) -> &Self {
            self
        }

        #[inline]
        fn __idem_key<Q>(&self, key: Q) -> Q {
            key
        }
    }

    impl<S, V, E, C> DurableRun for Durable<S, V, E, C> {
        type Store = S;
        type Codec = C;
        type Value = V;
        type Error = E;

        #[allow(
            clippy::manual_async_fn,
            reason = "an `async fn` keeps its parameters twice across the `.await` (the key, re-bound): 32 bytes more, measured"
        )]
        fn __idem_run<Ret, Rf, Df, N, W, Fut>(
            &self,
            _return_kind: Ret,
            _refusals: Rf,
            _failures: Df,
            name: N,
            key: String,
            work: W,
        ) -> impl Future<Output = Ret::Output>
        where
            S: Store,
            V: Clone + Send + Sync + 'static,
            E: Clone + Send + Sync + 'static,
            C: Codec<V> + Codec<E>,
            Ret: DurableReturn<V, E>,
            Df: OnDurableFailure<Ret, DurableError<Infallible>>,
            W: FnOnce(Fence) -> Fut,
            Fut: Future<Output = Ret::Output>,
            N: Fn() -> &'static str,
        {
            async move {
                let work = move |fence| async move { Ret::into_durable(work(fence).await) };
                let (r, _how) = self.run(&key, work).await;
                answer::<Ret, Df, NoFingerprint, V, E>(r, name())
            }
        }

        #[allow(
            clippy::manual_async_fn,
            reason = "an `async fn` keeps its parameters twice across the `.await` (the key, re-bound): 32 bytes more, measured"
        )]
        fn __idem_run_with_fingerprint<Ret, Rf, Mm, Df, N, W, Fut>(
            &self,
            _return_kind: Ret,
            _refusals: Rf,
            _mismatch: Mm,
            _failures: Df,
            name: N,
            key: String,
            fingerprint: Fingerprint,
            work: W,
        ) -> impl Future<Output = Ret::Output>
        where
            S: Store,
            V: Clone + Send + Sync + 'static,
            E: Clone + Send + Sync + 'static,
            C: Codec<V> + Codec<E>,
            Ret: DurableReturn<V, E>,
            Mm: OnMismatch<Ret>,
            Df: OnDurableFailure<Ret, DurableError<Infallible>>,
            W: FnOnce(Fence) -> Fut,
            Fut: Future<Output = Ret::Output>,
            N: Fn() -> &'static str,
        {
            async move {
                let work = move |fence| async move { Ret::into_durable(work(fence).await) };
                let (r, _how) = self.run_with_fingerprint(&key, fingerprint, work).await;
                answer::<Ret, Df, Mm, V, E>(r, name())
            }
        }
    }

    /// The `Durable`'s answer, as the function `name` returns it: a value,
    /// the body's own error, a mismatch as `Mm` says (only a call with a
    /// fingerprint can get one), or a failure of the `Durable`'s as `Df`
    /// says. A panic of the body resumes as a panic of the caller, with its
    /// message, as with a `SingleFlight`.
    ///
    /// The match is exhaustive (`DurableError` is `#[non_exhaustive]` for
    /// other crates only): a new kind of failure must be mapped here.
    fn answer<Ret, Df, Mm, V, E>(r: Result<V, DurableError<E>>, name: &'static str) -> Ret::Output
    where
        Ret: DurableReturn<V, E>,
        Df: OnDurableFailure<Ret, DurableError<Infallible>>,
        Mm: OnMismatch<Ret>,
    {
        Ret::from_result(r.map(Ret::value).map_err(|e| match e {
            DurableError::Failed(e) => Ret::error(e),
            DurableError::Panicked(p) => {
                std::panic::resume_unwind(Box::new(p.message().to_owned()))
            }
            DurableError::Mismatch => Mm::mismatch(name),
            DurableError::Running { retry_after } => {
                Df::failure(DurableError::Running { retry_after }, name)
            }
            DurableError::LeaseLost => Df::failure(DurableError::LeaseLost, name),
            // Only a detached call gets this one, which the expansion does not
            // make.
            DurableError::Aborted => Df::failure(DurableError::Aborted, name),
            DurableError::Store(e) => Df::failure(DurableError::Store(e), name),
        }))
    }
}
