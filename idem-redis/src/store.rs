//! [`RedisStore`]: the store protocol on Redis.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use idem::store::{Claimed, Lease, Owner, Store, StoreError, StoreKey};
use idem::Fingerprint;
use redis::aio::ConnectionLike;
use redis::{RedisError, Value};

use crate::keys::Keys;
use crate::record;
use crate::scripts::{CLAIM_SCRIPT, COMPLETE_SCRIPT, RELEASE_SCRIPT, RENEW_SCRIPT};

/// The longest time the store sets, in milliseconds (about 1,100 years):
/// sums of two of them stay exact in the scripts' doubles, and within what
/// Redis accepts for `PX`.
const MAX_MS: u64 = 1 << 45;

/// The [`Store`] protocol on Redis, standalone or Cluster, over a
/// connection of the caller's: a [`ConnectionManager`] (reconnects: the
/// one to use on a standalone server), a [`ClusterConnection`], a
/// [`MultiplexedConnection`] (never reconnects), or anything else that is
/// a [`redis::aio::ConnectionLike`] and cheap to clone; see
/// [*Which connection*](crate#which-connection).
///
/// See the [crate docs](crate) for how it works, the keys it writes, and
/// what a restart or a failover of the server means for it.
///
/// ```no_run
/// use std::time::Duration;
/// use idem::store::{Claimed, Owner, Store, StoreKey};
/// use idem_redis::RedisStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let client = redis::Client::open("redis://127.0.0.1:6379/?protocol=resp3")?;
/// let store = RedisStore::new(client.get_connection_manager().await?).prefix("shop");
///
/// let key = StoreKey { namespace: "payments", key: "order-7" };
/// match store.claim(key, None, Owner::random(), Duration::from_secs(30)).await? {
///     Claimed::Leased(lease) => {
///         // ... charge, passing `lease.fence` to the payment service ...
///         store.complete(key, &lease, b"receipt-1", Duration::from_secs(86_400)).await?;
///     }
///     Claimed::Completed(record) => println!("replayed: {:?}", record.payload),
///     Claimed::Running { retry_after } => println!("running elsewhere, retry in {retry_after:?}"),
///     Claimed::Mismatch => println!("order-7 was used for another request"),
///     _ => {}
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Errors and retries
///
/// A connection error, a timeout of the connection's own (redis-rs's
/// response timeout), or a server error such as `READONLY` after a
/// failover gives [`StoreError::Unavailable`], wrapping the
/// [`RedisError`]. The outcome is then **ambiguous**: the command may have
/// run on the server and only its reply been lost. Every method is safe to
/// retry with the same owner and lease: a claim finds its own lease and
/// gets it back, a completion finds its own record and succeeds, a renewal
/// renews again, and a release finds the key released
/// ([`StoreError::Fenced`]) or releases it.
///
/// Bytes under a key that this version cannot read (another program's, a
/// newer format's, a value of another Redis type) give
/// [`StoreError::Corrupt`], naming the idem key and the Redis key.
///
/// # Cancel safety
///
/// Dropping a future of this store after its command was sent is the same
/// ambiguity as a lost reply: the script may or may not have run. Retry
/// under the same owner and lease, or let the lease expire.
///
/// [`MultiplexedConnection`]: redis::aio::MultiplexedConnection
/// [`ConnectionManager`]: redis::aio::ConnectionManager
/// [`ClusterConnection`]: redis::cluster_async::ClusterConnection
#[derive(Clone)]
#[must_use]
pub struct RedisStore<C> {
    conn: C,
    prefix: Arc<str>,
    replicas: Option<Replicas>,
}

#[derive(Debug, Clone, Copy)]
struct Replicas {
    count: u32,
    timeout_ms: u64,
}

