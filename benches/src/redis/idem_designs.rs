//! idem's designs: [`RedisStore`] alone ([`IdemStore`]: claim + complete
//! through the [`Store`] trait, as a user without the executor would call
//! it), the [`Durable`] executor ([`IdemDurable`]: local coalescing,
//! fencing, renewal, JSON records), and both again over [`OneTripClaim`],
//! a what-if store whose claim skips `RedisStore`'s plain `GET` (the fix
//! this report measures without editing `idem-redis`).
//!
//! Every store is wrapped in [`Tallied`], which counts its operations.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ::redis::{Script, Value};
use idem::durable::{Durable, DurableOutcome, OnRunning};
use idem::store::{Claimed, Lease, Owner, Record, Store, StoreError, StoreKey};
use idem::Fingerprint;
use idem_redis::RedisStore;
use tokio::time::Instant;

use super::{counted, Backoff, Conn, Design, How, Settings, Tally};

/// The namespace of every idem key of the bench.
const NAMESPACE: &str = "bench";

/// A store that counts its operations in a [`Tally`].
#[derive(Debug)]
pub struct Tallied<S> {
    inner: S,
    tally: Arc<Tally>,
}

impl<S: Store> Store for Tallied<S> {
    async fn claim(
        &self,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        Tally::add(&self.tally.claims);
        let claimed = self.inner.claim(key, fingerprint, owner, lease).await;
        if let Ok(Claimed::Running { .. }) = claimed {
            // The caller pauses and claims again: that next claim is a
            // poll, not a call's claim.
            self.tally.claims.fetch_sub(1, Ordering::Relaxed);
            Tally::add(&self.tally.polls);
        }
        claimed
    }

    async fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        Tally::add(&self.tally.renewals);
        self.inner.renew(key, lease, ttl).await
    }

    async fn complete(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        payload: &[u8],
        retain: Duration,
    ) -> Result<(), StoreError> {
        Tally::add(&self.tally.completes);
        self.inner.complete(key, lease, payload, retain).await
    }

    async fn release(&self, key: StoreKey<'_>, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release(key, lease).await
    }
}

/// A store idem's designs run on.
pub trait Backend: Store + Sized {
    /// The name of [`IdemStore`] on this store.
    const STORE: &'static str;
    /// The name of [`IdemDurable`] on this store.
    const DURABLE: &'static str;

    /// The store on `conn`.
    fn open(conn: Conn) -> Self;
}

impl Backend for RedisStore<Conn> {
    const STORE: &'static str = "idem store";
    const DURABLE: &'static str = "idem durable";

    fn open(conn: Conn) -> Self {
        RedisStore::new(conn)
    }
}

impl Backend for OneTripClaim {
    const STORE: &'static str = "idem store, 1-RT claim";
    const DURABLE: &'static str = "idem durable, 1-RT claim";

    fn open(conn: Conn) -> Self {
        Self {
            inner: RedisStore::new(conn.clone()),
            conn,
        }
    }
}

async fn open<B: Backend>(url: &str, tally: Arc<Tally>) -> Tallied<B> {
    Tallied {
        inner: B::open(counted(url, Arc::clone(&tally)).await),
        tally,
    }
}

/// `RedisStore` (or another [`Backend`]) alone: a claim, the work and a
/// completion per first execution; a record replayed; a key running
/// elsewhere polled with the executor's backoff. No local coalescing, no
/// renewal.
#[derive(Debug)]
pub struct IdemStore<B> {
    store: Tallied<B>,
    settings: Settings,
}

impl<B: Backend> Design for IdemStore<B> {
    fn name() -> &'static str {
        B::STORE
    }

    async fn connect(url: &str, settings: Settings, tally: Arc<Tally>) -> Self {
        Self {
            store: open(url, tally).await,
            settings,
        }
    }

    async fn call<F, Fut>(&self, key: &str, work: F) -> Result<(String, How), String>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = String> + Send,
    {
        let sk = StoreKey {
            namespace: NAMESPACE,
            key,
        };
        let owner = Owner::random();
        let started = Instant::now();
        let mut backoff = Backoff::new(super::seed());
        let mut waited = false;
        loop {
            let claimed = self
                .store
                .claim(sk, None, owner, self.settings.lease)
                .await
                .map_err(|e| e.to_string())?;
            match claimed {
                Claimed::Leased(lease) => {
                    let value = work().await;
                    self.store
                        .complete(sk, &lease, value.as_bytes(), self.settings.retain)
                        .await
                        .map_err(|e| e.to_string())?;
                    return Ok((value, How::Executed));
                }
                Claimed::Completed(record) => {
                    let value = String::from_utf8(record.payload).map_err(|e| e.to_string())?;
                    let how = if waited { How::Waited } else { How::Replayed };
                    return Ok((value, how));
                }
                Claimed::Running { retry_after } => {
                    if started.elapsed() > self.settings.wait {
                        return Err(format!("{sk} still running after {:?}", started.elapsed()));
                    }
                    waited = true;
                    let pause = backoff.next_pause().min(retry_after);
                    tokio::time::sleep(pause.max(Duration::from_millis(1))).await;
                }
                other => return Err(format!("{sk}: unexpected {other:?}")),
            }
        }
    }
}

