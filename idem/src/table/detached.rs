//! The `run_detached` paths: the work runs on a task of its own.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::{BuildHasher, Hash};

use super::key::{Fingerprinted, KeyArg};
use super::run::{ResultOnly, Step};
use super::SingleFlight;
use crate::flight::{Driver, Waited, Waiter};
use crate::sync::Arc;
use crate::work::run_work;
use crate::{fingerprint, trace, Error, Fingerprint, Outcome};

impl<K, V, E, S> SingleFlight<K, V, E, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + 'static,
    S: BuildHasher,
{
    /// Like [`run`](Self::run), but the work runs on its own tokio task, so
    /// it completes, and its result is stored, even if every caller leaves.
    ///
    /// Use this for side effects. With `run`, the caller that starts a flight
    /// drives it: if it times out or is dropped, the work stops part-way and
    /// a waiter (or the client's retry) runs it again. With `run_detached`, a
    /// client that times out and retries gets the first execution's result,
    /// and no caller, dropped, timed out or polled once and abandoned, can
    /// cancel or stall the work, as long as the runtime it was spawned on
    /// runs: the task goes to the runtime of the call that started the
    /// flight, and a current-thread runtime runs its tasks only while some
    /// thread drives it (`block_on`). A table shared by several runtimes
    /// (a `static`, a macro's table) is best used from multi-thread ones.
    ///
    /// # Errors
    ///
    /// As for [`run`](Self::run), and [`Error::Aborted`] for the caller
    /// that spawned the task if the task was dropped before it finished
    /// (its runtime shut down). Callers that joined such a flight with work
    /// of their own take it over instead, and get its result.
    ///
    /// # Panics
    ///
    /// When it has to start the work (the key is neither stored nor
    /// running) outside a tokio runtime: a hit, or joining a running flight,
    /// needs no runtime. A re-entrant call is detected and reported as for
    /// [`run`](Self::run).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the call leaves the work running to completion.
    ///
    /// The guarantee is about the flights this method starts. A detached
    /// call that finds a flight started by [`run`](Self::run) joins it, and
    /// that flight is driven by its `run` caller: use one mode per key when
    /// the difference matters.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use idem::SingleFlight;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let flight: SingleFlight<u32, &'static str> = SingleFlight::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .build()
    ///     .unwrap();
    /// // A client gives up after 10 ms; the payment takes 50 ms.
    /// let first = tokio::time::timeout(
    ///     Duration::from_millis(10),
    ///     flight.run_detached(7, || async {
    ///         tokio::time::sleep(Duration::from_millis(50)).await;
    ///         Ok("charged once")
    ///     }),
    /// )
    /// .await;
    /// assert!(first.is_err());
    /// // Its retry gets the first execution's result; the retry's own work never runs.
    /// let retry = flight.run_detached(7, || async { Ok("charged twice") }).await;
    /// assert_eq!(retry, Ok("charged once"));
    /// # }
    /// ```
    pub fn run_detached<F, Fut>(
        &self,
        key: K,
        f: F,
    ) -> impl Future<Output = Result<V, Error<E>>> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        ResultOnly {
            call: self.run_detached_with_outcome(key, f),
        }
    }

    /// Like [`run_detached`](Self::run_detached), and also returns the
    /// [`Outcome`]; the caller that spawned the work sees
    /// [`Outcome::Executed`].
    ///
    /// # Errors
    ///
    /// As for [`run_detached`](Self::run_detached).
    ///
    /// # Panics
    ///
    /// As for [`run_detached`](Self::run_detached).
    ///
    /// # Cancel safety
    ///
    /// As for [`run_detached`](Self::run_detached).
    pub fn run_detached_with_outcome<F, Fut>(
        &self,
        key: K,
        f: F,
    ) -> impl Future<Output = (Result<V, Error<E>>, Outcome)> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        self.detached(Some(key), f)
    }

    /// Like [`run_detached`](Self::run_detached), for a call that carries
    /// the [`Fingerprint`] of what it asks for; see
    /// [`run_with_fingerprint`](Self::run_with_fingerprint).
    ///
    /// # Errors
    ///
    /// As for [`run_detached`](Self::run_detached), and
    /// [`Error::Mismatch`] as for
    /// [`run_with_fingerprint`](Self::run_with_fingerprint).
    ///
    /// # Panics
    ///
    /// As for [`run_detached`](Self::run_detached).
    ///
    /// # Cancel safety
    ///
    /// As for [`run_detached`](Self::run_detached).
    pub fn run_detached_with_fingerprint<F, Fut>(
        &self,
        key: K,
        fingerprint: Fingerprint,
        f: F,
    ) -> impl Future<Output = Result<V, Error<E>>> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let key = Fingerprinted {
            key: Some(key),
            fingerprint: fingerprint::raw(Some(fingerprint)),
        };
        ResultOnly {
            call: self.detached(key, f),
        }
    }

    /// [`run_detached_with_fingerprint`](Self::run_detached_with_fingerprint),
    /// with the [`Outcome`]: for [`Durable`](crate::durable::Durable).
    #[cfg(feature = "durable")]
    pub(crate) fn run_detached_with_fingerprint_and_outcome<F, Fut>(
        &self,
        key: K,
        fingerprint: Fingerprint,
        f: F,
    ) -> impl Future<Output = (Result<V, Error<E>>, Outcome)> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let key = Fingerprinted {
            key: Some(key),
            fingerprint: fingerprint::raw(Some(fingerprint)),
        };
        self.detached(key, f)
    }

    /// The body of every detached `run` flavour.
    async fn detached<A, F, Fut>(&self, mut key: A, f: F) -> (Result<V, Error<E>>, Outcome)
    where
        A: KeyArg<K>,
        K: Borrow<A::Query>,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        // A hit needs no runtime: the check comes when there is a task to
        // spawn.
        let (hash, joined) = match self.first_lookup(&key) {
            Ok(found) => found,
            Err(done) => return done,
        };
        let (flight, expired) = match self.claim_or_wait(hash, &mut key, joined).await {
            Step::Done(r, outcome) => return (r, outcome),
            Step::Lead(flight, expired) => (flight, expired),
            Step::Refused(_) => unreachable!("`claim_or_wait` turns refusals into errors"),
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // The guard is armed before the panic: the flight is orphaned
            // to its waiters, not left without a driver.
            let _driver = Driver::new(&self.inner, hash, flight);
            panic!("idem: SingleFlight::run_detached must be called from within a tokio runtime");
        };
        let shard = self.inner.shard(hash);
        // The spawning caller waits as a waiter without work: its work went
        // to the task.
        let waiter = Waiter::new(shard, hash, Arc::clone(&flight), false);
        // The guard moves into the task: if the task is dropped unpolled
        // (its runtime is shutting down), the flight is orphaned, not left
        // stuck.
        let driver = Driver::new(Arc::clone(&self.inner), hash, flight);
        drop(expired);
        runtime.spawn(async move {
            let work = run_work(driver.flight_id(), f);
            let r = trace::execution(driver.settings(), driver.hash(), work).await;
            // The waiters (if any are left) get the result through the flight.
            driver.finish_detached(r);
        });
        match waiter.await {
            Waited::Done(r) => (r, Outcome::Executed),
            Waited::Orphaned => (Err(Error::Aborted), Outcome::Executed),
            Waited::Lead(_) | Waited::Gone(_) => unreachable!("a waiter without work never drives"),
        }
    }
}