impl<C> fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("replicas", &self.replicas)
            .finish_non_exhaustive()
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A store on `conn`, with keys under the prefix `idem` and no `WAIT`
    /// for replicas.
    ///
    /// Each call clones `conn`: pass a connection whose clones share one
    /// connection or pool (all redis-rs async connections do).
    pub fn new(conn: C) -> Self {
        Self {
            conn,
            prefix: Arc::from("idem"),
            replicas: None,
        }
    }

    /// Puts every key under `prefix` (`<prefix>:{<namespace>:<key>}:r`),
    /// instead of `idem`, to keep applications sharing a server apart.
    ///
    /// # Panics
    ///
    /// If `prefix` contains `{` or `}`: Redis Cluster would hash the keys
    /// of every namespace by the prefix, all into one slot.
    pub fn prefix(mut self, prefix: &str) -> Self {
        assert!(
            !prefix.contains(['{', '}']),
            "an idem-redis key prefix cannot contain braces (it would be the cluster hash tag of every key): {prefix:?}"
        );
        self.prefix = Arc::from(prefix);
        self
    }

    /// After every claim that returns a lease and every completion, waits
    /// (`WAIT count timeout`) until `count` replicas have acknowledged the
    /// write, or `timeout` has passed (rounded up to a millisecond; at
    /// least one, as `WAIT 0` would block forever).
    ///
    /// Replication in Redis is asynchronous: without this, a primary that
    /// fails right after a claim or a completion may not have passed it
    /// on, and the replica that takes over knows nothing of it: a second
    /// caller gets a lease and runs the work again, or a completed key is
    /// run again. With it, a write that reached `count` replicas survives
    /// the failover of its primary to one of them (Redis still promises
    /// no more: a replica that did not acknowledge can be promoted, so
    /// pair this with `min-replicas-to-write` on the servers). A `WAIT`
    /// that times out with fewer acknowledgements gives
    /// [`StoreError::Unavailable`] wrapping a [`NotReplicated`]: the write
    /// happened on the primary but may be lost, and a retry with the same
    /// owner and lease waits again.
    ///
    /// `WAIT` waits for every write sent before it on the same connection,
    /// so a connection shared by many tasks waits for theirs too. On a
    /// cluster, redis-rs sends `WAIT` to every primary and answers with the
    /// smallest count: every primary needs `count` replicas.
    pub fn wait_for_replicas(mut self, count: u32, timeout: Duration) -> Self {
        self.replicas = Some(Replicas {
            count,
            timeout_ms: millis(timeout),
        });
        self
    }

    /// The Redis key of `key`'s record: delete it to make the next claim
    /// run the work again.
    pub fn record_key(&self, key: StoreKey<'_>) -> String {
        Keys::new(&self.prefix, key).record
    }

    /// The Redis key of `key`'s lease.
    pub fn lease_key(&self, key: StoreKey<'_>) -> String {
        Keys::new(&self.prefix, key).lease
    }

    /// The Redis key of the last fencing token issued for `key`.
    pub fn fence_key(&self, key: StoreKey<'_>) -> String {
        Keys::new(&self.prefix, key).fence
    }

    async fn wait_for_replication(&self, conn: &mut C) -> Result<(), StoreError> {
        let Some(r) = self.replicas else {
            return Ok(());
        };
        let acked: i64 = redis::cmd("WAIT")
            .arg(r.count)
            .arg(r.timeout_ms)
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        if acked < i64::from(r.count) {
            return Err(StoreError::Unavailable(Box::new(NotReplicated {
                acked: u64::try_from(acked).unwrap_or(0),
                wanted: r.count,
            })));
        }
        Ok(())
    }
}

impl<C: Clone> RedisStore<C> {
    /// The prefix of every Redis key of this store.
    pub(crate) fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// A handle on the connection (a clone: connections are shared handles).
    pub(crate) fn connection(&self) -> C {
        self.conn.clone()
    }
}

