//! The sharded single-flight table and its public handle.

mod detached;
mod expiry;
mod key;
mod policy;
mod run;
mod shard;
mod sweeper;

use std::borrow::Borrow;
use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use crate::builder::{self, Builder, Eviction, Settings};
use crate::clock::Timestamp;
use crate::error::Panicked;
use crate::flight::Flight;
use crate::stats::{bump, Stats};
use crate::sync::{Arc, Mutex};
use crate::trace;
use crate::{Error, RandomState};

pub(crate) use shard::Shard;
use shard::{Deferred, Limits};

/// Coalesces concurrent calls that share a key into one execution, and
/// optionally replays a successful result to later calls for a while.
///
/// A `SingleFlight` is a handle: cloning it is cheap and every clone shares
/// the same table. It is `Send + Sync` when `K` and `V` are `Send + Sync`
/// and `E` is `Send`.
///
/// * [`SingleFlight::new`] builds a table that only coalesces.
/// * [`SingleFlight::builder`] adds a [`ttl`](Builder::ttl) (how long a
///   success is replayed) and a bound ([`max_entries`](Builder::max_entries)).
///
/// For one key, the first caller to arrive *leads*: it runs its work. Calls
/// that arrive while it runs *join* it and receive a clone of its result.
/// If the table has a ttl, calls arriving within the ttl after a success get
/// the stored value without running anything. Errors and panics go to every
/// caller of the flight that produced them and are never stored.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
/// use idem::SingleFlight;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let flight: SingleFlight<u64, String> = SingleFlight::builder()
///     .ttl(Duration::from_secs(60))
///     .build()
///     .unwrap();
/// let runs = AtomicUsize::new(0);
/// let work = || async {
///     runs.fetch_add(1, Ordering::SeqCst);
///     tokio::task::yield_now().await;
///     Ok(String::from("receipt #42"))
/// };
/// // Three concurrent calls: one execution.
/// let (a, b, c) = tokio::join!(flight.run(42, work), flight.run(42, work), flight.run(42, work));
/// assert_eq!(a.unwrap(), "receipt #42");
/// assert_eq!(b.unwrap(), c.unwrap());
/// // A later call within the ttl: the stored result.
/// assert_eq!(flight.run(42, work).await.unwrap(), "receipt #42");
/// assert_eq!(runs.load(Ordering::SeqCst), 1);
/// # }
/// ```
pub struct SingleFlight<K, V, E = Infallible, S = RandomState> {
    inner: Arc<Inner<K, V, E>>,
    /// Copied into every clone of the handle: the same keys, so the same
    /// hashes.
    hasher: S,
}

pub(crate) struct Inner<K, V, E> {
    shards: Box<[Shard<K, V, E>]>,
    /// The table-wide bounds, if any (shared with every shard).
    limits: Option<Arc<Limits>>,
    /// Shift that turns a hash into a shard index; `None` for one shard.
    shift: Option<u32>,
    settings: Settings,
    /// Whether a sweeper task is (about to be) running.
    sweeping: AtomicBool,
    /// Starts the sweeper; `None` for tables that store nothing.
    spawn_sweeper: Option<SpawnSweeper<K, V, E>>,
    /// The latest sweeper task, aborted when the table is dropped so that
    /// it does not linger until its next tick (up to a minute, or forever
    /// with a huge `sweep_interval`).
    sweeper_task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl<K, V, E> Drop for Inner<K, V, E> {
    fn drop(&mut self) {
        if let Some(task) = self.sweeper_task.lock().take() {
            task.abort();
        }
    }
}

/// Starts a table's sweeper task on a runtime.
type SpawnSweeper<K, V, E> = fn(&Arc<Inner<K, V, E>>, &tokio::runtime::Handle);

impl<K, V, E, S: Clone> Clone for SingleFlight<K, V, E, S> {
    // Not derived: deriving would require `K: Clone, V: Clone, E: Clone`.
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            hasher: self.hasher.clone(),
        }
    }
}

impl<K, V, E, S> fmt::Debug for SingleFlight<K, V, E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner.settings;
        f.debug_struct("SingleFlight")
            .field("ttl", &s.ttl)
            .field("max_entries", &s.max_entries)
            .field("eviction", &s.eviction)
            .field("max_in_flight", &s.max_in_flight)
            .field("shards", &s.shards)
            .field("name", &s.name)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V, E, S: BuildHasher + Default> Default for SingleFlight<K, V, E, S> {
    /// A table that coalesces concurrent calls and stores nothing, as
    /// [`SingleFlight::new`], with `S::default()` as its hasher.
    fn default() -> Self {
        Self::with_settings(builder::defaults(), None, S::default())
    }
}

impl<K: Hash + Eq, V, E> SingleFlight<K, V, E> {
    /// A table that coalesces concurrent calls and stores nothing.
    ///
    /// ```
    /// let flight = idem::SingleFlight::<String, u64>::new();
    /// assert!(flight.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Configures a table that also stores results; see [`Builder`].
    ///
    /// A table that stores results is swept by a background task, so
    /// [`Builder::build`] needs `K` and `V` to be `Send + Sync + 'static`
    /// and `E` to be `Send + 'static`.
    pub fn builder() -> Builder<K, V, E> {
        Builder::new()
    }
}

