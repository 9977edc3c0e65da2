//! Issue 10's PostgreSQL report: idem-postgres's transactional mode
//! (`claim_in` + `complete`, in the transaction of the business write)
//! against a hand-written dedup table, and against the `Durable` executor
//! on the Redis store and on `PostgresStore` used as a plain store.
//!
//! Every request pays one order: a business `INSERT INTO payments …
//! RETURNING id` and a receipt made from the id. The contenders:
//!
//! * **hand-written**: `BEGIN`; `INSERT INTO dedup (key) VALUES ($1) ON
//!   CONFLICT DO NOTHING` (no row inserted: a duplicate, rolled back); the
//!   payment; `COMMIT`. What one writes by hand: it stores no result.
//! * **hand-written + result**: the same on a table with a `result`
//!   column, `UPDATE`d with the receipt before the commit; a duplicate
//!   `SELECT`s it.
//! * **idem transactional**: `BEGIN`; `claim_in`; the payment;
//!   `Claim::complete` with the receipt; `COMMIT`. A duplicate gets
//!   `TxClaim::Completed` and rolls back.
//! * **idem durable, Redis**: `Durable` on `RedisStore` (the machine's
//!   Redis, keys under a prefix of this run's, deleted at the end), the
//!   payment in its own autocommit statement.
//! * **idem durable, PostgreSQL store**: `Durable` on `PostgresStore`
//!   through the `Store` trait (leases, not the transactional mode), the
//!   payment in its own autocommit statement.
//!
//! And three what-ifs on idem's own table, with statements of the
//! bench's (not designs to use: they measure fixes to idem-postgres
//! without editing it; `--no-what-if` leaves them out):
//!
//! * **payload-only completion**: `claim_in`, then `UPDATE … SET payload`
//!   (checked by fence) instead of `Claim::complete`, which also sets
//!   `expires_at`: an indexed column, so its update cannot be HOT and
//!   adds an entry to both of the table's indexes.
//! * **plain INSERT claim**: the claim as one `INSERT … ON CONFLICT DO
//!   NOTHING RETURNING fence` into idem's table, without `claim_in`'s
//!   `lock_timeout` set and restored around it (so with no bound on the
//!   wait), and the payload-only completion.
//! * **SELECT first**: a plain read of a completed record before
//!   `claim_in`, as the store's own claim does: a replay is one statement,
//!   a first execution one more.
//!
//! Workloads, the contenders' order rotating from round to round, so that
//! each round compares them under the same conditions:
//!
//! * **unique keys**, at 1 connection (latency) and at 8 and 16 tasks (a
//!   pool of as many connections: throughput);
//! * **replays** of committed keys;
//! * **concurrent duplicates**: 16 tasks send the same key at once (a
//!   barrier); one executes, the others wait on the key and answer from
//!   it. Executions are counted (one per key), and the time until every
//!   task has its answer.
//!
//! Before the rounds, one pass counts each contender's statements per
//! request (from sqlx's statement log) and round trips to Redis, and the
//! WAL each request writes. After each measurement the business rows are
//! checked: one per unique key, none added by replays.
//!
//! PostgreSQL on 127.0.0.1:5432 (database `test`), or `DATABASE_URL`;
//! Redis on 127.0.0.1:6379, or `REDIS_URL` (`--no-redis` to leave it out).
//! It works in a schema of its own, `idem_pg_report`, dropped at the end.
//!
//! `cargo run --release -p idem-benches --bin pg_report` (40 s on a quiet
//! machine, longer on a busy one); `--quick` for a smoke run; `--help` for
//! the flags.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idem::durable::{Durable, DurableOutcome, OnRunning};
use idem::store::{Owner, StoreKey};
use idem::Fingerprint;
use idem_benches::median;
use idem_benches::redis::noise::{machine_busy, process_ticks};
use idem_benches::redis::{counted, multiplexed, Conn, Tally};
use idem_postgres::{PostgresStore, TxClaim};
use idem_redis::RedisStore;
use redis::aio::MultiplexedConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Postgres};
use tokio::sync::Barrier;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The report's schema: created at the start (dropped first if a run
/// left it), dropped at the end.
const SCHEMA: &str = "idem_pg_report";

/// The `application_name` of the report's connections, to find their
/// server processes (for the noise figure).
const APP: &str = "idem_pg_report";

/// The idem namespace of every request.
const NAMESPACE: &str = "payments";

const HELP: &str = "\
pg_report: idem-postgres's transactional mode against a hand-written dedup table,
and the Durable executor on Redis and on PostgresStore

  --rounds N        rounds of every workload (7)
  --requests N      requests per measurement at 1 connection (60)
  --calls N         requests per measurement at more tasks (500)
  --tasks LIST      concurrency levels of the unique keys, comma-separated (1,8,16)
  --replay-keys N   committed keys the replays cycle over (200)
  --replays N       replays per measurement (1000, over the most tasks)
  --dup-tasks N     tasks sending each key at once (16)
  --dup-keys N      keys per duplicates measurement (30)
  --no-redis        leave out the Durable executor on Redis
  --no-what-if      leave out the what-if designs (bench-local SQL on idem's table)
  --quick           a smoke run: 1 round, few requests

DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) and
REDIS_URL (default redis://127.0.0.1:6379) say where the services are.
";

#[derive(Debug, Clone)]
struct Args {
    rounds: usize,
    requests: usize,
    calls: usize,
    levels: Vec<usize>,
    replay_keys: usize,
    replays: usize,
    dup_tasks: usize,
    dup_keys: usize,
    redis: bool,
    what_if: bool,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 7,
        requests: 60,
        calls: 500,
        levels: vec![1, 8, 16],
        replay_keys: 200,
        replays: 1000,
        dup_tasks: 16,
        dup_keys: 30,
        redis: true,
        what_if: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| fail(&format!("{flag} takes a value\n{HELP}")))
        };
        let mut number = || -> usize {
            value()
                .parse::<usize>()
                .unwrap_or_else(|_| fail(&format!("{flag} takes a number\n{HELP}")))
                .max(1)
        };
        match flag.as_str() {
            "--rounds" => a.rounds = number(),
            "--requests" => a.requests = number(),
            "--calls" => a.calls = number(),
            "--replay-keys" => a.replay_keys = number(),
            "--replays" => a.replays = number(),
            "--dup-tasks" => a.dup_tasks = number().max(2),
            "--dup-keys" => a.dup_keys = number(),
            "--tasks" => {
                let list = value();
                a.levels = list
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse::<usize>()
                            .ok()
                            .filter(|n| *n > 0)
                            .unwrap_or_else(|| fail(&format!("--tasks: {list:?}\n{HELP}")))
                    })
                    .collect();
            }
            "--no-redis" => a.redis = false,
            "--no-what-if" => a.what_if = false,
            "--quick" => {
                a.rounds = 1;
                a.requests = 30;
                a.calls = 200;
                a.replay_keys = 50;
                a.replays = 300;
                a.dup_keys = 5;
            }
            "--help" | "-h" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => fail(&format!("unknown flag {other}\n{HELP}")),
        }
    }
    a
}

