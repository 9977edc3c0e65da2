//! The same contract across processes: a local [`SingleFlight`] in front of
//! a [`Store`].
//!
//! A [`Durable`] call for a key:
//!
//! 1. joins a call of this process already running it (one claim per key
//!    per process, however many duplicates arrive);
//! 2. otherwise claims the key in the store, under a fresh
//!    [`Owner`]. A record there is replayed ([`DurableOutcome::Replayed`]);
//!    another process's live lease is waited for (polling with jittered,
//!    bounded backoff; [`DurableOutcome::Waited`]) or rejected, as
//!    [`OnRunning`] says;
//! 3. with the lease, runs the work while a watchdog renews the lease
//!    every third of it, up to `max_run`. The work gets a [`Fence`]: the
//!    lease's fencing token, and a signal when the lease is lost;
//! 4. completes the record with the encoded value (kept for `retain`), or
//!    with the error if [`record_errors`](DurableBuilder::record_errors)
//!    says so; otherwise releases the key. A panic releases; a caller
//!    dropped mid-work releases from a task of its own.
//!
//! Store errors fail closed: a work whose claim could not be recorded does
//! not run ([`DurableError::Store`]). An unreachable store
//! ([`StoreError::Unavailable`], an ambiguous outcome) is retried under the
//! same owner and lease, which the store protocol makes safe (a claim or a
//! completion whose reply was lost is recognised as the caller's own):
//!
//! * a claim, twice (after 10 and 100 ms), then fails closed;
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

mod codec;
mod error;

use std::convert::Infallible;
use std::fmt;
use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

pub use codec::{Codec, Json};
pub use error::{DurableError, DurableOutcome};

use crate::store::{Claimed, Lease, Owner, Record, Store, StoreError, StoreKey};
use crate::work::run_work;
use crate::{Error, Fingerprint, Outcome, SingleFlight};

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

struct Shared<S, C> {
    store: S,
    codec: C,
    namespace: String,
    retain: Duration,
    lease: Duration,
    max_run: Duration,
    on_running: OnRunning,
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
    shared: Arc<Shared<S, C>>,
    local: SingleFlight<String, (V, DurableOutcome), (DurableError<E>, DurableOutcome)>,
    record_error: Option<RecordError<E>>,
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
            .finish_non_exhaustive()
    }
}

/// Configures a [`Durable`]; from [`Durable::builder`].
#[must_use = "a builder does nothing until `.build()` is called"]
pub struct DurableBuilder<S, V, E, C = Json> {
    store: S,
    codec: C,
    namespace: Option<String>,
    retain: Duration,
    lease: Duration,
    max_run: Option<Duration>,
    on_running: OnRunning,
    record_error: Option<RecordError<E>>,
    _types: PhantomData<fn() -> V>,
}

impl<S, V, E, C> fmt::Debug for DurableBuilder<S, V, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableBuilder")
            .field("namespace", &self.namespace)
            .field("retain", &self.retain)
            .field("lease", &self.lease)
            .field("max_run", &self.max_run)
            .field("on_running", &self.on_running)
            .finish_non_exhaustive()
    }
}

/// An invalid [`DurableBuilder`] setting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurableBuildError {
    /// No `namespace`, or an empty one.
    NoNamespace,
    /// A zero `lease` or `retain`.
    Zero(&'static str),
    /// `max_run` shorter than `lease`.
    MaxRunBelowLease,
}

impl fmt::Display for DurableBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurableBuildError::NoNamespace => f.write_str(
                "a Durable needs a non-empty namespace (.namespace(\"payments\")): it keeps its records apart from other operations'",
            ),
            DurableBuildError::Zero(what) => write!(f, "`{what}` must be longer than zero"),
            DurableBuildError::MaxRunBelowLease => {
                f.write_str("`max_run` must be at least `lease`")
            }
        }
    }
}

impl std::error::Error for DurableBuildError {}

