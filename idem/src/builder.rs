//! Configuring a table.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::time::Duration;

use crate::{RandomState, SingleFlight};

/// The most shards a table may have.
pub const MAX_SHARDS: usize = 1 << 16;

/// Builds a [`SingleFlight`] that also stores results.
///
/// Created by [`SingleFlight::builder`]. Setters take and return the builder
/// by value; nothing is checked until [`build`](Builder::build), which reports
/// the first invalid setting as a [`BuildError`].
///
/// ```
/// use std::time::Duration;
/// use idem::SingleFlight;
///
/// let flight: SingleFlight<String, u64> = SingleFlight::builder()
///     .ttl(Duration::from_secs(30))
///     .max_entries(10_000)
///     .build()?;
/// # Ok::<(), idem::BuildError>(())
/// ```
#[must_use = "a builder does nothing until `.build()` is called"]
pub struct Builder<K, V, E, S = RandomState> {
    hasher: S,
    ttl: Option<Duration>,
    max_entries: Option<usize>,
    eviction: Eviction,
    max_in_flight: Option<usize>,
    shards: Option<usize>,
    sweep_interval: Option<Duration>,
    name: Option<&'static str>,
    _types: PhantomData<Types<K, V, E>>,
}

// Not derived: deriving would require `K: Clone, V: Clone, E: Clone`.
impl<K, V, E, S: Clone> Clone for Builder<K, V, E, S> {
    fn clone(&self) -> Self {
        Self {
            hasher: self.hasher.clone(),
            ..*self
        }
    }
}

impl<K, V, E, S> fmt::Debug for Builder<K, V, E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .field("eviction", &self.eviction)
            .field("max_in_flight", &self.max_in_flight)
            .field("shards", &self.shards)
            .field("sweep_interval", &self.sweep_interval)
            .field("name", &self.name)
            .finish()
    }
}

/// Keeps the builder `Send + Sync` whatever `K`, `V` and `E` are.
type Types<K, V, E> = fn() -> (K, V, E);

/// The settings a table was built with, after defaults and validation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// `None`: nothing is stored (no ttl, or a ttl of zero).
    pub(crate) ttl: Option<Duration>,
    pub(crate) max_entries: Option<usize>,
    pub(crate) eviction: Eviction,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) shards: usize,
    pub(crate) sweep_interval: Duration,
    /// What tracing calls the table.
    pub(crate) name: Option<&'static str>,
}

/// What a table bounded by [`Builder::max_entries`] does when it is full.
///
/// ```
/// use std::time::Duration;
/// use idem::{Eviction, SingleFlight};
///
/// // Retry protection: a stored receipt stays for its whole ttl; when the
/// // table is full, new keys are refused (`Error::Full`), never run twice.
/// let payments: SingleFlight<String, String> = SingleFlight::builder()
///     .ttl(Duration::from_secs(24 * 3600))
///     .max_entries(1_000_000)
///     .eviction(Eviction::Never)
///     .build()?;
/// # Ok::<(), idem::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Eviction {
    /// A cache: when a shard is full, S3-FIFO drops the stored result least
    /// likely to be asked for again (expired results first), and the new
    /// result is stored. Fast, and keeps hot keys; but a result that nobody
    /// asks for again may be dropped well before its ttl, and a retry that
    /// comes after that runs the work again. The default.
    #[default]
    Adaptive,
    /// Retry protection: a stored result is kept until its ttl ends or it
    /// is [`forget`](crate::SingleFlight::forget)ten, whatever arrives
    /// later. The bound is table-wide and exact: at most `max_entries`
    /// entries (stored results *and* running flights) whatever the hash
    /// distribution. A call for a new key that would go beyond it is
    /// refused with [`Error::Full`](crate::Error::Full), without running
    /// its work; calls for keys that are stored or running are served as
    /// usual. A flight reserves its slot when it starts, so a flight that
    /// succeeds always has room for its result. An expired result frees its
    /// slot at once, swept or not.
    Never,
}

impl<K, V, E> Builder<K, V, E> {
    pub(crate) fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            ttl: None,
            max_entries: None,
            eviction: Eviction::Adaptive,
            max_in_flight: None,
            shards: None,
            sweep_interval: None,
            name: None,
            _types: PhantomData,
        }
    }
}

