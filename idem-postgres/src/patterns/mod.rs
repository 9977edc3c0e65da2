//! The other classic ways to make a database write safe to repeat or to
//! race: an **optimistic version check** ([`Versioned`]), a **guarded
//! state transition** ([`Guarded`]), and a **pessimistic row lock**
//! ([`RowLock`]), as small helpers on your own tables.
//!
//! Each helper names its table and columns once ([`Table`], column
//! names), validates and quotes them as identifiers, and builds its
//! statement from them: no SQL text of yours is pasted in, and values are
//! always bound parameters ([`Changes`]). Each runs on the connection you
//! pass (`&mut *tx` for a [`sqlx::Transaction`]), so it composes with
//! your other statements and with [`PostgresStore::claim_in`](crate::PostgresStore::claim_in).
//!
//! ```no_run
//! use idem_postgres::patterns::{Changes, Guarded, PatternError, Table, Transition, Versioned};
//!
//! # async fn demo(pool: &sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! let accounts = Versioned::new(&Table::new("accounts")?, "id", "version")?;
//! let (balance, version): (i64, i64) =
//!     sqlx::query_as("SELECT balance, version FROM accounts WHERE id = $1")
//!         .bind(7_i64)
//!         .fetch_one(pool)
//!         .await?;
//! let mut conn = pool.acquire().await?;
//! match accounts.update(&mut conn, 7_i64, version, Changes::new().set("balance", balance + 100)).await {
//!     Ok(new_version) => println!("saved as version {new_version}"),
//!     Err(PatternError::Conflict { current, .. }) => println!("changed meanwhile (now {current}): read again"),
//!     Err(e) => return Err(e.into()),
//! }
//!
//! let orders = Guarded::new(&Table::new("orders")?, "id", "status")?;
//! match orders.transition(&mut conn, 42_i64, "pending", "paid", Changes::new()).await? {
//!     Transition::Done => println!("paid"),
//!     Transition::Refused { current } if current == "paid" => println!("already paid"),
//!     Transition::Refused { current } => println!("cannot pay an order that is {current}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Which one
//!
//! All three guard **one row** against a lost update or a double
//! transition. The [idempotency record](crate::PostgresStore::claim_in)
//! guards **one request** (a key) and replays its result: use it when a
//! retry must get the first call's answer, or when the work inserts rows
//! (nothing exists yet to version or to lock). They combine: a claim in
//! the same transaction as a guarded transition gives both.
//!
//! | pattern | statement | when the row is contended | use it for |
//! |---|---|---|---|
//! | [idempotency record](crate::PostgresStore::claim_in) | `INSERT … ON CONFLICT DO NOTHING` on the key | duplicates wait for the first transaction, then replay its record | retried requests, queue redeliveries: one execution per key, the same answer to all |
//! | [`Versioned::update`] | `UPDATE … WHERE id = $1 AND version = $2` | the first commit wins; the others get [`PatternError::Conflict`] and re-read and retry | edits from a form or an API (read, think, write), rare conflicts, long think times: no lock is held between the read and the write |
//! | [`Guarded::transition`] | `UPDATE … SET status = 'paid' WHERE id = $1 AND status = 'pending'` | one wins; the others get [`Transition::Refused`] with the state they found | state machines (pay once, ship once, cancel once): a repeat is refused without a record, and told why |
//! | [`RowLock::lock`] | `SELECT … FOR UPDATE` | the others queue on the row lock ([`Wait::Indefinitely`]), give up after a bound ([`Wait::AtMost`]) or at once ([`Wait::NoWait`]) | read-modify-write that must not fail (a balance, a counter, a seat count) under steady contention |
//! | [`RowLock::try_lock`] | `SELECT … FOR UPDATE SKIP LOCKED` | the others pass the row by (no error, no wait) | work queues: each worker takes a row no one holds |
//!
//! # What each costs under contention
//!
//! Measured by `cargo run --release -p idem-postgres --example contention`
//! (`examples/contention.rs`) on the 2-core test machine, PostgreSQL 15
//! on the same machine (durable commits: `synchronous_commit = on`), other
//! builds running beside it: 16 tasks (16 connections, a 2-thread tokio
//! runtime) on **one hot row**, 50 requests each, one transaction per
//! attempt. *Duplicates*: 50 rounds in which all 16 tasks send the same
//! request at once (one executes, 15 get the record or a refusal).
//! *Increments*: each task adds 1 to the row 50 times, retrying (a new
//! transaction, after a `yield_now`) until its increment commits. The
//! row's counter is checked after each: no execution lost or doubled.
//! One run of three; the others in the text below.
//!
//! | pattern, 16 tasks on one row | executed | replayed / refused | retries | requests/s | p50 | p99 | contended statement (mean) |
//! |---|---|---|---|---|---|---|---|
//! | idempotency record (`claim_in`), duplicates | 50 | 750 | 0 | 6,755 | 1.83 ms | 3.24 ms | 1.26 ms |
//! | guarded transition, duplicates | 50 | 750 | 0 | 4,552 | 2.05 ms | 3.90 ms | 1.61 ms |
//! | optimistic version, increments | 800 | 0 | 4,613 | 525 | 15.31 ms | 154.48 ms | 25.47 ms |
//! | `FOR UPDATE` (waits), increments | 800 | 0 | 0 | 1,980 | 4.52 ms | 38.33 ms | 6.90 ms |
//! | `FOR UPDATE NOWAIT`, increments | 800 | 0 | 10,720 | 994 | 10.18 ms | 75.61 ms | 3.27 ms |
//! | `FOR UPDATE`, lock timeout 10 ms, increments | 800 | 0 | 0 | 1,661 | 5.61 ms | 40.65 ms | 8.22 ms |
//! | `FOR UPDATE SKIP LOCKED`, increments | 800 | 0 | 5,159 | 1,229 | 7.96 ms | 56.28 ms | 3.27 ms |
//!
//! What it says (ranges over the three runs):
//!
//! * **Duplicates are cheap** whichever guard answers them: 4,400–6,800
//!   requests/s, p99 under 8 ms. The 15 losers wait for the winner's
//!   commit and answer from it; nothing is retried.
//! * **For increments, the row lock that waits is the fastest**: 1,750–2,060
//!   increments/s, none retried, p99 35–38 ms. The lock is handed from
//!   one transaction to the next; the cost is the queue (16 deep here).
//! * **The optimistic check collapses under contention**: 525–760
//!   increments/s, 3,400–4,600 retries for 800 increments, p99 133–154
//!   ms: every loser re-reads and tries again, and most tries lose again.
//!   Alone (1 task) it is as fast as the others (1,180–1,680/s); it is for
//!   rows that are rarely written at once.
//! * **`NOWAIT` and `SKIP LOCKED` on one row are a spin**: 950–1,380
//!   increments/s, 5,000–10,700 failed attempts, each a transaction. They
//!   are for *answering* "busy" (HTTP 409, try another seat) or for
//!   queues of many rows, not for waiting one's turn.
//! * **A 10 ms lock timeout did not fire while commits were fast**
//!   (1,450–1,660/s): each wait is for one holder's short transaction, not
//!   for the whole queue. It bounds the damage of a holder that stalls.
//!   But a timeout shorter than a commit fires on healthy traffic: in a
//!   later run where another session's builds made each commit's
//!   `fdatasync` take ~3 ms instead of ~0.25, it fired 333 times. (With
//!   2 ms and fast commits: 23 timeouts in 800 increments.) Set it well
//!   above the slowest commit you expect.
//! * With 1 task, every pattern is 0.4–1 ms per request (600–2,150/s);
//!   the idempotency record is the slowest (its claim and completion are
//!   two more statements), and its price buys the replayed result.
//!
//! Absolute rates move with the machine (a later run on a busier disk was
//! 2–5x slower, in the same order): `BENCHMARKS.md`, "PostgreSQL (issue
//! 10)", has the runs, and the transactional mode against hand-written
//! dedup tables.
//!
//! "Contended statement" is the mean time of the statement that meets the
//! contention (the claim, the guarded update, the lock), waits and the
//! client's scheduling (16 tasks on 2 threads) included.
//!
//! # Errors
//!
//! [`PatternError`]: the pattern's own refusals ([`Conflict`](PatternError::Conflict),
//! [`NotFound`](PatternError::NotFound), [`Locked`](PatternError::Locked)),
//! and the database's errors ([`Database`](PatternError::Database)). As
//! after any failed statement, PostgreSQL has then **aborted the
//! transaction** (`Locked` included): roll it back. A refusal that is not
//! an error ([`Transition::Refused`], [`RowLock::try_lock`]'s `None`)
//! leaves the transaction usable.
//!
//! # Cancel safety
//!
//! Dropping a future of these helpers after its statement was sent leaves
//! the statement done or not: in a transaction, roll it back (dropping a
//! [`sqlx::Transaction`] does); outside one, the write may have
//! committed.

