//! The guarded state transition: `UPDATE … SET status = 'paid' WHERE
//! status = 'pending'`.

use sqlx::postgres::{PgArguments, PgConnection};
use sqlx::{AssertSqlSafe, Encode, Postgres, Type};

use super::{bind, Changes, PatternError, Table};
use crate::names::{identifier, InvalidName};

/// How many times a transition looks again when the row went back to the
/// `from` state between its update and its read.
const MAX_ROUNDS: usize = 8;

/// What a [`Guarded::transition`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Transition {
    /// The row was in the `from` state, and is now in the `to` state.
    Done,
    /// The row is not in the `from` state: nothing changed. `current` is
    /// its state as text (`status::text`), read just after: equal to the
    /// `to` state when a duplicate of this transition came first (a
    /// retry, answer it as done), anything else when the row went another
    /// way (refuse).
    Refused {
        /// The row's state.
        current: String,
    },
}

/// A table whose rows move between states, each move guarded by the
/// state it starts from: of many attempts to pay a pending order, one
/// pays it, and every other is told the order is paid.
///
/// The state column may be `text`, `varchar`, an enum type or an integer:
/// bind states of a type sqlx encodes as the column's type (`&str` for
/// text; your `#[derive(sqlx::Type)]` enum for an enum type).
///
/// ```no_run
/// use idem_postgres::patterns::{Changes, Guarded, Table, Transition};
///
/// # async fn ship(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, order: i64, tracking: &str) -> Result<bool, Box<dyn std::error::Error>> {
/// let orders = Guarded::new(&Table::new("orders")?, "id", "status")?;
/// let changes = Changes::new().set("tracking", tracking);
/// match orders.transition(tx, order, "paid", "shipped", changes).await? {
///     Transition::Done => Ok(true), // now create the shipment, in the same transaction
///     Transition::Refused { current } if current == "shipped" => Ok(false), // a repeat
///     Transition::Refused { current } => Err(format!("order {order} is {current}").into()),
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Guarded {
    table: Table,
    id: String,
    state: String,
}

impl Guarded {
    /// The rows of `table`, found by column `id`, in the state held by
    /// column `state`.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] for a column name PostgreSQL would not keep as
    /// written (empty, a NUL, over 63 bytes).
    pub fn new(table: &Table, id: &str, state: &str) -> Result<Self, InvalidName> {
        Ok(Self {
            table: table.clone(),
            id: identifier(id)?,
            state: identifier(state)?,
        })
    }

    /// Moves the row `id` from state `from` to state `to`, applying
    /// `changes` with it, if it is in state `from`.
    ///
    /// One statement: `UPDATE table SET state = $to, <changes> WHERE id =
    /// $id AND state = $from`. When it changes nothing, a second reads the
    /// row's state to say why ([`Transition::Refused`]); if the row is
    /// back in `from` by then, the update is tried again.
    ///
    /// Under `READ COMMITTED`, a transition that meets a row changed by a
    /// concurrent transaction waits for it to end, and then checks the
    /// state on the row as committed: of concurrent transitions from the
    /// same state, one is done, the others are refused.
    ///
    /// # Errors
    ///
    /// [`PatternError::NotFound`]; [`PatternError::InvalidName`] or
    /// [`PatternError::Encode`] from `changes` (nothing sent);
    /// [`PatternError::Database`] (a state of a type the column does not
    /// take, too; and, as a protocol error, a row that was back in `from`
    /// at each of 8 reads in a row, each after an update that found it
    /// elsewhere). A refusal is not an error: the transaction is usable.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the update done or not (see the
    /// [module docs](super#cancel-safety)).
    pub async fn transition<I, S>(
        &self,
        conn: &mut PgConnection,
        id: I,
        from: S,
        to: S,
        changes: Changes,
    ) -> Result<Transition, PatternError>
    where
        I: for<'t> Encode<'t, Postgres> + Type<Postgres> + Clone,
        S: for<'t> Encode<'t, Postgres> + Type<Postgres> + Clone,
    {
        let (set, changes) = changes.into_parts()?;
        let n = set.len();
        let Self {
            table,
            id: id_col,
            state,
        } = self;
        let mut assignments = vec![format!("{state} = ${}", n + 1)];
        assignments.extend(set);
        let update = format!(
            "UPDATE {table} SET {} WHERE {id_col} = ${} AND {state} = ${} RETURNING true",
            assignments.join(", "),
            n + 2,
            n + 3
        );
        let read = format!("SELECT {state}::text, {state} = $2 FROM {table} WHERE {id_col} = $1");
        for _ in 0..MAX_ROUNDS {
            let mut args = changes.clone();
            bind(&mut args, to.clone())?;
            bind(&mut args, id.clone())?;
            bind(&mut args, from.clone())?;
            let done: Option<bool> = sqlx::query_scalar_with(AssertSqlSafe(update.clone()), args)
                .fetch_optional(&mut *conn)
                .await?;
            if done.is_some() {
                return Ok(Transition::Done);
            }
            let mut args = PgArguments::default();
            bind(&mut args, id.clone())?;
            bind(&mut args, from.clone())?;
            let row: Option<(Option<String>, Option<bool>)> =
                sqlx::query_as_with(AssertSqlSafe(read.clone()), args)
                    .fetch_optional(&mut *conn)
                    .await?;
            match row {
                None => return Err(PatternError::NotFound),
                // Back in `from` since the update: try again.
                Some((_, Some(true))) => continue,
                Some((current, _)) => {
                    return Ok(Transition::Refused {
                        current: current.unwrap_or_else(|| "NULL".to_owned()),
                    })
                }
            }
        }
        Err(PatternError::Database(sqlx::Error::Protocol(format!(
            "the row's state went back to the transition's start {MAX_ROUNDS} times during one transition"
        ))))
    }
}
