//! [`MemoryStore`]: the store protocol in this process's memory.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hashbrown::hash_table::{HashTable, OccupiedEntry};
use parking_lot::Mutex;
use tokio::time::Instant;

use super::{Claimed, Lease, Owner, Record, Store, StoreError, StoreKey, Token, TokenStore};
use crate::fingerprint;
use crate::{Fingerprint, RandomState};

/// The [`Store`] protocol in memory: for one process, for tests, and as
/// the embedded default when no server is configured.
///
/// Leases and records expire on tokio's clock, so a paused test clock
/// (`tokio::time::pause`) drives them. Fencing tokens come from one counter
/// per store, so they only grow, for every key, across expiries. The
/// entries are split into shards by key hash (SipHash with random keys,
/// as the table's): claims of different keys rarely wait for each other.
/// Expired entries are removed when their key is next claimed, and those
/// of a shard all at once whenever it has doubled since its last purge, so
/// memory follows the live entries and a purge pauses one shard's claims
/// only, for a time proportional to that shard.
///
/// It shares nothing across processes: a second process has a store of
/// its own. Use a Redis or PostgreSQL store for that.
///
/// ```
/// use std::time::Duration;
/// use idem::store::{Claimed, MemoryStore, Owner, Store, StoreKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), idem::store::StoreError> {
/// let store = MemoryStore::new();
/// let key = StoreKey { namespace: "payments", key: "order-7" };
/// let lease = match store.claim(key, None, Owner::random(), Duration::from_secs(30)).await? {
///     Claimed::Leased(lease) => lease,
///     other => panic!("the key was free: {other:?}"),
/// };
/// store.complete(key, &lease, b"receipt", Duration::from_secs(3600)).await?;
/// let again = store.claim(key, None, Owner::random(), Duration::from_secs(30)).await?;
/// assert!(matches!(again, Claimed::Completed(r) if r.payload == b"receipt"));
/// # Ok(())
/// # }
/// ```
pub struct MemoryStore {
    /// The entries, split by key hash so that claims of different keys
    /// rarely meet on a lock, and a purge or a resize pauses one shard
    /// only.
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// The last fencing token issued, for any key.
    fence: AtomicU64,
    /// Unspent tokens, by scope and token, with their expiry.
    tokens: Mutex<HashMap<(String, Token), Instant>>,
}

/// Shards of a store: enough that a purge touches a small part of the
/// entries, few enough that an empty store stays small.
const SHARDS: usize = 64;

#[derive(Default)]
struct Shard {
    entries: HashTable<Entry>,
    /// Entries after the last purge.
    purged_at: usize,
}

struct Entry {
    hash: u64,
    namespace: Box<str>,
    key: Box<str>,
    fingerprint: u64,
    until: Instant,
    slot: Slot,
}

#[derive(Debug)]
enum Slot {
    Leased { fence: u64, owner: Owner },
    Completed(Record),
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            fence: AtomicU64::new(0),
            tokens: Mutex::default(),
        }
    }

    /// The key's hash and shard.
    fn shard(&self, key: StoreKey<'_>) -> (u64, &Mutex<Shard>) {
        let hash = self.hasher.hash_one((key.namespace, key.key));
        // The low bits pick the bucket inside the shard and the top 7 its
        // control byte: the shard is picked by bits of neither.
        (hash, &self.shards[(hash >> 32) as usize % SHARDS])
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: usize = self.shards.iter().map(|s| s.lock().entries.len()).sum();
        f.debug_struct("MemoryStore")
            .field("entries", &entries)
            .field("fence", &self.fence.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Shard {
    /// The key's entry in the map, if it has not expired; an expired one
    /// is removed.
    fn entry(
        &mut self,
        hash: u64,
        key: StoreKey<'_>,
        now: Instant,
    ) -> Option<OccupiedEntry<'_, Entry>> {
        let is_key = |e: &Entry| *e.key == *key.key && *e.namespace == *key.namespace;
        match self.entries.find_entry(hash, is_key) {
            Ok(e) if e.get().until <= now => {
                e.remove();
                None
            }
            Ok(e) => Some(e),
            Err(_) => None,
        }
    }

    /// The key's entry, if it has not expired; an expired one is removed.
    fn live(&mut self, hash: u64, key: StoreKey<'_>, now: Instant) -> Option<&mut Entry> {
        self.entry(hash, key, now).map(OccupiedEntry::into_mut)
    }

    /// Removes every expired entry once the shard has doubled since the
    /// last purge: O(1) per insert, amortised.
    fn purge_if_grown(&mut self, now: Instant) {
        if self.entries.len() > 2 * self.purged_at.max(64) {
            self.entries.retain(|e| e.until > now);
            self.purged_at = self.entries.len();
        }
    }

    /// The live lease `lease` names, if it is the key's.
    fn lease_of(
        &mut self,
        hash: u64,
        key: StoreKey<'_>,
        lease: &Lease,
        now: Instant,
    ) -> Option<OccupiedEntry<'_, Entry>> {
        self.entry(hash, key, now).filter(|e| e.get().holds(lease))
    }
}