impl<K, V, E, S> Builder<K, V, E, S> {
    /// The hasher that spreads keys over the shards and within them.
    ///
    /// Defaults to [`RandomState`] (SipHash-1-3 with random keys), which
    /// resists hash flooding by keys an attacker chooses. A faster hasher
    /// (foldhash, FxHash) pays only for keys you control: a hit on a `u64`
    /// key costs about what its hash costs less. See `BENCHMARKS.md`.
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// use std::time::Duration;
    /// use idem::SingleFlight;
    ///
    /// let flight: SingleFlight<u64, u64, (), RandomState> = SingleFlight::builder()
    ///     .ttl(Duration::from_secs(30))
    ///     .hasher(RandomState::new())
    ///     .build()?;
    /// # Ok::<(), idem::BuildError>(())
    /// ```
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> Builder<K, V, E, S2> {
        Builder {
            hasher,
            ttl: self.ttl,
            max_entries: self.max_entries,
            eviction: self.eviction,
            max_in_flight: self.max_in_flight,
            shards: self.shards,
            sweep_interval: self.sweep_interval,
            name: self.name,
            _types: PhantomData,
        }
    }

    /// The table's name in its `tracing` spans and events (with the
    /// `tracing` feature; `"unnamed"` by default). The tables of
    /// [`#[idempotent]`](crate::idempotent) are named after their function.
    ///
    /// ```
    /// let flight = idem::SingleFlight::<u64, u64>::builder()
    ///     .name("payments")
    ///     .build()?;
    /// # Ok::<(), idem::BuildError>(())
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// How long a successful result is replayed to later callers of its key.
    ///
    /// Without a ttl, or with `Duration::ZERO`, the table only coalesces
    /// concurrent calls and keeps nothing afterwards. A ttl too large to add
    /// to the clock (`Duration::MAX`) means "until evicted or forgotten".
    ///
    /// Expiry is exact under the `test-util` feature. Otherwise a result is
    /// served for at least its ttl (the expiry counts from a precise clock
    /// read at the store) and not after it, unless the coarse clock that
    /// hits read lags beyond a margin of eight ticks (32 ms at `HZ=250`);
    /// see the crate docs, *Time*.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The most stored results the table keeps. When a shard is full, the
    /// S3-FIFO policy drops the result least likely to be asked for again.
    /// Running flights are not counted and never evicted.
    ///
    /// With the default [`Eviction::Adaptive`] this is a cache bound,
    /// split evenly over the shards (a table with fewer entries than shards
    /// gets fewer shards), and a result that is not asked for again does
    /// not last long once the table is full. Measured
    /// (`benches/src/bin/retention.rs`, 100 to 10,000 entries, 8 and 64
    /// shards), a fresh one-off result survived about `max_entries` newer
    /// stores when no key was ever retried, 0.4–0.7 × `max_entries` when a
    /// tenth of the keys were retried, about a tenth when half were, and as
    /// little as one newer store when each shard held fewer than about 20
    /// results: each eviction pass promotes every retried key ahead of it.
    /// **For retry protection use [`Eviction::Never`]**, under which this
    /// bound is table-wide and exact and a stored result is kept for its
    /// whole ttl: a new key is refused instead.
    ///
    /// Unbounded by default. Requires a [`ttl`](Builder::ttl); with a zero
    /// ttl nothing is stored and the bound is ignored.
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = Some(max_entries);
        self
    }

    /// What the table does when it holds `max_entries`: evict (a cache, the
    /// default) or refuse new keys (retry protection). See [`Eviction`].
    ///
    /// For idempotency — a retry of a payment must get the stored receipt,
    /// however many other requests came in between — use
    /// [`Eviction::Never`].
    pub fn eviction(mut self, eviction: Eviction) -> Self {
        self.eviction = eviction;
        self
    }

    /// The most flights (executions) that may run at once, table-wide. A
    /// call that would start another is refused with
    /// [`Error::Busy`](crate::Error::Busy) without running its work; calls
    /// that join a running flight or get a stored result are served as
    /// usual. Keys may come from the network: this keeps an attacker from
    /// growing the table, and the work in progress, without bound.
    ///
    /// Unbounded by default. Works with any ttl, and without one.
    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = Some(max_in_flight);
        self
    }

    /// The number of shards, a power of two from 1 to [`MAX_SHARDS`].
    ///
    /// Defaults to four per available CPU, rounded up to a power of two. A
    /// table with `max_entries` below the shard count uses fewer shards, so
    /// that every shard can hold a result.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The least time between two sweeps of the background task that
    /// removes expired results.
    ///
    /// The task sleeps until the oldest stored result expires, and at least
    /// this long; a sweep costs O(shards + expired results). Defaults to the
    /// ttl, clamped to between 1 s and 60 s: an expired result is gone from
    /// memory at most about that long after it expires, even if its key is
    /// never asked for again.
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval);
        self
    }

    /// Checks the settings and builds the table.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] names the first invalid setting: `max_entries(0)`,
    /// `max_entries` without `ttl`, a shard count that is zero, not a power of
    /// two or above [`MAX_SHARDS`], or a zero `sweep_interval`.
    ///
    /// A table that stores results is swept by a background task, hence the
    /// `Send + 'static` bounds (and `Sync` for keys and values, which the
    /// sweeper reads from its own task); [`SingleFlight::new`] has none.
    pub fn build(self) -> Result<SingleFlight<K, V, E, S>, BuildError>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        E: Send + 'static,
        S: BuildHasher,
    {
        let settings = self.settings()?;
        Ok(SingleFlight::from_settings(settings, self.hasher))
    }

    fn settings(&self) -> Result<Settings, BuildError> {
        if let Some(n) = self.max_entries {
            if n == 0 {
                return Err(BuildError::ZeroMaxEntries);
            }
            if self.ttl.is_none() {
                return Err(BuildError::MaxEntriesWithoutTtl);
            }
        }
        if self.max_in_flight == Some(0) {
            return Err(BuildError::ZeroMaxInFlight);
        }
        let shards = match self.shards {
            Some(0) => return Err(BuildError::ZeroShards),
            Some(n) if n > MAX_SHARDS => return Err(BuildError::TooManyShards(n)),
            Some(n) if !n.is_power_of_two() => return Err(BuildError::ShardsNotPowerOfTwo(n)),
            Some(n) => n,
            None => default_shards(),
        };
        let ttl = self.ttl.filter(|t| !t.is_zero());
        // A zero ttl stores nothing: there is nothing to bound.
        let max_entries = self.max_entries.filter(|_| ttl.is_some());
        // Every shard must be able to hold at least one result (the
        // adaptive bound is split over the shards; the never bound is
        // table-wide).
        let shards = match (max_entries, self.eviction) {
            (Some(n), Eviction::Adaptive) if n < shards => prev_power_of_two(n),
            _ => shards,
        };
        let sweep_interval = match self.sweep_interval {
            Some(d) if d.is_zero() => return Err(BuildError::ZeroSweepInterval),
            Some(d) => d,
            None => ttl
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_secs(1), Duration::from_secs(60)),
        };
        Ok(Settings {
            ttl,
            max_entries,
            eviction: self.eviction,
            max_in_flight: self.max_in_flight,
            shards,
            sweep_interval,
            name: self.name,
        })
    }
}

