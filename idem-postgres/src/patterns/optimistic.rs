//! The optimistic version check: `UPDATE … WHERE id = $1 AND version = $2`.

use sqlx::postgres::{PgArguments, PgConnection};
use sqlx::{AssertSqlSafe, Encode, Postgres, Type};

use super::{bind, Changes, PatternError, Table};
use crate::names::{identifier, InvalidName};

/// A table whose rows carry a version number, bumped by every change: a
/// change applies only to the version it was computed from.
///
/// Read the row with its version (a plain `SELECT`, no lock held), compute
/// the change, then [`update`](Self::update) with the version read: the
/// update applies and bumps the version if no one changed the row since,
/// and otherwise changes nothing and answers
/// [`PatternError::Conflict`]. Nothing is locked between the read and
/// the write; under contention, losers pay a re-read and a retry each (see
/// [the measurements](super#what-each-costs-under-contention)).
///
/// The version column is an integer column (`bigint` or `integer`,
/// `NOT NULL`), incremented by one on each update.
///
/// ```no_run
/// use idem_postgres::patterns::{Changes, PatternError, Table, Versioned};
///
/// # async fn deposit(pool: &sqlx::PgPool, id: i64, cents: i64) -> Result<i64, Box<dyn std::error::Error>> {
/// let accounts = Versioned::new(&Table::new("accounts")?, "id", "version")?;
/// loop {
///     let (balance, version): (i64, i64) =
///         sqlx::query_as("SELECT balance, version FROM accounts WHERE id = $1")
///             .bind(id)
///             .fetch_one(pool)
///             .await?;
///     let mut conn = pool.acquire().await?;
///     let changes = Changes::new().set("balance", balance + cents);
///     match accounts.update(&mut conn, id, version, changes).await {
///         Ok(_) => return Ok(balance + cents),
///         Err(PatternError::Conflict { .. }) => continue, // someone else's change came first
///         Err(e) => return Err(e.into()),
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Versioned {
    table: Table,
    id: String,
    version: String,
}

impl Versioned {
    /// The rows of `table`, found by column `id`, versioned by column
    /// `version`.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] for a column name PostgreSQL would not keep as
    /// written (empty, a NUL, over 63 bytes).
    pub fn new(table: &Table, id: &str, version: &str) -> Result<Self, InvalidName> {
        Ok(Self {
            table: table.clone(),
            id: identifier(id)?,
            version: identifier(version)?,
        })
    }

    /// Applies `changes` to the row `id` and bumps its version, if its
    /// version is `expected`; returns the new version (`expected + 1`).
    ///
    /// One statement: `UPDATE table SET <changes>, version = version + 1
    /// WHERE id = $n AND version = $m RETURNING version`. When it changes
    /// nothing, a second reads the row's version, to tell a conflict from
    /// a missing row.
    ///
    /// Under `READ COMMITTED`, an update that meets a row changed by a
    /// concurrent transaction waits for it to end, and then checks the
    /// version again on the row as committed: of two updates computed
    /// from the same version, one applies, the other finds a conflict.
    ///
    /// # Errors
    ///
    /// [`PatternError::Conflict`] with the row's current version;
    /// [`PatternError::NotFound`]; [`PatternError::InvalidName`] or
    /// [`PatternError::Encode`] from `changes` (nothing sent);
    /// [`PatternError::Database`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the update done or not (see the
    /// [module docs](super#cancel-safety)).
    pub async fn update<I>(
        &self,
        conn: &mut PgConnection,
        id: I,
        expected: i64,
        changes: Changes,
    ) -> Result<i64, PatternError>
    where
        I: for<'t> Encode<'t, Postgres> + Type<Postgres> + Clone,
    {
        let (mut set, mut args) = changes.into_parts()?;
        let n = set.len();
        let Self {
            table,
            id: id_col,
            version,
        } = self;
        set.push(format!("{version} = {version} + 1"));
        bind(&mut args, id.clone())?;
        bind(&mut args, expected)?;
        let sql = format!(
            "UPDATE {table} SET {} WHERE {id_col} = ${} AND {version} = ${} RETURNING {version}::bigint",
            set.join(", "),
            n + 1,
            n + 2
        );
        let updated: Option<i64> = sqlx::query_scalar_with(AssertSqlSafe(sql), args)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(v) = updated {
            return Ok(v);
        }
        let mut args = PgArguments::default();
        bind(&mut args, id)?;
        let current: Option<i64> = sqlx::query_scalar_with(
            AssertSqlSafe(format!(
                "SELECT {version}::bigint FROM {table} WHERE {id_col} = $1"
            )),
            args,
        )
        .fetch_optional(&mut *conn)
        .await?;
        match current {
            Some(current) => Err(PatternError::Conflict { expected, current }),
            None => Err(PatternError::NotFound),
        }
    }
}
