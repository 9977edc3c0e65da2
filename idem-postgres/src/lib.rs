//! A PostgreSQL store for idem: idempotency records in a table, claimed and
//! completed either beside your work, like any [`idem::store::Store`], or
//! **in the same transaction as your own writes**, so that the business
//! change and its record commit together or not at all.
//!
//! Two ways to use one [`PostgresStore`]:
//!
//! * **The store** ([`Store`](idem::store::Store) methods, over the pool):
//!   fenced leases and replayed records, for [`Durable`](idem::durable)
//!   and the HTTP layer, as with Redis. The work runs outside the
//!   database, or in transactions of its own.
//! * **The transactional mode** ([`PostgresStore::claim_in`]): the claim
//!   is a row written by *your* transaction. A concurrent duplicate waits
//!   on the table's primary key until your transaction ends, then replays
//!   your record (or claims the key, if you rolled back). A crash, a
//!   killed connection or a rollback anywhere leaves neither the write nor
//!   the record: exactly-once effects on the database, with nothing to
//!   recover.
//!
//! ```no_run
//! use idem::store::StoreKey;
//! use idem_postgres::{PostgresStore, TxClaim};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! let store = PostgresStore::new(pool.clone());
//! store.migrate().await?; // once, at start-up: creates `idem_records`
//!
//! let (order, cents) = ("order-7", 1_250_i64);
//! let mut tx = pool.begin().await?;
//! let key = StoreKey { namespace: "payments", key: order };
//! match store.claim_in(&mut tx, key, Some(idem::Fingerprint::of(&cents))).await? {
//!     TxClaim::Claimed(claim) => {
//!         sqlx::query("INSERT INTO payments (order_id, cents) VALUES ($1, $2)")
//!             .bind(order)
//!             .bind(cents)
//!             .execute(&mut *tx)
//!             .await?;
//!         claim.complete(&mut tx, b"receipt-7").await?;
//!         tx.commit().await?; // the payment and its record, at once
//!     }
//!     TxClaim::Completed(record) => println!("a retry: {:?}", record.payload),
//!     TxClaim::Mismatch => println!("{order} was used for another amount"),
//!     TxClaim::InProgress { .. } => println!("a duplicate is running: retry later"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Which mode
//!
//! | the work is…                                        | use                                   |
//! |-----------------------------------------------------|---------------------------------------|
//! | writes to this database                             | the transactional mode                |
//! | a call to another service (a card, an email)        | the store, through [`Durable`](idem::durable), with the fence passed on |
//! | both                                                | the store for the call; the database writes fenced with its token |
//!
//! The transactional mode holds a row lock (the uncommitted key) for the
//! whole transaction: keep those transactions short, as any transaction
//! that writes a hot row. The store holds nothing while the work runs:
//! a lease, renewed by the executor, that another caller sees as running.
//! Both modes can share a table, and a namespace: each sees the other's
//! claims (a lease is [`TxClaim::InProgress`] to a transaction, an open
//! transaction's claim makes a store claim wait).
//!
//! Why `claim_in` returns a value to `match` instead of taking a closure
//! that runs inside the transaction: the closure would borrow the
//! connection for its future's lifetime, which needs an async closure
//! (`AsyncFnOnce(&mut PgConnection)`), and the future of such a closure
//! cannot be required to be `Send` on stable Rust: it could not be used in
//! an axum handler or a spawned task. The enum keeps the transaction
//! yours: `&mut *tx` for your statements, your commit, your rollback, your
//! isolation level and savepoints.
//!
//! # Queue consumers
//!
//! A broker delivers each message at least once: a consumer that dies
//! after its work and before its acknowledgement gets the message again.
//! [`Inbox`] makes the work happen once, when the work is a write to this
//! database: [`Inbox::handle`] claims the message id, runs your effect,
//! and records the id **in one transaction**; acknowledge the message
//! after it returns. A redelivery finds the record and runs nothing
//! ([`Handled::Duplicate`]): acknowledge it too.
//!
//! ```no_run
//! use idem_postgres::{Inbox, PostgresStore};
//!
//! # async fn consumer(pool: sqlx::PgPool, message_id: &str, order: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::new(pool);
//! store.migrate().await?;
//! let inbox = Inbox::new(store, "shipping");
//!
//! // For each delivery:
//! let order = order.to_owned();
//! let handled = inbox
//!     .handle(message_id, |conn| {
//!         Box::pin(async move {
//!             sqlx::query("INSERT INTO shipments (order_id) VALUES ($1)")
//!                 .bind(order)
//!                 .execute(conn)
//!                 .await
//!         })
//!     })
//!     .await?;
//! if handled.ack() {
//!     // delivery.ack(..).await?: only now, after the commit
//! }
//! # Ok(())
//! # }
//! ```
//!
//! | the consumer dies… | what is left | the redelivery |
//! |---|---|---|
//! | before the commit | nothing (the transaction rolled back with the connection) | runs the effect: [`Handled::Processed`] |
//! | after the commit, before the acknowledgement | the effect and the record | runs nothing: [`Handled::Duplicate`], acknowledged |
//! | after the acknowledgement | the effect and the record | none comes |
//!
//! The inbox knows no broker: it takes the message id as a string. The
//! example `examples/consumer` runs it on RabbitMQ
//! (`cargo run -p idem-postgres --example consumer`), and
//! `tests/consumer.rs` kills consumer processes (`kill -9`) at both
//! points above and checks the redelivery. Use the broker's own message
//! id (AMQP `message-id`, the JetStream `Nats-Msg-Id` header, a Kafka
//! topic-partition-offset), set by the producer once per message and kept
//! across its retries: an id made up by the consumer would differ on a
//! redelivery.
//!
//! # Other patterns
//!
//! [`patterns`] has the classic alternatives on your own rows, with what
//! each costs under contention, measured: an optimistic version check
//! ([`patterns::Versioned`]), a guarded state transition
//! ([`patterns::Guarded`]), and a row lock ([`patterns::RowLock`]:
//! `FOR UPDATE`, `NOWAIT`, `SKIP LOCKED`, a lock timeout).
//!
//! # The schema
//!
//! [`PostgresStore::migrate`] creates it (idempotent; safe when several
//! processes run it at once: it holds an advisory lock), and records the
//! version in `idem_records_migrations`. [`PostgresStore::schema_sql`]
//! gives the same SQL, with your names, for a migration tool of your own.
//! With the default names:
//!
//! ```sql
//! CREATE SEQUENCE IF NOT EXISTS "idem_records_fence" AS bigint;
//! CREATE TABLE IF NOT EXISTS "idem_records" (
//!     namespace   text        NOT NULL,
//!     key         text        NOT NULL,
//!     state       text        NOT NULL CHECK (state IN ('leased', 'completed')),
//!     fingerprint bigint      NOT NULL DEFAULT 0,
//!     fence       bigint      NOT NULL,
//!     owner       uuid        NOT NULL,
//!     expires_at  timestamptz NOT NULL,
//!     payload     bytea,
//!     PRIMARY KEY (namespace, key)
//! );
//! CREATE INDEX IF NOT EXISTS "idem_records_expires_at" ON "idem_records" (expires_at);
//! ```
//!
//! One row per key: a lease (`state = 'leased'`, `expires_at` the end of
//! the lease, `owner` its holder) or a record (`state = 'completed'`,
//! `expires_at` the end of the retention, `payload` the encoded result).
//! `fingerprint` holds the 64 bits of an [`idem::Fingerprint`] (0 for
//! none). A row past `expires_at` answers nothing: a claim takes it over,
//! and the reaper deletes it. The table and schema are
//! [configurable](Builder), and quoted wherever they appear.
//!
//! # How it works
//!
//! **Time** is the database's only: `clock_timestamp()` in the claims and
//! the fenced writes (the time of the statement, not of its transaction,
//! so a claim late in a long transaction sees the present), `now()` in the
//! reaper. The clocks of the processes play no part.
//!
//! * **claim** (the store): a plain `SELECT` of the key's row first, so a
//!   replay or a key running elsewhere writes nothing and locks nothing. A
//!   live record is replayed (or a mismatch); a live lease is the caller's
//!   own (a claim whose reply was lost, retried: the same lease back), a
//!   mismatch, or running. Otherwise one statement takes the key:
//!   `INSERT … ON CONFLICT (namespace, key) DO UPDATE … WHERE
//!   expires_at <= clock_timestamp() RETURNING fence`, so a vacant key is
//!   inserted and an expired one taken over atomically; no row back means
//!   someone else's write got there first, and the claim reads again.
//! * **renew, complete, release** are `UPDATE`s that act only on the row
//!   whose `state`, `fence` and `owner` are the lease's and whose
//!   `expires_at` is still ahead, else [`StoreError::Fenced`] with nothing
//!   changed. A completion retried after a lost reply finds its own
//!   record and succeeds. A release ends the lease at once (the row stays,
//!   expired, for the reaper).
//! * **claim_in** (the transactional mode): `INSERT … ON CONFLICT DO
//!   NOTHING`, which waits for a concurrent transaction's uncommitted row
//!   of the key; then, if it inserted nothing, a `SELECT` of what
//!   committed; an expired row is taken over with an `UPDATE`. Its row is
//!   a record from the start (`state = 'completed'`): invisible until the
//!   commit, and done once committed; [`Claim::complete`] writes the
//!   payload.
//!
//! **Fencing tokens** come from one sequence, `idem_records_fence`, drawn
//! when a lease is written (a takeover draws its token once it holds the
//! row's lock). They grow strictly for each key, and across keys, across
//! releases, expiries, the reaper's deletes and restarts of the server.
//! One exception, of no consequence for the transactional mode: a claim
//! that waited on another transaction's uncommitted insert of the key,
//! which then rolled back, inserts a token drawn before that one's, which
//! was never committed.
//!
//! **Waits** are bounded by the store's [lock
//! timeout](Builder::lock_timeout) (5 s by default), set for the claim's
//! statements only (`set_config('lock_timeout', …, true)`: `SET LOCAL`),
//! with the transaction's own setting restored after them. A claim that
//! times out answers [`TxClaim::InProgress`], or
//! [`Claimed::Running`](idem::store::Claimed::Running) through the store.
//!
//! **The reaper** ([`PostgresStore::reap_expired`],
//! [`PostgresStore::spawn_reaper`]) deletes expired rows in batches:
//! `DELETE … USING (SELECT … WHERE expires_at <= now() LIMIT $1 FOR UPDATE
//! SKIP LOCKED)`. Each batch is one short statement; rows being claimed
//! are skipped, and the expiry is checked again on the row's latest
//! version, so a live lease or record is never deleted.
//!
//! # Errors
//!
//! A failed connection, a pool timeout, or a database error gives
//! [`StoreError::Unavailable`](idem::store::StoreError::Unavailable),
//! wrapping the [`sqlx::Error`]: through the store, an **ambiguous**
//! outcome (the statement may have committed), safe to retry with the same
//! owner and lease; in the transactional mode, the transaction is aborted
//! and yours to roll back. A missing table says to run
//! [`migrate`](PostgresStore::migrate). A row this version cannot read
//! gives [`StoreError::Corrupt`](idem::store::StoreError::Corrupt).
//!
//! # Cancel safety
//!
//! Dropping a future of the store after its statement was sent leaves the
//! statement done or not, as a lost reply would: retry with the same owner
//! and lease. In the transactional mode, the transaction decides: a
//! dropped [`sqlx::Transaction`] rolls back, taking any claim with it.
//!
//! # Requirements
//!
//! PostgreSQL 10 or later (tested on 15), `READ COMMITTED` transactions
//! for the transactional mode (see [`PostgresStore::claim_in`]), and sqlx
//! 0.9 with tokio. The crate enables no TLS backend of sqlx: enable
//! sqlx's `tls-rustls` or `tls-native-tls` feature in your own
//! `Cargo.toml` for encrypted connections.
//!
//! [`StoreError::Fenced`]: idem::store::StoreError::Fenced

