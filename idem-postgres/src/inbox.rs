//! [`Inbox`]: process each message of a queue once, in the same
//! transaction as its effect.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use idem::store::{StoreError, StoreKey};
use idem::Fingerprint;
use sqlx::postgres::PgConnection;

use crate::{PostgresStore, TxClaim};

/// The future of an [`Inbox::handle`] effect: `Box::pin(async move { … })`,
/// borrowing the transaction's connection.
pub type Effect<'c, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>;

/// The messages a consumer has processed, one record per message id in a
/// [`PostgresStore`]'s table, written in the same transaction as each
/// message's effect: the transactional inbox.
///
/// A broker delivers **at least once**: a consumer that dies after its
/// work and before its acknowledgement gets the message again (RabbitMQ
/// requeues it when the connection drops, NATS JetStream after the ack
/// wait, Kafka from the last committed offset, SQS after the visibility
/// timeout). [`handle`](Self::handle) makes the effect **once**: it begins
/// a transaction, claims the message id, runs your effect on the
/// transaction's connection, records the id and commits, all or nothing.
/// A redelivery finds the record and runs nothing: acknowledge it.
///
/// ```no_run
/// use idem_postgres::Inbox;
///
/// # async fn on_message(inbox: &Inbox, message_id: &str, order: i64) -> Result<bool, Box<dyn std::error::Error>> {
/// let handled = inbox
///     .handle(message_id, |conn| {
///         Box::pin(async move {
///             sqlx::query("INSERT INTO shipments (order_id) VALUES ($1)")
///                 .bind(order)
///                 .execute(conn)
///                 .await
///         })
///     })
///     .await?;
/// // Acknowledge the message to the broker when this says so.
/// Ok(handled.ack())
/// # }
/// ```
///
/// **The order that makes it work**: the effect and the record commit
/// together, and only then is the message acknowledged. Died before the
/// commit: nothing happened, the redelivery runs the effect. Died after
/// the commit and before the acknowledgement: the redelivery is
/// [`Handled::Duplicate`], acknowledged without running anything. Never
/// acknowledge before [`handle`](Self::handle) returns.
///
/// The effect must be the transaction's writes only: a call to another
/// service from inside it (an email, a payment API) is not undone by a
/// rollback, and runs again on a redelivery. For those, write an outbox
/// row in the transaction and send it from there, or put the call behind
/// [`Durable`](idem::durable) with its own key.
///
/// Concurrent deliveries of one message (a redelivery while the first
/// consumer's transaction is still open, the same message published
/// twice): the second waits on the first's claim, then finds it
/// ([`Handled::Duplicate`], or runs it if the first rolled back), for at
/// most the store's [lock timeout](crate::Builder::lock_timeout)
/// ([`Handled::InProgress`]: do not acknowledge, requeue).
///
/// Records are kept for the store's [retention](crate::Builder::retain)
/// (24 hours by default): make it longer than the longest time a message
/// can take to come back (queue backlog, dead-letter replays). The
/// [reaper](crate::PostgresStore::spawn_reaper) deletes older ones.
#[derive(Debug, Clone)]
pub struct Inbox {
    store: PostgresStore,
    namespace: Arc<str>,
}

/// What [`Inbox::handle`] did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "acknowledge the message when `ack()` says so"]
pub enum Handled<T> {
    /// The effect ran and committed with the message's record, and gave
    /// this. Acknowledge the message.
    Processed(T),
    /// The message was processed before (a redelivery, or a duplicate
    /// publish): nothing ran. Acknowledge it.
    Duplicate,
    /// A message with this id was processed with another fingerprint
    /// ([`Inbox::handle_with_fingerprint`]): the id was reused for
    /// different content. Nothing ran; dead-letter it (rejecting it
    /// without requeue) or acknowledge it, as your queue requires.
    Mismatch,
    /// Another transaction holds the message's claim (a consumer
    /// processing it now) beyond the store's lock timeout, or a lease of
    /// the [`Store`](idem::store::Store) methods does. Nothing ran; do not
    /// acknowledge: requeue it (`nack` with requeue), to come back later.
    InProgress,
}

impl<T> Handled<T> {
    /// Whether to acknowledge the message to the broker: after
    /// [`Processed`](Self::Processed) and [`Duplicate`](Self::Duplicate),
    /// not after [`InProgress`](Self::InProgress) or
    /// [`Mismatch`](Self::Mismatch) (for a mismatch, decide: see there).
    pub fn ack(&self) -> bool {
        matches!(self, Self::Processed(_) | Self::Duplicate)
    }
}

/// Why [`Inbox::handle`] failed: the transaction was rolled back (or its
/// commit failed), so do not acknowledge the message.
#[derive(Debug)]
pub enum HandleError<E> {
    /// The effect returned this error: rolled back, nothing recorded. A
    /// redelivery runs the effect again (mind poison messages: let the
    /// broker dead-letter a message after a number of deliveries).
    Effect(E),
    /// The database failed (begin, claim, completion or commit). When the
    /// commit's reply was lost, the effect may have committed: a
    /// redelivery finds out, and is then [`Handled::Duplicate`].
    Store(StoreError),
}

