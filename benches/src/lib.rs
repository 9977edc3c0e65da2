//! Shared workloads and contenders for the idem benchmarks.
//!
//! Every contender implements [`Contender`]: "give me the value for `key`,
//! running `work` if you must". The workloads ([`hit`], [`storm`],
//! [`distinct`], [`zipf`]) are generic over it, so the criterion bench
//! (`benches/contention.rs`) and the interleaved report binary
//! (`src/bin/report.rs`) run exactly the same code against idem and its
//! peers. `src/bin/memory.rs` measures heap bytes per entry.
//!
//! [`redis`] holds issue 8's Redis designs and workloads, measured by
//! `src/bin/redis_report.rs` on a server of its own.
//!
//! [`http`] holds issue 9's service (the payments example, bare or behind
//! idem-http's layer), which `src/bin/http_server.rs` serves to wrk
//! (`benches/http_load.sh`), and the same service called in process
//! (`benches/http_layer.rs`, `src/bin/http_allocs.rs`).
//!
//! Multi-task workloads go through [`race`]: the tasks are spawned, parked on
//! a `watch` channel, released at once, and the wall time from the release to
//! the last task's end is what is measured.

pub mod cases;
pub mod http;
pub mod redis;

/// The median of `xs` (the mean of the middle two for an even count);
/// NaN for none. What every report's "median of rounds" is.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}
use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use hashbrown::HashTable;
use parking_lot::RwLock;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The value type of every workload: 64 bytes behind an `Arc`, so a hit is a
/// lookup plus one atomic increment.
pub type Value = Arc<[u8; 64]>;

/// What a unit of work returns.
pub type Out = Result<Value, Infallible>;

/// A fresh value derived from `seed` (one allocation, as a real computation
/// would make).
pub fn value(seed: u64) -> Value {
    Arc::new([seed as u8; 64])
}

/// The runtime every workload runs on: multi-thread, two workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The key-to-value service under test: returns the value for `key`,
/// calling `work` (perhaps) if it has none.
pub trait Contender: Send + Sync + 'static {
    /// The value for `key`.
    fn call<F, Fut>(&self, key: u64, work: F) -> impl Future<Output = Value> + Send
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Out> + Send;
}

fn infallible<T>(r: Result<T, Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => match e {},
    }
}

/// idem's [`SingleFlight::run`](idem::SingleFlight::run), with hasher `S`.
#[derive(Debug, Clone)]
pub struct Idem<S = idem::RandomState>(pub idem::SingleFlight<u64, Value, Infallible, S>);

impl Idem {
    /// A table that stores results for `ttl`, unbounded, default shards.
    pub fn with_ttl(ttl: Duration) -> Self {
        Self(
            idem::SingleFlight::builder()
                .ttl(ttl)
                .build()
                .expect("valid settings"),
        )
    }

    /// A table that stores at most `max_entries` results for `ttl`.
    pub fn bounded(ttl: Duration, max_entries: usize) -> Self {
        Self(
            idem::SingleFlight::builder()
                .ttl(ttl)
                .max_entries(max_entries)
                .build()
                .expect("valid settings"),
        )
    }

    /// A table that only coalesces (`SingleFlight::new`).
    pub fn coalesce_only() -> Self {
        Self(idem::SingleFlight::new())
    }

    /// A table that keeps at most `max_entries` results for their whole
    /// `ttl` and refuses new keys beyond (`Eviction::Never`).
    pub fn never(ttl: Duration, max_entries: usize) -> Self {
        Self(
            idem::SingleFlight::builder()
                .ttl(ttl)
                .max_entries(max_entries)
                .eviction(idem::Eviction::Never)
                .build()
                .expect("valid settings"),
        )
    }
}

impl<S: BuildHasher + Send + Sync + 'static> Idem<S> {
    /// A table that stores results for `ttl`, unbounded, hashing with
    /// `hasher`.
    pub fn with_hasher(ttl: Duration, hasher: S) -> Self {
        Self(
            idem::SingleFlight::builder()
                .ttl(ttl)
                .hasher(hasher)
                .build()
                .expect("valid settings"),
        )
    }
}

/// What a refused call (`Eviction::Never`, full) answers in the workloads:
/// a real service answers an error at about that cost.
fn refused() -> Value {
    static REFUSED: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Value::clone(REFUSED.get_or_init(|| value(u64::MAX)))
}

