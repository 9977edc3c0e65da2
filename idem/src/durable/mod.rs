//! The same contract across processes: a local [`SingleFlight`] in front of
//! a [`Store`].
//!
//! A [`Durable`] call for a key:
//!
//! 1. replays a record the store shows without a claim
//!    ([`Store::lookup`]: the memory store
//!    does, a network store leaves it to the claim), as cheap as a read;
//! 2. joins a call of this process already running it (one claim per key
//!    per process, however many duplicates arrive);
//! 3. otherwise claims the key in the store, under a fresh
//!    [`Owner`](crate::store::Owner). A record there is replayed ([`DurableOutcome::Replayed`]);
//!    another process's live lease is waited for (polling with jittered,
//!    bounded backoff; [`DurableOutcome::Waited`]) or rejected, as
//!    [`OnRunning`] says;
//! 4. with the lease, runs the work while a watchdog renews the lease
//!    every third of it, up to `max_run`. The work gets a [`Fence`]: the
//!    lease's fencing token, and a signal when the lease is lost;
//! 5. completes the record with the encoded value (kept for `retain`), or
//!    with the error if [`record_errors`](DurableBuilder::record_errors)
//!    says so; otherwise releases the key. A panic releases; a caller
//!    dropped mid-work releases from a task of its own, unless the call
//!    was [detached](Call::run_detached): then the work finishes and its
//!    result is recorded all the same.
//!
//! [`Durable::run`] takes the executor's settings; [`Durable::call`] sets
//! a fingerprint or another [`OnRunning`] for one call, or detaches it.
//!
//! Store errors fail closed: a work whose claim could not be recorded does
//! not run ([`DurableError::Store`]). An unreachable store
//! ([`StoreError::Unavailable`](crate::store::StoreError::Unavailable), an ambiguous outcome) is retried under the
//! same owner and lease, which the store protocol makes safe (a claim or a
//! completion whose reply was lost is recognised as the caller's own):
//!
//! * a claim, twice (after 10 and 100 ms), then fails closed, or runs the
//!   work unrecorded if the executor fails open ([`OnUnavailable`]);
//! * a completion, with backoff from 10 ms doubling to 500 ms, for as long
//!   as the lease lasts: the result of work that ran matters more than the
//!   caller's time, and a connection being re-established after a server
//!   restart or a failover typically comes back within it. Past the lease
//!   it would be refused anyway; the call then fails with the store's error
//!   (the record may or may not have been written);
//! * a release, twice in the call, then from a task of its own until the
//!   lease ends: the caller gets the work's error at once, and the key is
//!   freed as soon as the store answers;
//! * a renewal, at its next turn, until the lease is past.
//!
//! The local tier keeps nothing once a call ends, so it never serves a
//! result longer than the store does.

mod builder;
mod call;
mod codec;
mod error;
mod lead;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use builder::{DurableBuildError, DurableBuilder};
pub use call::Call;
pub use codec::{Codec, Json};
pub use error::{DurableError, DurableOutcome};

use crate::store::Store;
use crate::{Fingerprint, SingleFlight};

/// What a call does when another process holds the key's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnRunning {
    /// Poll the store (backoff from 10 ms doubling to 1 s, jittered, never
    /// past the other lease's end) until the record appears, the lease
    /// expires (then this call takes over), or `timeout` passes (then
    /// [`DurableError::Running`]).
    Wait {
        /// The longest a call waits.
        timeout: Duration,
    },
    /// Answer [`DurableError::Running`] at once, with the time left on the
    /// other lease (an HTTP `409` with `Retry-After`).
    Reject,
}

/// What a call does when the store cannot be reached to claim its key
/// ([`StoreError::Unavailable`](crate::store::StoreError::Unavailable),
/// after two quick retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnUnavailable {
    /// The work does not run: the call fails with [`DurableError::Store`].
    /// The default: a work whose claim could not be recorded could run
    /// twice.
    FailClosed,
    /// The work runs with no lease and its result is not recorded
    /// ([`DurableOutcome::FailedOpen`]): availability over at-most-once,
    /// for work that is safe to repeat. Its [`Fence`] has token 0 (below
    /// every token a store issues, so downstream fence checks refuse its
    /// writes) and reports the lease lost. Local duplicates still share
    /// its execution.
    FailOpen,
}