fn fail(message: &str) -> ! {
    eprintln!("pg_report: {message}");
    std::process::exit(2);
}

// ---------------------------------------------------------------------------
// Contenders

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Hand,
    HandResult,
    IdemTx,
    /// What-if: `claim_in`, then a completion that writes the payload
    /// only (a HOT update), instead of `Claim::complete`.
    HotComplete,
    /// What-if: a claim that is a plain `INSERT … ON CONFLICT DO
    /// NOTHING` into idem's table (no `lock_timeout` set and restored),
    /// and the payload-only completion.
    LeanClaim,
    /// What-if: a plain `SELECT` of a completed record before
    /// `claim_in`.
    ReadFirst,
    DurableRedis,
    DurablePg,
}

impl Who {
    const ALL: [Who; 8] = [
        Who::Hand,
        Who::HandResult,
        Who::IdemTx,
        Who::HotComplete,
        Who::LeanClaim,
        Who::ReadFirst,
        Who::DurableRedis,
        Who::DurablePg,
    ];

    fn name(self) -> &'static str {
        match self {
            Who::Hand => "hand-written dedup table",
            Who::HandResult => "hand-written + result",
            Who::IdemTx => "idem transactional (claim_in)",
            Who::HotComplete => "what-if: claim_in, payload-only completion",
            Who::LeanClaim => "what-if: plain INSERT claim, payload-only completion",
            Who::ReadFirst => "what-if: SELECT first, then claim_in",
            Who::DurableRedis => "idem durable, Redis store",
            Who::DurablePg => "idem durable, PostgreSQL store",
        }
    }

    /// Its part of the keys (and of the business rows' `order_id`s).
    fn tag(self) -> &'static str {
        match self {
            Who::Hand => "hand",
            Who::HandResult => "handr",
            Who::IdemTx => "tx",
            Who::HotComplete => "hot",
            Who::LeanClaim => "lean",
            Who::ReadFirst => "readfirst",
            Who::DurableRedis => "redis",
            Who::DurablePg => "pgstore",
        }
    }

    /// Whether it runs in one transaction with the business write.
    fn transactional(self) -> bool {
        !matches!(self, Who::DurableRedis | Who::DurablePg)
    }

    fn what_if(self) -> bool {
        matches!(self, Who::HotComplete | Who::LeanClaim | Who::ReadFirst)
    }

    /// Whether it takes part in the concurrent duplicates (the
    /// transactional designs as they are).
    fn in_duplicates(self) -> bool {
        matches!(self, Who::Hand | Who::HandResult | Who::IdemTx)
    }
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Executed,
    Replayed,
}

/// One pool size: its pool, and the executor on `PostgresStore` over it.
struct Level {
    tasks: usize,
    pool: PgPool,
    durable_pg: Durable<PostgresStore, String, String>,
}

struct RedisSide {
    durable: Durable<RedisStore<Conn>, String, String>,
    tally: Arc<Tally>,
    admin: MultiplexedConnection,
    prefix: String,
    version: String,
    pid: Option<u32>,
}

struct Env {
    admin: PgPool,
    /// The store whose `claim_in` the transactional contender calls (on
    /// whichever connection it is given).
    store: PostgresStore,
    levels: Vec<Level>,
    redis: Option<RedisSide>,
    /// The server processes of the report's connections.
    backends: Vec<u32>,
    what_if: WhatIfSql,
    with_what_ifs: bool,
}

/// The what-ifs' statements, on idem's table (bench-local SQL, not
/// idem-postgres's: see [`Who::HotComplete`] and the others).
struct WhatIfSql {
    /// $1 namespace, $2 key, $3 payload, $4 fence.
    hot_complete: Arc<str>,
    /// $1 namespace, $2 key, $3 fingerprint, $4 owner, $5 retain µs.
    lean_claim: Arc<str>,
    /// $1 namespace, $2 key: the payload and fingerprint of a live record.
    read: Arc<str>,
}

impl WhatIfSql {
    fn new(table: &str) -> Self {
        // The store's names: `<table>_fence` beside the table.
        let seq = format!("{}_fence\"", table.trim_end_matches('"'));
        Self {
            hot_complete: format!(
                "UPDATE {table} SET payload = $3 WHERE namespace = $1 AND key = $2 AND fence = $4"
            )
            .into(),
            lean_claim: format!(
                "INSERT INTO {table} (namespace, key, state, fingerprint, fence, owner, expires_at) \
                 VALUES ($1, $2, 'completed', $3, nextval('{seq}'), $4::uuid, \
                 clock_timestamp() + $5 * interval '1 microsecond') \
                 ON CONFLICT (namespace, key) DO NOTHING RETURNING fence"
            )
            .into(),
            read: format!(
                "SELECT payload, fingerprint FROM {table} WHERE namespace = $1 AND key = $2 \
                 AND state = 'completed' AND expires_at > clock_timestamp()"
            )
            .into(),
        }
    }
}

impl Env {
    fn who(&self) -> Vec<Who> {
        Who::ALL
            .into_iter()
            .filter(|w| *w != Who::DurableRedis || self.redis.is_some())
            .filter(|w| !w.what_if() || self.with_what_ifs)
            .collect()
    }

    /// Every process whose CPU time is the report's: its backends, Redis.
    fn pids(&self) -> Pids {
        Pids {
            backends: self.backends.clone(),
            redis: self.redis.as_ref().and_then(|r| r.pid),
        }
    }

    fn level(&self, tasks: usize) -> usize {
        self.levels
            .iter()
            .position(|l| l.tasks == tasks)
            .expect("a pool for every level")
    }
}

/// The business write: one payment, its id back.
async fn pay<'c, E>(ex: E, key: &str, cents: i64) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    sqlx::query_scalar("INSERT INTO payments (order_id, cents) VALUES ($1, $2) RETURNING id")
        .bind(key)
        .bind(cents)
        .fetch_one(ex)
        .await
}