impl<S: BuildHasher + Send + Sync + 'static> Contender for Idem<S> {
    async fn call<F, Fut>(&self, key: u64, work: F) -> Value
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Out> + Send,
    {
        match self.0.run(key, work).await {
            Ok(v) => v,
            Err(idem::Error::Full { .. }) => refused(),
            Err(e) => panic!("idem: {e:?}"),
        }
    }
}

/// idem's [`SingleFlight::get`](idem::SingleFlight::get), falling back to
/// `run` on a miss: the cheapest way to read a hot key through idem.
#[derive(Debug, Clone)]
pub struct IdemGet(pub idem::SingleFlight<u64, Value>);

impl Contender for IdemGet {
    async fn call<F, Fut>(&self, key: u64, work: F) -> Value
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Out> + Send,
    {
        if let Some(v) = self.0.get(&key) {
            return v;
        }
        match self.0.run(key, work).await {
            Ok(v) => v,
            Err(e) => panic!("idem: {e:?}"),
        }
    }
}

/// moka's `future::Cache::try_get_with`.
#[derive(Debug, Clone)]
pub struct Moka(pub moka::future::Cache<u64, Value>);

impl Moka {
    /// A cache that keeps entries for `ttl`, unbounded.
    pub fn with_ttl(ttl: Duration) -> Self {
        Self(moka::future::Cache::builder().time_to_live(ttl).build())
    }

    /// A cache that keeps at most `capacity` entries for `ttl`.
    pub fn bounded(ttl: Duration, capacity: u64) -> Self {
        Self(
            moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        )
    }
}

impl Contender for Moka {
    async fn call<F, Fut>(&self, key: u64, work: F) -> Value
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Out> + Send,
    {
        match self.0.try_get_with(key, work()).await {
            Ok(v) => v,
            Err(e) => match *e {},
        }
    }
}

/// The `async_singleflight` crate's `Group` (no cache: every call that
/// finds no running flight executes).
pub struct AsyncSingleflight(pub async_singleflight::Group<u64, Value, Infallible>);

impl std::fmt::Debug for AsyncSingleflight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AsyncSingleflight")
    }
}

impl AsyncSingleflight {
    /// An empty group.
    pub fn new() -> Self {
        Self(async_singleflight::Group::new())
    }
}

impl Default for AsyncSingleflight {
    fn default() -> Self {
        Self::new()
    }
}

impl Contender for AsyncSingleflight {
    async fn call<F, Fut>(&self, key: u64, work: F) -> Value
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Out> + Send,
    {
        match self.0.work(&key, work()).await {
            Ok(v) => v,
            Err(e) => panic!("async_singleflight: leader failed ({})", e.is_some()),
        }
    }
}

/// The `singleflight-async` crate's `SingleFlight` (no cache).
#[derive(Debug, Default)]
pub struct SingleflightAsync(pub singleflight_async::SingleFlight<u64, Out>);

impl Contender for SingleflightAsync {
    async fn call<F, Fut>(&self, key: u64, work: F) -> Value
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Out> + Send,
    {
        infallible(self.0.work(key, work).await)
    }
}

/// The naive design: a `DashMap` of `Arc<tokio::sync::OnceCell>`, the cell
/// fetched (or inserted) and then initialised once. Unbounded, no TTL:
/// entries are never removed.
#[derive(Debug, Default)]
pub struct NaiveMap(pub DashMap<u64, Arc<tokio::sync::OnceCell<Value>>>);

impl Contender for NaiveMap {
    async fn call<F, Fut>(&self, key: u64, work: F) -> Value
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Out> + Send,
    {
        // The read guard is dropped at the end of this statement.
        let cell = self.0.get(&key).map(|c| Arc::clone(&c));
        let cell = match cell {
            Some(c) => c,
            None => Arc::clone(&self.0.entry(key).or_default()),
        };
        infallible(cell.get_or_try_init(work).await).clone()
    }
}

/// The hit floor: a raw `DashMap<u64, Value>` read plus an `Arc` clone. On a
/// miss it runs the work and inserts, with no coalescing at all.
#[derive(Debug, Default)]
pub struct FloorMap(pub DashMap<u64, Value>);

impl Contender for FloorMap {
    async fn call<F, Fut>(&self, key: u64, work: F) -> Value
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Out> + Send,
    {
        let hit = self.0.get(&key).map(|v| Value::clone(&v));
        if let Some(v) = hit {
            return v;
        }
        let v = infallible(work().await);
        self.0.insert(key, Value::clone(&v));
        v
    }
}

/// The storm floor: one shared `tokio::sync::OnceCell`, whatever the key.
#[derive(Debug, Default)]
pub struct FloorCell(pub tokio::sync::OnceCell<Value>);