fn default_shards() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus * 4).next_power_of_two().min(MAX_SHARDS)
}

fn prev_power_of_two(n: usize) -> usize {
    debug_assert!(n > 0);
    1 << (usize::BITS - 1 - n.leading_zeros())
}

pub(crate) fn defaults() -> Settings {
    Builder::<(), (), ()>::new()
        .settings()
        .expect("the default settings are valid")
}

/// An invalid setting, reported by [`Builder::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_entries(0)`: a table that may store nothing should have no ttl.
    ZeroMaxEntries,
    /// `max_entries` without `ttl`: nothing would be stored to bound.
    MaxEntriesWithoutTtl,
    /// `shards(0)`.
    ZeroShards,
    /// The shard count is not a power of two.
    ShardsNotPowerOfTwo(usize),
    /// The shard count is above [`MAX_SHARDS`].
    TooManyShards(usize),
    /// `sweep_interval(Duration::ZERO)`.
    ZeroSweepInterval,
    /// `max_in_flight(0)`: no call could ever run.
    ZeroMaxInFlight,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroMaxEntries => f.write_str(
                "max_entries must be at least 1 (to store nothing, leave the ttl unset)",
            ),
            BuildError::MaxEntriesWithoutTtl => f.write_str(
                "max_entries bounds stored results, but without a ttl nothing is stored: set a ttl",
            ),
            BuildError::ZeroShards => f.write_str("shards must be at least 1"),
            BuildError::ShardsNotPowerOfTwo(n) => {
                write!(f, "shards must be a power of two, got {n}")
            }
            BuildError::TooManyShards(n) => {
                write!(f, "shards must be at most {MAX_SHARDS}, got {n}")
            }
            BuildError::ZeroSweepInterval => f.write_str("sweep_interval must be above zero"),
            BuildError::ZeroMaxInFlight => {
                f.write_str("max_in_flight must be at least 1 (no call could ever run)")
            }
        }
    }
}