fn receipt(cents: i64, id: i64) -> String {
    format!("paid {cents} cents as payment {id}")
}

/// One request of `who` for `key`.
async fn request(
    env: &Env,
    lv: &Level,
    who: Who,
    key: &str,
    cents: i64,
) -> Result<Outcome, BoxError> {
    match who {
        Who::Hand => {
            let mut tx = lv.pool.begin().await?;
            let fresh = sqlx::query("INSERT INTO dedup (key) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(key)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !fresh {
                tx.rollback().await?;
                return Ok(Outcome::Replayed);
            }
            pay(&mut *tx, key, cents).await?;
            tx.commit().await?;
            Ok(Outcome::Executed)
        }
        Who::HandResult => {
            let mut tx = lv.pool.begin().await?;
            let fresh =
                sqlx::query("INSERT INTO dedup_result (key) VALUES ($1) ON CONFLICT DO NOTHING")
                    .bind(key)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
            if !fresh {
                let result: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT result FROM dedup_result WHERE key = $1")
                        .bind(key)
                        .fetch_one(&mut *tx)
                        .await?;
                tx.rollback().await?;
                return match result {
                    Some(r) if !r.is_empty() => Ok(Outcome::Replayed),
                    _ => Err(format!("{key}: a duplicate found no result").into()),
                };
            }
            let id = pay(&mut *tx, key, cents).await?;
            sqlx::query("UPDATE dedup_result SET result = $2 WHERE key = $1")
                .bind(key)
                .bind(receipt(cents, id).as_bytes())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Outcome::Executed)
        }
        Who::IdemTx | Who::HotComplete | Who::ReadFirst => {
            let mut tx = lv.pool.begin().await?;
            let fp = Fingerprint::of(&cents);
            if who == Who::ReadFirst {
                let row: Option<(Option<Vec<u8>>, i64)> =
                    sqlx::query_as(AssertSqlSafe(Arc::clone(&env.what_if.read)))
                        .bind(NAMESPACE)
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some((payload, stored)) = row {
                    tx.rollback().await?;
                    if stored != fp.get() as i64 {
                        return Err(format!("{key}: another fingerprint").into());
                    }
                    if payload.is_none_or(|p| p.is_empty()) {
                        return Err(format!("{key}: replayed an empty record").into());
                    }
                    return Ok(Outcome::Replayed);
                }
            }
            let sk = StoreKey {
                namespace: NAMESPACE,
                key,
            };
            match env.store.claim_in(&mut tx, sk, Some(fp)).await? {
                TxClaim::Claimed(claim) => {
                    let id = pay(&mut *tx, key, cents).await?;
                    let receipt = receipt(cents, id);
                    if who == Who::HotComplete {
                        hot_complete(env, &mut tx, key, &receipt, claim.fence()).await?;
                    } else {
                        claim.complete(&mut tx, receipt.as_bytes()).await?;
                    }
                    tx.commit().await?;
                    Ok(Outcome::Executed)
                }
                TxClaim::Completed(record) => {
                    tx.rollback().await?;
                    if record.payload.is_empty() {
                        return Err(format!("{key}: replayed an empty record").into());
                    }
                    Ok(Outcome::Replayed)
                }
                other => Err(format!("{key}: unexpected {other:?}").into()),
            }
        }
        Who::LeanClaim => {
            let mut tx = lv.pool.begin().await?;
            let fp = Fingerprint::of(&cents).get() as i64;
            let fence: Option<i64> =
                sqlx::query_scalar(AssertSqlSafe(Arc::clone(&env.what_if.lean_claim)))
                    .bind(NAMESPACE)
                    .bind(key)
                    .bind(fp)
                    .bind(Owner::random().to_hex())
                    .bind(86_400_000_000_i64)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(fence) = fence else {
                // A duplicate: what `claim_in` does next, a read.
                let row: Option<(Option<Vec<u8>>, i64)> =
                    sqlx::query_as(AssertSqlSafe(Arc::clone(&env.what_if.read)))
                        .bind(NAMESPACE)
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await?;
                tx.rollback().await?;
                return match row {
                    Some((Some(p), stored)) if stored == fp && !p.is_empty() => {
                        Ok(Outcome::Replayed)
                    }
                    other => {
                        Err(format!("{key}: the lean claim's duplicate found {other:?}").into())
                    }
                };
            };
            let id = pay(&mut *tx, key, cents).await?;
            hot_complete(env, &mut tx, key, &receipt(cents, id), fence as u64).await?;
            tx.commit().await?;
            Ok(Outcome::Executed)
        }
        Who::DurableRedis | Who::DurablePg => {
            let pool = &lv.pool;
            let work = |_fence: idem::durable::Fence| async move {
                let id = pay(pool, key, cents).await.map_err(|e| e.to_string())?;
                Ok::<_, String>(receipt(cents, id))
            };
            let fp = Fingerprint::of(&cents);
            let (r, how) = if who == Who::DurablePg {
                lv.durable_pg.run_with_fingerprint(key, fp, work).await
            } else {
                let redis = env.redis.as_ref().expect("Redis is connected");
                redis.durable.run_with_fingerprint(key, fp, work).await
            };
            r.map_err(|e| format!("{key}: {e}"))?;
            match how {
                DurableOutcome::Executed => Ok(Outcome::Executed),
                DurableOutcome::Replayed | DurableOutcome::Coalesced => Ok(Outcome::Replayed),
                other => Err(format!("{key}: unexpected outcome {other:?}").into()),
            }
        }
    }
}