impl Contender for FloorCell {
    async fn call<F, Fut>(&self, _key: u64, work: F) -> Value
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Out> + Send,
    {
        infallible(self.0.get_or_try_init(work).await).clone()
    }
}

/// How many of `total` calls task `t` of `tasks` makes.
pub fn share(total: u64, tasks: usize, t: usize) -> u64 {
    let tasks = tasks as u64;
    total / tasks + u64::from((t as u64) < total % tasks)
}

/// Workers of [`runtime`].
pub const WORKERS: usize = 2;

/// Races in which the tasks did not end up spread over both workers, so
/// that the figure measured no contention; see [`race`].
pub static UNSPREAD_RACES: AtomicU64 = AtomicU64::new(0);

/// Where each task of a race last checked in from, for [`spread`].
type Positions = parking_lot::Mutex<Vec<Option<std::thread::ThreadId>>>;

/// Yields until every task of the race has checked in and the tasks' last
/// positions cover `need` distinct threads.
///
/// Tasks spawned from outside the runtime and woken together from outside
/// it are usually all taken by one worker (tokio moves a batch of the
/// injection queue into the first worker that looks) while the other stays
/// parked: without this step most two-task races ran both tasks one after
/// the other on one thread. Yielding puts the task back in its worker's
/// local queue, which wakes the idle worker to steal from it. A task that
/// has left this loop never yields again (its calls are all ready), so its
/// position stays true.
async fn spread(positions: &Positions, t: usize, need: usize) {
    for _ in 0..100_000 {
        {
            let mut pos = positions.lock();
            pos[t] = Some(std::thread::current().id());
            if pos.iter().all(Option::is_some) {
                let mut distinct = Vec::with_capacity(need);
                for id in pos.iter().flatten() {
                    if !distinct.contains(id) {
                        distinct.push(*id);
                    }
                }
                if distinct.len() >= need {
                    return;
                }
            }
        }
        tokio::task::yield_now().await;
    }
}

/// Spawns `tasks` tasks running `task(t)`, parks them until all are spawned
/// and polled, releases them at once, and returns the wall time from the
/// release to the end of the last one, with their outputs.
///
/// With `spread_out`, released tasks first make sure both workers run some
/// of them (see `spread`). A race whose tasks never yielded after that and
/// still all ended on one thread ran them one after the other: it is
/// counted in [`UNSPREAD_RACES`] and reported by the returned `bool`
/// (`false`). Use it for loops of calls; a storm, whose 10,000 tasks all
/// wait, needs none.
pub async fn race<T, Fut>(
    tasks: usize,
    spread_out: bool,
    mut task: impl FnMut(usize) -> Fut,
) -> (Duration, Vec<T>, bool)
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (go, rx) = tokio::sync::watch::channel(());
    let parked = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(tasks));
    let done = Arc::new(tokio::sync::Notify::new());
    let positions: Arc<Positions> = Arc::new(parking_lot::Mutex::new(vec![None; tasks]));
    let need = if spread_out { tasks.min(WORKERS) } else { 0 };
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let fut = task(t);
            let mut rx = rx.clone();
            let parked = Arc::clone(&parked);
            let running = Arc::clone(&running);
            let done = Arc::clone(&done);
            let positions = Arc::clone(&positions);
            tokio::spawn(async move {
                parked.fetch_add(1, Ordering::SeqCst);
                rx.changed().await.expect("the starter outlives the race");
                if need > 1 {
                    spread(&positions, t, need).await;
                }
                // A task polled more than once yielded (tokio's cooperative
                // budget, an async lock): the scheduler may then move it,
                // and where it ends says nothing about how it ran.
                let mut fut = std::pin::pin!(fut);
                let mut polls = 0u32;
                let out = std::future::poll_fn(|cx| {
                    polls += 1;
                    fut.as_mut().poll(cx)
                })
                .await;
                let ran_on = (std::thread::current().id(), polls > 1);
                if running.fetch_sub(1, Ordering::AcqRel) == 1 {
                    done.notify_one();
                }
                (out, ran_on)
            })
        })
        .collect();
    while parked.load(Ordering::SeqCst) < tasks {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let start = Instant::now();
    go.send(()).expect("receivers are alive");
    // `notify_one` stores a permit if the last task ends before this waits.
    done.notified().await;
    let elapsed = start.elapsed();
    let mut outs = Vec::with_capacity(tasks);
    let mut threads = Vec::new();
    let mut yielded = false;
    for h in handles {
        let (out, (ran_on, y)) = h.await.expect("a benchmark task panicked");
        if !threads.contains(&ran_on) {
            threads.push(ran_on);
        }
        yielded |= y;
        outs.push(out);
    }
    let spread_ok = yielded || threads.len() >= need;
    if !spread_ok {
        UNSPREAD_RACES.fetch_add(1, Ordering::Relaxed);
    }
    (elapsed, outs, spread_ok)
}

