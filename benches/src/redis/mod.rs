//! Issue 8's Redis benchmarks: idem's [`RedisStore`](idem_redis::RedisStore)
//! and [`Durable`](idem::durable::Durable) executor against a naive design
//! and the `idempotent` crate's Valkey store, on a `redis-server` the
//! report starts for itself (`src/bin/redis_report.rs`).
//!
//! Every design implements [`Design`]: one "process" of it (its own
//! connection, its own in-process state) answering "the value for `key`,
//! running `work` if this call must". The workloads
//! ([`workload::race`]) are generic over it, and each measurement reads
//! what the server did from `INFO commandstats` ([`stats`]) and what the
//! client sent from a counting connection ([`Counted`]).
//!
//! * [`naive`]: `SET NX` + `GET` + `SET`, no fencing (Powertools-like);
//! * [`peer`]: the `idempotent` crate's `ValkeyStore`;
//! * [`idem_designs`]: `RedisStore` alone (claim + complete through the
//!   [`Store`](idem::store::Store) trait), the `Durable` executor, and a
//!   what-if store whose claim skips the plain `GET`.

pub mod idem_designs;
pub mod naive;
pub mod noise;
pub mod peer;
pub mod plot;
pub mod server;
pub mod stats;
pub mod workload;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{Cmd, Pipeline, RedisFuture, Value};

/// How a call got its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// This call ran the work.
    Executed,
    /// A record was there at the first look.
    Replayed,
    /// The call found the key running elsewhere, and polled until the
    /// record appeared.
    Waited,
    /// The call joined another call of the same process (idem's local
    /// table).
    Coalesced,
}

/// What every design of one run is configured with.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a claim holds a key without renewal.
    pub lease: Duration,
    /// How long a completed record is kept.
    pub retain: Duration,
    /// The longest a call polls a key running elsewhere.
    pub wait: Duration,
}

/// What the client side of one design did during a measurement. The
/// counters are shared by the design's processes and reset between
/// measurements.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests sent to Redis: round trips, since no design pipelines.
    pub requests: AtomicU64,
    /// Calls that tried to take a key (`SET NX`, `try_insert`, `claim`),
    /// once per call (the naive design: again after a key vanished).
    pub claims: AtomicU64,
    /// The further looks of calls that found the key running, each after
    /// a pause (a `GET` for the naive design, a claim for the others).
    pub polls: AtomicU64,
    /// Completions (records written).
    pub completes: AtomicU64,
    /// Lease renewals.
    pub renewals: AtomicU64,
}

impl Tally {
    /// Zeroes every counter.
    pub fn reset(&self) {
        for c in self.counters() {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// The counters' values: requests, claims, polls, completes, renewals.
    pub fn read(&self) -> [u64; 5] {
        self.counters().map(|c| c.load(Ordering::Relaxed))
    }

    fn counters(&self) -> [&AtomicU64; 5] {
        [
            &self.requests,
            &self.claims,
            &self.polls,
            &self.completes,
            &self.renewals,
        ]
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One process of a design under test.
pub trait Design: Send + Sync + Sized + 'static {
    /// The design's name in the tables and the plot.
    fn name() -> &'static str;

    /// Whether [`Tally::requests`] counts this design's requests (false
    /// when the design owns a connection the bench cannot wrap: then the
    /// round trips come from the server's counts).
    fn counts_requests() -> bool {
        true
    }

    /// A process of the design on the server at `url`.
    ///
    /// # Panics
    ///
    /// If it cannot connect.
    fn connect(
        url: &str,
        settings: Settings,
        tally: Arc<Tally>,
    ) -> impl Future<Output = Self> + Send;

    /// The value for `key`, running `work` if this call must.
    ///
    /// # Errors
    ///
    /// A store error, or a wait that outlasted [`Settings::wait`], as text.
    fn call<F, Fut>(
        &self,
        key: &str,
        work: F,
    ) -> impl Future<Output = Result<(String, How), String>> + Send
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = String> + Send;
}

/// A connection that counts the requests sent through it in a [`Tally`].
#[derive(Clone)]
pub struct Counted<C> {
    inner: C,
    tally: Arc<Tally>,
}

impl<C> std::fmt::Debug for Counted<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted").finish_non_exhaustive()
    }
}

impl<C: ConnectionLike> ConnectionLike for Counted<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Tally::add(&self.tally.requests);
        self.inner.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Tally::add(&self.tally.requests);
        self.inner.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

/// The connection of the bench's own designs: one multiplexed connection
/// per process, counted.
pub type Conn = Counted<MultiplexedConnection>;

/// The longest the bench's connections wait for a reply: a storm queues
/// 10,000 requests on one connection, more than redis-rs's default 500 ms
/// allows on a loaded machine.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A multiplexed connection to `url` (response timeout
/// [`RESPONSE_TIMEOUT`]), not counted.
///
/// # Panics
///
/// If it cannot connect.
pub async fn multiplexed(url: &str) -> MultiplexedConnection {
    let config = ::redis::AsyncConnectionConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
    ::redis::Client::open(url)
        .expect("a valid Redis URL")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// A counted connection to `url` for one process of a design.
///
/// # Panics
///
/// If it cannot connect.
pub async fn counted(url: &str, tally: Arc<Tally>) -> Conn {
    Counted {
        inner: multiplexed(url).await,
        tally,
    }
}

/// The pauses of a call polling a key that runs elsewhere, as idem's
/// executor does: from 10 ms doubling to 1 s, ±25% jitter, never past
/// what is left of the wait.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    seed: u64,
}

impl Backoff {
    /// A backoff seeded from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self {
            next: Duration::from_millis(10),
            seed: seed | 1,
        }
    }

    /// The next pause.
    pub fn next_pause(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = 0.75 + (self.seed % 1000) as f64 / 2000.0;
        let pause = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(Duration::from_secs(1));
        pause
    }
}

/// A seed for a [`Backoff`]: different for every call.
pub fn seed() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    NEXT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
}