impl std::error::Error for BuildError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(b: Builder<u8, u8, ()>) -> Result<Settings, BuildError> {
        b.settings()
    }

    #[test]
    fn each_invalid_setting_is_reported() {
        let b = || Builder::<u8, u8, ()>::new();
        let ttl = Duration::from_secs(1);
        assert_eq!(
            settings(b().ttl(ttl).max_entries(0)).unwrap_err(),
            BuildError::ZeroMaxEntries
        );
        assert_eq!(
            settings(b().max_entries(5)).unwrap_err(),
            BuildError::MaxEntriesWithoutTtl
        );
        assert_eq!(settings(b().shards(0)).unwrap_err(), BuildError::ZeroShards);
        assert_eq!(
            settings(b().shards(6)).unwrap_err(),
            BuildError::ShardsNotPowerOfTwo(6)
        );
        assert_eq!(
            settings(b().shards(MAX_SHARDS * 2)).unwrap_err(),
            BuildError::TooManyShards(MAX_SHARDS * 2)
        );
        assert_eq!(
            settings(b().sweep_interval(Duration::ZERO)).unwrap_err(),
            BuildError::ZeroSweepInterval
        );
        assert_eq!(
            settings(b().max_in_flight(0)).unwrap_err(),
            BuildError::ZeroMaxInFlight
        );
        for e in [BuildError::ZeroShards, BuildError::ShardsNotPowerOfTwo(3)] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn defaults_and_derived_settings() {
        let s = defaults();
        assert!(s.shards.is_power_of_two());
        assert_eq!(s.ttl, None);
        assert_eq!(s.sweep_interval, Duration::from_secs(1));

        let s = settings(Builder::new().ttl(Duration::ZERO)).unwrap();
        assert_eq!(s.ttl, None, "a zero ttl stores nothing");
        let s = settings(Builder::new().ttl(Duration::ZERO).shards(64).max_entries(5)).unwrap();
        assert_eq!(
            (s.max_entries, s.shards),
            (None, 64),
            "nor bounds it, or cuts the shards"
        );

        let s = settings(
            Builder::new()
                .ttl(Duration::from_secs(600))
                .shards(64)
                .max_entries(5),
        )
        .unwrap();
        assert_eq!(s.shards, 4, "fewer shards than entries");
        let s = settings(
            Builder::new()
                .ttl(Duration::from_secs(600))
                .shards(64)
                .max_entries(5)
                .eviction(Eviction::Never),
        )
        .unwrap();
        assert_eq!(s.shards, 64, "a never bound is table-wide: no shard is cut");
        assert_eq!(s.sweep_interval, Duration::from_secs(60));

        let s = settings(Builder::new().ttl(Duration::from_millis(5))).unwrap();
        assert_eq!(s.sweep_interval, Duration::from_secs(1));
        let s = settings(Builder::new().ttl(Duration::from_secs(5))).unwrap();
        assert_eq!(s.sweep_interval, Duration::from_secs(5));
    }
}
