//! One process's execution of a key: claim, run under a renewed lease,
//! complete or release, with every store operation retried as the store
//! protocol allows.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::codec::{self, Codec};
use super::{DurableError, DurableOutcome, Fence, OnRunning, OnUnavailable, Shared};
use crate::store::{Claimed, Lease, Owner, Record, Store, StoreError, StoreKey};
use crate::work::run_work;
use crate::Fingerprint;

/// What one call asks of the store, beyond its key.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ask {
    pub(super) fingerprint: Option<Fingerprint>,
    pub(super) on_running: OnRunning,
}

impl<S, E, C> Shared<S, E, C>
where
    S: Store,
    E: Send + Sync + 'static,
    C: Codec<E>,
{
    /// This process's one call for the key: claim, run, complete. `how`
    /// says where the value (or error) came from.
    pub(super) async fn lead<V, F, Fut>(
        self: &Arc<Self>,
        key: &str,
        ask: Ask,
        work: F,
        how: &mut DurableOutcome,
    ) -> Result<V, DurableError<E>>
    where
        C: Codec<V>,
        F: FnOnce(Fence) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let sk = StoreKey {
            namespace: &self.namespace,
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
            let claimed =
                match retry(|| self.store.claim(sk, ask.fingerprint, owner, self.lease)).await {
                    Ok(claimed) => claimed,
                    Err(DurableError::Store(e))
                        if matches!(*e, StoreError::Unavailable(_))
                            && self.on_unavailable == OnUnavailable::FailOpen =>
                    {
                        *how = DurableOutcome::FailedOpen;
                        return unguarded(work).await;
                    }
                    Err(e) => return Err(e),
                };
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
                Claimed::Running { retry_after } => match ask.on_running {
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
            shared: Arc::clone(self),
            key,
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
            let mut watchdog = pin!(watchdog(self, sk, &lease, &lease_end, lost_tx));
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
                let body = Codec::<V>::encode(&self.codec, &v).map_err(|e| corrupt(sk, e))?;
                Ending::Complete(codec::frame(codec::KIND_VALUE, body), Ok(v))
            }
            Ok(Err(e)) if self.record_error.as_ref().is_some_and(|r| r(&e)) => {
                let body = Codec::<E>::encode(&self.codec, &e).map_err(|err| corrupt(sk, err))?;
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
                let complete = || self.store.complete(sk, &lease, &payload, self.retain);
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
                let release = || self.store.release(sk, &lease);
                if let Err(DurableError::Store(err)) = retry::<_, E, _>(release).await {
                    if matches!(*err, StoreError::Unavailable(_)) {
                        guard.lease = Some(lease);
                    }
                }
                Err(e)
            }
        }
    }

    /// The key's record, if the store shows it without a claim
    /// ([`Store::lookup`]): a replay that needs no owner, no task and no
    /// claim. Anything else (no record, a lease, a mismatch, an error) is
    /// left to [`lead`](Self::lead), which answers it as ever.
    pub(super) async fn lookup<V>(
        &self,
        key: &str,
        fingerprint: Option<Fingerprint>,
    ) -> Option<Result<V, DurableError<E>>>
    where
        C: Codec<V>,
    {
        let sk = StoreKey {
            namespace: &self.namespace,
            key,
        };
        match self.store.lookup(sk, fingerprint).await {
            Ok(Some(Claimed::Completed(record))) => Some(self.replay(sk, &record)),
            _ => None,
        }
    }

    fn replay<V>(&self, key: StoreKey<'_>, record: &Record) -> Result<V, DurableError<E>>
    where
        C: Codec<V>,
    {
        let (kind, body) = codec::unframe(&record.payload).map_err(|e| corrupt(key, e))?;
        if kind == codec::KIND_VALUE {
            Codec::<V>::decode(&self.codec, body).map_err(|e| corrupt(key, e))
        } else {
            let e = Codec::<E>::decode(&self.codec, body).map_err(|e| corrupt(key, e))?;
            Err(DurableError::Failed(e))
        }
    }
}

/// Runs `work` with no lease, for a table that fails open: its fence is 0
/// (below every token a store issues, so a downstream check refuses its
/// writes if it has any) and reports the lease lost, since nothing will be
/// recorded.
async fn unguarded<V, E, F, Fut>(work: F) -> Result<V, DurableError<E>>
where
    F: FnOnce(Fence) -> Fut,
    Fut: Future<Output = Result<V, E>>,
{
    let (_lost, lost) = watch::channel(true);
    match run_work(0, || work(Fence { token: 0, lost })).await {
        Ok(r) => r.map_err(DurableError::Failed),
        Err(p) => Err(DurableError::Panicked(p)),
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
/// Moved by the watchdog at each renewal, read by the completion and by a
/// release from a task of its own.
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
async fn watchdog<S: Store, E, C>(
    s: &Shared<S, E, C>,
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
struct ReleaseOnDrop<'k, S: Store, E: Send + Sync + 'static, C: Send + Sync + 'static> {
    shared: Arc<Shared<S, E, C>>,
    /// Copied only when a release must be spawned.
    key: &'k str,
    lease: Option<Lease>,
    end: Arc<LeaseEnd>,
}

impl<S: Store, E: Send + Sync + 'static, C: Send + Sync + 'static> Drop
    for ReleaseOnDrop<'_, S, E, C>
{
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        let key = self.key.to_owned();
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