/// The [`Durable`] executor on `RedisStore` (or another [`Backend`]):
/// one claim per key per process, the lease renewed every third of it,
/// JSON records, waits polled by one call per process.
pub struct IdemDurable<B> {
    durable: Durable<Tallied<B>, String, String>,
}

impl<B> std::fmt::Debug for IdemDurable<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdemDurable")
            .field("durable", &self.durable)
            .finish()
    }
}

impl<B: Backend> Design for IdemDurable<B> {
    fn name() -> &'static str {
        B::DURABLE
    }

    async fn connect(url: &str, settings: Settings, tally: Arc<Tally>) -> Self {
        let durable = Durable::builder(open(url, tally).await)
            .namespace(NAMESPACE)
            .retain(settings.retain)
            .lease(settings.lease)
            .on_running(OnRunning::Wait {
                timeout: settings.wait,
            })
            .build()
            .expect("valid Durable settings");
        Self { durable }
    }

    async fn call<F, Fut>(&self, key: &str, work: F) -> Result<(String, How), String>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = String> + Send,
    {
        let (r, outcome) = self
            .durable
            .run(key, |_fence| async move { Ok::<_, String>(work().await) })
            .await;
        let how = match outcome {
            DurableOutcome::Executed => How::Executed,
            DurableOutcome::Coalesced => How::Coalesced,
            DurableOutcome::Replayed => How::Replayed,
            DurableOutcome::Waited => How::Waited,
            other => return Err(format!("unexpected outcome {other:?}")),
        };
        r.map(|v| (v, how)).map_err(|e| e.to_string())
    }
}

/// idem-redis's own claim script (`idem-redis/src/scripts.rs`): the
/// what-if store sends it at once, without `RedisStore::claim`'s plain
/// `GET` first.
static CLAIM_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(idem_redis::__CLAIM_SCRIPT));

/// What `RedisStore` would be with a claim of one round trip: its claim
/// script sent at once (it reads the record first anyway), so a first
/// execution costs two round trips instead of three, and a replay one
/// `EVALSHA` instead of one `GET`. Renewal, completion and release are
/// `RedisStore`'s own. Without fingerprints, corrupt-entry reports and
/// `WAIT`: enough for the bench, not a store to use.
#[derive(Debug)]
pub struct OneTripClaim {
    inner: RedisStore<Conn>,
    conn: Conn,
}

impl Store for OneTripClaim {
    async fn claim(
        &self,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        let unavailable = |e: String| StoreError::Unavailable(e.into());
        let reply: Value = CLAIM_SCRIPT
            .key(self.inner.record_key(key))
            .key(self.inner.lease_key(key))
            .key(self.inner.fence_key(key))
            .arg(owner.to_hex())
            .arg(fingerprint.map_or(0, Fingerprint::get))
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let bad = || unavailable(format!("unexpected claim reply {reply:?}"));
        let Value::Array(items) = &reply else {
            return Err(bad());
        };
        match items.as_slice() {
            [Value::BulkString(tag), Value::BulkString(rec)] if tag == b"record" => {
                let nl = rec.iter().position(|&b| b == b'\n').ok_or_else(bad)?;
                let fence = std::str::from_utf8(&rec[..nl])
                    .ok()
                    .and_then(|h| h.split(' ').nth(1)?.parse().ok())
                    .ok_or_else(bad)?;
                Ok(Claimed::Completed(Record {
                    fence,
                    payload: rec[nl + 1..].to_vec(),
                }))
            }
            [Value::BulkString(tag), Value::BulkString(fence), Value::Int(ms)]
                if tag == b"leased" =>
            {
                let fence = std::str::from_utf8(fence)
                    .ok()
                    .and_then(|f| f.parse().ok())
                    .ok_or_else(bad)?;
                Ok(Claimed::Leased(Lease {
                    fence,
                    owner,
                    ttl: Duration::from_millis(u64::try_from(*ms).unwrap_or(0)),
                }))
            }
            [Value::BulkString(tag), Value::Int(ms)] if tag == b"running" => Ok(Claimed::Running {
                retry_after: Duration::from_millis(u64::try_from(*ms).unwrap_or(0)),
            }),
            [Value::BulkString(tag)] if tag == b"mismatch" => Ok(Claimed::Mismatch),
            _ => Err(bad()),
        }
    }

    fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.renew(key, lease, ttl)
    }

    fn complete(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        payload: &[u8],
        retain: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.complete(key, lease, payload, retain)
    }

    fn release(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.release(key, lease)
    }
}
