//! The pessimistic row lock: `SELECT … FOR UPDATE`, waiting, bounded,
//! `NOWAIT` or `SKIP LOCKED`.

use std::time::Duration;

use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::{AssertSqlSafe, Connection, Encode, Postgres, Type};

use super::{bind, PatternError, Table};
use crate::names::{identifier, InvalidName};
use crate::store::{is_lock_timeout, lock_timeout_setting};

/// How [`RowLock::lock`] waits for a row another transaction holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Until that transaction ends (or the connection's own
    /// `lock_timeout`, if it has one, passes).
    Indefinitely,
    /// At most this long, then [`PatternError::Locked`]: `lock_timeout`
    /// for this statement only (whole milliseconds, rounded up; zero is
    /// [`NoWait`](Self::NoWait)). The transaction's own setting is
    /// restored after it.
    AtMost(Duration),
    /// Not at all: `FOR UPDATE NOWAIT`, [`PatternError::Locked`] at once.
    NoWait,
}

/// Locks rows of a table with `SELECT … FOR UPDATE`, in your transaction,
/// until it ends: the transactions that lock the same row after you wait
/// (or give up, or pass it by), so a read-modify-write under the lock
/// never loses an update and never has to be retried.
///
/// ```no_run
/// use std::time::Duration;
/// use sqlx::Row;
/// use idem_postgres::patterns::{PatternError, RowLock, Table, Wait};
///
/// # async fn book_seat(pool: &sqlx::PgPool, flight: i64) -> Result<bool, Box<dyn std::error::Error>> {
/// let flights = RowLock::new(&Table::new("flights")?, "id")?;
/// let mut tx = pool.begin().await?;
/// let row = match flights.lock(&mut tx, flight, Wait::AtMost(Duration::from_millis(200))).await {
///     Ok(row) => row,
///     Err(PatternError::Locked) => return Ok(false), // busy: the transaction is aborted, dropping it rolls back
///     Err(e) => return Err(e.into()),
/// };
/// let free: i32 = row.try_get("free_seats")?;
/// if free == 0 {
///     return Ok(false);
/// }
/// sqlx::query("UPDATE flights SET free_seats = free_seats - 1 WHERE id = $1")
///     .bind(flight)
///     .execute(&mut *tx)
///     .await?;
/// tx.commit().await?; // the lock ends here
/// Ok(true)
/// # }
/// ```
///
/// The lock is `FOR UPDATE`, the strongest row lock: it also blocks
/// `UPDATE`s and `DELETE`s of the row by others, and their `FOR SHARE`
/// and `FOR KEY SHARE` (foreign key checks: an `INSERT` of a row that
/// refers to a locked one waits too). Hold it for as short as you can:
/// under contention, every holder's whole transaction is the others'
/// wait (see [the measurements](super#what-each-costs-under-contention)).
#[derive(Debug, Clone)]
pub struct RowLock {
    table: Table,
    id: String,
}

impl RowLock {
    /// The rows of `table`, found by column `id`.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] for a column name PostgreSQL would not keep as
    /// written (empty, a NUL, over 63 bytes).
    pub fn new(table: &Table, id: &str) -> Result<Self, InvalidName> {
        Ok(Self {
            table: table.clone(),
            id: identifier(id)?,
        })
    }