mod inbox;
mod names;
pub mod patterns;
mod reaper;
mod schema;
mod sql;
mod store;
mod transactional;

pub use inbox::{Effect, HandleError, Handled, Inbox};
pub use names::InvalidName;
pub use reaper::Reaper;
pub use store::{Builder, PostgresStore};
pub use transactional::{Claim, TxClaim};

#[cfg(test)]
mod tests {
    use super::*;
    use idem::store::{Store, StoreKey};

    fn is_send_sync<T: Send + Sync>(_: &T) {}
    fn is_send<T: Send>(_: &T) {}

    /// Every handle is `Send + Sync`, and every future `Send`, so they fit
    /// spawned tasks and axum handlers (a compile-time check: never run).
    #[allow(dead_code, clippy::let_underscore_future)]
    fn handles_and_futures_are_send(
        store: &PostgresStore,
        conn: &mut sqlx::PgConnection,
        claim: Claim,
    ) {
        let key = StoreKey {
            namespace: "n",
            key: "k",
        };
        is_send_sync(store);
        is_send_sync(&claim);
        is_send(&store.claim_in(conn, key, None));
        is_send(&claim.complete(conn, b""));
        is_send(&store.claim(
            key,
            None,
            idem::store::Owner::random(),
            std::time::Duration::ZERO,
        ));
        is_send(&store.migrate());
        is_send(&store.reap_expired(1));
        is_send_sync(&store.spawn_reaper(std::time::Duration::from_secs(1), 1));
        is_send_sync(&TxClaim::Mismatch);
        let inbox = Inbox::new(store.clone(), "n");
        is_send_sync(&inbox);
        is_send(&inbox.claim(conn, "m", None));
        is_send(&inbox.handle("m", |_conn| Box::pin(async { Ok::<_, String>(()) })));
        let table = patterns::Table::new("t").unwrap();
        let versioned = patterns::Versioned::new(&table, "id", "version").unwrap();
        let guarded = patterns::Guarded::new(&table, "id", "state").unwrap();
        let lock = patterns::RowLock::new(&table, "id").unwrap();
        is_send_sync(&versioned);
        is_send_sync(&patterns::Changes::new());
        is_send(&versioned.update(conn, 1_i64, 1, patterns::Changes::new().set("a", "b")));
        is_send(&guarded.transition(conn, "k", "from", "to", patterns::Changes::new()));
        is_send(&lock.lock(conn, 1_i64, patterns::Wait::NoWait));
        is_send(&lock.try_lock(conn, 1_i64));
    }
    /// The SQL shown in the crate docs is what `migrate` runs.
    #[test]
    fn the_docs_show_the_schema_migrate_creates() {
        let docs: String = include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .skip_while(|l| *l != "```sql")
            .skip(1)
            .take_while(|l| *l != "```")
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(docs, crate::schema::default_schema_sql());
    }
}
