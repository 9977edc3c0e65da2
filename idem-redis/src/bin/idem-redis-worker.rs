//! A worker process for idem-redis's cross-process tests
//! (`tests/processes.rs`, `tests/chaos.rs`): a [`Durable`] on a
//! [`RedisStore`], running duplicate calls of some keys, reporting on
//! stdout (or, in chaos mode, to a log file).
//!
//! ```text
//! idem-redis-worker <redis-url> <namespace> [options]
//!   --key K          a key to call (repeatable)
//!   --keys N         the keys key-0 … key-<N-1>
//!   --dups N         concurrent calls per key in this process (1)
//!   --lease-ms N     the lease (30000)
//!   --max-run-ms N   max_run (the executor's default)
//!   --work-ms N      how long the work sleeps (0)
//!   --wait-ms N      OnRunning::Wait up to N ms (30000)
//!   --reject         OnRunning::Reject instead
//!   --barrier        after READY, start when a line arrives on stdin
//!   --consume S T    instead of calls: `--dups` concurrent consumes of the
//!                    one-time token T in scope S
//!   --chaos LOG      instead of calls: chaos mode, below
//! ```
//!
//! Lines, each written whole:
//!
//! ```text
//! READY <pid>                          connected
//! EXEC <key> <fence>                   the work began
//! WORKEND <key> <fence> held|lost      the work ended; Fence::is_lost
//! DONE <key> <outcome> ok <value>      a call returned a value
//! DONE <key> <outcome> err <error>     or an error: LeaseLost, Running <ms>, …
//! CONSUMED true|false                  a consume returned
//! END                                  every call returned
//! ```
//!
//! A work's value is `<pid>:<fence>`: who ran it, under which lease. Exits
//! 0 once every call returned, whatever they returned.
//!
//! # Chaos mode
//!
//! `--chaos LOG` runs `--lanes` tasks, each calling one key after another
//! until a line `stop` (or the end of stdin) arrives, then lets every
//! call return, prints `END` and exits 0. A lane calls a key drawn from a
//! window that slides with the wall clock, the same in every process:
//! `k<i>` with `i = (now - epoch) / slot + r`, `r` drawn below `--window`,
//! so the processes call the same few keys at a time and each key is
//! called for about `window × slot`. Works take 20–200 ms; one in eight
//! takes 500–1000 ms (longer than a lease: renewals hold it); one in
//! sixteen fails after 10–100 ms (its key is released). Draws come from
//! `--seed`; `--lease-ms` and `--wait-ms` (or `--reject`) apply as in the
//! other modes.
//!
//! ```text
//!   --seed N              the lanes' random draws (0)
//!   --lanes N             concurrent calls (4)
//!   --epoch-us N          the window's origin, µs since the Unix epoch (now)
//!   --slot-ms N           how fast the window slides (100)
//!   --window N            how many keys it holds (4)
//!   --timeout-ms N        connecting and answering (200)
//!   --call-timeout-ms N   the longest a call may take (20000)
//! ```
//!
//! The connection is the one idem-redis recommends, redis-rs's
//! `ConnectionManager` (on RESP3 if the URL has `?protocol=resp3`): it
//! connects on first use and reconnects after the connection fails, with
//! one retry of a failed attempt; `--timeout-ms` bounds connecting and
//! each answer. Each
//! line of LOG is written whole, with one `write` (a process killed after
//! it returned loses nothing), and starts with the wall-clock time in µs
//! since the Unix epoch, the clock Redis's `TIME`, and so the fencing
//! tokens, come from:
//!
//! ```text
//! <t> HELLO <pid>
//! <t> START <key> <fence>                  the work began
//! <t> WORKEND <key> <fence> held|lost ok|err
//! <t> CLAIM <key> <sent> leased <fence>|record <fence>|running <ms>|mismatch|<error>
//! <t> RENEW <key> <fence> <sent> ok|fenced|unavailable|corrupt
//! <t> COMPLETE <key> <fence> <sent> ok|fenced|unavailable|corrupt
//! <t> RELEASE <key> <fence> <sent> ok|fenced|unavailable|corrupt
//! <t> DONE <key> <outcome> <fence>|- ok <value>
//! <t> DONE <key> <outcome> <fence>|- err <error> [<details>]
//! ```
//!
//! `CLAIM`…`RELEASE` are the store operations as the executor called
//! them, `<sent>` the time each was sent, `<t>` the time its answer came
//! (a store wrapper logs them). `DONE` names the fence of the work that
//! call ran, or `-` (it joined another call, or ran nothing); `<error>` is
//! `Failed`, `LeaseLost`, `Running`, `Store`, `Mismatch`, `Panicked`, or
//! `TIMEOUT` when the call outlived `--call-timeout-ms`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idem::durable::{Durable, DurableError, Fence, OnRunning};
use idem::store::{Claimed, Lease, Owner, Store, StoreError, StoreKey};
use idem::Fingerprint;
use idem_redis::RedisStore;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;

