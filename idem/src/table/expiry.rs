//! A shard's stored results in expiry order.
//!
//! A table has one ttl and a shard computes each expiry under its write
//! lock, so store order is expiry order: a FIFO of tickets is enough, and
//! the results due are at its head. The sweeper and the policy remove them
//! in O(expired), and "is anything due?" is a look at the head, under the
//! read lock.
//!
//! A result that leaves the table some other way (evicted, forgotten,
//! replaced by a new flight, cleared) leaves its ticket behind, *stale*.
//! Two rules keep the queue exact and small:
//!
//! * the head is always live (after each removal, [`ExpiryQueue::tidy`]
//!   pops the stale tickets that reached it), so [`ExpiryQueue::next`] is
//!   the oldest expiry of the results actually held;
//! * once stale tickets outnumber live ones, the queue is compacted, so it
//!   never holds more than about twice the shard's results, and each
//!   removal costs O(1), amortised.
//!
//! No live ticket is ever dropped: an earlier age queue was trimmed by
//! length, which dropped hot results' tickets with the stale ones, and an
//! expired hot result then kept its slot while a fresh one was evicted
//! (issue 7, defect 8).

use std::collections::VecDeque;

use super::policy::Ticket;
use crate::clock::Timestamp;

/// Tickets of a shard's stored results, oldest (first to expire) first.
#[derive(Debug, Default)]
pub(crate) struct ExpiryQueue {
    queue: VecDeque<(Ticket, Timestamp)>,
    /// Tickets in `queue` whose results left the table without being popped.
    stale: usize,
}

impl ExpiryQueue {
    /// Queues a result just stored; `expires` is no earlier than any queued.
    pub(crate) fn push(&mut self, t: Ticket, expires: Timestamp) {
        debug_assert!(self.queue.back().is_none_or(|&(_, last)| last <= expires));
        self.queue.push_back((t, expires));
    }

    /// Notes that a queued result left the table some other way; call
    /// [`tidy`](Self::tidy) once the removals are done.
    pub(crate) fn left(&mut self) {
        self.stale += 1;
    }

    /// When the oldest result held expires.
    pub(crate) fn next(&self) -> Option<Timestamp> {
        self.queue.front().map(|&(_, expires)| expires)
    }

    /// Pops the oldest ticket if its result has expired by `now`. The
    /// ticket may be stale (a removal since the last tidy): `live` says
    /// whether its result is still held, and stale ones are skipped.
    pub(crate) fn pop_expired(
        &mut self,
        now: Timestamp,
        mut live: impl FnMut(Ticket) -> bool,
    ) -> Option<Ticket> {
        while let Some(&(t, expires)) = self.queue.front() {
            if now < expires {
                return None;
            }
            self.queue.pop_front();
            if live(t) {
                return Some(t);
            }
            self.stale -= 1;
        }
        None
    }

    /// Restores the invariants after removals: a live head, and no more
    /// stale tickets than live ones (give or take a constant).
    pub(crate) fn tidy(&mut self, mut live: impl FnMut(Ticket) -> bool) {
        if self.stale == 0 {
            return;
        }
        if self.stale > self.queue.len() - self.stale + 32 {
            self.queue.retain(|&(t, _)| live(t));
            self.stale = 0;
            if self.queue.capacity() > 4 * self.queue.len() + 64 {
                self.queue.shrink_to(2 * self.queue.len());
            }
            return;
        }
        while let Some(&(t, _)) = self.queue.front() {
            if live(t) {
                break;
            }
            self.queue.pop_front();
            self.stale -= 1;
        }
    }

    /// Forgets every ticket (the table was cleared).
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Tickets queued, stale or live.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    fn ticket(id: u64) -> Ticket {
        Ticket { hash: id, id }
    }

    #[test]
    fn pops_only_what_expired_skipping_stale_tickets() {
        let t0 = Timestamp::now();
        let at = |s| t0.saturating_add(Duration::from_secs(s));
        let mut q = ExpiryQueue::default();
        let mut live: HashSet<u64> = (0..10).collect();
        for id in 0..10 {
            q.push(ticket(id), at(id));
        }
        // 3 leaves some other way; nothing is tidied yet.
        live.remove(&3);
        q.left();
        let mut popped = Vec::new();
        while let Some(t) = q.pop_expired(at(5), |t| live.contains(&t.id)) {
            popped.push(t.id);
        }
        assert_eq!(popped, [0, 1, 2, 4, 5]);
        assert_eq!(q.next(), Some(at(6)));
        assert_eq!(q.stale, 0);
    }

    #[test]
    fn the_head_stays_live_and_stale_tickets_stay_few() {
        let t0 = Timestamp::now();
        let mut q = ExpiryQueue::default();
        let mut live = HashSet::new();
        // One long-lived result at the head, then a churn of results that
        // leave some other way at once: the queue must not grow with it,
        // and must not drop the head's ticket.
        q.push(ticket(0), t0);
        live.insert(0);
        for id in 1..100_000 {
            q.push(ticket(id), t0);
            q.left();
            q.tidy(|t| t.id == 0 || live.contains(&t.id));
            assert!(q.len() <= 2 + 32, "{} tickets at {id}", q.len());
        }
        assert_eq!(q.next(), Some(t0));
        assert_eq!(q.pop_expired(t0, |t| t.id == 0).map(|t| t.id), Some(0));
        // And a stale head is popped by the tidy that follows its removal.
        q.push(ticket(7), t0.saturating_add(Duration::from_secs(1)));
        q.push(ticket(8), t0.saturating_add(Duration::from_secs(2)));
        q.left();
        q.tidy(|t| t.id == 8);
        assert_eq!(q.next(), Some(t0.saturating_add(Duration::from_secs(2))));
    }
}
