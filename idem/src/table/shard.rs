//! One shard: a lock, the entries whose hashes land in it, and its counters.
//!
//! Every operation holds the shard's lock for a few map operations and never
//! across an `.await`: a caller waiting on a flight waits on the flight, not on
//! the shard, so keys that share a shard never wait on each other's work.
//!
//! No user code runs under the lock except `K`'s `Hash`/`Eq` and `V::clone`
//! on a hit: entries that leave the table (expired, forgotten, evicted,
//! cleared) are moved into a local that is dropped after the guard, so a
//! panicking `Drop` of a key or value cannot leave the shard's bookkeeping
//! half-updated.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{
    AtomicU64, AtomicU8,
    Ordering::{AcqRel, Acquire, Relaxed},
};
use std::time::Duration;

use hashbrown::hash_table::{Entry as MapEntry, HashTable};

use super::expiry::ExpiryQueue;
use super::key::KeyArg;
use super::policy::{Policy, Queue, Resident, Ticket};
use crate::clock::Timestamp;
use crate::fingerprint;
use crate::flight::Flight;
use crate::stats::{bump, Counters, Stats};
use crate::sync::{Arc, AtomicUsize, RwLock};

/// What a lookup found for a key under the shared lock.
pub(crate) enum Found<V, E> {
    /// A stored, unexpired result.
    Hit(V),
    /// A running flight to wait on.
    Join(Arc<Flight<V, E>>),
    /// A running flight or fresh result with another fingerprint.
    Mismatch,
}

/// What a caller found for its key, or made of it.
pub(crate) enum Claim<K, V, E> {
    /// A stored, unexpired result.
    Hit(V),
    /// A running flight to wait on.
    Join(Arc<Flight<V, E>>),
    /// Nothing (or an expired result): the caller inserted this new flight
    /// and must drive it.
    Lead(Arc<Flight<V, E>>, Deferred<K, V, E>),
    /// Nothing, and the table's bounds allow no new flight.
    Refused(Refusal),
    /// A running flight or fresh result with another fingerprint.
    Mismatch,
}

/// What left the table under a shard's lock, held to be dropped by the
/// caller once the lock is released and the flight's waiters are awake: a
/// key's or value's `Drop` (user code) must neither run under the lock nor
/// keep anyone waiting if it panics.
///
/// Dropped one entry at a time: if one `Drop` panics, the rest are still
/// dropped while the panic unwinds (a `Vec` drops every element).
#[must_use = "what left the table is dropped by the caller, after the lock and the wake-up"]
pub(crate) struct Deferred<K, V, E> {
    /// A flight's key, when its entry left the table without a result.
    #[allow(dead_code, reason = "held only to be dropped")]
    key: Option<K>,
    #[allow(dead_code, reason = "held only to be dropped")]
    entries: Vec<Entry<K, V, E>>,
}

impl<K, V, E> Deferred<K, V, E> {
    pub(crate) fn none() -> Self {
        Self {
            key: None,
            entries: Vec::new(),
        }
    }

    fn entry(entry: Option<Entry<K, V, E>>) -> Self {
        Self {
            key: None,
            entries: entry.into_iter().collect(),
        }
    }
}

/// What [`Shard::settle`] did.
pub(crate) struct Settled<K, V, E> {
    /// The result was stored...
    pub(crate) stored: bool,
    /// ...and made the shard go from no stored result to one (the sweeper
    /// may have to be started).
    pub(crate) first: bool,
    /// Fresh results evicted to make room.
    pub(crate) evicted: u64,
    /// What left the table, to drop after the wake-up.
    pub(crate) deferred: Deferred<K, V, E>,
}

impl<K, V, E> Default for Settled<K, V, E> {
    fn default() -> Self {
        Self {
            stored: false,
            first: false,
            evicted: 0,
            deferred: Deferred::none(),
        }
    }
}

