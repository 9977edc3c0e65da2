//! The sharded single-flight table and its public handle.

mod expiry;
mod key;
mod policy;
mod shard;
mod sweeper;

use std::borrow::Borrow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use crate::builder::{self, Builder, Eviction, Settings};
use crate::clock::Timestamp;
use crate::error::Panicked;
use crate::flight::{Driver, Flight, Waited, Waiter};
use crate::stats::{bump, Stats};
use crate::sync::{Arc, Mutex};
use crate::trace;
use crate::work::{self, run_work};
use crate::{fingerprint, Error, Fingerprint, Outcome, RandomState};

use key::{ByRef, Fingerprinted, KeyArg};
pub(crate) use shard::Shard;
use shard::{Claim, Deferred, Found, Limits, Refusal};

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

const REENTRANT: &str = "idem: re-entrant call: the work of a flight called the same \
SingleFlight with the same key, and would wait for its own result forever. \
Use a different key, or call the work directly";

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

/// Where a caller stands after looking its key up.
enum Step<K, V, E> {
    Done(Result<V, Error<E>>, Outcome),
    /// Drive this flight: a new one (with the expired entry it replaced, to
    /// drop once the driver's guard is armed) or an orphan taken over.
    Lead(Arc<Flight<V, E>>, Deferred<K, V, E>),
    /// The table's bounds allow no new flight.
    Refused(Refusal),
}