impl<K: Hash + Eq, V, E, S: BuildHasher> SingleFlight<K, V, E, S> {
    pub(crate) fn from_settings(settings: Settings, hasher: S) -> Self
    where
        K: Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        E: Send + 'static,
    {
        let spawn = settings
            .ttl
            .map(|_| sweeper::spawn::<K, V, E> as SpawnSweeper<K, V, E>);
        Self::with_settings(settings, spawn, hasher)
    }

    fn with_settings(
        settings: Settings,
        spawn_sweeper: Option<SpawnSweeper<K, V, E>>,
        hasher: S,
    ) -> Self {
        let n = settings.shards;
        let never = settings.eviction == Eviction::Never;
        let limits = (settings.max_in_flight.is_some()
            || (never && settings.max_entries.is_some()))
        .then(|| {
            Arc::new(Limits::new(
                settings.max_entries.filter(|_| never),
                settings.max_in_flight,
            ))
        });
        let shards = (0..n)
            .map(|i| {
                // Split an adaptive max_entries exactly: the shards'
                // capacities sum to it. A never bound is table-wide.
                let capacity = settings
                    .max_entries
                    .filter(|_| !never)
                    .map(|max| max / n + usize::from(i < max % n));
                Shard::new(capacity, limits.clone())
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                shards,
                limits,
                shift: (n > 1).then(|| 64 - n.trailing_zeros()),
                settings,
                sweeping: AtomicBool::new(false),
                spawn_sweeper,
                sweeper_task: Mutex::new(None),
            }),
            hasher,
        }
    }

    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }
}

impl<K, V, E> Inner<K, V, E> {
    #[inline]
    pub(crate) fn shard(&self, hash: u64) -> &Shard<K, V, E> {
        // Skip the top 7 bits: the map uses them inside the shard.
        let i = self.shift.map_or(0, |s| ((hash << 7) >> s) as usize);
        &self.shards[i]
    }

    /// Removes expired results everywhere, in O(shards + expired). Returns
    /// how many remain stored, and when the oldest of them expires.
    fn sweep(&self) -> (usize, Option<Timestamp>) {
        let now = Timestamp::now();
        self.shards
            .iter()
            .map(|s| s.sweep(now))
            .fold((0, None), |(n, next), (m, t)| (n + m, min(next, t)))
    }

    fn stored(&self) -> usize {
        self.shards.iter().map(Shard::stored).sum()
    }
}

impl<K: Hash + Eq, V: Clone, E: Clone, S: BuildHasher> SingleFlight<K, V, E, S> {
    /// Returns the stored, unexpired result for `key`. Never runs anything,
    /// never waits, and is not counted in [`stats`](Self::stats).
    ///
    /// ```
    /// use std::time::Duration;
    /// use idem::SingleFlight;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let flight: SingleFlight<String, u8> = SingleFlight::builder()
    ///     .ttl(Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(flight.get("a"), None);
    /// flight.run("a".to_string(), || async { Ok(1) }).await.unwrap();
    /// assert_eq!(flight.get("a"), Some(1));
    /// # }
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.inner.shard(hash).get(hash, key)
    }

    /// Drops the stored result for `key` and detaches its running flight, if
    /// any. Returns whether there was either.
    ///
    /// Calls after `forget` start a fresh execution. A detached flight still
    /// answers the callers that had joined it, but its result is not stored
    /// and its completion never touches a newer flight for the same key.
    ///
    /// ```
    /// use std::time::Duration;
    /// use idem::{Outcome, SingleFlight};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let flight: SingleFlight<u8, u8> = SingleFlight::builder()
    ///     .ttl(Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// flight.run(1, || async { Ok(1) }).await.unwrap();
    /// assert!(flight.forget(&1));
    /// let (v, outcome) = flight.run_with_outcome(1, || async { Ok(2) }).await;
    /// assert_eq!((v, outcome), (Ok(2), Outcome::Executed));
    /// # }
    /// ```
    pub fn forget<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.inner.shard(hash).forget(hash, key)
    }

    /// [`forget`](Self::forget)s every key.
    ///
    /// # Panics
    ///
    /// If the `Drop` of a key or value panics, after the table was emptied:
    /// the other entries are still dropped while the panic unwinds (a second
    /// panicking `Drop` aborts, as in any Rust collection).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let flight = idem::SingleFlight::<u8, u8>::builder()
    ///     .ttl(std::time::Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// flight.run(1, || async { Ok(1) }).await.unwrap();
    /// flight.clear();
    /// assert!(flight.is_empty());
    /// # }
    /// ```
    pub fn clear(&self) {
        // Every shard is emptied before any entry is dropped: a key or value
        // whose `Drop` panics cannot leave later shards uncleared (the
        // other entries are still dropped while that panic unwinds).
        let cleared: Vec<_> = self.inner.shards.iter().map(Shard::clear).collect();
        drop(cleared);
    }

    /// Entries held: running flights plus stored results (expired results
    /// count until the sweeper or a later call removes them).
    ///
    /// With [`Eviction::Never`] and `max_entries`, this is the table-wide
    /// count the bound is checked against: exact at every instant, and
    /// never above `max_entries`. Otherwise the shards are counted one
    /// after another, so under concurrent calls the sum may be a few
    /// entries off any single instant.
    ///
    /// ```
    /// let flight = idem::SingleFlight::<u8, u8>::new();
    /// assert_eq!(flight.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        match self.inner.limits.as_ref().and_then(|l| l.entries()) {
            Some(n) => n,
            None => self.inner.shards.iter().map(Shard::len).sum(),
        }
    }

    /// Whether [`len`](Self::len) is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the table's counters; see [`Stats`].
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for shard in self.inner.shards.iter() {
            shard.add_stats(&mut stats);
        }
        stats
    }
}