impl<C> Store for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn claim(
        &self,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        let keys = Keys::new(&self.prefix, key);
        let fp = fingerprint.map_or(0, Fingerprint::get);
        let mut conn = self.conn.clone();
        // The fast path: a replay is this one command.
        let record: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&keys.record)
            .query_async(&mut conn)
            .await
            .map_err(|e| classify(e, key, &keys))?;
        if let Some(bytes) = record {
            return replay(key, &keys.record, &bytes, fp);
        }
        let lease_ms = millis(lease);
        let reply: Value = CLAIM_SCRIPT
            .key(&keys.record)
            .key(&keys.lease)
            .key(&keys.fence)
            .arg(owner.to_hex())
            .arg(fp)
            .arg(lease_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| classify(e, key, &keys))?;
        let claimed = parse_claim(key, &keys, reply, owner, fp)?;
        if matches!(claimed, Claimed::Leased(_)) {
            self.wait_for_replication(&mut conn).await?;
        }
        Ok(claimed)
    }

    async fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let keys = Keys::new(&self.prefix, key);
        let mut conn = self.conn.clone();
        let done: Value = RENEW_SCRIPT
            .key(&keys.lease)
            .key(&keys.fence)
            .arg(lease.fence)
            .arg(lease.owner.to_hex())
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| classify(e, key, &keys))?;
        fenced_unless_done(done)
    }

    async fn complete(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        payload: &[u8],
        retain: Duration,
    ) -> Result<(), StoreError> {
        let keys = Keys::new(&self.prefix, key);
        let mut conn = self.conn.clone();
        let done: Value = COMPLETE_SCRIPT
            .key(&keys.record)
            .key(&keys.lease)
            .key(&keys.fence)
            .arg(lease.fence)
            .arg(lease.owner.to_hex())
            .arg(millis(retain))
            .arg(payload)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| classify(e, key, &keys))?;
        fenced_unless_done(done)?;
        self.wait_for_replication(&mut conn).await
    }

    async fn release(&self, key: StoreKey<'_>, lease: &Lease) -> Result<(), StoreError> {
        let keys = Keys::new(&self.prefix, key);
        let mut conn = self.conn.clone();
        let done: Value = RELEASE_SCRIPT
            .key(&keys.lease)
            .arg(lease.fence)
            .arg(lease.owner.to_hex())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| classify(e, key, &keys))?;
        fenced_unless_done(done)
    }
}

/// A `WAIT` for replicas that timed out with fewer acknowledgements than
/// [`RedisStore::wait_for_replicas`] asks for; wrapped in
/// [`StoreError::Unavailable`].
///
/// The write it followed happened on the primary, and may be lost if the
/// primary fails before a replica receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotReplicated {
    /// How many replicas acknowledged the write in time.
    pub acked: u64,
    /// How many were asked for.
    pub wanted: u32,
}

impl fmt::Display for NotReplicated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of the {} replicas asked for acknowledged the write in time: it may be lost if the primary fails",
            self.acked, self.wanted
        )
    }
}

impl std::error::Error for NotReplicated {}

/// A duration in whole milliseconds, rounded up, within `1..=MAX_MS`.
fn millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(MAX_MS).clamp(1, MAX_MS)
}