impl<S, V, E> Durable<S, V, E> {
    /// Configures a durable executor on `store`.
    ///
    /// Defaults: `retain` 24 h, `lease` 30 s, `max_run` 10 minutes,
    /// [`OnRunning::Wait`] up to the lease, errors released, [`Json`].
    pub fn builder(store: S) -> DurableBuilder<S, V, E> {
        DurableBuilder {
            store,
            codec: Json,
            namespace: None,
            retain: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(30),
            max_run: None,
            on_running: OnRunning::Wait {
                timeout: Duration::from_secs(30),
            },
            record_error: None,
            _types: PhantomData,
        }
    }
}

impl<S, V, E, C> DurableBuilder<S, V, E, C> {
    /// Keeps these records apart from other operations' (required).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// How long a completed record is replayed.
    pub fn retain(mut self, retain: Duration) -> Self {
        self.retain = retain;
        self
    }

    /// How long a claim holds the key without renewal: how long a crashed
    /// owner blocks its key before another process takes over.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The longest a work is kept alive by renewal; past it the lease is
    /// left to expire: the work's [`Fence`] then reports it lost, and a
    /// work that ends after its lease did is refused its completion
    /// ([`DurableError::LeaseLost`]), whether or not another owner took
    /// the key over meanwhile.
    pub fn max_run(mut self, max_run: Duration) -> Self {
        self.max_run = Some(max_run);
        self
    }

    /// What a call does when another process holds the key.
    pub fn on_running(mut self, on_running: OnRunning) -> Self {
        self.on_running = on_running;
        self
    }

    /// Which errors of the work are recorded and replayed like values (the
    /// operation happened, and failed for good: "card declined"); the
    /// others release the key, so the next call runs again (the default
    /// for every error).
    pub fn record_errors(mut self, record: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.record_error = Some(Arc::new(record));
        self
    }

    /// How values and errors are encoded in records.
    pub fn codec<C2: Codec>(self, codec: C2) -> DurableBuilder<S, V, E, C2> {
        DurableBuilder {
            store: self.store,
            codec,
            namespace: self.namespace,
            retain: self.retain,
            lease: self.lease,
            max_run: self.max_run,
            on_running: self.on_running,
            record_error: self.record_error,
            _types: PhantomData,
        }
    }

    /// The executor.
    ///
    /// # Errors
    ///
    /// A [`DurableBuildError`] naming the first invalid setting.
    pub fn build(self) -> Result<Durable<S, V, E, C>, DurableBuildError>
    where
        S: Store,
        V: Clone,
        E: Clone,
        C: Codec,
    {
        let namespace = self
            .namespace
            .filter(|n| !n.is_empty())
            .ok_or(DurableBuildError::NoNamespace)?;
        if self.lease.is_zero() {
            return Err(DurableBuildError::Zero("lease"));
        }
        if self.retain.is_zero() {
            return Err(DurableBuildError::Zero("retain"));
        }
        let max_run = self.max_run.unwrap_or(Duration::from_secs(600));
        if max_run < self.lease {
            return Err(DurableBuildError::MaxRunBelowLease);
        }
        Ok(Durable {
            shared: Arc::new(Shared {
                store: self.store,
                codec: self.codec,
                namespace,
                retain: self.retain,
                lease: self.lease,
                max_run,
                on_running: self.on_running,
            }),
            local: SingleFlight::new(),
            record_error: self.record_error,
        })
    }
}