/// The what-ifs' completion: the payload only, so that no indexed column
/// changes and PostgreSQL can make it a HOT update (no new index entries).
async fn hot_complete(
    env: &Env,
    conn: &mut sqlx::PgConnection,
    key: &str,
    receipt: &str,
    fence: u64,
) -> Result<(), BoxError> {
    let done = sqlx::query(AssertSqlSafe(Arc::clone(&env.what_if.hot_complete)))
        .bind(NAMESPACE)
        .bind(key)
        .bind(receipt.as_bytes())
        .bind(fence as i64)
        .execute(conn)
        .await?
        .rows_affected();
    if done != 1 {
        return Err(format!("{key}: the payload-only completion found no claim").into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Measurements

/// One measurement of one contender.
struct Measure {
    wall: Duration,
    latencies: Vec<Duration>,
    executed: u64,
    replayed: u64,
    /// Business rows of the measurement's keys, and distinct keys among
    /// them.
    rows: i64,
    distinct: i64,
    cpu: CpuUse,
}

impl Measure {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// `n` requests of `who` over `tasks` tasks (task `t` sends requests `t`,
/// `t + tasks`, …), for the keys `<prefix>-<i % keys>`; all released at
/// once, timed from the release to the last answer.
async fn drive(
    env: &Arc<Env>,
    tasks: usize,
    who: Who,
    prefix: &str,
    n: usize,
    keys: usize,
) -> Result<Measure, BoxError> {
    let li = env.level(tasks);
    let barrier = Arc::new(Barrier::new(tasks + 1));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (env, barrier, prefix) = (Arc::clone(env), Arc::clone(&barrier), prefix.to_owned());
            tokio::spawn(async move {
                let lv = &env.levels[li];
                let mut done = Vec::with_capacity(n / tasks + 1);
                barrier.wait().await;
                for i in (t..n).step_by(tasks) {
                    let k = i % keys;
                    let key = format!("{prefix}-{k}");
                    let start = Instant::now();
                    let how = request(&env, lv, who, &key, 1_000 + k as i64).await?;
                    done.push((start.elapsed(), how));
                }
                Ok::<_, BoxError>(done)
            })
        })
        .collect();
    let pids = env.pids();
    let cpu = Cpu::now(&pids);
    barrier.wait().await;
    let start = Instant::now();
    let mut all = Vec::with_capacity(n);
    for h in handles {
        all.extend(h.await??);
    }
    let wall = start.elapsed();
    let cpu = cpu.since(&Cpu::now(&pids));
    let (rows, distinct) = business_rows(&env.admin, prefix).await?;
    let executed = all.iter().filter(|(_, o)| *o == Outcome::Executed).count() as u64;
    Ok(Measure {
        wall,
        latencies: all.iter().map(|(d, _)| *d).collect(),
        executed,
        replayed: all.len() as u64 - executed,
        rows,
        distinct,
        cpu,
    })
}

/// The business rows whose `order_id` starts with `prefix-`, and how many
/// distinct `order_id`s they have.
async fn business_rows(admin: &PgPool, prefix: &str) -> Result<(i64, i64), BoxError> {
    Ok(sqlx::query_as(
        "SELECT count(*), count(DISTINCT order_id) FROM payments WHERE starts_with(order_id, $1)",
    )
    .bind(format!("{prefix}-"))
    .fetch_one(admin)
    .await?)
}

/// Empties the business and dedup tables between measurements, so that
/// every contender starts from the same (empty) tables.
async fn reset(env: &Env) -> Result<(), BoxError> {
    sqlx::raw_sql("TRUNCATE payments, dedup, dedup_result, idem_records")
        .execute(&env.admin)
        .await?;
    Ok(())
}

/// One key sent by `tasks` tasks at once, for `keys` keys in turn.
struct DupMeasure {
    /// Per key: from the first task's start to the last task's answer.
    per_key: Vec<Duration>,
    /// Per key: how many tasks executed.
    executions: Vec<u32>,
    replayed: u64,
    rows: i64,
    distinct: i64,
    cpu: CpuUse,
}

async fn duplicates(
    env: &Arc<Env>,
    tasks: usize,
    who: Who,
    prefix: &str,
    keys: usize,
) -> Result<DupMeasure, BoxError> {
    let li = env.level(tasks);
    let barrier = Arc::new(Barrier::new(tasks));
    let pids = env.pids();
    let cpu = Cpu::now(&pids);
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (env, barrier, prefix) = (Arc::clone(env), Arc::clone(&barrier), prefix.to_owned());
            tokio::spawn(async move {
                let lv = &env.levels[li];
                let mut done = Vec::with_capacity(keys);
                for k in 0..keys {
                    let key = format!("{prefix}-{k}");
                    barrier.wait().await;
                    let start = Instant::now();
                    let how = request(&env, lv, who, &key, 1_000 + k as i64).await?;
                    done.push((k, start, Instant::now(), how));
                }
                Ok::<_, BoxError>(done)
            })
        })
        .collect();
    let mut first: Vec<Option<Instant>> = vec![None; keys];
    let mut last: Vec<Option<Instant>> = vec![None; keys];
    let mut executions = vec![0u32; keys];
    let mut replayed = 0;
    for h in handles {
        for (k, start, end, how) in h.await?? {
            first[k] = Some(first[k].map_or(start, |f| f.min(start)));
            last[k] = Some(last[k].map_or(end, |l| l.max(end)));
            match how {
                Outcome::Executed => executions[k] += 1,
                Outcome::Replayed => replayed += 1,
            }
        }
    }
    let cpu = cpu.since(&Cpu::now(&pids));
    let (rows, distinct) = business_rows(&env.admin, prefix).await?;
    let per_key = first
        .iter()
        .zip(&last)
        .map(|(f, l)| l.expect("answered").duration_since(f.expect("started")))
        .collect();
    Ok(DupMeasure {
        per_key,
        executions,
        replayed,
        rows,
        distinct,
        cpu,
    })
}

// ---------------------------------------------------------------------------
// Counting statements: sqlx logs every statement it runs as a `tracing`
// event of target `sqlx::query`; this subscriber counts them, by their
// first words, while `COUNTING` is set (it answers "not interested"
// otherwise, and for every other event).

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Per statement (its first words): the time of each, as sqlx measured it
/// (from sending it to its last row: round trip and server time), in s.
static STATEMENTS: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

struct StatementCounter;

/// The fields of one statement's event: its first words, its time.
#[derive(Default)]
struct Summary {
    words: Option<String>,
    secs: f64,
}

impl tracing::field::Visit for Summary {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.words = Some(value.to_owned());
        }
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.secs = value;
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" && self.words.is_none() {
            self.words = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

impl tracing::Subscriber for StatementCounter {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if meta.target() == "sqlx::query" {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target() == "sqlx::query" && COUNTING.load(Ordering::Relaxed)
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut summary = Summary::default();
        event.record(&mut summary);
        let name = summary.words.unwrap_or_else(|| "?".into());
        STATEMENTS
            .lock()
            .expect("the counter lock")
            .entry(name)
            .or_default()
            .push(summary.secs);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// What `n` requests of a contender sent and wrote (1 connection).
#[derive(Default)]
struct Pass {
    n: usize,
    /// Per statement (its first words), the time of each, in s.
    statements: BTreeMap<String, Vec<f64>>,
    /// Each request's time, in ms.
    latencies: Vec<f64>,
    redis_trips: u64,
    /// WAL written per request during the pass (by the whole server).
    wal_per_request: f64,
}

impl Pass {
    /// Adds `other`'s requests to these; the WAL figure is the least of
    /// the passes' (other sessions' WAL is counted too: the least is the
    /// nearest to the contender's own).
    fn merge(&mut self, other: Pass) {
        self.wal_per_request = if self.n == 0 {
            other.wal_per_request
        } else {
            self.wal_per_request.min(other.wal_per_request)
        };
        self.n += other.n;
        for (s, times) in other.statements {
            self.statements.entry(s).or_default().extend(times);
        }
        self.latencies.extend(other.latencies);
        self.redis_trips += other.redis_trips;
    }