/// The hot values of the hit workloads: one per key.
///
/// Every hit increments its value's reference count, so the line holding
/// it is written by both workers on every call. Each value is allocated
/// between two leaked allocations of its own size so that no contender's
/// own hot data (a lock word, a table header) lands on the same line by
/// chance and pays for false sharing that another contender escapes.
pub fn hot_values(keys: u64) -> Arc<[Value]> {
    let pad = || {
        black_box(Box::leak(Box::new([0u8; 80])));
    };
    pad();
    (0..keys)
        .map(|k| {
            let v = value(k);
            pad();
            v
        })
        .collect()
}

/// Stores the hot values of keys `0..values.len()` in `c`.
pub async fn prefill<C: Contender>(c: &C, values: &[Value]) {
    for (k, v) in values.iter().enumerate() {
        let v = Value::clone(v);
        c.call(k as u64, || async move { Ok(v) }).await;
    }
}

/// Hit workload: `calls` calls in all, split over `tasks` tasks, cycling
/// over keys `0..values.len()` (each task from its own offset). The work
/// clones the key's hot value (so contenders without a cache pay only for
/// their bookkeeping). Returns the wall time.
///
/// A race whose tasks ended up on one worker (see [`race`]) measured no
/// contention; it is run again, up to [`ATTEMPTS`] times in all.
pub async fn hit<C: Contender>(
    c: &Arc<C>,
    values: &Arc<[Value]>,
    tasks: usize,
    calls: u64,
) -> Duration {
    let mut elapsed = Duration::ZERO;
    for _ in 0..ATTEMPTS {
        let (d, _, spread_ok) = hit_once(c, values, tasks, calls).await;
        elapsed = d;
        if spread_ok {
            break;
        }
    }
    elapsed
}

/// How many times [`hit`] and [`lookups`] try to get a race whose tasks ran
/// on both workers.
pub const ATTEMPTS: usize = 5;

async fn hit_once<C: Contender>(
    c: &Arc<C>,
    values: &Arc<[Value]>,
    tasks: usize,
    calls: u64,
) -> (Duration, Vec<()>, bool) {
    let keys = values.len() as u64;
    race(tasks, true, |t| {
        let c = Arc::clone(c);
        let values = Arc::clone(values);
        let n = share(calls, tasks, t);
        let mut k = t as u64 * keys / tasks as u64;
        async move {
            for _ in 0..n {
                let v = &values[k as usize];
                black_box(c.call(k, || async move { Ok(Value::clone(v)) }).await);
                k += 1;
                if k == keys {
                    k = 0;
                }
            }
        }
    })
    .await
}

/// Storm workload: `callers` tasks released at once on one key, on a fresh
/// contender. The work sleeps for `sleep` (if any), then allocates its value.
/// Returns the wall time and how many times the work ran.
pub async fn storm<C: Contender>(
    c: Arc<C>,
    callers: usize,
    sleep: Option<Duration>,
) -> (Duration, u64) {
    let (elapsed, execs, _) = race(callers, false, |_| {
        let c = Arc::clone(&c);
        async move {
            let execs = AtomicU64::new(0);
            let execs_ref = &execs;
            let v = c
                .call(0, || async move {
                    execs_ref.fetch_add(1, Ordering::Relaxed);
                    if let Some(d) = sleep {
                        tokio::time::sleep(d).await;
                    }
                    Ok(value(0))
                })
                .await;
            black_box(v);
            execs.into_inner()
        }
    })
    .await;
    (elapsed, execs.iter().sum())
}

/// Distinct-keys workload: keys `0..n`, split into contiguous ranges over
/// `tasks` tasks, each called once with ready work. Returns the wall time and
/// the executions.
pub async fn distinct<C: Contender>(c: Arc<C>, n: u64, tasks: usize) -> (Duration, u64) {
    let (elapsed, execs, _) = race(tasks, true, |t| {
        let c = Arc::clone(&c);
        let per = n / tasks as u64;
        let start = t as u64 * per;
        let end = if t + 1 == tasks { n } else { start + per };
        async move {
            let execs = AtomicU64::new(0);
            let execs_ref = &execs;
            for k in start..end {
                let v = c
                    .call(k, || async move {
                        execs_ref.fetch_add(1, Ordering::Relaxed);
                        Ok(value(k))
                    })
                    .await;
                black_box(v);
            }
            execs.into_inner()
        }
    })
    .await;
    (elapsed, execs.iter().sum())
}