/// The table-wide bounds checked when a flight starts, shared by every
/// shard: [`Eviction::Never`](crate::Eviction::Never)'s `max_entries` and
/// `max_in_flight`. The counters follow the shards' tables exactly: an
/// entry is counted when it is inserted, under its shard's lock, and
/// uncounted when it leaves, so the bound holds whatever the hash
/// distribution.
#[derive(Debug)]
pub(crate) struct Limits {
    max_entries: Option<usize>,
    /// Flights and stored results, in every shard.
    entries: AtomicUsize,
    max_in_flight: Option<usize>,
    /// Flights, in every shard.
    in_flight: AtomicUsize,
}

/// Why a flight was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_entries` entries are held (never mode).
    Full,
    /// `max_in_flight` flights are running.
    Busy,
}

impl Limits {
    pub(crate) fn new(max_entries: Option<usize>, max_in_flight: Option<usize>) -> Self {
        Self {
            max_entries,
            entries: AtomicUsize::new(0),
            max_in_flight,
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Counts a new flight, and a new entry unless it takes the place of
    /// one (an expired result), if the bounds allow it.
    fn admit(&self, new_entry: bool) -> Result<(), Refusal> {
        if !take(&self.in_flight, self.max_in_flight) {
            return Err(Refusal::Busy);
        }
        if new_entry && !take(&self.entries, self.max_entries) {
            self.in_flight.fetch_sub(1, AcqRel);
            return Err(Refusal::Full);
        }
        Ok(())
    }

    /// Uncounts entries that left a shard, `flights` of them flights.
    fn left(&self, entries: usize, flights: usize) {
        if entries > 0 {
            self.entries.fetch_sub(entries, AcqRel);
        }
        if flights > 0 {
            self.in_flight.fetch_sub(flights, AcqRel);
        }
    }

    /// Entries held, table-wide, if they are counted (never mode).
    pub(crate) fn entries(&self) -> Option<usize> {
        self.max_entries.map(|_| self.entries.load(Acquire))
    }

    /// Uncounts a flight whose entry became a stored result.
    fn landed(&self) {
        self.in_flight.fetch_sub(1, AcqRel);
    }
}

/// Adds one to `counter` unless it is at `max`.
fn take(counter: &AtomicUsize, max: Option<usize>) -> bool {
    match max {
        None => {
            counter.fetch_add(1, AcqRel);
            true
        }
        Some(max) => {
            let mut n = counter.load(Acquire);
            while n < max {
                match counter.compare_exchange(n, n + 1, AcqRel, Acquire) {
                    Ok(_) => return true,
                    Err(now) => n = now,
                }
            }
            false
        }
    }
}

/// A cache-line-aligned shard, so that two shards' locks never share a line.
#[repr(C, align(128))]
pub(crate) struct Shard<K, V, E> {
    map: RwLock<Map<K, V, E>>,
    counters: Counters,
    /// The table-wide bounds, when the table has any.
    limits: Option<Arc<Limits>>,
}

/// `repr(C)` keeps the table header and the hit counter right after the
/// lock word: a hit touches one cache line of the shard, the one its read
/// lock already wrote.
#[repr(C)]
struct Map<K, V, E> {
    table: HashTable<Entry<K, V, E>>,
    /// Hits, counted under the shared lock.
    hits: AtomicU64,
    /// Stored results in `table` (the rest are flights).
    stored: usize,
    /// The eviction policy, when the table is bounded.
    policy: Option<Box<Policy>>,
    /// The stored results, in expiry order.
    expiry: ExpiryQueue,
    next_id: u64,
}

struct Entry<K, V, E> {
    hash: u64,
    /// The fingerprint of the call that started the flight; 0 for none.
    fingerprint: u64,
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
    /// Whether the result may be served: the check of every hit (see
    /// [`Timestamp::is_future`]).
    #[inline]
    fn fresh(&self) -> bool {
        self.expires.is_future()
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

impl<V: Clone> Stored<V> {
    /// Answers a hit: counts it, for the policy and the statistics, and
    /// clones the value.
    #[inline]
    fn hit(&self, hits: &AtomicU64) -> V {
        // Cloned first: a `Clone` that panics answers nothing, so counts
        // nothing.
        let value = self.value.clone();
        self.touch();
        hits.fetch_add(1, Relaxed);
        value
    }
}

impl<K, V, E> Entry<K, V, E> {
    /// A running flight, or a stored result that has not expired.
    fn is_live(&self) -> bool {
        match &self.slot {
            Slot::Flight(_) => true,
            Slot::Stored(s) => s.fresh(),
        }
    }
}

impl<V, E> Slot<V, E> {
    fn is_flight(&self, flight: &Arc<Flight<V, E>>) -> bool {
        matches!(self, Slot::Flight(f) if Arc::ptr_eq(f, flight))
    }
}

impl<K, V, E> Map<K, V, E> {
    /// Gives memory back once most of the table is gone: after a burst of
    /// concurrent keys in a table that stores nothing (each flight's entry
    /// is removed when it ends), or once expired results are swept. A
    /// shrink rehashes what is left, and comes only after three quarters of
    /// the capacity was removed, so it costs O(1) per removal, amortised.
    fn shrink_if_sparse(&mut self) {
        let (len, capacity) = (self.table.len(), self.table.capacity());
        if capacity > 64 && len < capacity / 4 {
            self.table.shrink_to(len * 2, |e| e.hash);
        }
    }

    /// Bookkeeping for a stored result that left the table some other way
    /// than eviction or expiry. Compacts the queues once their stale
    /// tickets outnumber the live ones, so that store/forget churn cannot
    /// grow them.
    fn unstore(&mut self, queue: Queue) {
        self.stored -= 1;
        self.expiry.left();
        let table = &self.table;
        self.expiry.tidy(|t| is_live(table, t));
        if let Some(policy) = &mut self.policy {
            policy.removed(queue);
            policy.compact(&mut TableView {
                table: &mut self.table,
                expiry: &mut self.expiry,
                evicted: &mut Vec::new(),
                now: Timestamp::now(),
            });
        }
    }
}

impl<K, V, E> Shard<K, V, E> {
    pub(crate) fn new(capacity: Option<usize>, limits: Option<Arc<Limits>>) -> Self {
        Self {
            map: RwLock::new(Map {
                table: HashTable::new(),
                hits: AtomicU64::new(0),
                stored: 0,
                policy: capacity.map(|c| Box::new(Policy::new(c))),
                expiry: ExpiryQueue::default(),
                next_id: 0,
            }),
            counters: Counters::default(),
            limits,
        }
    }

    /// Uncounts entries that left this shard, `flights` of them flights.
    fn left(&self, entries: usize, flights: usize) {
        if let Some(limits) = &self.limits {
            limits.left(entries, flights);
        }
    }

    /// The shard's counters, for the slow paths.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Adds this shard's counters to `stats`.
    pub(crate) fn add_stats(&self, stats: &mut Stats) {
        self.counters.add_to(stats);
        stats.hits += self.map.read().hits.load(Relaxed);
    }

    /// Under the shard's lock, asks `end` whether `flight` is over and, if
    /// so, removes its entry (if the key still holds this very flight). The
    /// flight's transition and its removal are then one step for any caller
    /// that looks the key up.
    pub(crate) fn remove_flight_if(
        &self,
        hash: u64,
        flight: &Arc<Flight<V, E>>,
        end: impl FnOnce() -> bool,
    ) -> Deferred<K, V, E> {
        let mut map = self.map.write();
        if !end() {
            return Deferred::none();
        }
        let dead = map
            .table
            .find_entry(hash, |e| e.slot.is_flight(flight))
            .ok()
            .map(|entry| entry.remove().0);
        if dead.is_some() {
            map.shrink_if_sparse();
            self.left(1, 1);
        }
        drop(map);
        Deferred::entry(dead)
    }

    /// Stored results in this shard.
    pub(crate) fn stored(&self) -> usize {
        self.map.read().stored
    }
}

impl<K: Hash + Eq, V: Clone, E> Shard<K, V, E> {
    /// Looks `key` up under the shared lock: a fresh stored result or a
    /// running flight; `None` when the key is vacant or expired.
    ///
    /// A call with fingerprint `fingerprint` (0 for none) is answered only
    /// by an entry whose fingerprint matches (see
    /// [`fingerprint::matches`]); otherwise it finds a mismatch.
    #[inline]
    pub(crate) fn lookup<Q>(&self, hash: u64, key: &Q, fingerprint: u64) -> Option<Found<V, E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.read();
        let e = map.table.find(hash, |e| e.key.borrow() == key)?;
        let found = match &e.slot {
            Slot::Stored(s) if s.fresh() => {
                if !fingerprint::matches(e.fingerprint, fingerprint) {
                    return Some(self.mismatch());
                }
                Found::Hit(s.hit(&map.hits))
            }
            Slot::Flight(f) => {
                if !fingerprint::matches(e.fingerprint, fingerprint) {
                    return Some(self.mismatch());
                }
                Found::Join(Arc::clone(f))
            }
            Slot::Stored(_) => return None,
        };
        Some(found)
    }

    #[cold]
    fn mismatch(&self) -> Found<V, E> {
        bump(&self.counters.mismatches);
        Found::Mismatch
    }

    /// Looks `key` up and, when it is vacant (or its stored result expired),
    /// inserts a new flight for it, with the owned key made from `key`.
    pub(crate) fn claim<A>(&self, hash: u64, key: &mut A) -> Claim<K, V, E>
    where
        A: KeyArg<K>,
        K: Borrow<A::Query>,
    {
        match self.lookup(hash, key.query(), key.fingerprint()) {
            Some(Found::Hit(v)) => return Claim::Hit(v),
            Some(Found::Join(f)) => return Claim::Join(f),
            Some(Found::Mismatch) => return Claim::Mismatch,
            None => {}
        }
        self.claim_exclusive(hash, key)
    }

    /// [`Shard::claim`] after a [`Shard::lookup`] found nothing: straight to
    /// the exclusive lock, where the key is looked up again.
    pub(crate) fn claim_exclusive<A>(&self, hash: u64, key: &mut A) -> Claim<K, V, E>
    where
        A: KeyArg<K>,
        K: Borrow<A::Query>,
    {
        key.prepare();
        let k = key.query();
        let mut expired = None;
        let mut guard = self.map.write();
        let map = &mut *guard;
        let fingerprint = key.fingerprint();
        let vacant = match map.table.entry(hash, |e| e.key.borrow() == k, |e| e.hash) {
            MapEntry::Occupied(o) => match &o.get().slot {
                // The compare first: `is_live` reads the clock.
                Slot::Flight(_) | Slot::Stored(_)
                    if !fingerprint::matches(o.get().fingerprint, fingerprint)
                        && o.get().is_live() =>
                {
                    self.mismatch();
                    return Claim::Mismatch;
                }
                Slot::Flight(f) => return Claim::Join(Arc::clone(f)),
                Slot::Stored(s) if s.fresh() => return Claim::Hit(s.hit(&map.hits)),
                Slot::Stored(_) => {
                    // Expired: the new flight takes its place.
                    let (old, vacant) = o.remove();
                    expired = Some(old);
                    vacant
                }
            },
            MapEntry::Vacant(v) => v,
        };
        if let Some(limits) = &self.limits {
            if let Err(refusal) = limits.admit(expired.is_none()) {
                // The expired result stays where it is: it is removed by
                // the sweeper or by whoever makes room.
                debug_assert!(expired.is_none() || refusal == Refusal::Busy);
                if let Some(old) = expired {
                    vacant.insert(old);
                }
                return Claim::Refused(refusal);
            }
        }
        let flight = Arc::new(Flight::new());
        vacant.insert(Entry {
            hash,
            fingerprint,
            key: key.take_owned(),
            slot: Slot::Flight(Arc::clone(&flight)),
        });
        if let Some(Entry {
            slot: Slot::Stored(s),
            ..
        }) = &expired
        {
            bump(&self.counters.expirations);
            map.unstore(s.queue);
        }
        bump(&self.counters.executions);
        drop(guard);
        Claim::Lead(flight, Deferred::entry(expired))
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
            Some(Slot::Stored(s)) if s.fresh() => {
                s.touch();
                Some(s.value.clone())
            }
            _ => None,
        }
    }

    /// Removes whatever `key` holds. A running flight goes on for its own
    /// callers but is no longer found by new ones, and [`Shard::settle`]
    /// will not store its result. Returns whether there was a running
    /// flight or an unexpired stored result.
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
        let removed = entry.remove().0;
        map.shrink_if_sparse();
        self.left(1, usize::from(matches!(removed.slot, Slot::Flight(_))));
        let found = match &removed.slot {
            Slot::Flight(_) => true,
            Slot::Stored(s) => {
                let fresh = s.fresh();
                if !fresh {
                    bump(&self.counters.expirations);
                }
                map.unstore(s.queue);
                fresh
            }
        };
        drop(guard);
        drop(removed);
        found
    }
}

impl<K, V, E> Shard<K, V, E> {
    /// Ends `flight`'s time in the table: stores `value` (for `ttl`, counted
    /// from now) in its place, or removes it when `value` is `None`. Does
    /// nothing if the key no longer holds this very flight (it was
    /// forgotten, and maybe claimed again by a newer flight, which must not
    /// be overwritten or removed: golang/go#31420).
    ///
    /// Returns what became of it; the entries it took out of the table (the
    /// flight's own key, or evicted results) are in [`Settled::deferred`], for
    /// the caller to drop once the flight's waiters are awake: a key's or
    /// value's `Drop` that panics must not make them take over a flight
    /// that has a result.
    pub(crate) fn settle(
        &self,
        hash: u64,
        flight: &Arc<Flight<V, E>>,
        value: Option<(V, Duration)>,
    ) -> Settled<K, V, E> {
        let mut evicted = Vec::new();
        let mut evicted_fresh = 0;
        let mut guard = self.map.write();
        let map = &mut *guard;
        let Ok(entry) = map.table.find_entry(hash, |e| e.slot.is_flight(flight)) else {
            return Settled::default();
        };
        let Some((value, ttl)) = value else {
            let Entry { key, slot, .. } = entry.remove().0;
            // The slot is this flight's `Arc`: dropping it runs no user
            // code, and keeps the leader's count of who else holds the
            // flight exact. The key is the caller's to drop.
            drop(slot);
            map.shrink_if_sparse();
            self.left(1, 1);
            drop(guard);
            return Settled {
                deferred: Deferred {
                    key: Some(key),
                    entries: evicted,
                },
                ..Settled::default()
            };
        };
        // Room first, then admission, so that the new result is never the
        // one evicted. Eviction removes stored results only, never this
        // flight's entry, which is looked up again below.
        if let Some(policy) = &mut map.policy {
            let room = policy.make_room(&mut TableView {
                table: &mut map.table,
                expiry: &mut map.expiry,
                evicted: &mut evicted,
                now: Timestamp::now(),
            });
            let table = &map.table;
            map.expiry.tidy(|t| is_live(table, t));
            map.stored -= (room.evicted + room.expired) as usize;
            self.left((room.evicted + room.expired) as usize, 0);
            if room.evicted > 0 {
                self.counters.evictions.fetch_add(room.evicted, Relaxed);
                evicted_fresh = room.evicted;
            }
            if room.expired > 0 {
                self.counters.expirations.fetch_add(room.expired, Relaxed);
            }
        }
        let id = map.next_id;
        map.next_id += 1;
        let ticket = Ticket { hash, id };
        let queue = match &mut map.policy {
            Some(p) => p.admit(ticket),
            None => Queue::Main,
        };
        // Read under the lock, so that the shard's expiries are in store
        // order.
        let expires = Timestamp::expiry(ttl);
        map.expiry.push(ticket, expires);
        let entry = map
            .table
            .find_mut(hash, |e| e.slot.is_flight(flight))
            .expect("eviction removes stored results only");
        // The old slot holds only an `Arc` of the flight, which the leader
        // still owns: dropping it here runs no user code.
        entry.slot = Slot::Stored(Stored {
            value,
            expires,
            freq: AtomicU8::new(0),
            id,
            queue,
        });
        map.stored += 1;
        if let Some(limits) = &self.limits {
            limits.landed();
        }
        let first = map.stored == 1;
        drop(guard);
        Settled {
            stored: true,
            first,
            evicted: evicted_fresh,
            deferred: Deferred {
                key: None,
                entries: evicted,
            },
        }
    }