    /// Statements per request.
    fn statements(&self) -> f64 {
        self.statements.values().map(Vec::len).sum::<usize>() as f64 / self.n as f64
    }

    fn per(&self, count: u64) -> f64 {
        count as f64 / self.n as f64
    }

    /// For each statement: its first words, how many per request, its
    /// median time in µs.
    fn breakdown(&self) -> String {
        self.statements
            .iter()
            .map(|(s, times)| {
                format!(
                    "`{s}` ×{:.2} ({:.0} µs)",
                    self.per(times.len() as u64),
                    median(times.clone()) * 1e6
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn wal_lsn(admin: &PgPool) -> Result<i64, BoxError> {
    Ok(
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint")
            .fetch_one(admin)
            .await?,
    )
}

/// Counts `n` requests of `who` (keys `<prefix>-0..n`) at 1 connection.
async fn account(env: &Arc<Env>, who: Who, prefix: &str, n: usize) -> Result<Pass, BoxError> {
    STATEMENTS.lock().expect("the counter lock").clear();
    if let Some(r) = &env.redis {
        r.tally.reset();
    }
    let lsn0 = wal_lsn(&env.admin).await?;
    COUNTING.store(true, Ordering::SeqCst);
    let m = drive(env, 1, who, prefix, n, n).await;
    COUNTING.store(false, Ordering::SeqCst);
    let lsn1 = wal_lsn(&env.admin).await?;
    let m = m?;
    let mut statements = std::mem::take(&mut *STATEMENTS.lock().expect("the counter lock"));
    // `drive` checks the business rows on the admin pool, counted too.
    statements.retain(|s, _| !s.starts_with("SELECT count(*), count(DISTINCT"));
    Ok(Pass {
        n,
        statements,
        latencies: m.latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
        redis_trips: match (&env.redis, who) {
            (Some(r), Who::DurableRedis) => r.tally.read()[0],
            _ => 0,
        },
        wal_per_request: (lsn1 - lsn0) as f64 / n as f64,
    })
}

// ---------------------------------------------------------------------------
// CPU: the machine's, this process's (the client), its connections'
// backends' (PostgreSQL), Redis's; from /proc (Linux; zeros elsewhere).

/// The processes whose CPU time is the report's own.
struct Pids {
    backends: Vec<u32>,
    redis: Option<u32>,
}

/// CPU time used so far, in clock ticks (10 ms).
struct Cpu {
    at: Instant,
    busy: u64,
    client: u64,
    postgres: u64,
    redis: u64,
}

/// What a measurement used, in ticks, and others' share of the machine.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUse {
    client: u64,
    postgres: u64,
    redis: u64,
    others: f64,
}

/// Clock ticks per second (`USER_HZ`).
const HZ: f64 = 100.0;

impl Cpu {
    fn now(pids: &Pids) -> Self {
        Self {
            at: Instant::now(),
            busy: machine_busy().unwrap_or(0),
            client: process_ticks("self").unwrap_or(0),
            postgres: pids
                .backends
                .iter()
                .filter_map(|p| process_ticks(&p.to_string()))
                .sum(),
            redis: pids
                .redis
                .and_then(|p| process_ticks(&p.to_string()))
                .unwrap_or(0),
        }
    }

    /// What was used between `self` and `later`.
    fn since(&self, later: &Cpu) -> CpuUse {
        let client = later.client.saturating_sub(self.client);
        let postgres = later.postgres.saturating_sub(self.postgres);
        let redis = later.redis.saturating_sub(self.redis);
        let busy = later.busy.saturating_sub(self.busy);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let capacity = later.at.duration_since(self.at).as_secs_f64() * HZ * cpus;
        CpuUse {
            client,
            postgres,
            redis,
            others: busy.saturating_sub(client + postgres + redis) as f64 / capacity.max(1.0),
        }
    }
}

// ---------------------------------------------------------------------------
// Figures

/// The `q` quantile of sorted `v` (nearest rank).
fn quantile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn num(x: f64) -> String {
    let s = format!("{:.0}", x.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn ratios(v: &[f64]) -> String {
    v.iter()
        .map(|r| format!("{r:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Invariant checks, printed at the end; a failed one fails the run.
#[derive(Default)]
struct Checks {
    lines: Vec<String>,
    failed: usize,
}

impl Checks {
    fn check(&mut self, ok: bool, what: String) {
        if !ok {
            self.failed += 1;
            eprintln!("  INVARIANT BROKEN: {what}");
            self.lines.push(format!("* **broken**: {what}"));
        }
    }
}

/// `[round][contender]` measurements of one workload at one level.
type Rounds<M> = Vec<Vec<(Who, M)>>;

/// `w`'s measurement in one round.
fn of<M>(round: &[(Who, M)], w: Who) -> Option<&M> {
    round.iter().find(|(x, _)| *x == w).map(|(_, m)| m)
}

/// CPU µs per request, pooled over `uses` for `requests` requests.
fn cpu_per(uses: &[CpuUse], requests: usize, part: fn(&CpuUse) -> u64) -> String {
    let ticks: u64 = uses.iter().map(part).sum();
    if ticks == 0 {
        return "–".into();
    }
    format!("{:.0}", ticks as f64 / HZ * 1e6 / requests.max(1) as f64)
}

/// Markdown for the unique-key or replay measurements of one level.
fn table(title: &str, rounds: &Rounds<Measure>, whos: &[Who]) -> String {
    let mut out = format!("#### {title}\n\n");
    out.push_str(
        "| contender | req/s (median of rounds) | × hand-written (median) | × hand-written, per round \
         | p50 ms | p99 ms | p50 × hand-written | PostgreSQL CPU µs/req | Redis CPU µs/req | client CPU µs/req \
         | others' CPU share (median) |\n",
    );
    out.push_str("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let pooled = |w: Who| {
        let mut l: Vec<Duration> = rounds
            .iter()
            .filter_map(|r| of(r, w))
            .flat_map(|m| m.latencies.iter().copied())
            .collect();
        l.sort();
        l
    };
    let hand_p50 = quantile(&pooled(Who::Hand), 0.5);
    for &w in whos {
        let mine: Vec<&Measure> = rounds.iter().filter_map(|r| of(r, w)).collect();
        let rates: Vec<f64> = mine.iter().map(|m| m.rate()).collect();
        let per_round: Vec<f64> = rounds
            .iter()
            .filter_map(|r| Some(of(r, w)?.rate() / of(r, Who::Hand)?.rate()))
            .collect();
        let lat = pooled(w);
        let p50 = quantile(&lat, 0.5);
        let uses: Vec<CpuUse> = mine.iter().map(|m| m.cpu).collect();
        let others = median(uses.iter().map(|c| c.others).collect());
        let _ = writeln!(
            out,
            "| {} | {} | {:.2}x | {} | {} | {} | {:.2}x | {} | {} | {} | {:.0}% |",
            w.name(),
            num(median(rates)),
            median(per_round.clone()),
            ratios(&per_round),
            ms(p50),
            ms(quantile(&lat, 0.99)),
            p50.as_secs_f64() / hand_p50.as_secs_f64(),
            cpu_per(&uses, lat.len(), |c| c.postgres),
            cpu_per(&uses, lat.len(), |c| c.redis),
            cpu_per(&uses, lat.len(), |c| c.client),
            others * 100.0,
        );
    }
    out
}

fn dup_table(title: &str, rounds: &Rounds<DupMeasure>, whos: &[Who]) -> String {
    let mut out = format!("#### {title}\n\n");
    out.push_str(
        "| contender | keys | executions | answered as duplicates | all answered, p50 ms | p99 ms \
         | × hand-written (median of per-round p50s) | per round | PostgreSQL CPU µs/key | client CPU µs/key \
         | others' CPU share (median) |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n");
    let p50 = |m: &DupMeasure| {
        let mut v = m.per_key.clone();
        v.sort();
        quantile(&v, 0.5).as_secs_f64()
    };
    for &w in whos {
        let mine: Vec<&DupMeasure> = rounds.iter().filter_map(|r| of(r, w)).collect();
        let mut all: Vec<Duration> = mine
            .iter()
            .flat_map(|m| m.per_key.iter().copied())
            .collect();
        all.sort();
        let per_round: Vec<f64> = rounds
            .iter()
            .filter_map(|r| Some(p50(of(r, w)?) / p50(of(r, Who::Hand)?)))
            .collect();
        let executions: u64 = mine
            .iter()
            .flat_map(|m| &m.executions)
            .map(|&e| u64::from(e))
            .sum();
        let replayed: u64 = mine.iter().map(|m| m.replayed).sum();
        let uses: Vec<CpuUse> = mine.iter().map(|m| m.cpu).collect();
        let others = median(uses.iter().map(|c| c.others).collect());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.2}x | {} | {} | {} | {:.0}% |",
            w.name(),
            num(all.len() as f64),
            num(executions as f64),
            num(replayed as f64),
            ms(quantile(&all, 0.5)),
            ms(quantile(&all, 0.99)),
            median(per_round.clone()),
            ratios(&per_round),
            cpu_per(&uses, all.len(), |c| c.postgres),
            cpu_per(&uses, all.len(), |c| c.client),
            others * 100.0,
        );
    }
    out
}

// ---------------------------------------------------------------------------
// Setup and the run

async fn connect(a: &Args) -> Result<Env, BoxError> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let options = PgConnectOptions::from_str(&url)
        .unwrap_or_else(|e| fail(&format!("DATABASE_URL {url:?}: {e}")))
        .application_name(APP);
    // Redis first: a report that ends for want of it leaves no schema.
    let redis = if a.redis {
        Some(connect_redis().await)
    } else {
        None
    };
    let first = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.clone())
        .await
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot reach PostgreSQL at {url} ({e}).\n  Start one there (the report needs a database it may \
                 create a schema in: trust auth, database `test`), or point DATABASE_URL at one, e.g.\n  \
                 DATABASE_URL=postgres://user:password@host:5432/db cargo run --release -p idem-benches --bin pg_report"
            ))
        });
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"
    )))
    .execute(&first)
    .await?;
    first.close().await;
    let options = options.options([("search_path", SCHEMA)]);
    let pool = |n: usize| {
        PgPoolOptions::new()
            .max_connections(n as u32)
            .min_connections(n as u32)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
    };
    let admin = pool(1).await?;
    let store = PostgresStore::builder(admin.clone())
        .schema(SCHEMA)
        .build()?;
    store.migrate().await?;
    sqlx::raw_sql(
        "CREATE TABLE payments (id bigserial PRIMARY KEY, order_id text NOT NULL, cents bigint NOT NULL);
         CREATE TABLE dedup (key text PRIMARY KEY);
         CREATE TABLE dedup_result (key text PRIMARY KEY, result bytea);",
    )
    .execute(&admin)
    .await?;
    let mut sizes = a.levels.clone();
    // 1: the statement counts.
    sizes.extend([1, a.dup_tasks]);
    sizes.sort_unstable();
    sizes.dedup();
    let mut levels = Vec::new();
    for tasks in sizes {
        let pool = pool(tasks).await?;
        let pg_store = PostgresStore::builder(pool.clone())
            .schema(SCHEMA)
            .build()?;
        levels.push(Level {
            tasks,
            durable_pg: durable(pg_store),
            pool,
        });
    }
    let backends: Vec<u32> = sqlx::query_scalar::<_, i32>(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(APP)
    .fetch_all(&admin)
    .await?
    .into_iter()
    .filter_map(|p| u32::try_from(p).ok())
    .collect();
    Ok(Env {
        what_if: WhatIfSql::new(store.table()),
        with_what_ifs: a.what_if,
        admin,
        store,
        levels,
        redis,
        backends,
    })
}

fn durable<S: idem::store::Store>(store: S) -> Durable<S, String, String> {
    Durable::builder(store)
        .namespace(NAMESPACE)
        .retain(Duration::from_secs(600))
        .lease(Duration::from_secs(30))
        .on_running(OnRunning::Wait {
            timeout: Duration::from_secs(30),
        })
        .build()
        .expect("valid Durable settings")
}

async fn connect_redis() -> RedisSide {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url.as_str())
        .unwrap_or_else(|e| fail(&format!("REDIS_URL {url:?}: {e}")));
    let reachable = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await;
    if !matches!(reachable, Ok(Ok(_))) {
        fail(&format!(
            "cannot reach Redis at {url}.\n  Start one there (`redis-server --port 6379 --save \"\"`), point REDIS_URL \
             at one, or leave the Redis contender out with --no-redis."
        ));
    }
    let mut admin = multiplexed(&url).await;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut admin)
        .await
        .unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    let tally = Arc::new(Tally::default());
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let prefix = format!("idem-pg-report-{}-{stamp}", std::process::id());
    let store = RedisStore::new(counted(&url, Arc::clone(&tally)).await).prefix(&prefix);
    RedisSide {
        durable: durable(store),
        tally,
        admin,
        prefix,
        version: field("redis_version:").unwrap_or_else(|| "?".into()),
        pid: field("process_id:").and_then(|p| p.parse().ok()),
    }
}