#[derive(Debug)]
struct Args {
    url: String,
    namespace: String,
    keys: Vec<String>,
    dups: usize,
    lease: Duration,
    max_run: Option<Duration>,
    work: Duration,
    on_running: OnRunning,
    barrier: bool,
    consume: Option<(String, String)>,
    chaos: Option<Chaos>,
}

/// The settings of chaos mode (see the module docs).
#[derive(Debug, Clone)]
struct Chaos {
    log: PathBuf,
    seed: u64,
    lanes: usize,
    epoch_us: u64,
    slot: Duration,
    window: u64,
    timeout: Duration,
    call_timeout: Duration,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let url = args.next().ok_or("missing <redis-url>")?;
    let namespace = args.next().ok_or("missing <namespace>")?;
    let mut a = Args {
        url,
        namespace,
        keys: Vec::new(),
        dups: 1,
        lease: Duration::from_secs(30),
        max_run: None,
        work: Duration::ZERO,
        on_running: OnRunning::Wait {
            timeout: Duration::from_secs(30),
        },
        barrier: false,
        consume: None,
        chaos: None,
    };
    let mut chaos = Chaos {
        log: PathBuf::new(),
        seed: 0,
        lanes: 4,
        epoch_us: now_us(),
        slot: Duration::from_millis(100),
        window: 4,
        timeout: Duration::from_millis(200),
        call_timeout: Duration::from_secs(20),
    };
    let mut chaos_mode = false;
    while let Some(flag) = args.next() {
        let mut value = |what: &str| -> Result<u64, String> {
            let v = args.next().ok_or_else(|| format!("{flag} needs {what}"))?;
            v.parse().map_err(|e| format!("{flag} {v}: {e}"))
        };
        let ms = Duration::from_millis;
        match flag.as_str() {
            "--key" => a.keys.push(args.next().ok_or("--key needs a key")?),
            "--keys" => a
                .keys
                .extend((0..value("a count")?).map(|i| format!("key-{i}"))),
            "--dups" => a.dups = usize::try_from(value("a count")?).map_err(|e| e.to_string())?,
            "--lease-ms" => a.lease = ms(value("milliseconds")?),
            "--max-run-ms" => a.max_run = Some(ms(value("milliseconds")?)),
            "--work-ms" => a.work = ms(value("milliseconds")?),
            "--wait-ms" => {
                a.on_running = OnRunning::Wait {
                    timeout: ms(value("milliseconds")?),
                }
            }
            "--reject" => a.on_running = OnRunning::Reject,
            "--barrier" => a.barrier = true,
            "--consume" => {
                let scope = args.next().ok_or("--consume needs a scope")?;
                let token = args.next().ok_or("--consume needs a token")?;
                a.consume = Some((scope, token));
            }
            "--chaos" => {
                chaos_mode = true;
                chaos.log = args.next().ok_or("--chaos needs a log file")?.into();
            }
            "--seed" => chaos.seed = value("a number")?,
            "--lanes" => {
                chaos.lanes = usize::try_from(value("a count")?).map_err(|e| e.to_string())?;
            }
            "--epoch-us" => chaos.epoch_us = value("microseconds")?,
            "--slot-ms" => chaos.slot = ms(value("milliseconds")?.max(1)),
            "--window" => chaos.window = value("a count")?.max(1),
            "--timeout-ms" => chaos.timeout = ms(value("milliseconds")?),
            "--call-timeout-ms" => chaos.call_timeout = ms(value("milliseconds")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if chaos_mode {
        a.chaos = Some(chaos);
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("idem-redis-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Some(chaos) = &args.chaos {
        return rt.block_on(chaos_mode(&args, chaos));
    }
    let conn = match rt.block_on(connect(&args.url)) {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("idem-redis-worker: connecting to {}: {e}", args.url);
            return ExitCode::FAILURE;
        }
    };
    if let Some((scope, token)) = &args.consume {
        let Some(token) = idem::store::Token::parse(token) else {
            eprintln!("idem-redis-worker: not a token: {token:?}");
            return ExitCode::from(2);
        };
        let store = Arc::new(RedisStore::new(conn));
        println!("READY {}", std::process::id());
        if args.barrier && !wait_for_start() {
            return ExitCode::FAILURE;
        }
        rt.block_on(consumes(store, scope, &token, args.dups));
        println!("END");
        return ExitCode::SUCCESS;
    }
    let mut builder = Durable::<_, String, String>::builder(RedisStore::new(conn))
        .namespace(args.namespace.as_str())
        .lease(args.lease)
        .on_running(args.on_running);
    if let Some(max_run) = args.max_run {
        builder = builder.max_run(max_run);
    }
    let durable = match builder.build() {
        Ok(d) => Arc::new(d),
        Err(e) => {
            eprintln!("idem-redis-worker: {e}");
            return ExitCode::from(2);
        }
    };
    println!("READY {}", std::process::id());
    if args.barrier && !wait_for_start() {
        return ExitCode::FAILURE;
    }
    rt.block_on(calls(durable, &args));
    println!("END");
    ExitCode::SUCCESS
}

/// Waits for the start line on stdin; `false` if stdin closed first.
fn wait_for_start() -> bool {
    let mut go = String::new();
    if std::io::stdin().lock().read_line(&mut go).is_err() || go.is_empty() {
        eprintln!("idem-redis-worker: stdin closed before the start line");
        return false;
    }
    true
}

/// `n` concurrent consumes of `token`, each reported.
async fn consumes(
    store: Arc<RedisStore<redis::aio::MultiplexedConnection>>,
    scope: &str,
    token: &idem::store::Token,
    n: usize,
) {
    use idem::store::TokenStore;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (store, scope, token) = (Arc::clone(&store), scope.to_owned(), token.clone());
        tasks.spawn(async move {
            let spent = store.consume(&scope, &token).await;
            match spent {
                Ok(spent) => println!("CONSUMED {spent}"),
                Err(e) => println!("CONSUMED error {e}"),
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a consume task panicked");
    }
}

async fn connect(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

/// `dups` concurrent calls of every key, each reported when it returns.
async fn calls(
    durable: Arc<Durable<RedisStore<redis::aio::MultiplexedConnection>, String, String>>,
    args: &Args,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for key in &args.keys {
        for _ in 0..args.dups {
            let (durable, key, work) = (Arc::clone(&durable), key.clone(), args.work);
            tasks.spawn(async move {
                let k = key.clone();
                let (r, how) = durable
                    .run(&key, |fence: Fence| async move {
                        println!("EXEC {k} {}", fence.token());
                        tokio::time::sleep(work).await;
                        let held = if fence.is_lost() { "lost" } else { "held" };
                        println!("WORKEND {k} {} {held}", fence.token());
                        Ok(format!("{}:{}", std::process::id(), fence.token()))
                    })
                    .await;
                let r = match r {
                    Ok(v) => format!("ok {v}"),
                    Err(DurableError::Running { retry_after }) => {
                        format!("err Running {}", retry_after.as_millis())
                    }
                    Err(DurableError::LeaseLost) => "err LeaseLost".to_owned(),
                    Err(e) => format!("err {e:?}"),
                };
                println!("DONE {key} {how:?} {r}");
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a call task panicked");
    }
}

/// Microseconds since the Unix epoch: the clock of Redis's `TIME`.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A small deterministic generator (SplitMix64) for the lanes' draws.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The chaos log: one line per `write`, each with its time.
#[derive(Debug)]
struct Log(std::fs::File);

impl Log {
    fn line(&self, what: std::fmt::Arguments<'_>) {
        let line = format!("{} {what}\n", now_us());
        (&self.0)
            .write_all(line.as_bytes())
            .expect("writing the chaos log");
    }
}

/// A store that logs every operation and its answer (chaos mode's
/// `CLAIM`, `RENEW`, `COMPLETE`, `RELEASE` lines).
struct Logged<S> {
    inner: S,
    log: Arc<Log>,
}

/// A fenced operation's answer, as logged.
fn answer(r: &Result<(), StoreError>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(StoreError::Fenced) => "fenced",
        Err(StoreError::Unavailable(_)) => "unavailable",
        Err(_) => "corrupt",
    }
}

impl<S: Store> Store for Logged<S> {
    async fn claim(
        &self,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        let sent = now_us();
        let r = self.inner.claim(key, fingerprint, owner, lease).await;
        let what = match &r {
            Ok(Claimed::Leased(lease)) => format!("leased {}", lease.fence),
            Ok(Claimed::Completed(record)) => format!("record {}", record.fence),
            Ok(Claimed::Running { retry_after }) => format!("running {}", retry_after.as_millis()),
            Ok(Claimed::Mismatch) => "mismatch".to_owned(),
            Ok(other) => format!("{other:?}"),
            Err(StoreError::Unavailable(_)) => "unavailable".to_owned(),
            Err(_) => "corrupt".to_owned(),
        };
        self.log
            .line(format_args!("CLAIM {} {sent} {what}", key.key));
        r
    }

    async fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let sent = now_us();
        let r = self.inner.renew(key, lease, ttl).await;
        self.log.line(format_args!(
            "RENEW {} {} {sent} {}",
            key.key,
            lease.fence,
            answer(&r)
        ));
        r
    }

    async fn complete(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        payload: &[u8],
        retain: Duration,
    ) -> Result<(), StoreError> {
        let sent = now_us();
        let r = self.inner.complete(key, lease, payload, retain).await;
        self.log.line(format_args!(
            "COMPLETE {} {} {sent} {}",
            key.key,
            lease.fence,
            answer(&r)
        ));
        r
    }

    async fn release(&self, key: StoreKey<'_>, lease: &Lease) -> Result<(), StoreError> {
        let sent = now_us();
        let r = self.inner.release(key, lease).await;
        self.log.line(format_args!(
            "RELEASE {} {} {sent} {}",
            key.key,
            lease.fence,
            answer(&r)
        ));
        r
    }
}

type ChaosDurable = Durable<Logged<RedisStore<ConnectionManager>>, String, String>;

/// Chaos mode: lanes of calls until `stop`, every step logged.
async fn chaos_mode(args: &Args, chaos: &Chaos) -> ExitCode {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&chaos.log);
    let log = match file {
        Ok(file) => Arc::new(Log(file)),
        Err(e) => {
            eprintln!("idem-redis-worker: {}: {e}", chaos.log.display());
            return ExitCode::FAILURE;
        }
    };
    // What idem-redis recommends: a ConnectionManager (RESP3 if the URL
    // says so), connecting on first use and reconnecting after that.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(chaos.timeout))
        .set_response_timeout(Some(chaos.timeout))
        .set_number_of_retries(1)
        .set_max_delay(chaos.timeout);
    let conn = redis::Client::open(args.url.as_str())
        .and_then(|client| ConnectionManager::new_lazy_with_config(client, config));
    let conn = match conn {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("idem-redis-worker: {}: {e}", args.url);
            return ExitCode::from(2);
        }
    };
    let store = Logged {
        inner: RedisStore::new(conn),
        log: Arc::clone(&log),
    };
    let durable: ChaosDurable = match Durable::builder(store)
        .namespace(args.namespace.as_str())
        .lease(args.lease)
        .on_running(args.on_running)
        .build()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("idem-redis-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let durable = Arc::new(durable);
    log.line(format_args!("HELLO {}", std::process::id()));

    // `stop` on stdin, or its end, stops the lanes.
    let (stop_tx, stop) = watch::channel(false);
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin()
            .lock()
            .read_line(&mut line)
            .is_ok_and(|n| n > 0)
        {
            if line.trim() == "stop" {
                break;
            }
            line.clear();
        }
        stop_tx.send_replace(true);
    });
    println!("READY {}", std::process::id());

    let mut lanes = tokio::task::JoinSet::new();
    for lane in 0..chaos.lanes {
        let rng = SplitMix(chaos.seed ^ (lane as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        lanes.spawn(chaos_lane(
            Arc::clone(&durable),
            Arc::clone(&log),
            chaos.clone(),
            rng,
            stop.clone(),
        ));
    }
    while let Some(joined) = lanes.join_next().await {
        joined.expect("a lane panicked");
    }
    println!("END");
    ExitCode::SUCCESS
}

/// One lane: a call after another until stopped.
async fn chaos_lane(
    durable: Arc<ChaosDurable>,
    log: Arc<Log>,
    chaos: Chaos,
    mut rng: SplitMix,
    mut stop: watch::Receiver<bool>,
) {
    let slot_us = u64::try_from(chaos.slot.as_micros()).unwrap_or(u64::MAX);
    while !*stop.borrow_and_update() {
        let index = now_us().saturating_sub(chaos.epoch_us) / slot_us + rng.next() % chaos.window;
        let key = format!("k{index}");
        // The work's plan: how long, and whether it fails.
        let kind = rng.next() % 16;
        let fails = kind == 0;
        let work = Duration::from_millis(match kind {
            0 => rng.between(10, 100),
            1 | 2 => rng.between(500, 1000),
            _ => rng.between(20, 200),
        });
        // The fence of the work this call ran, if it ran one.
        let ran = Arc::new(AtomicU64::new(0));
        let call = durable.run(&key, |fence: Fence| {
            let (log, key, ran) = (Arc::clone(&log), key.clone(), Arc::clone(&ran));
            async move {
                let token = fence.token();
                ran.store(token, Ordering::Relaxed);
                log.line(format_args!("START {key} {token}"));
                tokio::time::sleep(work).await;
                let held = if fence.is_lost() { "lost" } else { "held" };
                let ok = if fails { "err" } else { "ok" };
                log.line(format_args!("WORKEND {key} {token} {held} {ok}"));
                if fails {
                    Err("injected failure".to_owned())
                } else {
                    Ok(format!("{}:{token}", std::process::id()))
                }
            }
        });
        let ended = tokio::time::timeout(chaos.call_timeout, call).await;
        let fence = match ran.load(Ordering::Relaxed) {
            0 => "-".to_owned(),
            f => f.to_string(),
        };
        let (how, result) = match ended {
            Ok((r, how)) => (
                format!("{how:?}"),
                match r {
                    Ok(v) => format!("ok {v}"),
                    Err(DurableError::Failed(e)) => format!("err Failed {e}"),
                    Err(DurableError::LeaseLost) => "err LeaseLost".to_owned(),
                    Err(DurableError::Running { retry_after }) => {
                        format!("err Running {}", retry_after.as_millis())
                    }
                    Err(DurableError::Store(e)) => format!("err Store {e}"),
                    Err(DurableError::Mismatch) => "err Mismatch".to_owned(),
                    Err(DurableError::Panicked(p)) => format!("err Panicked {p}"),
                    Err(e) => format!("err Other {e:?}"),
                },
            ),
            Err(_) => ("-".to_owned(), "err TIMEOUT".to_owned()),
        };
        log.line(format_args!("DONE {key} {how} {fence} {result}"));
        // A breath between calls, cut short by `stop`.
        let pause = Duration::from_millis(rng.between(0, 20));
        let _ = tokio::time::timeout(pause, stop.changed()).await;
    }
}