impl<S, V, E, C> Durable<S, V, E, C>
where
    S: Store,
    C: Codec,
    V: Clone + Serialize + DeserializeOwned,
    E: Clone + Serialize + DeserializeOwned,
{
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
        self.call(key, None, work).await
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
        self.call(key, Some(fingerprint), work).await
    }

    async fn call<F, Fut>(
        &self,
        key: &str,
        fingerprint: Option<Fingerprint>,
        work: F,
    ) -> (Result<V, DurableError<E>>, DurableOutcome)
    where
        F: FnOnce(Fence) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let lead = || async move {
            let mut how = DurableOutcome::Executed;
            let r = self.lead(key, fingerprint, work, &mut how).await;
            r.map(|v| (v, how)).map_err(|e| (e, how))
        };
        let (r, outcome) = match fingerprint {
            Some(fp) => {
                self.local
                    .run_with_fingerprint_and_outcome(key.to_owned(), fp, lead)
                    .await
            }
            None => {
                let (r, outcome) = self.local.run_by_ref_with_outcome(key, lead).await;
                (r, outcome)
            }
        };
        match r {
            Ok((v, how)) => {
                let how = if outcome == Outcome::Coalesced {
                    DurableOutcome::Coalesced
                } else {
                    how
                };
                (Ok(v), how)
            }
            Err(e) => {
                let (e, how) = match e {
                    Error::Failed(e) => e,
                    Error::Panicked(p) => (DurableError::Panicked(p), DurableOutcome::Executed),
                    Error::Mismatch => (DurableError::Mismatch, DurableOutcome::Coalesced),
                    _ => unreachable!("a coalesce-only local table refuses nothing"),
                };
                let how = if outcome == Outcome::Coalesced {
                    DurableOutcome::Coalesced
                } else {
                    how
                };
                (Err(e), how)
            }
        }
    }

    /// This process's one call for the key: claim, run, complete. `how`
    /// is set when the value (or error) came from a record.
    async fn lead<F, Fut>(
        &self,
        key: &str,
        fingerprint: Option<Fingerprint>,
        work: F,
        how: &mut DurableOutcome,
    ) -> Result<V, DurableError<E>>
    where
        F: FnOnce(Fence) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let s = &*self.shared;
        let sk = StoreKey {
            namespace: &s.namespace,
            key,
        };
        let owner = Owner::random();
        let started = Instant::now();
        let mut backoff = Backoff::new(owner);
        let mut waited = false;
        let (lease, lease_end) = loop {
            // The store's lease ends `ttl` after it received the claim:
            // after `sent` + ttl, never before.
            let sent = Instant::now();
            let claimed = retry(|| s.store.claim(sk, fingerprint, owner, s.lease)).await?;
            match claimed {
                Claimed::Leased(lease) => {
                    let end = sent + lease.ttl;
                    break (lease, end);
                }
                Claimed::Completed(record) => {
                    *how = if waited {
                        DurableOutcome::Waited
                    } else {
                        DurableOutcome::Replayed
                    };
                    return self.replay(sk, &record);
                }
                Claimed::Mismatch => return Err(DurableError::Mismatch),
                Claimed::Running { retry_after } => match s.on_running {
                    OnRunning::Reject => return Err(DurableError::Running { retry_after }),
                    OnRunning::Wait { timeout } => {
                        let left = timeout.saturating_sub(started.elapsed());
                        if left.is_zero() {
                            return Err(DurableError::Running { retry_after });
                        }
                        waited = true;
                        let pause = backoff.next().min(retry_after).min(left);
                        tokio::time::sleep(pause.max(Duration::from_millis(1))).await;
                    }
                },
            }
        };
        let lease_end = Arc::new(LeaseEnd::new(lease_end));
        let mut guard = ReleaseOnDrop {
            shared: Arc::clone(&self.shared),
            key: key.to_owned(),
            lease: Some(lease.clone()),
            end: Arc::clone(&lease_end),
        };
        let (lost_tx, lost_rx) = watch::channel(false);
        let fence = Fence {
            token: lease.fence,
            lost: lost_rx,
        };
        let outcome = {
            let mut work = pin!(run_work(0, || work(fence)));
            let mut watchdog = pin!(watchdog(s, sk, &lease, &lease_end, lost_tx));
            poll_fn(|cx| {
                if let Poll::Ready(r) = work.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                let _ = watchdog.as_mut().poll(cx);
                Poll::Pending
            })
            .await
        };
        let ended = match outcome {
            Ok(Ok(v)) => {
                let body = s.codec.encode(&v).map_err(|e| corrupt(sk, e))?;
                Ending::Complete(codec::frame(codec::KIND_VALUE, body), Ok(v))
            }
            Ok(Err(e)) if self.record_error.as_ref().is_some_and(|r| r(&e)) => {
                let body = s.codec.encode(&e).map_err(|err| corrupt(sk, err))?;
                Ending::Complete(
                    codec::frame(codec::KIND_ERROR, body),
                    Err(DurableError::Failed(e)),
                )
            }
            Ok(Err(e)) => Ending::Release(DurableError::Failed(e)),
            Err(p) => Ending::Release(DurableError::Panicked(p)),
        };
        guard.lease = None;
        let lease_end = lease_end.get();
        match ended {
            Ending::Complete(payload, r) => {
                // The result matters more than the caller's time: an
                // unreachable store (a connection being re-established
                // after a restart, a failover) is retried until the lease
                // ends, after which the completion would be refused.
                let complete = || s.store.complete(sk, &lease, &payload, s.retain);
                match retry_until(lease_end, complete).await {
                    Ok(()) => r,
                    Err(DurableError::Store(e)) if matches!(*e, StoreError::Fenced) => {
                        Err(DurableError::LeaseLost)
                    }
                    Err(e) => Err(e),
                }
            }
            Ending::Release(e) => {
                // Fenced: the key is no longer ours anyway. Unavailable:
                // retried from a task of its own until the lease ends (the
                // key is free again then), so that the caller gets the
                // work's own error now.
                let release = || s.store.release(sk, &lease);
                if let Err(DurableError::Store(err)) = retry::<_, E, _>(release).await {
                    if matches!(*err, StoreError::Unavailable(_)) {
                        guard.lease = Some(lease);
                    }
                }
                Err(e)
            }
        }
    }

    fn replay(&self, key: StoreKey<'_>, record: &Record) -> Result<V, DurableError<E>> {
        let codec = &self.shared.codec;
        let (kind, body) = codec::unframe(&record.payload).map_err(|e| corrupt(key, e))?;
        if kind == codec::KIND_VALUE {
            codec.decode::<V>(body).map_err(|e| corrupt(key, e))
        } else {
            let e = codec.decode::<E>(body).map_err(|e| corrupt(key, e))?;
            Err(DurableError::Failed(e))
        }
    }
}

