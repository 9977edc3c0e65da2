//! What a caller learns about its call ([`Outcome`]) and what the table has
//! done so far ([`Stats`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How a call got its result, from
/// [`SingleFlight::run_with_outcome`](crate::SingleFlight::run_with_outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// This call ran the work (or, for a detached call, started the task
    /// that ran it). A caller that drove a flight on after its driver was dropped (a
    /// takeover) counts here.
    Executed,
    /// This call joined an execution another call had started and got a
    /// clone of its result.
    Coalesced,
    /// This call got the stored result of an earlier execution, within its
    /// TTL, and nothing ran.
    Cached,
    /// This call was refused by a bound of the table
    /// ([`Error::Full`](crate::Error::Full), [`Error::Busy`](crate::Error::Busy)),
    /// and nothing ran.
    Refused,
    /// This call's [`Fingerprint`](crate::Fingerprint) differs from the one
    /// its key is running or stored with ([`Error::Mismatch`](crate::Error::Mismatch)),
    /// and nothing ran.
    Mismatched,
}

/// A snapshot of a table's counters, from
/// [`SingleFlight::stats`](crate::SingleFlight::stats).
///
/// Counters only grow. They are kept per shard; a hit is counted on the
/// cache line that its shard's read lock has just written, so counting adds
/// one atomic add to a line the hit owns already. A snapshot sums the shards
/// one at a time, so under load its fields may be a few calls apart from one
/// another.
///
/// ```
/// use idem::SingleFlight;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let flight = SingleFlight::<u8, u8>::builder()
///     .ttl(Duration::from_secs(60))
///     .build()
///     .unwrap();
/// flight.run(1, || async { Ok(10) }).await.unwrap();
/// flight.run(1, || async { Ok(10) }).await.unwrap();
/// let stats = flight.stats();
/// assert_eq!((stats.executions, stats.hits), (1, 1));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Flights started: the caller found its key vacant and ran its work (or,
    /// for a detached call, spawned it). Includes takeovers.
    pub executions: u64,
    /// Calls that joined a running execution instead of starting one.
    pub coalesced: u64,
    /// Calls answered from a stored result.
    pub hits: u64,
    /// Executions whose work returned `Err`.
    pub failures: u64,
    /// Executions whose work panicked.
    pub panics: u64,
    /// Executions started by a waiter after the caller that drove the
    /// previous execution was dropped.
    pub takeovers: u64,
    /// Stored results removed because their TTL had passed: by the sweeper,
    /// by a call that found its key expired, by `forget`, or to make room in
    /// a full shard (expired results go before any fresh one is evicted).
    pub expirations: u64,
    /// Unexpired stored results removed to keep the table within
    /// `max_entries`.
    pub evictions: u64,
    /// Calls refused by a bound (`Error::Full`, `Error::Busy`): nothing ran.
    pub refusals: u64,
    /// Calls whose fingerprint differed from their key's flight or stored
    /// result (`Error::Mismatch`): nothing ran.
    pub mismatches: u64,
}

/// One shard's live counters, but for hits, which the shard keeps next to
/// its lock word.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) executions: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) takeovers: AtomicU64,
    pub(crate) expirations: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) refusals: AtomicU64,
    pub(crate) mismatches: AtomicU64,
}

/// Adds one to a counter. Relaxed: counters order nothing.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Counters {
    pub(crate) fn add_to(&self, s: &mut Stats) {
        s.executions += self.executions.load(Relaxed);
        s.coalesced += self.coalesced.load(Relaxed);
        s.failures += self.failures.load(Relaxed);
        s.panics += self.panics.load(Relaxed);
        s.takeovers += self.takeovers.load(Relaxed);
        s.expirations += self.expirations.load(Relaxed);
        s.evictions += self.evictions.load(Relaxed);
        s.refusals += self.refusals.load(Relaxed);
        s.mismatches += self.mismatches.load(Relaxed);
    }
}