impl Entry {
    /// Whether this entry is `lease`.
    fn holds(&self, lease: &Lease) -> bool {
        matches!(self.slot, Slot::Leased { fence, owner } if fence == lease.fence && owner == lease.owner)
    }
}

impl Store for MemoryStore {
    async fn claim(
        &self,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        let fp = fingerprint::raw(fingerprint);
        let now = Instant::now();
        let (hash, shard) = self.shard(key);
        let mut shard = shard.lock();
        if let Some(e) = shard.live(hash, key, now) {
            if !fingerprint::matches(e.fingerprint, fp) {
                return Ok(Claimed::Mismatch);
            }
            let left = e.until - now;
            return Ok(match &e.slot {
                Slot::Completed(record) => Claimed::Completed(record.clone()),
                Slot::Leased { fence, owner: o } if *o == owner => Claimed::Leased(Lease {
                    fence: *fence,
                    owner,
                    ttl: left,
                }),
                Slot::Leased { .. } => Claimed::Running { retry_after: left },
            });
        }
        // Under the shard's lock: the key's tokens grow in claim order.
        let fence = self.fence.fetch_add(1, Ordering::Relaxed) + 1;
        shard.purge_if_grown(now);
        shard.entries.insert_unique(
            hash,
            Entry {
                hash,
                namespace: key.namespace.into(),
                key: key.key.into(),
                fingerprint: fp,
                until: now + lease,
                slot: Slot::Leased { fence, owner },
            },
            |e| e.hash,
        );
        Ok(Claimed::Leased(Lease {
            fence,
            owner,
            ttl: lease,
        }))
    }

    async fn lookup(
        &self,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
    ) -> Result<Option<Claimed>, StoreError> {
        let fp = fingerprint::raw(fingerprint);
        let now = Instant::now();
        let (hash, shard) = self.shard(key);
        let mut shard = shard.lock();
        Ok(shard.live(hash, key, now).and_then(|e| {
            if !fingerprint::matches(e.fingerprint, fp) {
                return Some(Claimed::Mismatch);
            }
            match &e.slot {
                Slot::Completed(record) => Some(Claimed::Completed(record.clone())),
                Slot::Leased { .. } => None,
            }
        }))
    }

    async fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let (hash, shard) = self.shard(key);
        let mut shard = shard.lock();
        let mut e = shard
            .lease_of(hash, key, lease, now)
            .ok_or(StoreError::Fenced)?;
        e.get_mut().until = now + ttl;
        Ok(())
    }

    async fn complete(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        payload: &[u8],
        retain: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let (hash, shard) = self.shard(key);
        let mut shard = shard.lock();
        let Some(e) = shard.live(hash, key, now) else {
            return Err(StoreError::Fenced);
        };
        if e.holds(lease) {
            e.until = now + retain;
            e.slot = Slot::Completed(Record {
                fence: lease.fence,
                payload: payload.to_vec(),
            });
            return Ok(());
        }
        match &e.slot {
            // A retried completion whose first attempt went through.
            Slot::Completed(r) if r.fence == lease.fence => Ok(()),
            _ => Err(StoreError::Fenced),
        }
    }

    async fn release(&self, key: StoreKey<'_>, lease: &Lease) -> Result<(), StoreError> {
        let now = Instant::now();
        let (hash, shard) = self.shard(key);
        let mut shard = shard.lock();
        let e = shard
            .lease_of(hash, key, lease, now)
            .ok_or(StoreError::Fenced)?;
        e.remove();
        Ok(())
    }
}

