//! Which stored result to drop when a shard is full: S3-FIFO.
//!
//! S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction",
//! SOSP 2023) keeps a small probationary FIFO (10% of the capacity), a main
//! FIFO (90%) and a ghost FIFO of recently evicted hashes. A new result
//! enters the small queue (or the main one if its hash is a ghost); a result
//! hit while in the small queue is promoted to main when it reaches the head,
//! otherwise it is dropped and remembered as a ghost; the main queue gives
//! each result one more lap per hit (up to 3). On skewed workloads it keeps
//! the hot keys as well as TinyLFU, and a hit costs only a relaxed load (and a
//! store while the result's 2-bit counter is below 3) on the entry itself, so
//! the hit path takes no write lock and shares no queue.
//!
//! The queues hold tickets `(hash, id)`; an entry removed some other way
//! (expiry, `forget`) leaves a stale ticket that is skipped when it reaches a
//! head, and the queues are compacted when stale tickets outnumber live ones.
//!
//! Before S3-FIFO evicts a fresh result, expired ones make room, oldest
//! first, taken from the shard's [expiry queue](super::expiry).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// Which FIFO a stored result is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queue {
    Small,
    Main,
}

/// A queue's reference to a stored result.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) hash: u64,
    pub(crate) id: u64,
}

/// What the policy needs from the shard's table.
pub(crate) trait Resident {
    /// The frequency counter of the live result `t` refers to, if any.
    fn freq(&mut self, t: Ticket) -> Option<u8>;
    /// Sets the counter and the queue of the live result `t` refers to.
    fn set(&mut self, t: Ticket, freq: u8, queue: Queue);
    /// Removes the live result `t` refers to.
    fn evict(&mut self, t: Ticket);
    /// Removes the oldest result if it has expired, and returns its queue.
    fn remove_oldest_expired(&mut self) -> Option<Queue>;
}

/// What [`Policy::make_room`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Room {
    /// Fresh results evicted.
    pub(crate) evicted: u64,
    /// Expired results removed (they go first).
    pub(crate) expired: u64,
}

/// The eviction state of one shard.
#[derive(Debug)]
pub(crate) struct Policy {
    capacity: usize,
    small_capacity: usize,
    small: VecDeque<Ticket>,
    main: VecDeque<Ticket>,
    small_live: usize,
    main_live: usize,
    ghost: VecDeque<u64>,
    ghost_set: HashMap<u64, u32, BuildHasherDefault<HashIsKey>>,
}