impl<K: Hash + Eq, V: Clone, E: Clone, S: BuildHasher> SingleFlight<K, V, E, S> {
    /// Runs `f` for `key`, unless a call for an equal key is already running
    /// (then waits for its result) or a stored result is still fresh (then
    /// returns it).
    ///
    /// The work may borrow from the caller (`&self`, locals): it needs
    /// neither `Send` nor `'static`, because the caller that starts a flight
    /// drives it, inside its own future.
    ///
    /// `run` behaves as an `async fn` (nothing happens until the future is
    /// polled, and the future is `Send` when `K` and `V` are `Send + Sync`,
    /// `E` is `Send`, and the work and its future are `Send`, since it
    /// holds a reference to the shared table); it is written as a plain
    /// `fn` so that the future is exactly
    /// [`run_with_outcome`](Self::run_with_outcome)'s, with no copy of the
    /// arguments beside it: in a storm every waiting caller's task holds one.
    ///
    /// # Errors
    ///
    /// * [`Error::Failed`] with a clone of the work's error, for every caller
    ///   of the flight that failed. The error is not stored.
    /// * [`Error::Panicked`] if the work panicked, with its message, for
    ///   every caller of that flight. The key is free again at once.
    ///
    /// # Panics
    ///
    /// If the work calls `run` on the same table with an equal key, it would
    /// wait for itself forever; idem detects this and panics inside the work,
    /// so that the outer call (and everyone coalesced on it) gets
    /// [`Error::Panicked`] with a message that says what happened. Only
    /// calls made from inside the work's own future are detected: a work that
    /// spawns a task which calls back and then waits for that task still
    /// deadlocks. The check is made when the inner call would start waiting,
    /// so an inner call raced in a `select!` against something else counts
    /// too, even if the other branch would have won.
    ///
    /// # Cancel safety
    ///
    /// Dropping this future disturbs nobody else:
    ///
    /// * a caller that was *waiting* simply leaves;
    /// * if the caller that was *running* the work is dropped, the work is
    ///   dropped with it and the waiting callers wake up: the first of them
    ///   to be polled drives the same flight on with its own `f`, and the
    ///   others stay attached to it and get its outcome, however late they
    ///   are polled. Each cancelled driver costs one extra execution, never
    ///   one per waiter, and however often drivers are cancelled, waiters
    ///   never give up with an error. A flight whose driver was dropped and
    ///   that nobody waits on any more leaves the table.
    ///
    /// One hazard remains: a leader whose future is polled once and then kept
    /// alive *without being polled* (held in a `select!` branch that is never
    /// polled again, say) stalls its waiters for as long as it lives, because
    /// the work only makes progress when its caller polls it. Wrap waiters in
    /// `tokio::time::timeout` if that can happen, or use
    /// [`run_detached`](Self::run_detached), whose work runs on its own task.
    ///
    /// # Examples
    ///
    /// ```
    /// use idem::{Error, SingleFlight};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let flight: SingleFlight<&str, u32, String> = SingleFlight::new();
    /// let local = 41;
    /// let v = flight.run("answer", || async { Ok(local + 1) }).await;
    /// assert_eq!(v, Ok(42));
    ///
    /// let e = flight.run("answer", || async { Err("no".to_string()) }).await;
    /// assert_eq!(e, Err(Error::Failed("no".to_string())));
    /// # }
    /// ```
    pub fn run<F, Fut>(
        &self,
        key: K,
        f: F,
    ) -> impl Future<Output = Result<V, Error<E>>> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        ResultOnly {
            call: self.run_with_outcome(key, f),
        }
    }

    /// Like [`run`](Self::run), and also says whether this call executed the
    /// work, joined another call's execution, or got a stored result.
    ///
    /// # Errors
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Panics
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Examples
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
    /// let work = || async {
    ///     tokio::task::yield_now().await;
    ///     Ok(7)
    /// };
    /// let (a, b) = tokio::join!(
    ///     flight.run_with_outcome(1, work),
    ///     flight.run_with_outcome(1, work)
    /// );
    /// assert_eq!(a, (Ok(7), Outcome::Executed));
    /// assert_eq!(b, (Ok(7), Outcome::Coalesced));
    /// assert_eq!(flight.run_with_outcome(1, work).await, (Ok(7), Outcome::Cached));
    /// # }
    /// ```
    pub fn run_with_outcome<F, Fut>(
        &self,
        key: K,
        f: F,
    ) -> impl Future<Output = (Result<V, Error<E>>, Outcome)> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.call(Some(key), f)
    }

    /// Like [`run`](Self::run), with the key borrowed: a hit, or a call
    /// that joins a running flight, never builds an owned key (a `String`
    /// key looked up by `&str` allocates nothing). The owned key is made,
    /// with [`ToOwned`], only when the call starts a flight.
    ///
    /// # Errors
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Panics
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use idem::SingleFlight;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let flight: SingleFlight<String, u64> = SingleFlight::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .build()
    ///     .unwrap();
    /// let header: &str = "order-7";
    /// let v = flight.run_by_ref(header, || async { Ok(7) }).await;
    /// assert_eq!(v, Ok(7));
    /// // The retry's key is never copied: it finds the stored result by `&str`.
    /// assert_eq!(flight.run_by_ref(header, || async { Ok(8) }).await, Ok(7));
    /// # }
    /// ```
    pub fn run_by_ref<'a, Q, F, Fut>(
        &'a self,
        key: &'a Q,
        f: F,
    ) -> impl Future<Output = Result<V, Error<E>>> + use<'a, K, V, E, S, Q, F, Fut>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        ResultOnly {
            call: self.call(ByRef::new(key), f),
        }
    }

    /// Like [`run_by_ref`](Self::run_by_ref), and also returns the
    /// [`Outcome`].
    ///
    /// # Errors
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Panics
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](Self::run).
    pub fn run_by_ref_with_outcome<'a, Q, F, Fut>(
        &'a self,
        key: &'a Q,
        f: F,
    ) -> impl Future<Output = (Result<V, Error<E>>, Outcome)> + use<'a, K, V, E, S, Q, F, Fut>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.call(ByRef::new(key), f)
    }

    /// Like [`run`](Self::run), for a call that carries the [`Fingerprint`]
    /// of what it asks for (its payload): if its key is running or stored
    /// for a call with another fingerprint, the call gets
    /// [`Error::Mismatch`] and nothing runs, instead of the other call's
    /// result. Calls without a fingerprint (`run`) are not checked, and a
    /// flight started by one matches any call.
    ///
    /// # Errors
    ///
    /// As for [`run`](Self::run), and [`Error::Mismatch`] as above.
    ///
    /// # Panics
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](Self::run).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use idem::{Error, Fingerprint, SingleFlight};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let payments: SingleFlight<u64, String> = SingleFlight::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .build()
    ///     .unwrap();
    /// let charge = |cents: u64| move || async move { Ok(format!("charged {cents}")) };
    /// let first = payments.run_with_fingerprint(7, Fingerprint::of(&1_250_u64), charge(1_250));
    /// assert_eq!(first.await, Ok("charged 1250".to_string()));
    /// // The same order id with another amount: a bug in the caller, caught.
    /// let reused = payments.run_with_fingerprint(7, Fingerprint::of(&9_999_u64), charge(9_999));
    /// assert_eq!(reused.await, Err(Error::Mismatch));
    /// // The genuine retry gets the stored result.
    /// let retry = payments.run_with_fingerprint(7, Fingerprint::of(&1_250_u64), charge(1_250));
    /// assert_eq!(retry.await, Ok("charged 1250".to_string()));
    /// # }
    /// ```
    pub fn run_with_fingerprint<F, Fut>(
        &self,
        key: K,
        fingerprint: Fingerprint,
        f: F,
    ) -> impl Future<Output = Result<V, Error<E>>> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let key = Fingerprinted {
            key: Some(key),
            fingerprint: fingerprint::raw(Some(fingerprint)),
        };
        ResultOnly {
            call: self.call(key, f),
        }
    }

    /// The body of every `run` flavour that drives its work in the
    /// caller's future.
    async fn call<A, F, Fut>(&self, mut key: A, f: F) -> (Result<V, Error<E>>, Outcome)
    where
        A: KeyArg<K>,
        K: Borrow<A::Query>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let hash = self.hash(key.query());
        // A hit is answered right here in the first poll, before the slow
        // path's nested futures are entered.
        let joined = match self
            .inner
            .shard(hash)
            .lookup(hash, key.query(), key.fingerprint())
        {
            Some(Found::Hit(v)) => return (Ok(v), Outcome::Cached),
            Some(Found::Join(flight)) => Some(flight),
            Some(Found::Mismatch) => {
                trace::mismatch(&self.inner.settings, hash);
                return (Err(Error::Mismatch), Outcome::Mismatched);
            }
            None => None,
        };
        // Scoped so that the step's storage is not kept across the work's
        // `.await`: this future lives in every waiting caller's task, so
        // its size is paid per waiter.
        let driver = match self.claim_or_wait(hash, &mut key, joined).await {
            Step::Done(r, outcome) => return (r, outcome),
            Step::Lead(flight, expired) => {
                let driver = Driver::new(&self.inner, hash, flight);
                drop(expired);
                driver
            }
            Step::Refused(_) => unreachable!("`claim_or_wait` turns refusals into errors"),
        };
        let work = run_work(driver.flight_id(), f);
        let r = trace::execution(&self.inner.settings, hash, work).await;
        (driver.finish(r), Outcome::Executed)
    }

    /// Looks the key up until the call has a result or must drive a flight,
    /// waiting on flights as needed. `joined` is the running flight the
    /// caller's first [`Shard::lookup`] found, if any; when it found
    /// nothing, the first claim goes straight to the exclusive lock. The
    /// caller brings work of its own, so it can drive a flight whose driver
    /// was dropped.
    ///
    /// Only the flight being waited on is held across the `.await`, so that
    /// the future stays small: every waiting caller's task holds one.
    async fn claim_or_wait<A>(
        &self,
        hash: u64,
        key: &mut A,
        joined: Option<Arc<Flight<V, E>>>,
    ) -> Step<K, V, E>
    where
        A: KeyArg<K>,
        K: Borrow<A::Query>,
    {
        let shard = self.inner.shard(hash);
        let mut flight = match joined {
            Some(flight) => flight,
            None => match self.claim_vacant(shard, hash, key) {
                Ok(step) => return step,
                Err(flight) => flight,
            },
        };
        loop {
            let waiter = Waiter::new(shard, hash, flight, true);
            assert!(!work::is_polling(waiter.flight_id()), "{REENTRANT}");
            let gone = match waiter.await {
                Waited::Done(r) => {
                    bump(&shard.counters().coalesced);
                    return Step::Done(r, Outcome::Coalesced);
                }
                Waited::Lead(flight) => {
                    trace::takeover(&self.inner.settings, hash);
                    bump(&shard.counters().takeovers);
                    bump(&shard.counters().executions);
                    return Step::Lead(flight, Deferred::none());
                }
                Waited::Orphaned => unreachable!("a waiter with work drives an orphan"),
                Waited::Gone(flight) => flight,
            };
            // Over without a result, and out of the table (taken out again
            // here should an invariant be broken, so that this loop always
            // moves on): look again.
            drop(shard.remove_flight_if(hash, &gone, || true));
            drop(gone);
            flight = match step(shard.claim(hash, key)) {
                Ok(step) => return self.refused(shard, hash, step),
                Err(flight) => flight,
            };
        }
    }

    /// The first claim of a caller whose lookup found nothing: straight to
    /// the exclusive lock. A table that is full frees its expired results'
    /// slots (swept or not) and tries once more.
    fn claim_vacant<A>(
        &self,
        shard: &Shard<K, V, E>,
        hash: u64,
        key: &mut A,
    ) -> Result<Step<K, V, E>, Arc<Flight<V, E>>>
    where
        A: KeyArg<K>,
        K: Borrow<A::Query>,
    {
        match step(shard.claim_exclusive(hash, key)) {
            Ok(Step::Refused(Refusal::Full)) => {
                self.inner.sweep();
                step(shard.claim(hash, key)).map(|step| self.refused(shard, hash, step))
            }
            other => other.map(|step| self.refused(shard, hash, step)),
        }
    }

    /// A refusal as the error the caller gets; any other step unchanged.
    fn refused(&self, shard: &Shard<K, V, E>, hash: u64, step: Step<K, V, E>) -> Step<K, V, E> {
        let refusal = match step {
            Step::Refused(refusal) => refusal,
            Step::Done(Err(Error::Mismatch), _) => {
                trace::mismatch(&self.inner.settings, hash);
                return step;
            }
            step => return step,
        };
        trace::refused(
            &self.inner.settings,
            hash,
            match refusal {
                Refusal::Busy => "busy",
                Refusal::Full => "full",
            },
        );
        bump(&shard.counters().refusals);
        let error = match refusal {
            Refusal::Busy => Error::Busy,
            Refusal::Full => {
                let now = Timestamp::now();
                let oldest = self
                    .inner
                    .shards
                    .iter()
                    .filter_map(Shard::oldest_expiry)
                    .min();
                Error::Full {
                    retry_after: oldest.map(|t| t.saturating_since(now)),
                }
            }
        };
        Step::Done(Err(error), Outcome::Refused)
    }

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