use std::fmt;

use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, Encode, Postgres, Type};

use crate::names::{identifier, InvalidName};

mod lock;
mod optimistic;
mod transition;

pub use lock::{RowLock, Wait};
pub use optimistic::Versioned;
pub use transition::{Guarded, Transition};

/// A table of yours, quoted (and qualified by its schema, if given) as it
/// appears in the helpers' SQL.
///
/// The name is taken as written: capitals, spaces and quotes are part of
/// it (`Table::new("Orders")` is `"Orders"`, not `orders`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    quoted: String,
}

impl Table {
    /// The table `name`, in the first schema of the connection's
    /// `search_path`.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] for the empty name, a NUL, or a name longer than
    /// 63 bytes (PostgreSQL would truncate it).
    pub fn new(name: &str) -> Result<Self, InvalidName> {
        Ok(Self {
            quoted: identifier(name)?,
        })
    }

    /// The table `name` in schema `schema`.
    ///
    /// # Errors
    ///
    /// [`InvalidName`], as for [`new`](Self::new), for either name.
    pub fn in_schema(schema: &str, name: &str) -> Result<Self, InvalidName> {
        Ok(Self {
            quoted: format!("{}.{}", identifier(schema)?, identifier(name)?),
        })
    }

    /// The table as the helpers' SQL names it (`"orders"`, `"app"."orders"`).
    pub fn quoted(&self) -> &str {
        &self.quoted
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted)
    }
}