/// `calls` keys drawn from Zipf(`keys`, `s`) with a fixed seed, as `0..keys`
/// (rank 1 is key 0).
pub fn zipf_keys(calls: usize, keys: u64, s: f64, seed: u64) -> Arc<[u64]> {
    let dist = rand_distr::Zipf::new(keys as f64, s).expect("valid Zipf parameters");
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..calls).map(|_| rng.sample(dist) as u64 - 1).collect()
}

/// Zipf workload: the calls of `keys`, split into contiguous chunks over
/// `tasks` tasks, with ready work. Returns the wall time and the executions.
pub async fn zipf<C: Contender>(c: Arc<C>, keys: &Arc<[u64]>, tasks: usize) -> (Duration, u64) {
    let total = keys.len();
    let (elapsed, execs, _) = race(tasks, true, |t| {
        let c = Arc::clone(&c);
        let keys = Arc::clone(keys);
        let per = total / tasks;
        let start = t * per;
        let end = if t + 1 == tasks { total } else { start + per };
        async move {
            let execs = AtomicU64::new(0);
            let execs_ref = &execs;
            for &k in &keys[start..end] {
                let v = c
                    .call(k, || async move {
                        execs_ref.fetch_add(1, Ordering::Relaxed);
                        Ok(value(k))
                    })
                    .await;
                black_box(v);
            }
            execs.into_inner()
        }
    })
    .await;
    (elapsed, execs.iter().sum())
}

/// A cache-line-aligned shard, as idem lays its shards out.
#[repr(align(128))]
struct Shard(RwLock<HashTable<(u64, Value)>>);

/// The substrate idem is built on, stripped to a lookup: `N` shards of
/// `parking_lot::RwLock<hashbrown::HashTable>`, sharded by the top bits of
/// one SipHash (`RandomState`), like `DashMap`.
pub struct ShardedTable {
    shards: Box<[Shard]>,
    shift: u32,
    hasher: RandomState,
}

impl std::fmt::Debug for ShardedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedTable")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl ShardedTable {
    /// An empty table of `shards` shards (a power of two, at least 2).
    pub fn new(shards: usize) -> Self {
        assert!(shards.is_power_of_two() && shards > 1);
        Self {
            shards: (0..shards)
                .map(|_| Shard(RwLock::new(HashTable::new())))
                .collect(),
            shift: 64 - shards.trailing_zeros(),
            hasher: RandomState::new(),
        }
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[((hash << 7) >> self.shift) as usize]
    }

    /// Inserts (or replaces) `key`.
    pub fn insert(&self, key: u64, v: Value) {
        let hash = self.hasher.hash_one(key);
        let mut t = self.shard(hash).0.write();
        match t.find_mut(hash, |e| e.0 == key) {
            Some(e) => e.1 = v,
            None => {
                t.insert_unique(hash, (key, v), |e| self.hasher.hash_one(e.0));
            }
        }
    }

    /// The value for `key`, cloned under the shard's read lock.
    #[inline]
    pub fn get(&self, key: u64) -> Option<Value> {
        let hash = self.hasher.hash_one(key);
        let t = self.shard(hash).0.read();
        t.find(hash, |e| e.0 == key).map(|e| Value::clone(&e.1))
    }
}

/// Substrate workload: `calls` synchronous lookups split over `tasks` tasks,
/// cycling over keys `0..keys`, through `get`. Returns the wall time. Like
/// [`hit`], re-runs a race whose tasks ended up on one worker.
pub async fn lookups<M, G>(map: &Arc<M>, get: G, keys: u64, tasks: usize, calls: u64) -> Duration
where
    M: Send + Sync + 'static,
    G: Fn(&M, u64) -> Option<Value> + Copy + Send + 'static,
{
    let mut elapsed = Duration::ZERO;
    for _ in 0..ATTEMPTS {
        let (d, _, spread_ok) = race(tasks, true, |t| {
            let map = Arc::clone(map);
            let n = share(calls, tasks, t);
            let mut k = t as u64 * keys / tasks as u64;
            async move {
                for _ in 0..n {
                    black_box(get(&map, black_box(k)));
                    k += 1;
                    if k == keys {
                        k = 0;
                    }
                }
            }
        })
        .await;
        elapsed = d;
        if spread_ok {
            break;
        }
    }
    elapsed
}