impl<K, V, E, S> SingleFlight<K, V, E, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + 'static,
    S: BuildHasher,
{
    /// Like [`run`](Self::run), but the work runs on its own tokio task, so
    /// it completes, and its result is stored, even if every caller leaves.
    ///
    /// Use this for side effects. With `run`, the caller that starts a flight
    /// drives it: if it times out or is dropped, the work stops part-way and
    /// a waiter (or the client's retry) runs it again. With `run_detached`, a
    /// client that times out and retries gets the first execution's result,
    /// and no caller, dropped, timed out or polled once and abandoned, can
    /// cancel or stall the work, as long as the runtime it was spawned on
    /// runs: the task goes to the runtime of the call that started the
    /// flight, and a current-thread runtime runs its tasks only while some
    /// thread drives it (`block_on`). A table shared by several runtimes
    /// (a `static`, a macro's table) is best used from multi-thread ones.
    ///
    /// # Errors
    ///
    /// As for [`run`](Self::run), and [`Error::Aborted`] for the caller
    /// that spawned the task if the task was dropped before it finished
    /// (its runtime shut down). Callers that joined such a flight with work
    /// of their own take it over instead, and get its result.
    ///
    /// # Panics
    ///
    /// When it has to start the work (the key is neither stored nor
    /// running) outside a tokio runtime: a hit, or joining a running flight,
    /// needs no runtime. A re-entrant call is detected and reported as for
    /// [`run`](Self::run).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the call leaves the work running to completion.
    ///
    /// The guarantee is about the flights this method starts. A detached
    /// call that finds a flight started by [`run`](Self::run) joins it, and
    /// that flight is driven by its `run` caller: use one mode per key when
    /// the difference matters.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use idem::SingleFlight;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let flight: SingleFlight<u32, &'static str> = SingleFlight::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .build()
    ///     .unwrap();
    /// // A client gives up after 10 ms; the payment takes 50 ms.
    /// let first = tokio::time::timeout(
    ///     Duration::from_millis(10),
    ///     flight.run_detached(7, || async {
    ///         tokio::time::sleep(Duration::from_millis(50)).await;
    ///         Ok("charged once")
    ///     }),
    /// )
    /// .await;
    /// assert!(first.is_err());
    /// // Its retry gets the first execution's result; the retry's own work never runs.
    /// let retry = flight.run_detached(7, || async { Ok("charged twice") }).await;
    /// assert_eq!(retry, Ok("charged once"));
    /// # }
    /// ```
    pub fn run_detached<F, Fut>(
        &self,
        key: K,
        f: F,
    ) -> impl Future<Output = Result<V, Error<E>>> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        ResultOnly {
            call: self.run_detached_with_outcome(key, f),
        }
    }

    /// Like [`run_detached`](Self::run_detached), and also returns the
    /// [`Outcome`]; the caller that spawned the work sees
    /// [`Outcome::Executed`].
    ///
    /// # Errors
    ///
    /// As for [`run_detached`](Self::run_detached).
    ///
    /// # Panics
    ///
    /// As for [`run_detached`](Self::run_detached).
    ///
    /// # Cancel safety
    ///
    /// As for [`run_detached`](Self::run_detached).
    pub fn run_detached_with_outcome<F, Fut>(
        &self,
        key: K,
        f: F,
    ) -> impl Future<Output = (Result<V, Error<E>>, Outcome)> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        self.detached(Some(key), f)
    }

    /// Like [`run_detached`](Self::run_detached), for a call that carries
    /// the [`Fingerprint`] of what it asks for; see
    /// [`run_with_fingerprint`](Self::run_with_fingerprint).
    ///
    /// # Errors
    ///
    /// As for [`run_detached`](Self::run_detached), and
    /// [`Error::Mismatch`] as for
    /// [`run_with_fingerprint`](Self::run_with_fingerprint).
    ///
    /// # Panics
    ///
    /// As for [`run_detached`](Self::run_detached).
    ///
    /// # Cancel safety
    ///
    /// As for [`run_detached`](Self::run_detached).
    pub fn run_detached_with_fingerprint<F, Fut>(
        &self,
        key: K,
        fingerprint: Fingerprint,
        f: F,
    ) -> impl Future<Output = Result<V, Error<E>>> + use<'_, K, V, E, S, F, Fut>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let key = Fingerprinted {
            key: Some(key),
            fingerprint: fingerprint::raw(Some(fingerprint)),
        };
        ResultOnly {
            call: self.detached(key, f),
        }
    }

    /// The body of every detached `run` flavour.
    async fn detached<A, F, Fut>(&self, mut key: A, f: F) -> (Result<V, Error<E>>, Outcome)
    where
        A: KeyArg<K>,
        K: Borrow<A::Query>,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let hash = self.hash(key.query());
        // A hit needs no runtime: the check comes when there is a task to
        // spawn.
        let joined = match self
            .inner
            .shard(hash)
            .lookup(hash, key.query(), key.fingerprint())
        {
            Some(Found::Hit(v)) => return (Ok(v), Outcome::Cached),
            Some(Found::Join(flight)) => Some(flight),
            Some(Found::Mismatch) => {
                trace::mismatch(&self.inner.settings, hash);
                return (Err(Error::Mismatch), Outcome::Mismatched);
            }
            None => None,
        };
        let (flight, expired) = match self.claim_or_wait(hash, &mut key, joined).await {
            Step::Done(r, outcome) => return (r, outcome),
            Step::Lead(flight, expired) => (flight, expired),
            Step::Refused(_) => unreachable!("`claim_or_wait` turns refusals into errors"),
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // The guard is armed before the panic: the flight is orphaned
            // to its waiters, not left without a driver.
            let _driver = Driver::new(&self.inner, hash, flight);
            panic!("idem: SingleFlight::run_detached must be called from within a tokio runtime");
        };
        let shard = self.inner.shard(hash);
        // The spawning caller waits as a waiter without work: its work went
        // to the task.
        let waiter = Waiter::new(shard, hash, Arc::clone(&flight), false);
        // The guard moves into the task: if the task is dropped unpolled
        // (its runtime is shutting down), the flight is orphaned, not left
        // stuck.
        let driver = Driver::new(Arc::clone(&self.inner), hash, flight);
        drop(expired);
        runtime.spawn(async move {
            let work = run_work(driver.flight_id(), f);
            let r = trace::execution(driver.settings(), driver.hash(), work).await;
            // The waiters (if any are left) get the result through the flight.
            let _ = driver.finish(r);
        });
        match waiter.await {
            Waited::Done(r) => (r, Outcome::Executed),
            Waited::Orphaned => (Err(Error::Aborted), Outcome::Executed),
            Waited::Lead(_) | Waited::Gone(_) => unreachable!("a waiter without work never drives"),
        }
    }
}