/// Columns to set with a helper's `UPDATE`, and their values, bound as
/// parameters: `Changes::new().set("balance", 250_i64).set("note", "refund")`.
///
/// Any value sqlx encodes for PostgreSQL will do. A column name that
/// cannot be used, or a value that fails to encode, is reported by the
/// helper that receives the changes ([`PatternError::InvalidName`],
/// [`PatternError::Encode`]), before anything is sent.
#[derive(Default)]
#[must_use]
pub struct Changes {
    /// `"column" = $n`, in the order of the values.
    columns: Vec<String>,
    values: PgArguments,
    error: Option<PatternError>,
}

impl fmt::Debug for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Changes")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl Changes {
    /// No changes (a helper then writes only its own column).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `column` to `value`.
    pub fn set<T>(mut self, column: &str, value: T) -> Self
    where
        T: for<'t> Encode<'t, Postgres> + Type<Postgres>,
    {
        if self.error.is_some() {
            return self;
        }
        match identifier(column) {
            Ok(quoted) => match self.values.add(value) {
                Ok(()) => self.columns.push(quoted),
                Err(e) => self.error = Some(PatternError::Encode(e)),
            },
            Err(e) => self.error = Some(PatternError::InvalidName(e)),
        }
        self
    }

    /// Whether no column is set.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The `SET` list (`"a" = $1, "b" = $2`) and the values, or the first
    /// error met while setting.
    fn into_parts(self) -> Result<(Vec<String>, PgArguments), PatternError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let set = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", i + 1))
            .collect();
        Ok((set, self.values))
    }
}