/// The lease a work runs under: pass [`token`](Fence::token) to downstream
/// writes (`UPDATE … SET …, fence = $1 WHERE id = $2 AND fence < $1`) so
/// that a stalled owner's late writes are refused there too.
#[derive(Debug, Clone)]
pub struct Fence {
    token: u64,
    lost: watch::Receiver<bool>,
}

impl Fence {
    /// The fencing token: greater than that of every earlier lease of the
    /// key.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Whether the lease was lost (renewal refused, the store unreachable
    /// past the lease's end, or the lease ended after `max_run` stopped
    /// its renewal): the result will not be recorded.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Completes when the lease is lost; never, if the work ends first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn lost(&mut self) {
        if self.lost.wait_for(|lost| *lost).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

type RecordError<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// What every call of one executor shares, with the tasks it spawns.
struct Shared<S, E, C> {
    store: S,
    codec: C,
    namespace: String,
    retain: Duration,
    lease: Duration,
    max_run: Duration,
    on_running: OnRunning,
    on_unavailable: OnUnavailable,
    record_error: Option<RecordError<E>>,
}
/// Runs work at most once per key across every process that shares a
/// store; see the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use idem::durable::{Durable, DurableOutcome};
/// use idem::store::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let payments: Durable<MemoryStore, String, String> = Durable::builder(MemoryStore::new())
///     .namespace("payments")
///     .retain(Duration::from_secs(24 * 3600))
///     .build()
///     .unwrap();
/// let charge = |fence: idem::durable::Fence| async move {
///     Ok(format!("receipt, fence {}", fence.token()))
/// };
/// let (first, how) = payments.run("order-7", charge).await;
/// assert_eq!(how, DurableOutcome::Executed);
/// let (again, how) = payments.run("order-7", charge).await;
/// assert_eq!((again, how), (first, DurableOutcome::Replayed));
/// # }
/// ```
pub struct Durable<S, V, E = Infallible, C = Json> {
    shared: Arc<Shared<S, E, C>>,
    local: SingleFlight<String, (V, DurableOutcome), (DurableError<E>, DurableOutcome)>,
}

impl<S, V, E, C> fmt::Debug for Durable<S, V, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("Durable")
            .field("namespace", &s.namespace)
            .field("retain", &s.retain)
            .field("lease", &s.lease)
            .field("max_run", &s.max_run)
            .field("on_running", &s.on_running)
            .field("on_unavailable", &s.on_unavailable)
            .finish_non_exhaustive()
    }
}

impl<S, V, E, C> Durable<S, V, E, C>
where
    S: Store,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    C: Codec<V> + Codec<E>,
{
    /// One call for `key`, to give options of its own (a fingerprint,
    /// another [`OnRunning`]) or to run detached; see [`Call`].
    pub fn call<'a>(&'a self, key: &'a str) -> Call<'a, S, V, E, C> {
        Call::new(self, key)
    }

    /// Runs `work` for `key` at most once across the processes sharing the
    /// store (see the [module docs](self)), and says how the value came.
    ///
    /// # Errors
    ///
    /// See [`DurableError`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the call of the process's leader drops its work and
    /// releases the key (from a task spawned on the current runtime); the
    /// local waiters take the work over, as with
    /// [`SingleFlight::run`]. A waiter that is dropped disturbs nobody.
    pub async fn run<F, Fut>(
        &self,
        key: &str,
        work: F,
    ) -> (Result<V, DurableError<E>>, DurableOutcome)
    where
        F: FnOnce(Fence) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.call(key).run(work).await
    }

    /// Like [`run`](Self::run), for a call that carries the [`Fingerprint`]
    /// of what it asks for: a key leased or recorded for another
    /// fingerprint answers [`DurableError::Mismatch`], here and in every
    /// process.
    ///
    /// # Errors
    ///
    /// See [`DurableError`].
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](Self::run).
    pub async fn run_with_fingerprint<F, Fut>(
        &self,
        key: &str,
        fingerprint: Fingerprint,
        work: F,
    ) -> (Result<V, DurableError<E>>, DurableOutcome)
    where
        F: FnOnce(Fence) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.call(key).fingerprint(fingerprint).run(work).await
    }
}