    /// Removes every stored result and detaches every running flight; the
    /// entries are returned, for the caller to drop outside every lock.
    pub(crate) fn clear(&self) -> Deferred<K, V, E> {
        let mut guard = self.map.write();
        let old = std::mem::take(&mut guard.table);
        self.left(old.len(), old.len() - guard.stored);
        guard.stored = 0;
        guard.expiry.clear();
        if let Some(policy) = &mut guard.policy {
            **policy = Policy::new(policy.capacity());
        }
        drop(guard);
        Deferred {
            key: None,
            entries: old.into_iter().collect(),
        }
    }

    /// Removes the stored results that expired by `now`, in O(expired):
    /// when none has, only the read lock is taken. Returns how many stored
    /// results remain, and when the oldest of them expires.
    pub(crate) fn sweep(&self, now: Timestamp) -> (usize, Option<Timestamp>) {
        {
            let map = self.map.read();
            match map.expiry.next() {
                Some(next) if next <= now => {}
                next => return (map.stored, next),
            }
        }
        let mut expired = Vec::new();
        let mut guard = self.map.write();
        let map = &mut *guard;
        // The same removal that makes room for a store, here for
        // everything due.
        let mut view = TableView {
            table: &mut map.table,
            expiry: &mut map.expiry,
            evicted: &mut expired,
            now,
        };
        while let Some(queue) = view.remove_oldest_expired() {
            if let Some(policy) = &mut map.policy {
                policy.removed(queue);
            }
        }
        if !expired.is_empty() {
            self.counters
                .expirations
                .fetch_add(expired.len() as u64, Relaxed);
            map.stored -= expired.len();
            self.left(expired.len(), 0);
            if let Some(policy) = &mut map.policy {
                policy.compact(&mut TableView {
                    table: &mut map.table,
                    expiry: &mut map.expiry,
                    evicted: &mut Vec::new(),
                    now,
                });
            }
            map.shrink_if_sparse();
        }
        let remaining = (map.stored, map.expiry.next());
        drop(guard);
        drop(expired);
        remaining
    }