enum Ending<V, E> {
    Complete(Vec<u8>, Result<V, DurableError<E>>),
    Release(DurableError<E>),
}

fn corrupt<E>(key: StoreKey<'_>, reason: String) -> DurableError<E> {
    DurableError::from(StoreError::Corrupt {
        key: key.to_string(),
        reason,
    })
}

/// Runs a store operation, retrying an [`StoreError::Unavailable`] twice
/// (after 10 and 100 ms) under the same arguments, which the protocol
/// makes safe.
///
/// For a claim, whose caller is waiting for the work to start, and for the
/// first attempts at a release.
async fn retry<T, E, Fut>(mut op: impl FnMut() -> Fut) -> Result<T, DurableError<E>>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut pauses = [10, 100].into_iter().map(Duration::from_millis);
    loop {
        match op().await {
            Err(StoreError::Unavailable(e)) => match pauses.next() {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(StoreError::Unavailable(e).into()),
            },
            r => return r.map_err(DurableError::from),
        }
    }
}

/// Runs a store operation on a lease, retrying a
/// [`StoreError::Unavailable`] under the same arguments (backoff from 10 ms
/// doubling to 500 ms) for as long as the next attempt starts before the
/// lease ends (`end`); at least once.
async fn retry_until<T, E, Fut>(
    end: Instant,
    mut op: impl FnMut() -> Fut,
) -> Result<T, DurableError<E>>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut pause = Duration::from_millis(10);
    loop {
        match op().await {
            Err(StoreError::Unavailable(_)) if Instant::now() + pause < end => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            r => return r.map_err(DurableError::from),
        }
    }
}

