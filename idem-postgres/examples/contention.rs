//! What each pattern of `idem_postgres::patterns`, and the idempotency
//! record, costs on one hot row: N concurrent tasks (one connection each),
//! K requests each, one transaction per attempt.
//!
//! ```sh
//! cargo run --release -p idem-postgres --example contention            # 16 tasks, 50 requests each
//! cargo run --release -p idem-postgres --example contention -- 4 100   # 4 tasks, 100 each
//! ```
//!
//! PostgreSQL on 127.0.0.1:5432, or DATABASE_URL. It works in a schema of
//! its own, `idem_contention`, and drops it at the end.
//!
//! Two kinds of requests:
//!
//! * **duplicates** (the idempotency record, the guarded transition): K
//!   rounds; in each, all N tasks send the same request at once (after a
//!   barrier) for a key or row of that round. One executes (adds 1 to the
//!   hot row), the others get the record or a refusal.
//! * **increments** (the version check and the row locks): each task adds
//!   1 to the hot row K times, retrying (a new transaction, after a
//!   `yield_now`) until its increment commits.
//!
//! For each: how many executed, were replayed or refused, how many
//! attempts were retried, requests per second, the latency of a request
//! from its first attempt to its answer (p50, p99), and the mean time of
//! the statement that meets the contention (the claim, the update, the
//! lock), waits included. The hot row's counter is checked at the end of
//! each: every execution counted once, no lost update.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use idem::store::StoreKey;
use idem_postgres::patterns::{
    Changes, Guarded, PatternError, RowLock, Table, Transition, Versioned, Wait,
};
use idem_postgres::{PostgresStore, TxClaim};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::Barrier;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SCHEMA: &str = "idem_contention";

/// What one request ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Executed,
    Replayed,
}

/// One request's account: its answer, its retries, the time in the
/// contended statement over all its attempts, its latency.
struct Done {
    answer: Answer,
    retries: u32,
    in_statement: Duration,
    latency: Duration,
}

#[derive(Clone, Copy, Debug)]
enum Pattern {
    Record,
    Transition,
    Optimistic,
    LockWait,
    LockNoWait,
    LockTimeout,
    SkipLocked,
}

impl Pattern {
    const ALL: [Self; 7] = [
        Self::Record,
        Self::Transition,
        Self::Optimistic,
        Self::LockWait,
        Self::LockNoWait,
        Self::LockTimeout,
        Self::SkipLocked,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Record => "idempotency record (claim_in), duplicates",
            Self::Transition => "guarded transition, duplicates",
            Self::Optimistic => "optimistic version, increments",
            Self::LockWait => "FOR UPDATE (waits), increments",
            Self::LockNoWait => "FOR UPDATE NOWAIT, increments",
            Self::LockTimeout => "FOR UPDATE, lock timeout 10 ms, increments",
            Self::SkipLocked => "FOR UPDATE SKIP LOCKED, increments",
        }
    }

    fn duplicates(self) -> bool {
        matches!(self, Self::Record | Self::Transition)
    }
}

struct Bench {
    pool: PgPool,
    store: PostgresStore,
    versioned: Versioned,
    guarded: Guarded,
    lock: RowLock,
}

/// Adds 1 to the hot row, in the caller's transaction or on its own.
const INCREMENT: &str = "UPDATE hot SET n = n + 1 WHERE id = 0";

impl Bench {
    /// One request of `pattern`, for round `round` (duplicates).
    async fn request(&self, pattern: Pattern, round: i64) -> Result<Done, BoxError> {
        let start = Instant::now();
        let mut retries = 0;
        let mut in_statement = Duration::ZERO;
        loop {
            let answer: Option<Answer> = match pattern {
                Pattern::Record => {
                    let mut tx = self.pool.begin().await?;
                    let t = Instant::now();
                    let key = format!("round-{round}");
                    let key = StoreKey {
                        namespace: "contention",
                        key: &key,
                    };
                    let claim = self.store.claim_in(&mut tx, key, None).await?;
                    in_statement += t.elapsed();
                    match claim {
                        TxClaim::Claimed(claim) => {
                            sqlx::query(INCREMENT).execute(&mut *tx).await?;
                            claim.complete(&mut tx, b"done").await?;
                            tx.commit().await?;
                            Some(Answer::Executed)
                        }
                        TxClaim::Completed(_) => Some(Answer::Replayed),
                        TxClaim::InProgress { .. } | TxClaim::Mismatch => None,
                    }
                }
                Pattern::Transition => {
                    let mut tx = self.pool.begin().await?;
                    let t = Instant::now();
                    let moved = self
                        .guarded
                        .transition(&mut tx, round, "pending", "paid", Changes::new())
                        .await?;
                    in_statement += t.elapsed();
                    if moved == Transition::Done {
                        sqlx::query(INCREMENT).execute(&mut *tx).await?;
                        tx.commit().await?;
                        Some(Answer::Executed)
                    } else {
                        Some(Answer::Replayed)
                    }
                }
                Pattern::Optimistic => {
                    let (n, version): (i64, i64) =
                        sqlx::query_as("SELECT n, version FROM hot WHERE id = 0")
                            .fetch_one(&self.pool)
                            .await?;
                    let mut conn = self.pool.acquire().await?;
                    let t = Instant::now();
                    let r = self
                        .versioned
                        .update(&mut conn, 0_i64, version, Changes::new().set("n", n + 1))
                        .await;
                    in_statement += t.elapsed();
                    match r {
                        Ok(_) => Some(Answer::Executed),
                        Err(PatternError::Conflict { .. }) => None,
                        Err(e) => return Err(e.into()),
                    }
                }
                Pattern::LockWait | Pattern::LockNoWait | Pattern::LockTimeout => {
                    let wait = match pattern {
                        Pattern::LockWait => Wait::Indefinitely,
                        Pattern::LockNoWait => Wait::NoWait,
                        _ => Wait::AtMost(Duration::from_millis(10)),
                    };
                    let mut tx = self.pool.begin().await?;
                    let t = Instant::now();
                    let r = self.lock.lock(&mut tx, 0_i64, wait).await;
                    in_statement += t.elapsed();
                    match r {
                        Ok(_) => {
                            sqlx::query(INCREMENT).execute(&mut *tx).await?;
                            tx.commit().await?;
                            Some(Answer::Executed)
                        }
                        Err(PatternError::Locked) => None, // the transaction rolls back on drop
                        Err(e) => return Err(e.into()),
                    }
                }
                Pattern::SkipLocked => {
                    let mut tx = self.pool.begin().await?;
                    let t = Instant::now();
                    let r = self.lock.try_lock(&mut tx, 0_i64).await?;
                    in_statement += t.elapsed();
                    if r.is_some() {
                        sqlx::query(INCREMENT).execute(&mut *tx).await?;
                        tx.commit().await?;
                        Some(Answer::Executed)
                    } else {
                        tx.rollback().await?;
                        None
                    }
                }
            };
            if let Some(answer) = answer {
                return Ok(Done {
                    answer,
                    retries,
                    in_statement,
                    latency: start.elapsed(),
                });
            }
            retries += 1;
            tokio::task::yield_now().await;
        }
    }

