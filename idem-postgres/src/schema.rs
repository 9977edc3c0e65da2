//! The schema, as numbered migrations, and [`PostgresStore::migrate`].

use sqlx::AssertSqlSafe;

use crate::names::Names;
use crate::store::{unavailable, PostgresStore};
use idem::store::StoreError;

/// One step of the schema. Each is written to be safe to run again (`IF
/// NOT EXISTS`), so that a database set up from [`PostgresStore::schema_sql`]
/// by another tool can still be migrated.
struct Migration {
    version: i32,
    description: &'static str,
    /// The SQL, with `{table}`, `{fence}` and `{expiry_index}` for the
    /// configured names.
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "records table, fence sequence, expiry index",
    sql: "\
CREATE SEQUENCE IF NOT EXISTS {fence} AS bigint;
CREATE TABLE IF NOT EXISTS {table} (
    namespace   text        NOT NULL,
    key         text        NOT NULL,
    state       text        NOT NULL CHECK (state IN ('leased', 'completed')),
    fingerprint bigint      NOT NULL DEFAULT 0,
    fence       bigint      NOT NULL,
    owner       uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    payload     bytea,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX IF NOT EXISTS {expiry_index} ON {table} (expires_at);
",
}];

/// The key of the advisory lock [`PostgresStore::migrate`] holds: one for
/// every idem-postgres store of a database ("idem-pg!" in ASCII).
const MIGRATE_LOCK: i64 = 0x6964_656d_2d70_6721;

fn render(m: &Migration, n: &Names) -> String {
    m.sql
        .replace("{table}", &n.table)
        .replace("{fence}", &n.fence)
        .replace("{expiry_index}", &n.expiry_index)
}

impl PostgresStore {
    /// The SQL that creates this store's table, sequence and index, with
    /// its configured names: for migration tools of your own (sqlx's
    /// `migrate!`, refinery, …), instead of [`migrate`](Self::migrate).
    ///
    /// For the default names, it is the SQL in the [crate
    /// docs](crate#the-schema).
    pub fn schema_sql(&self) -> String {
        MIGRATIONS.iter().map(|m| render(m, &self.names)).collect()
    }

    /// Creates or upgrades this store's table, sequence and index.
    ///
    /// Idempotent, and safe when several processes run it at once: it
    /// takes a transaction-scoped advisory lock, applies the migrations
    /// not yet recorded in `<table>_migrations` (created too), records
    /// them and commits, all in one transaction. The schema named by
    /// [`Builder::schema`](crate::Builder::schema) must exist.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] with the database's error (a missing
    /// schema, a missing privilege, a lost connection); nothing is applied
    /// then. [`StoreError::Corrupt`] if the database records a migration
    /// this version does not know (a newer idem-postgres migrated it).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future rolls the transaction back (when the connection
    /// is next used, or closed): all of it or none of it is applied.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let n = &self.names;
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, description text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now())",
            n.migrations
        );
        sqlx::raw_sql(AssertSqlSafe(create))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let applied: Vec<i32> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT version FROM {} ORDER BY version",
            n.migrations
        )))
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        if let Some(v) = applied
            .iter()
            .find(|v| !MIGRATIONS.iter().any(|m| m.version == **v))
        {
            return Err(StoreError::Corrupt {
                key: n.table.clone(),
                reason: format!(
                    "the database records migration {v}, which this version of idem-postgres does not know \
                     (a newer version migrated it)"
                ),
            });
        }
        for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            sqlx::raw_sql(AssertSqlSafe(render(m, n)))
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {} (version, description) VALUES ($1, $2)",
                n.migrations
            )))
            .bind(m.version)
            .bind(m.description)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }
}

/// The schema of the default store (table `idem_records`), as the crate
/// docs show it; a test checks they agree.
#[cfg(test)]
pub(crate) fn default_schema_sql() -> String {
    let n = Names::new(None, crate::store::DEFAULT_TABLE).unwrap();
    MIGRATIONS.iter().map(|m| render(m, &n)).collect()
}
