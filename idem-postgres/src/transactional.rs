//! The transactional mode: the claim, the caller's writes and the
//! completion in one transaction of the caller's.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use idem::store::{Owner, Record, StoreError, StoreKey};
use idem::Fingerprint;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::sql::Statements;
use crate::store::{
    fence_column, fence_of, fingerprint_column, is_lock_timeout, micros, unavailable, Entry,
    PostgresStore, MAX_ROUNDS,
};

/// What a [`PostgresStore::claim_in`] found.
#[derive(Debug)]
#[must_use]
pub enum TxClaim {
    /// The key is the transaction's: do the work with the same connection,
    /// then [`Claim::complete`] and commit. Rolling back (or a crash, or a
    /// dropped connection) undoes the claim with the work.
    Claimed(Claim),
    /// A committed transaction completed the key: replay its record.
    Completed(Record),
    /// The key was claimed with another fingerprint.
    Mismatch,
    /// Another transaction holds the key and did not end within the
    /// store's [lock timeout](crate::Builder::lock_timeout)
    /// (`retry_after` is `None`: PostgreSQL has **aborted the
    /// transaction**, as after any failed statement), or a
    /// [non-transactional lease](idem::store::Store::claim) runs it
    /// (`retry_after` is the time left on that lease). Roll back, and
    /// retry later, or answer "in progress" (HTTP 409).
    InProgress {
        /// The time left on the lease that holds the key, when it is a
        /// lease.
        retry_after: Option<Duration>,
    },
}

/// A key claimed in a transaction, from [`TxClaim::Claimed`]: complete it
/// in the same transaction, before the commit.
///
/// Committing without [`complete`](Self::complete) still records the key as
/// done (the work committed with the claim), with an empty result: replays
/// get an empty payload.
#[must_use = "complete the claim in its transaction before committing"]
pub struct Claim {
    namespace: String,
    key: String,
    fence: u64,
    owner: Owner,
    sql: Arc<Statements>,
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim")
            .field("namespace", &self.namespace)
            .field("key", &self.key)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl Claim {
    /// The fencing token of the claim: greater than that of every claim of
    /// the key committed before. Write it beside your rows to order them.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// Records `payload` as the key's result, replayed to later claims
    /// once the transaction commits, and kept for the store's
    /// [retention](crate::Builder::retain) from the claim (the same
    /// transaction: the record's end is written with the claim, so that
    /// this update touches no indexed column and stays cheap).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] with the database's error; the
    /// transaction is then aborted, so roll it back.
    /// [`StoreError::Fenced`] if the claim's row is gone (deleted by the
    /// transaction itself).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the update done or not; the
    /// transaction decides: roll it back.
    pub async fn complete(self, conn: &mut PgConnection, payload: &[u8]) -> Result<(), StoreError> {
        let done = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.tx_complete)))
            .bind(&self.namespace)
            .bind(&self.key)
            .bind(fence_column(self.fence))
            .bind(self.owner.to_hex())
            .bind(payload)
            .execute(conn)
            .await
            .map_err(unavailable)?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Fenced)
        }
    }
}

