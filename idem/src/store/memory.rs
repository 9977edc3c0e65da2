//! [`MemoryStore`]: the store protocol in this process's memory.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::{Claimed, Lease, Owner, Record, Store, StoreError, StoreKey, Token, TokenStore};
use crate::fingerprint;
use crate::Fingerprint;

/// The [`Store`] protocol in memory: for one process, for tests, and as
/// the embedded default when no server is configured.
///
/// Leases and records expire on tokio's clock, so a paused test clock
/// (`tokio::time::pause`) drives them. Fencing tokens come from one counter
/// per store, so they only grow, for every key, across expiries. Expired
/// entries are removed when their key is next claimed, and all at once
/// whenever the map has doubled since the last purge, so memory follows
/// the live entries.
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
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<(String, String), Entry>,
    /// The last fencing token issued, for any key.
    fence: u64,
    /// Entries after the last purge.
    purged_at: usize,
    /// Unspent tokens, by scope and token, with their expiry.
    tokens: HashMap<(String, Token), Instant>,
}

#[derive(Debug)]
struct Entry {
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
        Self::default()
    }
}

impl State {
    /// The key's entry, if it has not expired; an expired one is removed.
    fn live(&mut self, key: StoreKey<'_>, now: Instant) -> Option<&mut Entry> {
        let k = (key.namespace.to_owned(), key.key.to_owned());
        if self.entries.get(&k).is_some_and(|e| e.until <= now) {
            self.entries.remove(&k);
        }
        self.entries.get_mut(&k)
    }

    /// Removes every expired entry once the map has doubled since the last
    /// purge: O(1) per insert, amortised.
    fn purge_if_grown(&mut self, now: Instant) {
        if self.entries.len() > 2 * self.purged_at.max(512) {
            self.entries.retain(|_, e| e.until > now);
            self.purged_at = self.entries.len();
        }
    }

    /// The live lease `lease` names, if it is the key's.
    fn lease_of(&mut self, key: StoreKey<'_>, lease: &Lease, now: Instant) -> Option<&mut Entry> {
        self.live(key, now).filter(|e| {
            matches!(e.slot, Slot::Leased { fence, owner } if fence == lease.fence && owner == lease.owner)
        })
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
        let mut state = self.state.lock();
        if let Some(e) = state.live(key, now) {
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
        state.fence += 1;
        let fence = state.fence;
        state.entries.insert(
            (key.namespace.to_owned(), key.key.to_owned()),
            Entry {
                fingerprint: fp,
                until: now + lease,
                slot: Slot::Leased { fence, owner },
            },
        );
        state.purge_if_grown(now);
        Ok(Claimed::Leased(Lease {
            fence,
            owner,
            ttl: lease,
        }))
    }

    async fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let e = state.lease_of(key, lease, now).ok_or(StoreError::Fenced)?;
        e.until = now + ttl;
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
        let mut state = self.state.lock();
        let Some(e) = state.live(key, now) else {
            return Err(StoreError::Fenced);
        };
        match &e.slot {
            Slot::Leased { fence, owner } if *fence == lease.fence && *owner == lease.owner => {
                e.until = now + retain;
                e.slot = Slot::Completed(Record {
                    fence: lease.fence,
                    payload: payload.to_vec(),
                });
                Ok(())
            }
            // A retried completion whose first attempt went through.
            Slot::Completed(r) if r.fence == lease.fence => Ok(()),
            _ => Err(StoreError::Fenced),
        }
    }

    async fn release(&self, key: StoreKey<'_>, lease: &Lease) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut state = self.state.lock();
        state.lease_of(key, lease, now).ok_or(StoreError::Fenced)?;
        state
            .entries
            .remove(&(key.namespace.to_owned(), key.key.to_owned()));
        Ok(())
    }
}

impl TokenStore for MemoryStore {
    async fn issue(&self, scope: &str, ttl: Duration) -> Result<Token, StoreError> {
        let token = Token::generate();
        let now = Instant::now();
        let mut state = self.state.lock();
        if state.tokens.len() >= 1024 && state.tokens.len().is_power_of_two() {
            state.tokens.retain(|_, until| *until > now);
        }
        state
            .tokens
            .insert((scope.to_owned(), token.clone()), now + ttl);
        Ok(token)
    }

    async fn consume(&self, scope: &str, token: &Token) -> Result<bool, StoreError> {
        let now = Instant::now();
        let removed = self
            .state
            .lock()
            .tokens
            .remove(&(scope.to_owned(), token.clone()));
        Ok(removed.is_some_and(|until| until > now))
    }
}