/// The earlier of two optional times; `None` only when both are.
fn min(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<K, V, E> Inner<K, V, E> {
    /// The table's settings.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the table keeps successful results.
    pub(crate) fn stores(&self) -> bool {
        self.settings.ttl.is_some()
    }

    /// Counts how a flight's work ended, and makes it the flight's result.
    pub(crate) fn count_ending(
        &self,
        hash: u64,
        r: Result<Result<V, E>, Panicked>,
    ) -> Result<V, Error<E>> {
        let counters = self.shard(hash).counters();
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                bump(&counters.failures);
                Err(Error::Failed(e))
            }
            Err(p) => {
                trace::panicked(&self.settings, hash, &p);
                bump(&counters.panics);
                Err(Error::Panicked(p))
            }
        }
    }

    /// Takes an ending flight out of the table: stores `value` in its place
    /// (for the ttl), or removes it when there is nothing to store.
    /// Returns what left the table, for the caller to drop after the
    /// wake-up.
    pub(crate) fn settle(
        this: &Arc<Self>,
        hash: u64,
        flight: &Arc<Flight<V, E>>,
        value: Option<V>,
    ) -> Deferred<K, V, E> {
        let store = value.zip(this.settings.ttl);
        let settled = this.shard(hash).settle(hash, flight, store);
        if settled.evicted > 0 {
            trace::evicted(&this.settings, settled.evicted);
        }
        // Only a store can need a sweeper (a table that stores nothing, or
        // a failure, skips the table-wide flag).
        if settled.stored && (settled.first || !this.sweeping.load(Relaxed)) {
            sweeper::ensure(this);
        }
        settled.deferred
    }
}

#[cfg(all(test, not(idem_loom)))]
mod tests {
    use std::future::Future;

    use super::shard::Claim;
    use super::*;
    use crate::Outcome;

    /// Issue 7, defect 4: a flight that ended while the table still held
    /// it (a broken invariant: a panic inside a completion path) made its
    /// key's callers spin (re-claim, join it, read "abandoned", loop)
    /// without ever returning `Pending`. Now such a flight is taken out of
    /// the table by the caller that finds it over, and the caller moves on.
    #[test]
    fn a_flight_that_ended_inside_the_table_is_not_joined_in_a_loop() {
        let flight: SingleFlight<u8, u8> = SingleFlight::new();
        let hash = flight.hash(&1u8);
        let shard = flight.inner.shard(hash);
        let Claim::Lead(dead, _) = shard.claim_exclusive(hash, &mut Some(1)) else {
            panic!("the key was vacant")
        };
        // Over (no waiter registered), but left in the table.
        assert!(crate::flight::orphan_for_test(&dead));
        assert_eq!(flight.len(), 1);
        let mut call = std::pin::pin!(flight.run_with_outcome(1, || async { Ok(5) }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert_eq!(
            call.as_mut().poll(&mut cx),
            std::task::Poll::Ready((Ok(5), Outcome::Executed))
        );
        assert!(flight.is_empty());
    }

    /// Every waiting caller's task holds a `run` future, so its size is paid
    /// per waiter in a storm. It was 432 bytes for these types before the
    /// slow path was reshaped (the three-variant `Claim` and the leader's
    /// step were kept across `.await`s), then 192; the takeover lifecycle
    /// (a waiter that knows its shard, so that the last one out of an
    /// orphan removes it) made it 256, and the table-wide bounds 264 (not
    /// yet understood: the refusal path holds nothing across an `.await`;
    /// see issue 7's notes). `tokio::sync::OnceCell`'s `get_or_try_init`
    /// is 128. The bound catches a relapse beyond that.
    #[test]
    fn the_run_future_stays_small() {
        let flight: SingleFlight<u64, Arc<[u8; 64]>, ()> = SingleFlight::new();
        let work = || async { Ok(Arc::new([0; 64])) };
        let run = flight.run(1, work);
        assert!(size_of_val(&run) <= 264, "{} bytes", size_of_val(&run));
        let with_outcome = flight.run_with_outcome(1, work);
        assert_eq!(size_of_val(&run), size_of_val(&with_outcome));
    }
}