    async fn reset(&self, rounds: i64) -> Result<(), BoxError> {
        sqlx::raw_sql(
            "TRUNCATE hot, orders; INSERT INTO hot (id, n, version) VALUES (0, 0, 1); \
             DELETE FROM idem_records",
        )
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "INSERT INTO orders (id, status) SELECT g, 'pending' FROM generate_series(0, $1) AS g",
        )
        .bind(rounds)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs `pattern` with `tasks` tasks of `per_task` requests; returns a
    /// table row.
    async fn run(
        self: &Arc<Self>,
        pattern: Pattern,
        tasks: usize,
        per_task: usize,
    ) -> Result<String, BoxError> {
        self.reset(per_task as i64).await?;
        let barrier = Arc::new(Barrier::new(tasks));
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (bench, barrier) = (Arc::clone(self), Arc::clone(&barrier));
                tokio::spawn(async move {
                    let mut done = Vec::with_capacity(per_task);
                    for round in 0..per_task {
                        if pattern.duplicates() {
                            barrier.wait().await;
                        }
                        done.push(bench.request(pattern, round as i64).await?);
                    }
                    Ok::<_, BoxError>(done)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await??);
        }
        let elapsed = start.elapsed();
        let executed = all.iter().filter(|d| d.answer == Answer::Executed).count();
        let replayed = all.len() - executed;
        let retries: u64 = all.iter().map(|d| u64::from(d.retries)).sum();
        let in_statement: Duration = all.iter().map(|d| d.in_statement).sum();
        let mut latencies: Vec<Duration> = all.iter().map(|d| d.latency).collect();
        latencies.sort();
        let pct = |p: f64| {
            latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
        };
        let n: i64 = sqlx::query_scalar("SELECT n FROM hot WHERE id = 0")
            .fetch_one(&self.pool)
            .await?;
        assert_eq!(
            n as usize,
            executed,
            "{}: every execution counted once",
            pattern.name()
        );
        Ok(format!(
            "| {} | {tasks} | {executed} | {replayed} | {retries} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
            pattern.name(),
            all.len() as f64 / elapsed.as_secs_f64(),
            ms(pct(0.50)),
            ms(pct(0.99)),
            ms(in_statement) / all.len() as f64,
        ))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let tasks: usize = args.next().map_or(Ok(16), |a| a.parse())?;
    let per_task: usize = args.next().map_or(Ok(50), |a| a.parse())?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let options = PgConnectOptions::from_str(&url)?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    sqlx::raw_sql("DROP SCHEMA IF EXISTS idem_contention CASCADE; CREATE SCHEMA idem_contention")
        .execute(&admin)
        .await?;
    let pool = PgPoolOptions::new()
        .max_connections(tasks as u32 + 1)
        .min_connections(tasks as u32 + 1)
        .connect_with(options.options([("search_path", SCHEMA)]))
        .await?;
    let store = PostgresStore::builder(pool.clone())
        .schema(SCHEMA)
        .build()?;
    store.migrate().await?;
    sqlx::raw_sql(
        "CREATE TABLE hot (id bigint PRIMARY KEY, n bigint NOT NULL, version bigint NOT NULL); \
         CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let bench = Arc::new(Bench {
        pool: pool.clone(),
        store,
        versioned: Versioned::new(&Table::new("hot")?, "id", "version")?,
        guarded: Guarded::new(&Table::new("orders")?, "id", "status")?,
        lock: RowLock::new(&Table::new("hot")?, "id")?,
    });

    // Warm the connections (and their statement caches) first.
    for pattern in Pattern::ALL {
        bench.run(pattern, tasks, 5.min(per_task)).await?;
    }
    println!("{tasks} tasks on one hot row, {per_task} requests each (and 1 task, for reference)");
    println!();
    println!("| pattern | tasks | executed | replayed / refused | retries | requests/s | p50 | p99 | contended statement (mean) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for threads in [1, tasks] {
        for pattern in Pattern::ALL {
            println!("{}", bench.run(pattern, threads, per_task).await?);
        }
    }

    pool.close().await;
    sqlx::raw_sql("DROP SCHEMA idem_contention CASCADE")
        .execute(&admin)
        .await?;
    Ok(())
}
