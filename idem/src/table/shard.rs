//! One shard: a lock, the entries whose hashes land in it, and its counters.
//!
//! Every operation holds the shard's lock for a few map operations and never
//! across an `.await`: a caller waiting on a flight waits on the flight, not on
//! the shard, so keys that share a shard never wait on each other's work.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use hashbrown::hash_table::{Entry as MapEntry, HashTable};

use super::policy::{Policy, Queue, Resident, Ticket};
use crate::clock::Timestamp;
use crate::flight::Flight;
use crate::stats::{bump, Counters};
use crate::sync::{Arc, RwLock};

/// What a caller found for its key.
pub(crate) enum Claim<V, E> {
    /// A stored, unexpired result.
    Hit(V),
    /// A running flight to wait on.
    Join(Arc<Flight<V, E>>),
    /// Nothing: the caller inserted this new flight and must drive it.
    Lead(Arc<Flight<V, E>>),
}

/// A cache-line-aligned shard, so that two shards' locks never share a line.
#[repr(align(128))]
pub(crate) struct Shard<K, V, E> {
    map: RwLock<Map<K, V, E>>,
    pub(crate) counters: Counters,
}

struct Map<K, V, E> {
    table: HashTable<Entry<K, V, E>>,
    /// Stored results in `table` (the rest are flights).
    stored: usize,
    /// The eviction policy, when the table is bounded.
    policy: Option<Policy>,
    next_id: u64,
}

struct Entry<K, V, E> {
    hash: u64,
    key: K,
    slot: Slot<V, E>,
}

enum Slot<V, E> {
    Flight(Arc<Flight<V, E>>),
    Stored(Stored<V>),
}

struct Stored<V> {
    value: V,
    expires: Timestamp,
    /// Hits since admission or since the policy last looked, up to 3.
    freq: AtomicU8,
    id: u64,
    queue: Queue,
}

impl<V> Stored<V> {
    #[inline]
    fn fresh(&self, now: Timestamp) -> bool {
        now < self.expires
    }

    /// Counts a hit for the eviction policy. Racing increments may be lost,
    /// which only makes the 2-bit counter slightly less eager; once it is
    /// saturated a hit is a plain load and the line stays shared.
    #[inline]
    fn touch(&self) {
        let f = self.freq.load(Relaxed);
        if f < 3 {
            self.freq.store(f + 1, Relaxed);
        }
    }
}

impl<V, E> Slot<V, E> {
    fn is_flight(&self, flight: &Arc<Flight<V, E>>) -> bool {
        matches!(self, Slot::Flight(f) if Arc::ptr_eq(f, flight))
    }
}

impl<K, V, E> Shard<K, V, E> {
    pub(crate) fn new(capacity: Option<usize>) -> Self {
        Self {
            map: RwLock::new(Map {
                table: HashTable::new(),
                stored: 0,
                policy: capacity.map(Policy::new),
                next_id: 0,
            }),
            counters: Counters::default(),
        }
    }

    /// Removes `flight`'s entry if the key still holds this very flight.
    pub(crate) fn remove_flight(&self, hash: u64, flight: &Arc<Flight<V, E>>) {
        let mut map = self.map.write();
        if let Ok(entry) = map.table.find_entry(hash, |e| e.slot.is_flight(flight)) {
            entry.remove();
        }
    }

    /// Stored results in this shard.
    pub(crate) fn stored(&self) -> usize {
        self.map.read().stored
    }
}

impl<K: Hash + Eq, V: Clone, E> Shard<K, V, E> {
    /// Looks `key` up and, when it is vacant (or its stored result expired),
    /// inserts a new flight for it, taking the key out of `key`.
    pub(crate) fn claim(&self, hash: u64, key: &mut Option<K>) -> Claim<V, E> {
        let k = key.as_ref().expect("claim needs the key");
        // Fast path: a shared lock, for hits and joins.
        {
            let map = self.map.read();
            match map.table.find(hash, |e| e.key == *k).map(|e| &e.slot) {
                Some(Slot::Stored(s)) if s.fresh(Timestamp::now()) => {
                    s.touch();
                    bump(&self.counters.hits);
                    return Claim::Hit(s.value.clone());
                }
                Some(Slot::Flight(f)) => return Claim::Join(Arc::clone(f)),
                Some(Slot::Stored(_)) | None => {}
            }
        }
        let mut guard = self.map.write();
        let map = &mut *guard;
        let entry = map.table.entry(hash, |e| e.key == *k, |e| e.hash);
        let flight = match entry {
            MapEntry::Occupied(mut o) => {
                let slot = &mut o.get_mut().slot;
                match slot {
                    Slot::Flight(f) => return Claim::Join(Arc::clone(f)),
                    Slot::Stored(s) if s.fresh(Timestamp::now()) => {
                        s.touch();
                        bump(&self.counters.hits);
                        return Claim::Hit(s.value.clone());
                    }
                    Slot::Stored(s) => {
                        // Expired: its key is reused by the new flight.
                        bump(&self.counters.expirations);
                        map.stored -= 1;
                        if let Some(p) = &mut map.policy {
                            p.removed(s.queue);
                        }
                        let flight = Arc::new(Flight::new());
                        *slot = Slot::Flight(Arc::clone(&flight));
                        flight
                    }
                }
            }
            MapEntry::Vacant(v) => {
                let flight = Arc::new(Flight::new());
                v.insert(Entry {
                    hash,
                    key: key.take().expect("checked above"),
                    slot: Slot::Flight(Arc::clone(&flight)),
                });
                flight
            }
        };
        bump(&self.counters.executions);
        Claim::Lead(flight)
    }