/// Why a helper of [`patterns`](self) did not do its write.
#[derive(Debug)]
#[non_exhaustive]
pub enum PatternError {
    /// [`Versioned::update`]: the row's version is no longer the one read
    /// (another transaction committed a change first). Read the row again
    /// and redo the change, or report the conflict (HTTP 409).
    Conflict {
        /// The version the update expected.
        expected: i64,
        /// The version the row has (read just after the update found none
        /// to change).
        current: i64,
    },
    /// No row has this id.
    NotFound,
    /// [`RowLock::lock`] with [`Wait::NoWait`] or [`Wait::AtMost`] (or
    /// [`Wait::Indefinitely`] on a connection whose own `lock_timeout`
    /// passed): another transaction holds the row. PostgreSQL has
    /// **aborted the transaction** (SQLSTATE 55P03): roll it back, then
    /// retry or answer "busy".
    Locked,
    /// The helper's connection is not in a transaction begun with sqlx:
    /// a row lock would end with its statement. Nothing was sent.
    NotInTransaction,
    /// A table or column name that cannot be used.
    InvalidName(InvalidName),
    /// A value of [`Changes`] that sqlx could not encode.
    Encode(BoxDynError),
    /// The database's error (the transaction is aborted then).
    Database(sqlx::Error),
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conflict { expected, current } => write!(
                f,
                "the row changed meanwhile: version {current}, not {expected}"
            ),
            Self::NotFound => f.write_str("no row has this id"),
            Self::Locked => f.write_str("the row is locked by another transaction"),
            Self::NotInTransaction => f.write_str(
                "a row lock needs a transaction begun with sqlx (pass `&mut *tx`): outside one, it would end with its statement",
            ),
            Self::InvalidName(e) => e.fmt(f),
            Self::Encode(e) => write!(f, "a value could not be encoded: {e}"),
            Self::Database(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PatternError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidName(e) => Some(e),
            Self::Encode(e) => Some(&**e),
            Self::Database(e) => Some(e),
            _ => None,
        }
    }
}

impl From<InvalidName> for PatternError {
    fn from(e: InvalidName) -> Self {
        Self::InvalidName(e)
    }
}

impl From<sqlx::Error> for PatternError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

/// Adds `value` to `args`, as a [`PatternError::Encode`] if it fails.
fn bind<T>(args: &mut PgArguments, value: T) -> Result<(), PatternError>
where
    T: for<'t> Encode<'t, Postgres> + Type<Postgres>,
{
    args.add(value).map_err(PatternError::Encode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_quoted_and_qualified() {
        assert_eq!(Table::new("orders").unwrap().quoted(), r#""orders""#);
        assert_eq!(
            Table::in_schema("App", r#"my "orders""#)
                .unwrap()
                .to_string(),
            r#""App"."my ""orders""""#
        );
        assert!(Table::new("").is_err());
        assert!(Table::in_schema("a\0", "t").is_err());
        assert!(Table::new(&"t".repeat(64)).is_err());
    }

    #[test]
    fn changes_are_numbered_parameters_of_quoted_columns() {
        let (set, args) = Changes::new()
            .set("balance", 5_i64)
            .set(r#"no"te"#, "x")
            .into_parts()
            .unwrap();
        assert_eq!(set, [r#""balance" = $1"#, r#""no""te" = $2"#]);
        assert_eq!(args.len(), 2);
    }

    #[test]
    fn the_first_bad_column_is_reported() {
        let changes = Changes::new().set("", 1_i64).set("ok", 2_i64);
        assert!(matches!(
            changes.into_parts(),
            Err(PatternError::InvalidName(_))
        ));
    }
}