/// Deletes the run's Redis keys and drops the schema.
async fn clean_up(env: &Env) -> Result<(), BoxError> {
    if let Some(r) = &env.redis {
        let mut admin = r.admin.clone();
        let pattern = format!("{}:*", r.prefix);
        let mut cursor = 0u64;
        let mut deleted = 0usize;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut admin)
                .await?;
            if !keys.is_empty() {
                deleted += keys.len();
                let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut admin).await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        eprintln!("deleted {deleted} Redis keys under {}", r.prefix);
    }
    for lv in &env.levels {
        lv.pool.close().await;
    }
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {SCHEMA} CASCADE")))
        .execute(&env.admin)
        .await?;
    env.admin.close().await;
    Ok(())
}

async fn machine_note(env: &Env) -> Result<String, BoxError> {
    let setting = |name: &'static str| {
        let admin = env.admin.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT current_setting($1)")
                .bind(name)
                .fetch_one(&admin)
                .await
        }
    };
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&env.admin)
        .await?;
    let now: String =
        sqlx::query_scalar("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')")
            .fetch_one(&env.admin)
            .await?;
    let mut out = format!("{now} UTC; {version}\n\n");
    for name in [
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
        "full_page_writes",
        "commit_delay",
        "shared_buffers",
        "max_connections",
    ] {
        let _ = writeln!(out, "* `{name}` = {}", setting(name).await?);
    }
    if let Some(r) = &env.redis {
        let _ = writeln!(
            out,
            "* Redis {} (the machine's), keys under `{}:`",
            r.version, r.prefix
        );
    }
    let _ = writeln!(
        out,
        "* {} CPUs; a tokio runtime of 2 workers",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(out)
}