    /// Locks the row `id` until the transaction on `conn` ends, and
    /// returns it (all its columns, `SELECT *`, to read by name).
    ///
    /// `SELECT * FROM table WHERE id = $1 FOR UPDATE`, with `NOWAIT` for
    /// [`Wait::NoWait`]; for [`Wait::AtMost`], the same statement sets
    /// `lock_timeout` before it locks and restores it after, and the row
    /// has two more columns, `idem_locked` and `idem_lock_timeout`.
    ///
    /// # Errors
    ///
    /// [`PatternError::Locked`] when another transaction holds the row
    /// beyond the wait allowed (the transaction is aborted: roll it back);
    /// [`PatternError::NotFound`]; [`PatternError::NotInTransaction`] when
    /// `conn` is not in a transaction begun with sqlx (a lock would end
    /// with its statement; nothing is sent); [`PatternError::Database`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the row locked (by your transaction,
    /// until it ends); with [`Wait::AtMost`], possibly with the transaction's
    /// `lock_timeout` changed. Roll the transaction back.
    pub async fn lock<I>(
        &self,
        conn: &mut PgConnection,
        id: I,
        wait: Wait,
    ) -> Result<PgRow, PatternError>
    where
        I: for<'t> Encode<'t, Postgres> + Type<Postgres>,
    {
        if !conn.is_in_transaction() {
            return Err(PatternError::NotInTransaction);
        }
        let Self { table, id: id_col } = self;
        let mut args = PgArguments::default();
        bind(&mut args, id)?;
        let sql = match wait {
            Wait::Indefinitely => {
                format!("SELECT * FROM {table} WHERE {id_col} = $1 FOR UPDATE")
            }
            Wait::NoWait => format!("SELECT * FROM {table} WHERE {id_col} = $1 FOR UPDATE NOWAIT"),
            Wait::AtMost(d) if d.is_zero() => {
                format!("SELECT * FROM {table} WHERE {id_col} = $1 FOR UPDATE NOWAIT")
            }
            Wait::AtMost(d) => {
                bind(&mut args, lock_timeout_setting(d))?;
                // `cfg` is read first (the lateral subquery depends on
                // it): the setting is changed before the lock is asked
                // for, and restored in the outer select list, once the
                // subquery has its row, or none. The LEFT JOIN gives a row
                // either way, so the setting is always restored.
                format!(
                    "WITH cfg AS (SELECT current_setting('lock_timeout') AS prev, \
                                         set_config('lock_timeout', $2, true) AS now) \
                     SELECT l.*, set_config('lock_timeout', cfg.prev, true) AS idem_lock_timeout \
                     FROM cfg LEFT JOIN LATERAL (\
                       SELECT t.*, true AS idem_locked FROM {table} AS t \
                       WHERE t.{id_col} = $1 AND cfg.now IS NOT NULL FOR UPDATE OF t) AS l ON true"
                )
            }
        };
        let row = match sqlx::query_with(AssertSqlSafe(sql), args)
            .fetch_optional(&mut *conn)
            .await
        {
            Ok(row) => row,
            Err(e) if is_lock_timeout(&e) => return Err(PatternError::Locked),
            Err(e) => return Err(e.into()),
        };
        let Some(row) = row else {
            return Err(PatternError::NotFound);
        };
        if let Wait::AtMost(d) = wait {
            if !d.is_zero() {
                let locked: Option<bool> = sqlx::Row::try_get(&row, "idem_locked")?;
                if locked.is_none() {
                    return Err(PatternError::NotFound);
                }
            }
        }
        Ok(row)
    }

    /// Locks the row `id` if no other transaction holds it, and returns
    /// it; `None` if one does (`FOR UPDATE SKIP LOCKED`: no wait, no
    /// error, and the transaction stays usable).
    ///
    /// Built for work queues, where a worker that finds a row taken moves
    /// on to another (`… WHERE state = 'pending' LIMIT 1 FOR UPDATE SKIP
    /// LOCKED`, as [the reaper](crate::PostgresStore::reap_expired) does
    /// with expired records); on one row, it is a `NOWAIT` that leaves the
    /// transaction alive. A second statement, run only when the row is
    /// skipped, tells a held row from a missing one.
    ///
    /// # Errors
    ///
    /// [`PatternError::NotFound`]; [`PatternError::NotInTransaction`] (see
    /// [`lock`](Self::lock)); [`PatternError::Database`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the row locked by your transaction,
    /// until it ends.
    pub async fn try_lock<I>(
        &self,
        conn: &mut PgConnection,
        id: I,
    ) -> Result<Option<PgRow>, PatternError>
    where
        I: for<'t> Encode<'t, Postgres> + Type<Postgres> + Clone,
    {
        if !conn.is_in_transaction() {
            return Err(PatternError::NotInTransaction);
        }
        let Self { table, id: id_col } = self;
        let mut args = PgArguments::default();
        bind(&mut args, id.clone())?;
        let row = sqlx::query_with(
            AssertSqlSafe(format!(
                "SELECT * FROM {table} WHERE {id_col} = $1 FOR UPDATE SKIP LOCKED"
            )),
            args,
        )
        .fetch_optional(&mut *conn)
        .await?;
        if row.is_some() {
            return Ok(row);
        }
        let mut args = PgArguments::default();
        bind(&mut args, id)?;
        let exists: bool = sqlx::query_scalar_with(
            AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT FROM {table} WHERE {id_col} = $1)"
            )),
            args,
        )
        .fetch_one(&mut *conn)
        .await?;
        if exists {
            Ok(None)
        } else {
            Err(PatternError::NotFound)
        }
    }
}