impl Policy {
    pub(crate) fn new(capacity: usize) -> Self {
        debug_assert!(capacity > 0);
        Self {
            capacity,
            small_capacity: (capacity / 10).max(1),
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_live: 0,
            main_live: 0,
            ghost: VecDeque::new(),
            ghost_set: HashMap::default(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn live(&self) -> usize {
        self.small_live + self.main_live
    }

    /// Admits a new stored result and returns the queue it goes to. The
    /// caller calls [`Policy::make_room`] first, so that the new result is
    /// never the one evicted to make room for itself.
    pub(crate) fn admit(&mut self, t: Ticket) -> Queue {
        if self.ghost_set.contains_key(&t.hash) {
            self.main.push_back(t);
            self.main_live += 1;
            Queue::Main
        } else {
            self.small.push_back(t);
            self.small_live += 1;
            Queue::Small
        }
    }

    /// Notes that a stored result left the shard some other way.
    pub(crate) fn removed(&mut self, queue: Queue) {
        match queue {
            Queue::Small => self.small_live -= 1,
            Queue::Main => self.main_live -= 1,
        }
    }

    /// Makes room for one more result; returns what it removed. As in the
    /// paper, eviction comes before
    /// admission: a new result survives at least until the small queue has
    /// taken in its capacity's worth of newer ones.
    ///
    /// Expired results go first, oldest first, before S3-FIFO evicts any
    /// fresh one: a result the sweeper has not reached yet must not cost a
    /// fresh one its place (a retry within the ttl would run again).
    pub(crate) fn make_room(&mut self, table: &mut impl Resident) -> Room {
        let mut room = Room::default();
        while self.live() >= self.capacity {
            if let Some(queue) = table.remove_oldest_expired() {
                self.removed(queue);
                room.expired += 1;
                continue;
            }
            let from_small = self.small_live >= self.small_capacity || self.main_live == 0;
            if !(from_small && self.evict_small(table)) {
                self.evict_main(table);
            }
            room.evicted += 1;
        }
        room
    }

    /// Drops the queues' stale tickets once they outnumber the live ones.
    pub(crate) fn compact(&mut self, table: &mut impl Resident) {
        if self.small.len() > 2 * self.small_live + 32 {
            trim(&mut self.small, table);
        }
        if self.main.len() > 2 * self.main_live + 32 {
            trim(&mut self.main, table);
        }
    }

    /// Walks the small queue from its head: promotes results hit since they
    /// came in, evicts the first one that was not. `false` if the queue ran
    /// out first.
    fn evict_small(&mut self, table: &mut impl Resident) -> bool {
        while let Some(t) = self.small.pop_front() {
            let Some(freq) = table.freq(t) else { continue };
            self.small_live -= 1;
            if freq > 0 {
                table.set(t, 0, Queue::Main);
                self.main.push_back(t);
                self.main_live += 1;
            } else {
                table.evict(t);
                self.remember(t.hash);
                return true;
            }
        }
        false
    }

    /// Walks the main queue from its head, giving each result one more lap
    /// per hit, and evicts the first with none left.
    fn evict_main(&mut self, table: &mut impl Resident) {
        while let Some(t) = self.main.pop_front() {
            let Some(freq) = table.freq(t) else { continue };
            if freq > 0 {
                table.set(t, freq - 1, Queue::Main);
                self.main.push_back(t);
            } else {
                table.evict(t);
                self.main_live -= 1;
                return;
            }
        }
        unreachable!("main queue empty while the shard is over capacity");
    }

    fn remember(&mut self, hash: u64) {
        self.ghost.push_back(hash);
        *self.ghost_set.entry(hash).or_insert(0) += 1;
        let ghost_capacity = self.capacity - self.small_capacity.min(self.capacity - 1);
        while self.ghost.len() > ghost_capacity {
            let old = self.ghost.pop_front().expect("ghost queue is not empty");
            if let Some(n) = self.ghost_set.get_mut(&old) {
                *n -= 1;
                if *n == 0 {
                    self.ghost_set.remove(&old);
                }
            }
        }
    }
}

/// Drops a queue's stale tickets, and the memory they held: `retain` keeps
/// the capacity, which a burst of churn would otherwise pin for good.
fn trim(queue: &mut VecDeque<Ticket>, table: &mut impl Resident) {
    queue.retain(|&t| table.freq(t).is_some());
    if queue.capacity() > 4 * queue.len() + 64 {
        queue.shrink_to(2 * queue.len());
    }
}

/// The ghost set is keyed by hashes that are already uniformly random.
#[derive(Debug, Default)]
pub(crate) struct HashIsKey(u64);

impl Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap as Map;

    /// A table of (id -> freq, queue), keyed by ticket id; `expired` lists
    /// the ids that have expired, oldest first.
    #[derive(Default)]
    struct Fake {
        live: Map<u64, (u8, Queue)>,
        evicted: Vec<u64>,
        expired: VecDeque<u64>,
    }

    impl Resident for Fake {
        fn freq(&mut self, t: Ticket) -> Option<u8> {
            self.live.get(&t.id).map(|e| e.0)
        }
        fn set(&mut self, t: Ticket, freq: u8, queue: Queue) {
            self.live.insert(t.id, (freq, queue));
        }
        fn evict(&mut self, t: Ticket) {
            self.live.remove(&t.id);
            self.evicted.push(t.id);
        }
        fn remove_oldest_expired(&mut self) -> Option<Queue> {
            while let Some(id) = self.expired.pop_front() {
                if let Some((_, q)) = self.live.remove(&id) {
                    return Some(q);
                }
            }
            None
        }
    }

    fn insert(p: &mut Policy, f: &mut Fake, id: u64) -> u64 {
        let t = Ticket { hash: id, id };
        let room = p.make_room(f);
        let q = p.admit(t);
        f.live.insert(id, (0, q));
        room.evicted + room.expired
    }

    #[test]
    fn expired_results_make_room_before_fresh_ones_are_evicted() {
        // Full of results that were all hit, then all expired: each new one
        // takes an expired one's place, and every new one stays.
        let mut p = Policy::new(10);
        let mut f = Fake::default();
        for id in 0..10 {
            insert(&mut p, &mut f, id);
            f.live.get_mut(&id).unwrap().0 = 1;
        }
        f.expired.extend(0..10);
        for id in 10..20 {
            let t = Ticket { hash: id, id };
            assert_eq!(
                p.make_room(&mut f),
                Room {
                    evicted: 0,
                    expired: 1
                }
            );
            let q = p.admit(t);
            f.live.insert(id, (0, q));
        }
        assert!(
            (10..20).all(|id| f.live.contains_key(&id)),
            "no fresh result evicted"
        );
        assert!(f.evicted.is_empty());
        // Then, fresh only: S3-FIFO as usual.
        assert_eq!(
            p.make_room(&mut f),
            Room {
                evicted: 1,
                expired: 0
            }
        );
    }

    #[test]
    fn a_new_result_is_never_evicted_to_make_room_for_itself() {
        // Full of results that were all hit: the newcomer must still stay,
        // and stay until the next admission.
        let mut p = Policy::new(10);
        let mut f = Fake::default();
        for id in 0..10 {
            insert(&mut p, &mut f, id);
            f.live.get_mut(&id).unwrap().0 = 1;
        }
        for id in 10..200 {
            assert_eq!(insert(&mut p, &mut f, id), 1);
            assert!(f.live.contains_key(&id), "{id} evicted by its own store");
            assert_eq!(f.live.len(), 10);
        }
    }

    #[test]
    fn stays_within_capacity_and_keeps_hit_entries() {
        let mut p = Policy::new(10);
        let mut f = Fake::default();
        for id in 0..10 {
            assert_eq!(insert(&mut p, &mut f, id), 0);
        }
        // Key 0 is hit; everything else is cold.
        f.live.get_mut(&0).unwrap().0 = 1;
        for id in 10..100 {
            assert_eq!(insert(&mut p, &mut f, id), 1);
            assert_eq!(f.live.len(), 10);
            f.live.get_mut(&0).unwrap().0 = 1;
        }
        assert!(f.live.contains_key(&0), "the hit entry was evicted");
    }

    #[test]
    fn ghosts_go_straight_to_main() {
        let mut p = Policy::new(10);
        let mut f = Fake::default();
        for id in 0..11 {
            insert(&mut p, &mut f, id);
        }
        assert_eq!(f.evicted, vec![0]);
        let t = Ticket { hash: 0, id: 100 };
        assert_eq!(p.admit(t), Queue::Main);
    }

    #[test]
    fn removed_entries_leave_stale_tickets_that_are_skipped_and_compacted() {
        let mut p = Policy::new(4);
        let mut f = Fake::default();
        for id in 0..1000 {
            let t = Ticket { hash: id, id };
            let q = p.admit(t);
            f.live.insert(id, (0, q));
            // Removed at once, as by expiry or forget.
            f.live.remove(&id);
            p.removed(q);
            p.compact(&mut f);
        }
        assert!(p.small.len() <= 2 * p.small_live + 33);
        for id in 1000..1010 {
            insert(&mut p, &mut f, id);
        }
        assert_eq!(f.live.len(), 4);
    }
}