impl TokenStore for MemoryStore {
    async fn issue(&self, scope: &str, ttl: Duration) -> Result<Token, StoreError> {
        let token = Token::generate();
        let now = Instant::now();
        let mut tokens = self.tokens.lock();
        if tokens.len() >= 1024 && tokens.len().is_power_of_two() {
            tokens.retain(|_, until| *until > now);
        }
        tokens.insert((scope.to_owned(), token.clone()), now + ttl);
        Ok(token)
    }

    async fn consume(&self, scope: &str, token: &Token) -> Result<bool, StoreError> {
        let now = Instant::now();
        let removed = self
            .tokens
            .lock()
            .remove(&(scope.to_owned(), token.clone()));
        Ok(removed.is_some_and(|until| until > now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn key(k: &str) -> StoreKey<'_> {
        StoreKey {
            namespace: "ns",
            key: k,
        }
    }

    fn entries(store: &MemoryStore) -> usize {
        store.shards.iter().map(|s| s.lock().entries.len()).sum()
    }

    async fn lease(store: &MemoryStore, k: &str, fp: Option<Fingerprint>, ttl: Duration) -> Lease {
        match store.claim(key(k), fp, Owner::random(), ttl).await {
            Ok(Claimed::Leased(lease)) => lease,
            other => panic!("{k}: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn lookup_shows_records_and_mismatches_and_claims_nothing() {
        let store = MemoryStore::new();
        let (one, two) = (
            Some(Fingerprint::from_u64(1)),
            Some(Fingerprint::from_u64(2)),
        );
        assert_eq!(store.lookup(key("k"), one).await.unwrap(), None);
        assert_eq!(entries(&store), 0, "a lookup of a vacant key adds nothing");
        let l = lease(&store, "k", one, HOUR).await;
        assert_eq!(store.lookup(key("k"), one).await.unwrap(), None);
        assert_eq!(
            store.lookup(key("k"), two).await.unwrap(),
            Some(Claimed::Mismatch)
        );
        store.complete(key("k"), &l, b"r", HOUR).await.unwrap();
        let record = Claimed::Completed(Record {
            fence: l.fence,
            payload: b"r".to_vec(),
        });
        assert_eq!(
            store.lookup(key("k"), one).await.unwrap(),
            Some(record.clone())
        );
        assert_eq!(store.lookup(key("k"), None).await.unwrap(), Some(record));
        assert_eq!(
            store.lookup(key("k"), two).await.unwrap(),
            Some(Claimed::Mismatch)
        );
        tokio::time::advance(HOUR).await;
        assert_eq!(store.lookup(key("k"), one).await.unwrap(), None, "expired");
        assert_eq!(entries(&store), 0, "an expired entry looked up is removed");
    }

    #[tokio::test(start_paused = true)]
    async fn memory_follows_the_live_entries() {
        let store = MemoryStore::new();
        let mut peak = 0;
        for round in 0..10 {
            for i in 0..5_000 {
                lease(
                    &store,
                    &format!("{round}-{i}"),
                    None,
                    Duration::from_secs(1),
                )
                .await;
            }
            peak = peak.max(entries(&store));
            tokio::time::advance(Duration::from_secs(2)).await;
        }
        // Each round's 5,000 expire before the next: a shard keeps at most
        // the live ones and what it gathered since its last purge.
        assert!(peak <= 3 * 5_000, "{peak} entries kept for 5,000 live");
    }

    #[tokio::test(start_paused = true)]
    async fn fences_grow_across_keys_and_shards() {
        let store = MemoryStore::new();
        let mut last = 0;
        for i in 0..1_000 {
            let l = lease(&store, &i.to_string(), None, HOUR).await;
            assert!(l.fence > last);
            last = l.fence;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn namespace_and_key_are_not_run_together() {
        let store = MemoryStore::new();
        let a = StoreKey {
            namespace: "ab",
            key: "c",
        };
        let b = StoreKey {
            namespace: "a",
            key: "bc",
        };
        let o = Owner::random();
        assert!(matches!(
            store.claim(a, None, o, HOUR).await,
            Ok(Claimed::Leased(_))
        ));
        assert!(matches!(
            store.claim(b, None, o, HOUR).await,
            Ok(Claimed::Leased(_))
        ));
    }
}