/// The earlier of two optional times; `None` only when both are.
fn min(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A claim as the step it ends in, or as the flight to wait on.
fn step<K, V, E>(claim: Claim<K, V, E>) -> Result<Step<K, V, E>, Arc<Flight<V, E>>> {
    match claim {
        Claim::Hit(v) => Ok(Step::Done(Ok(v), Outcome::Cached)),
        Claim::Lead(flight, expired) => Ok(Step::Lead(flight, expired)),
        Claim::Join(flight) => Err(flight),
        Claim::Refused(refusal) => Ok(Step::Refused(refusal)),
        Claim::Mismatch => Ok(Step::Done(Err(Error::Mismatch), Outcome::Mismatched)),
    }
}

pin_project_lite::pin_project! {
    /// A `run_with_outcome` future without the outcome: `run` and
    /// `run_detached`. A struct, not an `async` wrapper, which would keep
    /// its own copy of the arguments beside the inner future (24 bytes more
    /// per waiting caller's task) or hold the inner future twice.
    struct ResultOnly<F> {
        #[pin]
        call: F,
    }
}

impl<F: Future<Output = (T, Outcome)>, T> Future for ResultOnly<F> {
    type Output = T;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<T> {
        self.project().call.poll(cx).map(|(r, _)| r)
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
    use super::*;

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