async fn run(a: &Args, env: &Arc<Env>) -> Result<(), BoxError> {
    let whos = env.who();
    let dup_whos: Vec<Who> = whos.iter().copied().filter(|w| w.in_duplicates()).collect();
    let mut checks = Checks::default();
    let mut out = String::new();
    let started = Instant::now();

    let _ = writeln!(out, "### Machine\n\n{}", machine_note(env).await?);
    let _ = writeln!(
        out,
        "Rounds: {}; unique keys: {} requests at 1 connection, {} at {}; replays: {} over {} keys at {} tasks; \
         duplicates: {} keys × {} tasks. Ratios are same-round; p50/p99 pool every round's requests.\n",
        a.rounds,
        a.requests,
        a.calls,
        a.levels
            .iter()
            .filter(|l| **l > 1)
            .map(|l| format!("{l} tasks"))
            .collect::<Vec<_>>()
            .join(" and "),
        a.replays,
        a.replay_keys,
        a.dup_tasks,
        a.dup_keys,
        a.dup_tasks
    );

    // Warm every pool's statement caches, and the tables.
    eprintln!("warming up");
    for (i, &tasks) in a.levels.iter().chain([&a.dup_tasks]).enumerate() {
        for &w in &whos {
            drive(
                env,
                tasks,
                w,
                &format!("warm{i}-{}", w.tag()),
                tasks * 8,
                tasks * 8,
            )
            .await?;
        }
    }
    reset(env).await?;

    // What each request sends and writes: 3 passes of 50 first
    // executions and 50 replays of them, the contenders in turn.
    eprintln!("counting statements");
    let mut passes: BTreeMap<Who, (Pass, Pass)> = BTreeMap::new();
    for pass in 0..3 {
        for &w in &whos {
            let prefix = format!("acct{pass}-{}", w.tag());
            let unique = account(env, w, &prefix, 50).await?;
            let replay = account(env, w, &prefix, 50).await?;
            let both = passes.entry(w).or_default();
            both.0.merge(unique);
            both.1.merge(replay);
        }
    }
    out.push_str("### Statements and WAL per request (1 connection, 150 requests each)\n\n");
    out.push_str(
        "| contender | unique: `BEGIN` | statements | Redis round trips | WAL bytes | median ms \
         | replay: `BEGIN` | statements | Redis round trips | WAL bytes | median ms |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut breakdown = String::new();
    for (w, (unique, replay)) in &passes {
        // sqlx sends `BEGIN` outside its statement log: one per
        // transaction, and each contender's code begins one per request
        // or none.
        let begin = u8::from(w.transactional());
        let _ = writeln!(
            out,
            "| {} | {begin} | {:.2} | {:.2} | {} | {:.2} | {begin} | {:.2} | {:.2} | {} | {:.2} |",
            w.name(),
            unique.statements(),
            unique.per(unique.redis_trips),
            num(unique.wal_per_request),
            median(unique.latencies.clone()),
            replay.statements(),
            replay.per(replay.redis_trips),
            num(replay.wal_per_request),
            median(replay.latencies.clone()),
        );
        let _ = writeln!(
            breakdown,
            "* {}: unique: {}; replay: {}",
            w.name(),
            unique.breakdown(),
            replay.breakdown()
        );
    }
    let _ = writeln!(
        out,
        "\nStatements by their first words (sqlx's statement log), per request, with their median time \
         (sent to answered, as sqlx times them); WAL: the least of 3 passes (the server's, other sessions' \
         included):\n\n{breakdown}"
    );
    reset(env).await?;

    // Unique keys.
    let mut unique: Vec<(usize, Rounds<Measure>)> =
        a.levels.iter().map(|&l| (l, Vec::new())).collect();
    for round in 0..a.rounds {
        for (tasks, rounds) in &mut unique {
            let n = if *tasks == 1 { a.requests } else { a.calls };
            eprintln!("unique keys, {tasks} task(s), round {round}");
            let mut row = Vec::new();
            for k in 0..whos.len() {
                let w = whos[(round + k) % whos.len()];
                reset(env).await?;
                let prefix = format!("u{round}-{tasks}-{}", w.tag());
                let m = drive(env, *tasks, w, &prefix, n, n).await?;
                checks.check(
                    m.executed == n as u64 && m.rows == n as i64 && m.distinct == n as i64,
                    format!(
                        "unique, {tasks} tasks, round {round}, {}: {} executed, {} business rows, {} distinct, for {n} keys",
                        w.name(),
                        m.executed,
                        m.rows,
                        m.distinct
                    ),
                );
                row.push((w, m));
            }
            rounds.push(row);
        }
    }
    reset(env).await?;

    // Replays.
    let replay_tasks = *a.levels.iter().max().expect("a level");
    eprintln!("replays: preparing {} keys per contender", a.replay_keys);
    for &w in &whos {
        let prefix = format!("rp-{}", w.tag());
        drive(env, replay_tasks, w, &prefix, a.replay_keys, a.replay_keys).await?;
    }
    let mut replays: Rounds<Measure> = Vec::new();
    for round in 0..a.rounds {
        eprintln!("replays, round {round}");
        let mut row = Vec::new();
        for k in 0..whos.len() {
            let w = whos[(round + k) % whos.len()];
            let prefix = format!("rp-{}", w.tag());
            let m = drive(env, replay_tasks, w, &prefix, a.replays, a.replay_keys).await?;
            checks.check(
                m.executed == 0
                    && m.replayed == a.replays as u64
                    && m.rows == a.replay_keys as i64
                    && m.distinct == a.replay_keys as i64,
                format!(
                    "replays, round {round}, {}: {} executed, {} replayed, {} business rows for {} keys",
                    w.name(),
                    m.executed,
                    m.replayed,
                    m.rows,
                    a.replay_keys
                ),
            );
            row.push((w, m));
        }
        replays.push(row);
    }
    reset(env).await?;

    // Concurrent duplicates.
    let mut dups: Rounds<DupMeasure> = Vec::new();
    for round in 0..a.rounds {
        eprintln!("duplicates, round {round}");
        let mut row = Vec::new();
        for k in 0..dup_whos.len() {
            let w = dup_whos[(round + k) % dup_whos.len()];
            reset(env).await?;
            let prefix = format!("d{round}-{}", w.tag());
            let m = duplicates(env, a.dup_tasks, w, &prefix, a.dup_keys).await?;
            let once = m.executions.iter().all(|&e| e == 1);
            checks.check(
                once && m.rows == a.dup_keys as i64
                    && m.distinct == a.dup_keys as i64
                    && m.replayed == (a.dup_keys * (a.dup_tasks - 1)) as u64,
                format!(
                    "duplicates, round {round}, {}: executions per key {:?}, {} business rows for {} keys",
                    w.name(),
                    m.executions,
                    m.rows,
                    a.dup_keys
                ),
            );
            row.push((w, m));
        }
        dups.push(row);
    }

    // The tables.
    for (tasks, rounds) in &unique {
        let n = if *tasks == 1 { a.requests } else { a.calls };
        let title = if *tasks == 1 {
            format!("unique keys, 1 connection (latency): {n} requests per round")
        } else {
            format!("unique keys, {tasks} tasks, a pool of {tasks}: {n} requests per round")
        };
        out.push_str(&table(&title, rounds, &whos));
        out.push('\n');
    }
    out.push_str(&table(
        &format!(
            "replays: {} requests over {} committed keys, {replay_tasks} tasks",
            a.replays, a.replay_keys
        ),
        &replays,
        &whos,
    ));
    out.push('\n');
    out.push_str(&dup_table(
        &format!(
            "concurrent duplicates: {} tasks send each key at once, {} keys per round",
            a.dup_tasks, a.dup_keys
        ),
        &dups,
        &dup_whos,
    ));
    out.push('\n');

    // The goal: idem's transactional mode within 20% of the hand-written
    // table on unique keys.
    out.push_str(
        "### Goal: idem transactional within 20% of the hand-written dedup table (unique keys)\n\n",
    );
    out.push_str("| tasks | × hand-written, req/s (median of rounds) | per round | verdict |\n|---:|---:|---|---|\n");
    let mut all_met = true;
    for (tasks, rounds) in &unique {
        let per_round: Vec<f64> = rounds
            .iter()
            .filter_map(|r| {
                let rate = |w: Who| r.iter().find(|(x, _)| *x == w).map(|(_, m)| m.rate());
                Some(rate(Who::IdemTx)? / rate(Who::Hand)?)
            })
            .collect();
        let med = median(per_round.clone());
        let met = med >= 0.8;
        all_met &= met;
        let _ = writeln!(
            out,
            "| {tasks} | {med:.3}x | {} | {} |",
            ratios(&per_round),
            if met { "met" } else { "**missed**" }
        );
    }
    let _ = writeln!(
        out,
        "\nOverall: {}.\n",
        if all_met { "met" } else { "**missed**" }
    );

    // Invariants.
    out.push_str("### Invariants\n\n");
    let measured = a.rounds * (unique.len() * whos.len() + whos.len() + dup_whos.len());
    if checks.failed == 0 {
        let _ = writeln!(
            out,
            "All held in {measured} measurements: after every unique-key measurement one business row per key \
             and every request executed; replays executed nothing and added no row; in every duplicates \
             measurement each key executed exactly once ({} keys × {} rounds × {} contenders), the other {} \
             tasks answered as duplicates.\n",
            a.dup_keys,
            a.rounds,
            dup_whos.len(),
            a.dup_tasks - 1
        );
    } else {
        for l in &checks.lines {
            let _ = writeln!(out, "{l}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "Run time: {:.0} s.", started.elapsed().as_secs_f64());
    print!("{out}");
    if checks.failed > 0 {
        return Err(format!("{} invariant(s) broken", checks.failed).into());
    }
    Ok(())
}

fn main() {
    let a = args();
    if let Err(e) = tracing::subscriber::set_global_default(StatementCounter) {
        fail(&format!("cannot install the statement counter: {e}"));
    }
    let rt = idem_benches::runtime();
    let code = rt.block_on(async {
        let env = connect(&a)
            .await
            .unwrap_or_else(|e| fail(&format!("setting up: {e}")));
        let env = Arc::new(env);
        let result = run(&a, &env).await;
        let cleaned = clean_up(&env).await;
        let mut code = 0;
        if let Err(e) = result {
            eprintln!("pg_report: {e}");
            code = 1;
        }
        if let Err(e) = cleaned {
            eprintln!("pg_report: cleaning up: {e} (drop the schema {SCHEMA} by hand)");
            code = 1;
        }
        code
    });
    std::process::exit(code);
}