impl PostgresStore {
    /// Claims `key` in the transaction open on `conn`: pass `&mut *tx` for
    /// a [`sqlx::Transaction`].
    ///
    /// The claim is a row of the records table written by the transaction:
    /// nobody else sees it before the commit, and it commits or rolls
    /// back with the work. A concurrent claim of the key (in another
    /// transaction, or by the [`Store`](idem::store::Store) methods) waits
    /// on the table's primary key until this transaction ends, then
    /// replays the record if it committed, or claims the key if it rolled
    /// back. The wait is bounded by the store's
    /// [lock timeout](crate::Builder::lock_timeout).
    ///
    /// `fingerprint` is what the call asks for; `None` matches anything.
    ///
    /// ```no_run
    /// use idem::store::StoreKey;
    /// use idem_postgres::{PostgresStore, TxClaim};
    ///
    /// # async fn pay(store: &PostgresStore, order: &str, cents: i64) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    /// let mut tx = store.pool().begin().await?;
    /// let key = StoreKey { namespace: "payments", key: order };
    /// match store.claim_in(&mut tx, key, Some(idem::Fingerprint::of(&cents))).await? {
    ///     TxClaim::Claimed(claim) => {
    ///         sqlx::query("INSERT INTO payments (order_id, cents) VALUES ($1, $2)")
    ///             .bind(order)
    ///             .bind(cents)
    ///             .execute(&mut *tx)
    ///             .await?;
    ///         let receipt = format!("paid {cents}").into_bytes();
    ///         claim.complete(&mut tx, &receipt).await?;
    ///         tx.commit().await?;
    ///         Ok(receipt)
    ///     }
    ///     TxClaim::Completed(record) => Ok(record.payload), // a retry: nothing ran
    ///     TxClaim::Mismatch => Err("this order id was used for another amount".into()),
    ///     TxClaim::InProgress { .. } => Err("in progress: retry later".into()),
    /// }
    /// # }
    /// ```
    ///
    /// The connection's transaction must be `READ COMMITTED` (PostgreSQL's
    /// default): a claim reads what committed while it waited. Under
    /// `REPEATABLE READ` or `SERIALIZABLE`, a claim that waited on another
    /// transaction fails with a serialization error instead (SQLSTATE
    /// 40001, in [`StoreError::Unavailable`]): retry the transaction.
    ///
    /// Claiming a key the same transaction has claimed finds its own
    /// claim as [`TxClaim::Completed`] (with the payload written so far).
    /// Do not claim, through the pool ([`Store::claim`](idem::store::Store::claim)),
    /// a key your own open transaction holds: the claim waits on your
    /// transaction, which waits on it, until the lock timeout.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] with the database's error (the
    /// transaction is aborted then: roll it back), or when `conn` is not in
    /// a transaction begun with sqlx (`pool.begin()`, `conn.begin()`; a
    /// `BEGIN` sent as a query is not seen as one): a claim there would
    /// commit before the work, so nothing is written.
    /// [`StoreError::Corrupt`] for a row this version cannot read.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave a claim written in the transaction;
    /// roll the transaction back (dropping a [`sqlx::Transaction`] does).
    pub async fn claim_in(
        &self,
        conn: &mut PgConnection,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
    ) -> Result<TxClaim, StoreError> {
        if !conn.is_in_transaction() {
            return Err(StoreError::Unavailable(
                "claim_in needs a transaction begun with sqlx (pass `&mut *tx` of a `pool.begin()` or \
                 `conn.begin()`): outside one, the claim would commit on its own, before the work; \
                 nothing was written"
                    .into(),
            ));
        }
        let fp = fingerprint_column(fingerprint);
        let owner = Owner::random();
        let hex = owner.to_hex();
        let retain = micros(self.retain);
        let claimed = |fence: i64| -> Result<TxClaim, StoreError> {
            Ok(TxClaim::Claimed(Claim {
                namespace: key.namespace.to_owned(),
                key: key.key.to_owned(),
                fence: fence_of(fence).ok_or_else(|| StoreError::Corrupt {
                    key: key.to_string(),
                    reason: format!(
                        "the sequence gave the fencing token {fence}, not a positive one"
                    ),
                })?,
                owner,
                sql: Arc::clone(&self.sql),
            }))
        };
        let in_progress = Ok(TxClaim::InProgress { retry_after: None });
        for _ in 0..MAX_ROUNDS {
            // A new row, unless the key has one: then, after waiting for
            // the transaction that wrote it, if it has not ended, nothing.
            let row = match sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.tx_insert)))
                .bind(key.namespace)
                .bind(key.key)
                .bind(fp)
                .bind(&hex)
                .bind(retain)
                .bind(&*self.lock_timeout)
                .fetch_one(&mut *conn)
                .await
            {
                Ok(row) => row,
                Err(e) if is_lock_timeout(&e) => return in_progress,
                Err(e) => return Err(self.error(e)),
            };
            let fence: Option<i64> = row.try_get("fence").map_err(unavailable)?;
            let prev: String = row.try_get("prev").map_err(unavailable)?;
            if let Some(fence) = fence {
                return claimed(fence);
            }
            // The key's row, as committed now.
            let row = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.read)))
                .bind(key.namespace)
                .bind(key.key)
                .bind(&hex)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| self.error(e))?;
            let Some(row) = row else {
                continue; // reaped meanwhile: insert again
            };
            let entry = Entry::parse(&row, key)?;
            if entry.is_live() {
                return Ok(if !entry.matches(fp) {
                    TxClaim::Mismatch
                } else if entry.is_completed() {
                    TxClaim::Completed(entry.into_record())
                } else {
                    TxClaim::InProgress {
                        retry_after: Some(entry.left()),
                    }
                });
            }
            // Expired: take it over, unless someone else did first.
            let row = match sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.tx_take_over)))
                .bind(key.namespace)
                .bind(key.key)
                .bind(fp)
                .bind(&hex)
                .bind(retain)
                .bind(&*self.lock_timeout)
                .bind(&prev)
                .fetch_one(&mut *conn)
                .await
            {
                Ok(row) => row,
                Err(e) if is_lock_timeout(&e) => return in_progress,
                Err(e) => return Err(self.error(e)),
            };
            if let Some(fence) = row
                .try_get::<Option<i64>, _>("fence")
                .map_err(unavailable)?
            {
                return claimed(fence);
            }
        }
        Err(StoreError::Unavailable(
            format!("the key {key} changed hands {MAX_ROUNDS} times during one claim").into(),
        ))
    }
}