impl<E: fmt::Display> fmt::Display for HandleError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Effect(e) => write!(f, "the message's effect failed (rolled back): {e}"),
            Self::Store(e) => write!(f, "the inbox's database failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for HandleError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Effect(e) => Some(e),
            Self::Store(e) => Some(e),
        }
    }
}

impl Inbox {
    /// The inbox of the consumers of `namespace` (one per queue, or per
    /// consumer group: the message ids of one namespace must be unique),
    /// in `store`'s table. [`migrate`](PostgresStore::migrate) the store
    /// first.
    pub fn new(store: PostgresStore, namespace: &str) -> Self {
        Self {
            store,
            namespace: namespace.into(),
        }
    }

    /// The store the inbox keeps its records in.
    pub fn store(&self) -> &PostgresStore {
        &self.store
    }

    /// Processes the message `message_id` once: in one new transaction,
    /// claims the id, runs `effect` on the transaction's connection,
    /// records the id, and commits. A message already recorded runs
    /// nothing.
    ///
    /// `effect` returns a boxed future borrowing the connection, as
    /// sqlx's own `Connection::transaction` takes:
    /// `|conn| Box::pin(async move { … })` (an `async` closure's future
    /// could not be required to be `Send`).
    ///
    /// # Errors
    ///
    /// [`HandleError::Effect`] with the effect's error, and
    /// [`HandleError::Store`] when the database fails; in both cases the
    /// transaction is rolled back, and the message should not be
    /// acknowledged.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the transaction, which rolls back: the
    /// message is not recorded, and its effect did not happen, unless the
    /// commit was already sent (then it did, and a redelivery is a
    /// [`Handled::Duplicate`]). Either way, do not acknowledge it.
    pub async fn handle<T, E, F>(
        &self,
        message_id: &str,
        effect: F,
    ) -> Result<Handled<T>, HandleError<E>>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> Effect<'c, T, E>,
    {
        self.handle_with_fingerprint(message_id, None, effect).await
    }

    /// [`handle`](Self::handle), and a message whose id was processed with
    /// another `fingerprint` (a hash of its body, say) is
    /// [`Handled::Mismatch`] instead of a duplicate.
    ///
    /// # Errors
    ///
    /// As [`handle`](Self::handle).
    ///
    /// # Cancel safety
    ///
    /// As [`handle`](Self::handle).
    pub async fn handle_with_fingerprint<T, E, F>(
        &self,
        message_id: &str,
        fingerprint: Option<Fingerprint>,
        effect: F,
    ) -> Result<Handled<T>, HandleError<E>>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> Effect<'c, T, E>,
    {
        let store_error = |e: sqlx::Error| HandleError::Store(StoreError::Unavailable(Box::new(e)));
        let mut tx = self.store.pool().begin().await.map_err(store_error)?;
        let claim = match self
            .claim(&mut tx, message_id, fingerprint)
            .await
            .map_err(HandleError::Store)?
        {
            TxClaim::Claimed(claim) => claim,
            // Nothing was written: the transaction rolls back on drop.
            TxClaim::Completed(_) => return Ok(Handled::Duplicate),
            TxClaim::Mismatch => return Ok(Handled::Mismatch),
            TxClaim::InProgress { .. } => return Ok(Handled::InProgress),
        };
        let value = match effect(&mut tx).await {
            Ok(value) => value,
            Err(e) => {
                // Best effort: a failed rollback is a closed connection,
                // which rolls back too.
                let _ = tx.rollback().await;
                return Err(HandleError::Effect(e));
            }
        };
        // The claim's row is the record already (a transactional claim
        // committed without a completion reads as an empty payload): a
        // completion would rewrite it with nothing new.
        drop(claim);
        tx.commit().await.map_err(store_error)?;
        Ok(Handled::Processed(value))
    }

    /// Claims `message_id` in a transaction of yours, for an effect you
    /// run and commit yourself: [`PostgresStore::claim_in`] in the inbox's
    /// namespace. [`TxClaim::Completed`] is a duplicate.
    ///
    /// # Errors
    ///
    /// As [`PostgresStore::claim_in`].
    ///
    /// # Cancel safety
    ///
    /// As [`PostgresStore::claim_in`]: roll the transaction back.
    pub async fn claim(
        &self,
        conn: &mut PgConnection,
        message_id: &str,
        fingerprint: Option<Fingerprint>,
    ) -> Result<TxClaim, StoreError> {
        let key = StoreKey {
            namespace: &self.namespace,
            key: message_id,
        };
        self.store.claim_in(conn, key, fingerprint).await
    }
}