    /// Ends `flight`'s time in the table: stores `value` (expiring at
    /// `expires`) in its place, or removes it when `value` is `None`. Does
    /// nothing if the key no longer holds this very flight (it was
    /// forgotten, and maybe claimed again by a newer flight, which must not
    /// be overwritten or removed: golang/go#31420). Returns whether a result
    /// was stored.
    pub(crate) fn settle(
        &self,
        hash: u64,
        flight: &Arc<Flight<V, E>>,
        value: Option<(V, Timestamp)>,
    ) -> bool {
        let mut guard = self.map.write();
        let map = &mut *guard;
        let Ok(entry) = map.table.find_entry(hash, |e| e.slot.is_flight(flight)) else {
            return false;
        };
        let Some((value, expires)) = value else {
            entry.remove();
            return false;
        };
        // (A flight that is settled without a value is removed; see also
        // `remove_flight`, which the abandoning leader uses.)
        let id = map.next_id;
        map.next_id += 1;
        let queue = match &mut map.policy {
            Some(p) => p.admit(Ticket { hash, id }),
            None => Queue::Main,
        };
        entry.into_mut().slot = Slot::Stored(Stored {
            value,
            expires,
            freq: AtomicU8::new(0),
            id,
            queue,
        });
        map.stored += 1;
        if let Some(mut policy) = map.policy.take() {
            let evicted = policy.make_room(&mut TableView(map));
            map.stored -= evicted as usize;
            self.counters.evictions.fetch_add(evicted, Relaxed);
            map.policy = Some(policy);
        }
        true
    }

    /// The stored, unexpired result for `key`. Counts for the eviction
    /// policy, not in the statistics.
    pub(crate) fn get<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.read();
        match map
            .table
            .find(hash, |e| e.key.borrow() == key)
            .map(|e| &e.slot)
        {
            Some(Slot::Stored(s)) if s.fresh(Timestamp::now()) => {
                s.touch();
                Some(s.value.clone())
            }
            _ => None,
        }
    }

    /// Removes whatever `key` holds. A running flight goes on for its own
    /// callers but is no longer found by new ones, and [`Shard::settle`]
    /// will not store its result.
    pub(crate) fn forget<Q>(&self, hash: u64, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut guard = self.map.write();
        let map = &mut *guard;
        let Ok(entry) = map.table.find_entry(hash, |e| e.key.borrow() == key) else {
            return false;
        };
        let (removed, _) = entry.remove();
        if let Slot::Stored(s) = removed.slot {
            map.stored -= 1;
            if let Some(p) = &mut map.policy {
                p.removed(s.queue);
            }
        }
        true
    }
}

impl<K, V, E> Shard<K, V, E> {
    /// Removes every stored result and detaches every running flight.
    pub(crate) fn clear(&self) {
        let mut guard = self.map.write();
        let capacity = guard.policy.as_ref().map(Policy::capacity);
        guard.table.clear();
        guard.stored = 0;
        guard.policy = capacity.map(Policy::new);
    }

    /// Removes the stored results that expired before `now`; returns how
    /// many stored results remain.
    pub(crate) fn sweep(&self, now: Timestamp) -> usize {
        let mut guard = self.map.write();
        let map = &mut *guard;
        let mut expired = 0;
        let policy = &mut map.policy;
        map.table.retain(|e| match &e.slot {
            Slot::Stored(s) if !s.fresh(now) => {
                expired += 1;
                if let Some(p) = policy {
                    p.removed(s.queue);
                }
                false
            }
            _ => true,
        });
        map.stored -= expired;
        self.counters.expirations.fetch_add(expired as u64, Relaxed);
        if let Some(mut policy) = map.policy.take() {
            policy.compact(&mut TableView(map));
            map.policy = Some(policy);
        }
        map.stored
    }

    /// Entries held: flights and stored results.
    pub(crate) fn len(&self) -> usize {
        self.map.read().table.len()
    }
}

/// The table as the eviction policy sees it: stored results by ticket.
struct TableView<'a, K, V, E>(&'a mut Map<K, V, E>);

impl<K, V, E> TableView<'_, K, V, E> {
    fn stored(&mut self, t: Ticket) -> Option<&mut Stored<V>> {
        match self.0.table.find_mut(
            t.hash,
            |e| matches!(&e.slot, Slot::Stored(s) if s.id == t.id),
        ) {
            Some(Entry {
                slot: Slot::Stored(s),
                ..
            }) => Some(s),
            _ => None,
        }
    }
}

impl<K, V, E> Resident for TableView<'_, K, V, E> {
    fn freq(&mut self, t: Ticket) -> Option<u8> {
        self.stored(t).map(|s| *s.freq.get_mut())
    }

    fn set(&mut self, t: Ticket, freq: u8, queue: Queue) {
        if let Some(s) = self.stored(t) {
            *s.freq.get_mut() = freq;
            s.queue = queue;
        }
    }

    fn evict(&mut self, t: Ticket) {
        if let Ok(e) = self.0.table.find_entry(
            t.hash,
            |e| matches!(&e.slot, Slot::Stored(s) if s.id == t.id),
        ) {
            e.remove();
        }
    }
}
