//! The machine's PostgreSQL for the tests: each test works in a schema of
//! its own, created here and dropped when the [`Db`] drops (a failing test
//! included). `DATABASE_URL` names the database; without it,
//! `postgres://postgres@127.0.0.1:5432/test`. An unreachable database
//! fails the test with how to provide one: these tests never skip.

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a part")]

use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use idem_postgres::{Builder, PostgresStore};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Schemas of test runs that died before dropping theirs are dropped
/// after this long.
const STALE: Duration = Duration::from_secs(3600);

pub fn url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A schema of one test's, on the test database.
#[derive(Debug)]
pub struct Db {
    pub schema: String,
    pub pool: PgPool,
}

impl Db {
    /// A new schema for `test`, and a pool of up to `connections`
    /// connections whose `search_path` is that schema.
    pub async fn new(test: &str, connections: u32) -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let schema = format!("idemtest_{secs}_{test}_{:08x}", rand_u32());
        let mut admin = admin().await;
        drop_stale_schemas(&mut admin, secs).await;
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {}", quote(&schema))))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating schema {schema}: {e}"));
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(
                options()
                    .options([("search_path", schema.as_str())])
                    .application_name(&schema),
            )
            .await
            .unwrap_or_else(|e| unreachable_db(&e));
        Self { schema, pool }
    }

    /// A store builder on this schema.
    pub fn builder(&self) -> Builder {
        PostgresStore::builder(self.pool.clone()).schema(&self.schema)
    }

    /// A migrated store on this schema.
    pub async fn store(&self) -> PostgresStore {
        let store = self.builder().build().unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// A connection of its own (not from the pool), with the same
    /// `search_path`.
    pub async fn connection(&self) -> PgConnection {
        PgConnection::connect_with(
            &options()
                .options([("search_path", self.schema.as_str())])
                .application_name(&self.schema),
        )
        .await
        .unwrap_or_else(|e| unreachable_db(&e))
    }

    /// Waits until `n` of this test's backends wait on a lock (as
    /// PostgreSQL reports them), for up to 30 s.
    pub async fn until_waiting_on_locks(&self, n: i64) {
        let start = Instant::now();
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
            )
            .bind(&self.schema)
            .fetch_one(&self.pool)
            .await
            .unwrap();
            if waiting >= n {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{waiting} backends wait on a lock after 30 s, expected {n}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Drop cannot await: a thread with a runtime of its own does it.
        let schema = self.schema.clone();
        let done = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut admin = admin().await;
                    // The test's connections may hold locks (a test that
                    // failed mid-transaction): end them first.
                    sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    )
                    .bind(&schema)
                    .execute(&mut admin)
                    .await
                    .unwrap();
                    drop_schema(&mut admin, &schema).await;
                });
        })
        .join();
        if done.is_err() && !std::thread::panicking() {
            panic!("dropping schema {} failed", self.schema);
        }
    }
}

fn options() -> PgConnectOptions {
    let url = url();
    PgConnectOptions::from_str(&url)
        .unwrap_or_else(|e| panic!("DATABASE_URL={url:?} is not a PostgreSQL URL: {e}"))
}

async fn admin() -> PgConnection {
    PgConnection::connect_with(&options().application_name("idemtest_admin"))
        .await
        .unwrap_or_else(|e| unreachable_db(&e))
}

fn unreachable_db(e: &sqlx::Error) -> ! {
    panic!(
        "cannot reach PostgreSQL at {}: {e}\n\
         The idem-postgres tests need a PostgreSQL server (10 or later) whose user may create schemas: \
         run one on 127.0.0.1:5432 with trust authentication, a user `postgres` and a database `test` \
         (`createdb test`), or point DATABASE_URL at one, e.g. \
         DATABASE_URL=postgres://user:password@host:5432/dbname cargo test -p idem-postgres",
        url()
    )
}

async fn drop_schema(admin: &mut PgConnection, schema: &str) {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        quote(schema)
    )))
    .execute(admin)
    .await
    .unwrap_or_else(|e| panic!("dropping schema {schema}: {e}"));
}

/// Drops the schemas of test runs that were killed before they could.
async fn drop_stale_schemas(admin: &mut PgConnection, now: u64) {
    let schemas: Vec<String> = sqlx::query_scalar(
        r"SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'idemtest\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap();
    for s in schemas {
        let born = s.split('_').nth(1).and_then(|t| t.parse::<u64>().ok());
        if born.is_some_and(|b| b + STALE.as_secs() < now) {
            drop_schema(admin, &s).await;
        }
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    u32::from_le_bytes(b)
}

/// A namespace unique to a run.
pub fn namespace(test: &str) -> String {
    format!("{test}-{:08x}", rand_u32())
}
