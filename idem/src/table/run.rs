//! The `run` paths: a caller that finds its key running joins it, one that
//! finds it vacant drives a new flight in its own future.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::{BuildHasher, Hash};

use super::key::{ByRef, Fingerprinted, KeyArg};
use super::shard::{Claim, Deferred, Found, Refusal, Shard};
use super::SingleFlight;
use crate::clock::Timestamp;
use crate::flight::{Driver, Flight, Waited, Waiter};
use crate::stats::bump;
use crate::sync::Arc;
use crate::work::{self, run_work};
use crate::{fingerprint, trace, Error, Fingerprint, Outcome};

const REENTRANT: &str = "idem: re-entrant call: the work of a flight called the same \
SingleFlight with the same key, and would wait for its own result forever. \
Use a different key, or call the work directly";

/// Where a caller stands after looking its key up.
pub(super) enum Step<K, V, E> {
    Done(Result<V, Error<E>>, Outcome),
    /// Drive this flight: a new one (with the expired entry it replaced, to
    /// drop once the driver's guard is armed) or an orphan taken over.
    Lead(Arc<Flight<V, E>>, Deferred<K, V, E>),
    /// The table's bounds allow no new flight.
    Refused(Refusal),
}

impl<K: Hash + Eq, V: Clone, E: Clone, S: BuildHasher> SingleFlight<K, V, E, S> {
    /// Runs `f` for `key`, unless a call for an equal key is already running
    /// (then waits for its result) or a stored result is still fresh (then
    /// returns it).
    ///
    /// The work may borrow from the caller (`&self`, locals): it needs
    /// neither `Send` nor `'static`, because the caller that starts a flight
    /// drives it, inside its own future.
    ///
    /// `run` behaves as an `async fn` (nothing happens until the future is
    /// polled, and the future is `Send` when `K` and `V` are `Send + Sync`,
    /// `E` is `Send`, and the work and its future are `Send`, since it
    /// holds a reference to the shared table); it is written as a plain
    /// `fn` so that the future is exactly
    /// [`run_with_outcome`](Self::run_with_outcome)'s, with no copy of the
    /// arguments beside it: in a storm every waiting caller's task holds one.
    ///
    /// # Errors
    ///
    /// * [`Error::Failed`] with a clone of the work's error, for every caller
    ///   of the flight that failed. The error is not stored.
    /// * [`Error::Panicked`] if the work panicked, with its message, for
    ///   every caller of that flight. The key is free again at once.
    ///
    /// # Panics
    ///
    /// If the work calls `run` on the same table with an equal key, it would
    /// wait for itself forever; idem detects this and panics inside the work,
    /// so that the outer call (and everyone coalesced on it) gets
    /// [`Error::Panicked`] with a message that says what happened. Only
    /// calls made from inside the work's own future are detected: a work that
    /// spawns a task which calls back and then waits for that task still
    /// deadlocks. The check is made when the inner call would start waiting,
    /// so an inner call raced in a `select!` against something else counts
    /// too, even if the other branch would have won.
    ///
    /// # Cancel safety
    ///
    /// Dropping this future disturbs nobody else:
    ///
    /// * a caller that was *waiting* simply leaves;
    /// * if the caller that was *running* the work is dropped, the work is
    ///   dropped with it and the waiting callers wake up: the first of them
    ///   to be polled drives the same flight on with its own `f`, and the
    ///   others stay attached to it and get its outcome, however late they
    ///   are polled. Each cancelled driver costs one extra execution, never
    ///   one per waiter, and however often drivers are cancelled, waiters
    ///   never give up with an error. A flight whose driver was dropped and
    ///   that nobody waits on any more leaves the table.
    ///
    /// One hazard remains: a leader whose future is polled once and then kept
    /// alive *without being polled* (held in a `select!` branch that is never
    /// polled again, say) stalls its waiters for as long as it lives, because
    /// the work only makes progress when its caller polls it. Wrap waiters in
    /// `tokio::time::timeout` if that can happen, or use
    /// [`run_detached`](Self::run_detached), whose work runs on its own task.
    ///
    /// # Examples
    ///
    /// ```
    /// use idem::{Error, SingleFlight};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let flight: SingleFlight<&str, u32, String> = SingleFlight::new();
    /// let local = 41;
    /// let v = flight.run("answer", || async { Ok(local + 1) }).await;
    /// assert_eq!(v, Ok(42));
    ///
    /// let e = flight.run("answer", || async { Err("no".to_string()) }).await;
    /// assert_eq!(e, Err(Error::Failed("no".to_string())));
    /// # }
    /// ```
    pub fn run<F, Fut>(
        &self,
        key: K,
        f: F,
    ) -> impl Future<Output = Result<V, Error<E>>> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        ResultOnly {
            call: self.run_with_outcome(key, f),
        }
    }

    /// Like [`run`](Self::run), and also says whether this call executed the
    /// work, joined another call's execution, or got a stored result.
    ///
    /// # Errors
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Panics
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use idem::{Outcome, SingleFlight};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let flight: SingleFlight<u8, u8> = SingleFlight::builder()
    ///     .ttl(Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// let work = || async {
    ///     tokio::task::yield_now().await;
    ///     Ok(7)
    /// };
    /// let (a, b) = tokio::join!(
    ///     flight.run_with_outcome(1, work),
    ///     flight.run_with_outcome(1, work)
    /// );
    /// assert_eq!(a, (Ok(7), Outcome::Executed));
    /// assert_eq!(b, (Ok(7), Outcome::Coalesced));
    /// assert_eq!(flight.run_with_outcome(1, work).await, (Ok(7), Outcome::Cached));
    /// # }
    /// ```
    pub fn run_with_outcome<F, Fut>(
        &self,
        key: K,
        f: F,
    ) -> impl Future<Output = (Result<V, Error<E>>, Outcome)> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.call(Some(key), f)
    }

    /// Like [`run`](Self::run), with the key borrowed: a hit, or a call
    /// that joins a running flight, never builds an owned key (a `String`
    /// key looked up by `&str` allocates nothing). The owned key is made,
    /// with [`ToOwned`], only when the call starts a flight.
    ///
    /// # Errors
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Panics
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use idem::SingleFlight;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let flight: SingleFlight<String, u64> = SingleFlight::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .build()
    ///     .unwrap();
    /// let header: &str = "order-7";
    /// let v = flight.run_by_ref(header, || async { Ok(7) }).await;
    /// assert_eq!(v, Ok(7));
    /// // The retry's key is never copied: it finds the stored result by `&str`.
    /// assert_eq!(flight.run_by_ref(header, || async { Ok(8) }).await, Ok(7));
    /// # }
    /// ```
    pub fn run_by_ref<'a, Q, F, Fut>(
        &'a self,
        key: &'a Q,
        f: F,
    ) -> impl Future<Output = Result<V, Error<E>>> + use<'a, K, V, E, S, Q, F, Fut>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        ResultOnly {
            call: self.call(ByRef::new(key), f),
        }
    }

    /// Like [`run_by_ref`](Self::run_by_ref), and also returns the
    /// [`Outcome`].
    ///
    /// # Errors
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Panics
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](Self::run).
    pub fn run_by_ref_with_outcome<'a, Q, F, Fut>(
        &'a self,
        key: &'a Q,
        f: F,
    ) -> impl Future<Output = (Result<V, Error<E>>, Outcome)> + use<'a, K, V, E, S, Q, F, Fut>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.call(ByRef::new(key), f)
    }

    /// Like [`run`](Self::run), for a call that carries the [`Fingerprint`]
    /// of what it asks for (its payload): if its key is running or stored
    /// for a call with another fingerprint, the call gets
    /// [`Error::Mismatch`] and nothing runs, instead of the other call's
    /// result. Calls without a fingerprint (`run`) are not checked, and a
    /// flight started by one matches any call.
    ///
    /// # Errors
    ///
    /// As for [`run`](Self::run), and [`Error::Mismatch`] as above.
    ///
    /// # Panics
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use idem::{Error, Fingerprint, SingleFlight};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let payments: SingleFlight<u64, String> = SingleFlight::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .build()
    ///     .unwrap();
    /// let charge = |cents: u64| move || async move { Ok(format!("charged {cents}")) };
    /// let first = payments.run_with_fingerprint(7, Fingerprint::of(&1_250_u64), charge(1_250));
    /// assert_eq!(first.await, Ok("charged 1250".to_string()));
    /// // The same order id with another amount: a bug in the caller, caught.
    /// let reused = payments.run_with_fingerprint(7, Fingerprint::of(&9_999_u64), charge(9_999));
    /// assert_eq!(reused.await, Err(Error::Mismatch));
    /// // The genuine retry gets the stored result.
    /// let retry = payments.run_with_fingerprint(7, Fingerprint::of(&1_250_u64), charge(1_250));
    /// assert_eq!(retry.await, Ok("charged 1250".to_string()));
    /// # }
    /// ```
    pub fn run_with_fingerprint<F, Fut>(
        &self,
        key: K,
        fingerprint: Fingerprint,
        f: F,
    ) -> impl Future<Output = Result<V, Error<E>>> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let key = Fingerprinted {
            key: Some(key),
            fingerprint: fingerprint::raw(Some(fingerprint)),
        };
        ResultOnly {
            call: self.call(key, f),
        }
    }

    /// [`run_with_fingerprint`](Self::run_with_fingerprint), with the
    /// [`Outcome`]: for [`Durable`](crate::durable::Durable), which tells
    /// its callers whether they joined another's call.
    #[cfg(feature = "durable")]
    pub(crate) fn run_with_fingerprint_and_outcome<F, Fut>(
        &self,
        key: K,
        fingerprint: Fingerprint,
        f: F,
    ) -> impl Future<Output = (Result<V, Error<E>>, Outcome)> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let key = Fingerprinted {
            key: Some(key),
            fingerprint: fingerprint::raw(Some(fingerprint)),
        };
        self.call(key, f)
    }

    /// The body of every `run` flavour that drives its work in the
    /// caller's future.
    async fn call<A, F, Fut>(&self, mut key: A, f: F) -> (Result<V, Error<E>>, Outcome)
    where
        A: KeyArg<K>,
        K: Borrow<A::Query>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        // A hit is answered right here in the first poll, before the slow
        // path's nested futures are entered.
        let (hash, joined) = match self.first_lookup(&key) {
            Ok(found) => found,
            Err(done) => return done,
        };
        // Scoped so that the step's storage is not kept across the work's
        // `.await`: this future lives in every waiting caller's task, so
        // its size is paid per waiter.
        let driver = match self.claim_or_wait(hash, &mut key, joined).await {
            Step::Done(r, outcome) => return (r, outcome),
            Step::Lead(flight, expired) => {
                let driver = Driver::new(&self.inner, hash, flight);
                drop(expired);
                driver
            }
            Step::Refused(_) => unreachable!("`claim_or_wait` turns refusals into errors"),
        };
        let work = run_work(driver.flight_id(), f);
        let r = trace::execution(&self.inner.settings, hash, work).await;
        (driver.finish(r), Outcome::Executed)
    }

    /// A call's first look at its key, under the shard's read lock: the
    /// answer if that settles it (a hit, a mismatch), else the key's hash
    /// and the running flight to join, if any.
    #[inline]
    #[allow(clippy::type_complexity, reason = "a private step of two callers")]
    pub(super) fn first_lookup<A>(
        &self,
        key: &A,
    ) -> Result<(u64, Option<Arc<Flight<V, E>>>), (Result<V, Error<E>>, Outcome)>
    where
        A: KeyArg<K>,
        K: Borrow<A::Query>,
    {
        let query = key.query();
        let hash = self.hash(query);
        match self
            .inner
            .shard(hash)
            .lookup(hash, query, key.fingerprint())
        {
            Some(Found::Hit(v)) => Err((Ok(v), Outcome::Cached)),
            Some(Found::Join(flight)) => Ok((hash, Some(flight))),
            Some(Found::Mismatch) => {
                trace::mismatch(&self.inner.settings, hash);
                Err((Err(Error::Mismatch), Outcome::Mismatched))
            }
            None => Ok((hash, None)),
        }
    }

    /// Looks the key up until the call has a result or must drive a flight,
    /// waiting on flights as needed. `joined` is the running flight the
    /// caller's first [`Shard::lookup`] found, if any; when it found
    /// nothing, the first claim goes straight to the exclusive lock. The
    /// caller brings work of its own, so it can drive a flight whose driver
    /// was dropped.
    ///
    /// Only the flight being waited on is held across the `.await`, so that
    /// the future stays small: every waiting caller's task holds one.
    pub(super) async fn claim_or_wait<A>(
        &self,
        hash: u64,
        key: &mut A,
        joined: Option<Arc<Flight<V, E>>>,
    ) -> Step<K, V, E>
    where
        A: KeyArg<K>,
        K: Borrow<A::Query>,
    {
        let shard = self.inner.shard(hash);
        let mut flight = match joined {
            Some(flight) => flight,
            None => match self.claim_vacant(shard, hash, key) {
                Ok(step) => return step,
                Err(flight) => flight,
            },
        };
        loop {
            let waiter = Waiter::new(shard, hash, flight, true);
            assert!(!work::is_polling(waiter.flight_id()), "{REENTRANT}");
            let gone = match waiter.await {
                Waited::Done(r) => {
                    bump(&shard.counters().coalesced);
                    return Step::Done(r, Outcome::Coalesced);
                }
                Waited::Lead(flight) => {
                    trace::takeover(&self.inner.settings, hash);
                    bump(&shard.counters().takeovers);
                    bump(&shard.counters().executions);
                    return Step::Lead(flight, Deferred::none());
                }
                Waited::Orphaned => unreachable!("a waiter with work drives an orphan"),
                Waited::Gone(flight) => flight,
            };
            // Over without a result, and out of the table (taken out again
            // here should an invariant be broken, so that this loop always
            // moves on): look again.
            drop(shard.remove_flight_if(hash, &gone, || true));
            drop(gone);
            flight = match step(shard.claim(hash, key)) {
                Ok(step) => return self.refused(shard, hash, step),
                Err(flight) => flight,
            };
        }
    }

    /// The first claim of a caller whose lookup found nothing: straight to
    /// the exclusive lock. A table that is full frees its expired results'
    /// slots (swept or not) and tries once more.
    fn claim_vacant<A>(
        &self,
        shard: &Shard<K, V, E>,
        hash: u64,
        key: &mut A,
    ) -> Result<Step<K, V, E>, Arc<Flight<V, E>>>
    where
        A: KeyArg<K>,
        K: Borrow<A::Query>,
    {
        match step(shard.claim_exclusive(hash, key)) {
            Ok(Step::Refused(Refusal::Full)) => {
                self.inner.sweep();
                step(shard.claim(hash, key)).map(|step| self.refused(shard, hash, step))
            }
            other => other.map(|step| self.refused(shard, hash, step)),
        }
    }

    /// A refusal as the error the caller gets; any other step unchanged.
    fn refused(&self, shard: &Shard<K, V, E>, hash: u64, step: Step<K, V, E>) -> Step<K, V, E> {
        let refusal = match step {
            Step::Refused(refusal) => refusal,
            Step::Done(Err(Error::Mismatch), _) => {
                trace::mismatch(&self.inner.settings, hash);
                return step;
            }
            step => return step,
        };
        trace::refused(
            &self.inner.settings,
            hash,
            match refusal {
                Refusal::Busy => "busy",
                Refusal::Full => "full",
            },
        );
        bump(&shard.counters().refusals);
        let error = match refusal {
            Refusal::Busy => Error::Busy,
            Refusal::Full => {
                let now = Timestamp::now();
                let oldest = self
                    .inner
                    .shards
                    .iter()
                    .filter_map(Shard::oldest_expiry)
                    .min();
                Error::Full {
                    retry_after: oldest.map(|t| t.saturating_since(now)),
                }
            }
        };
        Step::Done(Err(error), Outcome::Refused)
    }
}

/// A claim as the step it ends in, or as the flight to wait on.
pub(super) fn step<K, V, E>(claim: Claim<K, V, E>) -> Result<Step<K, V, E>, Arc<Flight<V, E>>> {
    match claim {
        Claim::Hit(v) => Ok(Step::Done(Ok(v), Outcome::Cached)),
        Claim::Lead(flight, expired) => Ok(Step::Lead(flight, expired)),
        Claim::Join(flight) => Err(flight),
        Claim::Refused(refusal) => Ok(Step::Refused(refusal)),
        Claim::Mismatch => Ok(Step::Done(Err(Error::Mismatch), Outcome::Mismatched)),
    }
}

pin_project_lite::pin_project! {
    /// A `run_with_outcome` future without the outcome: `run` and
    /// `run_detached`. A struct, not an `async` wrapper, which would keep
    /// its own copy of the arguments beside the inner future (24 bytes more
    /// per waiting caller's task) or hold the inner future twice.
    pub(super) struct ResultOnly<F> {
        #[pin]
        pub(super) call: F,
    }
}

impl<F: Future<Output = (T, Outcome)>, T> Future for ResultOnly<F> {
    type Output = T;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<T> {
        self.project().call.poll(cx).map(|(r, _)| r)
    }
}