/// Milliseconds from `PTTL`; -1 (no expiry) and -2 (gone) as zero.
fn ttl(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// A Redis error as a store error: a value of another type under one of
/// the key's Redis keys is corrupt; everything else may have been
/// transient.
fn classify(e: RedisError, key: StoreKey<'_>, keys: &Keys) -> StoreError {
    if e.code() == Some("WRONGTYPE") {
        return StoreError::Corrupt {
            key: key.to_string(),
            reason: format!(
                "one of its Redis keys ({:?}, {:?}, {:?}) holds a value of another Redis type: {e}",
                keys.record, keys.lease, keys.fence
            ),
        };
    }
    unavailable(e)
}

fn unexpected(what: &str, reply: &Value) -> StoreError {
    StoreError::Unavailable(
        format!("unexpected reply from Redis to the {what} script: {reply:?}").into(),
    )
}

/// A record found by a claim, replayed unless its fingerprint differs.
fn replay(
    key: StoreKey<'_>,
    redis_key: &str,
    bytes: &[u8],
    fp: u64,
) -> Result<Claimed, StoreError> {
    let stored = record::parse(bytes).map_err(|reason| StoreError::Corrupt {
        key: key.to_string(),
        reason: format!("the record {redis_key:?} is not readable: {reason}"),
    })?;
    Ok(if fingerprints_match(stored.fingerprint, fp) {
        Claimed::Completed(stored.record)
    } else {
        Claimed::Mismatch
    })
}

/// Whether an entry stored with fingerprint `stored` may answer a call
/// with `call` (0 for none, on either side), as the scripts decide.
fn fingerprints_match(stored: u64, call: u64) -> bool {
    stored == call || stored == 0 || call == 0
}

fn parse_claim(
    key: StoreKey<'_>,
    keys: &Keys,
    reply: Value,
    owner: Owner,
    fp: u64,
) -> Result<Claimed, StoreError> {
    let items = match reply {
        Value::Array(items) => items,
        other => return Err(unexpected("claim", &other)),
    };
    let bad = |items: &[Value]| unexpected("claim", &Value::Array(items.to_vec()));
    let Some(tag) = items.first().and_then(text) else {
        return Err(bad(&items));
    };
    match (tag.as_slice(), &items[1..]) {
        (b"record", [rec]) => match text(rec) {
            Some(bytes) => replay(key, &keys.record, &bytes, fp),
            None => Err(bad(&items)),
        },
        (b"leased", [fence, ms]) => {
            let fence = text(fence)
                .and_then(|f| std::str::from_utf8(&f).ok()?.parse::<u64>().ok())
                .ok_or_else(|| bad(&items))?;
            let Value::Int(ms) = *ms else {
                return Err(bad(&items));
            };
            Ok(Claimed::Leased(Lease {
                fence,
                owner,
                ttl: ttl(ms),
            }))
        }
        (b"running", [Value::Int(ms)]) => Ok(Claimed::Running {
            retry_after: ttl(*ms),
        }),
        (b"mismatch", []) => Ok(Claimed::Mismatch),
        (b"corrupt", [redis_key, bytes]) => {
            let redis_key = text(redis_key).unwrap_or_default();
            let bytes = text(bytes).unwrap_or_default();
            let what = if redis_key == keys.fence.as_bytes() {
                "fencing token"
            } else {
                "lease"
            };
            Err(StoreError::Corrupt {
                key: key.to_string(),
                reason: format!(
                    "the {what} {:?} is not one idem-redis writes: \"{}\"",
                    String::from_utf8_lossy(&redis_key),
                    bytes[..bytes.len().min(64)].escape_ascii()
                ),
            })
        }
        _ => Err(bad(&items)),
    }
}

/// A string reply's bytes.
fn text(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

/// The reply of renew, complete and release: 1 done, 0 fenced.
fn fenced_unless_done(reply: Value) -> Result<(), StoreError> {
    match reply {
        Value::Int(1) => Ok(()),
        Value::Int(0) => Err(StoreError::Fenced),
        other => Err(unexpected("renew, complete or release", &other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_whole_milliseconds_within_bounds() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_micros(1_001)), 2);
        assert_eq!(millis(Duration::from_millis(400)), 400);
        assert_eq!(millis(Duration::MAX), MAX_MS);
    }

    /// A connection that answers nothing: enough to build a store.
    #[derive(Clone)]
    struct NoConnection;

    impl ConnectionLike for NoConnection {
        fn req_packed_command<'a>(
            &'a mut self,
            _: &'a redis::Cmd,
        ) -> redis::RedisFuture<'a, Value> {
            unreachable!()
        }
        fn req_packed_commands<'a>(
            &'a mut self,
            _: &'a redis::Pipeline,
            _: usize,
            _: usize,
        ) -> redis::RedisFuture<'a, Vec<Value>> {
            unreachable!()
        }
        fn get_db(&self) -> i64 {
            0
        }
    }

    #[test]
    #[should_panic = "cannot contain braces"]
    fn a_prefix_with_braces_is_refused() {
        let _ = RedisStore::new(NoConnection).prefix("app{1}");
    }

    #[test]
    fn a_prefix_replaces_idem() {
        let store = RedisStore::new(NoConnection).prefix("shop");
        let key = StoreKey {
            namespace: "payments",
            key: "order-7",
        };
        assert_eq!(store.record_key(key), "shop:{payments:order-7}:r");
        assert_eq!(store.lease_key(key), "shop:{payments:order-7}:l");
        assert_eq!(store.fence_key(key), "shop:{payments:order-7}:f");
    }
}