    /// When the oldest stored result expires, if there is one (it may have
    /// expired already, unswept).
    pub(crate) fn oldest_expiry(&self) -> Option<Timestamp> {
        self.map.read().expiry.next()
    }

    /// Entries held: flights and stored results.
    pub(crate) fn len(&self) -> usize {
        self.map.read().table.len()
    }
}

/// The table as the eviction policy sees it: stored results by ticket.
/// Evicted entries are moved into `evicted`, to be dropped after the lock.
struct TableView<'a, K, V, E> {
    table: &'a mut HashTable<Entry<K, V, E>>,
    expiry: &'a mut ExpiryQueue,
    evicted: &'a mut Vec<Entry<K, V, E>>,
    /// The time expiry is judged against.
    now: Timestamp,
}

fn is_ticket<K, V, E>(e: &Entry<K, V, E>, t: Ticket) -> bool {
    matches!(&e.slot, Slot::Stored(s) if s.id == t.id)
}

/// Whether the result `t` refers to is still in `table`.
fn is_live<K, V, E>(table: &HashTable<Entry<K, V, E>>, t: Ticket) -> bool {
    table.find(t.hash, |e| is_ticket(e, t)).is_some()
}

impl<K, V, E> TableView<'_, K, V, E> {
    fn stored(&mut self, t: Ticket) -> Option<&mut Stored<V>> {
        match self.table.find_mut(t.hash, |e| is_ticket(e, t)) {
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
        self.stored(t).map(|s| s.freq.load(Relaxed))
    }

    fn set(&mut self, t: Ticket, freq: u8, queue: Queue) {
        if let Some(s) = self.stored(t) {
            s.freq.store(freq, Relaxed);
            s.queue = queue;
        }
    }

    fn evict(&mut self, t: Ticket) {
        if let Ok(e) = self.table.find_entry(t.hash, |e| is_ticket(e, t)) {
            self.evicted.push(e.remove().0);
            self.expiry.left();
        }
    }

    fn remove_oldest_expired(&mut self) -> Option<Queue> {
        let table = &*self.table;
        let t = self.expiry.pop_expired(self.now, |t| is_live(table, t))?;
        let entry = self.table.find_entry(t.hash, |e| is_ticket(e, t)).ok()?;
        let queue = match &entry.get().slot {
            Slot::Stored(s) => s.queue,
            Slot::Flight(_) => unreachable!("tickets name stored results"),
        };
        self.evicted.push(entry.remove().0);
        Some(queue)
    }
}