/// The local bound of a lease's end: the store's lease ends no earlier.
/// Moved by the watchdog at each renewal, read by the completion.
struct LeaseEnd {
    base: Instant,
    /// Nanoseconds after `base`.
    after: AtomicU64,
}

impl LeaseEnd {
    fn new(end: Instant) -> Self {
        Self {
            base: end,
            after: AtomicU64::new(0),
        }
    }

    fn set(&self, end: Instant) {
        let after = end.saturating_duration_since(self.base).as_nanos();
        self.after
            .store(u64::try_from(after).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn get(&self) -> Instant {
        self.base + Duration::from_nanos(self.after.load(Ordering::Relaxed))
    }
}

/// Renews `lease` every third of the lease, up to `max_run`; signals
/// `lost` when the store refuses, cannot be reached for the rest of the
/// lease, or, past `max_run`, when the last renewal's lease ends. Never
/// completes: it is dropped when the work ends.
async fn watchdog<S: Store, C>(
    s: &Shared<S, C>,
    key: StoreKey<'_>,
    lease: &Lease,
    end: &LeaseEnd,
    lost: watch::Sender<bool>,
) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(s.lease / 3).await;
        if started.elapsed() + s.lease > s.max_run {
            // Past max_run: the lease is left to end, and then is lost.
            tokio::time::sleep_until(end.get()).await;
            let _ = lost.send(true);
            break;
        }
        // The store's lease ends a lease after it received the renewal:
        // after `sent` + lease, never before.
        let sent = Instant::now();
        match s.store.renew(key, lease, s.lease).await {
            Ok(()) => end.set(sent + s.lease),
            Err(StoreError::Unavailable(_)) if Instant::now() < end.get() => {}
            Err(_) => {
                let _ = lost.send(true);
                break;
            }
        }
    }
    std::future::pending::<()>().await;
}

/// Releases a lease, from a task of its own (a `Drop` cannot wait for the
/// store), retrying until the lease ends: the lease of a call dropped
/// mid-work, or one whose release found the store unreachable.
struct ReleaseOnDrop<S: Store, C: Send + Sync + 'static> {
    shared: Arc<Shared<S, C>>,
    key: String,
    lease: Option<Lease>,
    end: Arc<LeaseEnd>,
}

impl<S: Store, C: Send + Sync + 'static> Drop for ReleaseOnDrop<S, C> {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        let key = std::mem::take(&mut self.key);
        let end = self.end.get();
        runtime.spawn(async move {
            let sk = StoreKey {
                namespace: &shared.namespace,
                key: &key,
            };
            let release = || shared.store.release(sk, &lease);
            let _ = retry_until::<_, Infallible, _>(end, release).await;
        });
    }
}

/// Exponential backoff from 10 ms to 1 s, with ±25% jitter so that the
/// waiters of many processes do not poll in step.
struct Backoff {
    next: Duration,
    seed: u64,
}

impl Backoff {
    fn new(owner: Owner) -> Self {
        Self {
            next: Duration::from_millis(10),
            // xorshift needs a non-zero state.
            seed: owner.seed() | 1,
        }
    }

    fn next(&mut self) -> Duration {
        // xorshift64
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = 0.75 + (self.seed % 1000) as f64 / 2000.0;
        let pause = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(Duration::from_secs(1));
        pause
    }
}

/// A store shared by several executors (one per "process" in a test, or
/// several tables of one service).
impl<S: Store> Store for Arc<S> {
    fn claim(
        &self,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> impl Future<Output = Result<Claimed, StoreError>> + Send {
        (**self).claim(key, fingerprint, owner, lease)
    }

    fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).renew(key, lease, ttl)
    }

    fn complete(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        payload: &[u8],
        retain: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).complete(key, lease, payload, retain)
    }

    fn release(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(key, lease)
    }
}
