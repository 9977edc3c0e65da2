//! The `idempotent` crate's `ValkeyStore` (version 0.3.0, MPL-2.0, used
//! unmodified), driven as its docs describe: `try_insert` a processing
//! entry, run the work, `complete` the entry with the response.
//!
//! * claim: one `EVALSHA` (`HGET data`; on a miss `HSET data ft` +
//!   `PEXPIRE`); the fencing token is 64 random bits drawn by the client;
//! * completion: one `EVALSHA` (`HGET ft`, `HSET data`, `HDEL ft`,
//!   `PEXPIRE`);
//! * a replay is the claim's `EVALSHA` finding the completed entry (one
//!   round trip, one script running one `HGET`);
//! * an entry still processing is polled with the same backoff as idem's
//!   executor (the crate leaves waiting to its caller).
//!
//! The store keeps one ttl per entry, for the processing and the completed
//! state alike: the bench gives it [`Settings::retain`]. It has no lease
//! renewal. It opens its own `ConnectionManager` (redis-rs's default 500 ms
//! response timeout), which the bench cannot wrap: its round trips are
//! read from the server's `EVALSHA` count.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use idempotent::entry::{CachedResponse, ExistingEntry, Metadata};
use idempotent::fingerprint::{DefaultFingerprintStrategy, FingerprintStrategy};
use idempotent::store::valkey::ValkeyStore;
use idempotent::store::{IdempotencyStore, InsertResult};
use idempotent::{Fingerprint, IdempotencyEntry, IdempotencyKey};
use tokio::time::Instant;

use super::{Backoff, Design, How, Settings, Tally};

/// One process of the crate's store.
pub struct Peer {
    store: ValkeyStore,
    fingerprint: Fingerprint,
    ttl: Duration,
    wait: Duration,
    tally: Arc<Tally>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").finish_non_exhaustive()
    }
}

impl Design for Peer {
    fn name() -> &'static str {
        "idempotent 0.3"
    }

    fn counts_requests() -> bool {
        false
    }

    async fn connect(url: &str, settings: Settings, tally: Arc<Tally>) -> Self {
        let client = ::redis::Client::open(url).expect("a valid Redis URL");
        let store = ValkeyStore::with_prefix(client, Some("peer"))
            .await
            .unwrap_or_else(|e| panic!("the idempotent crate's store on {url}: {e}"));
        Self {
            store,
            fingerprint: DefaultFingerprintStrategy.compute("bench", b""),
            ttl: settings.retain,
            wait: settings.wait,
            tally,
        }
    }

    async fn call<F, Fut>(&self, key: &str, work: F) -> Result<(String, How), String>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = String> + Send,
    {
        let key = IdempotencyKey::new(key).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut backoff = Backoff::new(super::seed());
        let mut waited = false;
        Tally::add(&self.tally.claims);
        loop {
            let entry = IdempotencyEntry::new(self.fingerprint, self.ttl);
            let inserted = self
                .store
                .try_insert(&key, entry.clone())
                .await
                .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))?;
            match inserted {
                InsertResult::Claimed { fencing_token } => {
                    let value = work().await;
                    let done = entry.complete(CachedResponse {
                        status_code: 200,
                        metadata: Metadata::default(),
                        body: value.clone().into_bytes().into(),
                    });
                    Tally::add(&self.tally.completes);
                    self.store
                        .complete(&key, done, fencing_token)
                        .await
                        .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))?;
                    return Ok((value, How::Executed));
                }
                InsertResult::Exists(ExistingEntry::Completed(done)) => {
                    let value = String::from_utf8(done.response().body.to_vec())
                        .map_err(|e| e.to_string())?;
                    let how = if waited { How::Waited } else { How::Replayed };
                    return Ok((value, how));
                }
                InsertResult::Exists(ExistingEntry::Processing(_)) => {
                    if started.elapsed() > self.wait {
                        return Err(format!(
                            "{key} still processing after {:?}",
                            started.elapsed()
                        ));
                    }
                    waited = true;
                    tokio::time::sleep(backoff.next_pause()).await;
                    Tally::add(&self.tally.polls);
                }
            }
        }
    }
}