#[cfg(all(test, not(idem_loom)))]
mod tests {
    use super::*;

    /// A shard holding `n` results stored for `ttl`.
    fn shard_with(n: u64, ttl: Duration) -> Shard<u64, u64, ()> {
        let shard = Shard::new(None, None);
        for k in 0..n {
            let Claim::Lead(flight, _) = shard.claim_exclusive(k, &mut Some(k)) else {
                panic!("vacant")
            };
            assert!(shard.settle(k, &flight, Some((k, ttl))).stored);
        }
        shard
    }

    /// Issue 7, defect 3: every sweep took each shard's write lock and
    /// walked every entry, even when nothing had expired.
    #[test]
    fn a_sweep_with_nothing_due_takes_only_the_read_lock() {
        let shard = shard_with(1_000, Duration::from_secs(3600));
        let reader = shard.map.read();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| tx.send(shard.sweep(Timestamp::now())).unwrap());
            // A sweep that wanted the write lock would wait for `reader`.
            let swept = rx.recv_timeout(Duration::from_secs(30));
            drop(reader);
            let (remaining, next) = swept.expect("the sweep waited for the write lock");
            assert_eq!(remaining, 1_000);
            assert!(next.is_some_and(Timestamp::is_future));
        });
    }

    #[test]
    fn a_sweep_removes_what_expired_and_nothing_else() {
        let shard = shard_with(100, Duration::ZERO);
        for k in 100..200 {
            let Claim::Lead(flight, _) = shard.claim_exclusive(k, &mut Some(k)) else {
                panic!("vacant")
            };
            shard.settle(k, &flight, Some((k, Duration::from_secs(3600))));
        }
        // Forgotten: their tickets go stale, in the middle of the queue.
        assert!(shard.forget(150, &150));
        assert!(!shard.forget(50, &50), "expired already");
        let (remaining, next) =
            shard.sweep(Timestamp::now().saturating_add(Duration::from_secs(1)));
        assert_eq!(remaining, 99);
        assert_eq!(shard.len(), 99);
        assert_eq!(next, shard.oldest_expiry());
        assert!((100..200)
            .filter(|&k| k != 150)
            .all(|k| shard.get(k, &k) == Some(k)));
        assert_eq!(shard.counters().expirations.load(Relaxed), 100);
    }
}
