//! The naive design, written here: what AWS Lambda Powertools' Redis
//! persistence layer does, without its JSON.
//!
//! * claim: `SET <key> <in progress> NX PX <lease>`;
//! * on `OK`, run the work, then `SET <key> v:<value> PX <retain>`: one
//!   command and one round trip each, 2 per first execution;
//! * otherwise `GET <key>`: a value is replayed (2 round trips per
//!   replay); "in progress" is polled with the same backoff as idem's
//!   executor (Powertools raises an error instead and leaves the retry to
//!   the client); a key gone meanwhile is claimed again.
//!
//! No fencing token, no renewal, no owner: a work that outlives its lease
//! runs twice, and its late `SET` overwrites whatever the second run wrote.

use std::future::Future;
use std::sync::Arc;

use ::redis::cmd;
use tokio::time::Instant;

use super::{counted, Backoff, Conn, Design, How, Settings, Tally};

/// What a claimed key holds until its value is written.
const IN_PROGRESS: &[u8] = b"\x00in progress";
/// What a value is prefixed with.
const VALUE: &[u8] = b"v:";

/// One process of the naive design.
#[derive(Debug)]
pub struct Naive {
    conn: Conn,
    lease_ms: u64,
    retain_ms: u64,
    settings: Settings,
    tally: Arc<Tally>,
}

impl Design for Naive {
    fn name() -> &'static str {
        "naive"
    }

    async fn connect(url: &str, settings: Settings, tally: Arc<Tally>) -> Self {
        Self {
            conn: counted(url, Arc::clone(&tally)).await,
            lease_ms: settings.lease.as_millis() as u64,
            retain_ms: settings.retain.as_millis() as u64,
            settings,
            tally,
        }
    }

    async fn call<F, Fut>(&self, key: &str, work: F) -> Result<(String, How), String>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = String> + Send,
    {
        let key = format!("naive:{key}");
        let mut conn = self.conn.clone();
        let started = Instant::now();
        let mut backoff = Backoff::new(super::seed());
        let mut waited = false;
        loop {
            Tally::add(&self.tally.claims);
            let set: Option<String> = cmd("SET")
                .arg(&key)
                .arg(IN_PROGRESS)
                .arg("NX")
                .arg("PX")
                .arg(self.lease_ms)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            if set.is_some() {
                let value = work().await;
                let mut stored = Vec::with_capacity(VALUE.len() + value.len());
                stored.extend_from_slice(VALUE);
                stored.extend_from_slice(value.as_bytes());
                Tally::add(&self.tally.completes);
                cmd("SET")
                    .arg(&key)
                    .arg(stored)
                    .arg("PX")
                    .arg(self.retain_ms)
                    .exec_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok((value, How::Executed));
            }
            loop {
                let got: Option<Vec<u8>> = cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                match got {
                    Some(v) if v.starts_with(VALUE) => {
                        let value = String::from_utf8(v[VALUE.len()..].to_vec())
                            .map_err(|e| e.to_string())?;
                        let how = if waited { How::Waited } else { How::Replayed };
                        return Ok((value, how));
                    }
                    // In progress: wait, then look again.
                    Some(_) => {
                        if started.elapsed() > self.settings.wait {
                            return Err(format!(
                                "{key} still running after {:?}",
                                started.elapsed()
                            ));
                        }
                        waited = true;
                        tokio::time::sleep(backoff.next_pause()).await;
                        Tally::add(&self.tally.polls);
                    }
                    // Its lease ended without a value: claim it again.
                    None => break,
                }
            }
        }
    }
}
