//! A Redis store for idem: the [`idem::store::Store`] protocol (fenced
//! leases, replayed records) shared by every process that reaches one Redis
//! server or one Redis Cluster.
//!
//! ```no_run
//! use std::time::Duration;
//! use idem::store::{Claimed, Owner, Store, StoreKey};
//! use idem_redis::RedisStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = redis::Client::open("redis://127.0.0.1:6379/?protocol=resp3")?;
//! let store = RedisStore::new(client.get_connection_manager().await?);
//!
//! let key = StoreKey { namespace: "payments", key: "order-7" };
//! if let Claimed::Leased(lease) =
//!     store.claim(key, None, Owner::random(), Duration::from_secs(30)).await?
//! {
//!     // ... the work, fenced downstream with `lease.fence` ...
//!     store.complete(key, &lease, b"receipt-1", Duration::from_secs(86_400)).await?;
//! }
//! // Any process, within a day: the record, in one command.
//! let again = store.claim(key, None, Owner::random(), Duration::from_secs(30)).await?;
//! assert!(matches!(again, Claimed::Completed(r) if r.payload == b"receipt-1"));
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! Each idem key has three Redis keys, all in one hash tag:
//!
//! | Redis key                     | holds                                                  | expires                      |
//! |-------------------------------|--------------------------------------------------------|------------------------------|
//! | `idem:{payments:order-7}:r`   | the record: `idem1 <fence> <fingerprint>\n` + payload   | after the retention          |
//! | `idem:{payments:order-7}:l`   | the lease: `<fence> <owner> <fingerprint> <lease ms>`   | when the lease ends          |
//! | `idem:{payments:order-7}:f`   | the last fencing token issued for the key              | a lease after what it guards |
//!
//! `idem` is the [prefix](RedisStore::prefix); a `:` or `%` in the
//! namespace is percent-encoded, so `a:b`/`c` and `a`/`b:c` stay apart. The
//! keys of one idem key differ only after the hash tag, so they share a
//! cluster slot and every script can name all of them in `KEYS` (no
//! `CROSSSLOT`); different idem keys spread over every slot. Nothing is
//! shared by a whole namespace: no counter, no index, no hot key.
//!
//! * **claim**: a plain `GET` of the record first, so a replay is one
//!   command. When there is none, the claim script decides atomically: a
//!   record written meanwhile is replayed; a live lease of the same owner
//!   is handed back (a claim whose reply was lost, retried); one of
//!   another owner is a mismatch when both fingerprints are set and
//!   differ, else running, with its `PTTL`; no lease gives a new one, set
//!   with `PX`.
//! * **renew, complete, release** run scripts that act only if the lease
//!   key holds the caller's fencing token and owner, and otherwise change
//!   nothing ([`StoreError::Fenced`](idem::store::StoreError::Fenced)).
//!   Completion writes the record with `PX` the retention and deletes the
//!   lease; a completion whose record is already there with its own token
//!   (its first reply was lost) succeeds again.
//! * Fingerprints are checked on replays from the record's header, so a
//!   key reused for another request is a mismatch even after completion.
//!
//! The scripts go out as `EVALSHA`, and are loaded when a server answers
//! `NOSCRIPT` (a restart, a failover, a new node): [`redis::Script`].
//!
//! **Time** is the server's only: `PX`, `PEXPIRE`, `PTTL` and `TIME` in the
//! scripts. The clocks of the processes sharing the store play no part, and
//! may disagree.
//!
//! **Fencing tokens** are per key: a new lease's token is the larger of the
//! last token plus one and the server's `TIME` in microseconds. So tokens
//! grow strictly for a key across releases and expiries, across the expiry
//! of the fencing key itself (it lives a lease longer than the lease or
//! the record it guards), and across a restart that lost every key, **as
//! long as the server's clock does not go back** (a clock stepped back by
//! more than the time since the last claim, with the fencing key gone,
//! could repeat a token). They are around 1.7 × 10<sup>15</sup>, and fit a
//! signed 64-bit column.
//!
//! # Errors
//!
//! A failed connection, a timeout of redis-rs's, or a server error such as
//! `READONLY` or `LOADING` gives
//! [`StoreError::Unavailable`](idem::store::StoreError::Unavailable): an
//! **ambiguous** outcome, since the command may have run and only its reply
//! been lost. Retry with the same owner and lease: every operation is safe
//! to repeat (see [`RedisStore`]). Bytes under a key that are not what
//! this version writes give
//! [`StoreError::Corrupt`](idem::store::StoreError::Corrupt), naming the
//! idem key and the Redis key; nothing panics.
//!
//! Timeouts are the connection's (redis-rs's response timeout, 500 ms by
//! default, and connection timeout): a timeout is another ambiguous
//! outcome, to retry under the same owner.
//!
//! # Which connection
//!
//! The connection decides what happens after a server restart, so pass one
//! that reconnects:
//!
//! * **[`ConnectionManager`](redis::aio::ConnectionManager)**, with
//!   `?protocol=resp3` in the URL (Redis 6 or later), is the one to use on
//!   a standalone server. On RESP3 it is told by the server's disconnect
//!   and reconnects before the next request; on RESP2 it learns that its
//!   socket is dead only when a request on it fails, and reconnects then.
//!   That request is often an owner's completion:
//!   [`Durable`](idem::durable::Durable) retries a completion under the
//!   same owner and fence for as long as its lease lasts, so the result is
//!   recorded after the reconnect (tested on both protocols, with the
//!   server restarted while the owner works). While the server is down, a
//!   `ConnectionManager` with redis-rs's default settings (six
//!   reconnection attempts, exponential backoff) takes about 9.5 s to fail
//!   each call (measured here): set its number of retries to fail sooner.
//! * **[`ClusterConnection`](redis::cluster_async::ClusterConnection)** on
//!   a Redis Cluster: it follows `MOVED`/`ASK` redirections and
//!   reconnects to the nodes.
//! * A [`MultiplexedConnection`](redis::aio::MultiplexedConnection) is
//!   **never reopened** once its socket is gone: after a restart every
//!   call fails until you make a new one (the completion of an owner that
//!   was working is then reported as unavailable when its lease ends, and
//!   the result is not recorded). Fine for tests and short-lived tools.
//!
//! # Restarts, persistence and failover
//!
//! The store keeps what the server keeps.
//!
//! * **No persistence** (`save ""`, `appendonly no`): a restart loses every
//!   record and lease. A retry after it runs the work again, as if the key
//!   were new; an owner still running is told at its next renewal or its
//!   completion ([`Fenced`](idem::store::StoreError::Fenced): its lease is
//!   gone). Fencing tokens still grow (they follow the server's clock), so
//!   a downstream system that checks them refuses the old owner's writes
//!   once the new owner has written.
//! * **AOF with `appendfsync always`**: every acknowledged completion and
//!   claim survives a restart; the default `everysec` can lose the last
//!   second of writes, and RDB snapshots everything since the last one.
//! * **Replication** is asynchronous: a primary that fails before passing
//!   a claim or a completion on leaves a promoted replica without it, and
//!   the work can run again. [`RedisStore::wait_for_replicas`] waits for
//!   the writes to reach replicas before answering.
//!
//! # Why not Redlock
//!
//! Redlock takes a lock on a majority of N independent Redis masters. idem
//! does not use it: its safety rests on timing assumptions (bounded pauses,
//! bounded clock drift) that a garbage-collection pause, a stalled virtual
//! machine or a clock jump breaks, after which two owners both believe they
//! hold the lock; and its independent masters share no counter, so there
//! is no fencing token they can issue that orders one owner's writes after
//! another's. Redis's own documentation of distributed locks states these
//! caveats, and Martin Kleppmann's "How to do distributed locking" (2016)
//! shows the failure. What users want from Redlock, surviving the loss of
//! a server, is here a matter of replication and persistence of the one
//! primary that owns the key ([`RedisStore::wait_for_replicas`], AOF), and
//! what keeps a stalled owner from doing harm after its lease is the
//! fencing token: refused by the store, and by any downstream system that
//! checks it.
//!
//! # Requirements
//!
//! Redis 5 or later (scripts replicated by their effects, so `TIME` may
//! precede writes), or a compatible server, standalone or Cluster.

mod keys;
mod record;
mod scripts;
mod store;
mod tokens;

pub use store::{NotReplicated, RedisStore};

/// The claim script's Lua source, for the benchmarks' what-if designs
/// (`benches/src/redis`): not part of the API.
#[doc(hidden)]
pub const __CLAIM_SCRIPT: &str = scripts::CLAIM;
