//! Deleting expired entries: [`PostgresStore::reap_expired`] and the
//! periodic [`Reaper`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use idem::store::StoreError;
use sqlx::AssertSqlSafe;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::store::PostgresStore;

impl PostgresStore {
    /// Deletes up to `batch` entries (records past their retention, leases
    /// past their end, released leases), and returns how many it deleted.
    ///
    /// An expired entry answers nothing already (a claim takes it over), so
    /// deleting it changes no answer: this keeps the table small. The rows
    /// are locked with `FOR UPDATE SKIP LOCKED` and their expiry is checked
    /// again on their latest version, so a row being claimed or taken over
    /// is passed, never deleted or waited for; and one statement holds its
    /// locks only while it runs. Call it until it returns less than
    /// `batch` to empty the table of expired entries, or let a
    /// [`Reaper`] do it ([`spawn_reaper`](Self::spawn_reaper)).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] with the database's error; nothing is
    /// deleted then.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may leave the batch deleted or not, which is
    /// the same to the store.
    pub async fn reap_expired(&self, batch: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.reap)))
            .bind(i64::from(batch))
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(done.rows_affected())
    }

    /// Runs [`reap_expired`](Self::reap_expired) on a task of its own:
    /// right away, then every `every`, each time in batches of `batch`
    /// until a batch comes back short. Stops when the [`Reaper`] is
    /// dropped or [stopped](Reaper::stop).
    ///
    /// Errors do not stop it: it counts them, keeps the last, and tries
    /// again at the next tick.
    ///
    /// ```no_run
    /// # async fn f(store: idem_postgres::PostgresStore) {
    /// use std::time::Duration;
    /// let reaper = store.spawn_reaper(Duration::from_secs(60), 1_000);
    /// // ... serve ...
    /// reaper.stop().await;
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or if `every` is zero or `batch` is zero.
    pub fn spawn_reaper(&self, every: Duration, batch: u32) -> Reaper {
        assert!(!every.is_zero(), "a reaper's period cannot be zero");
        assert!(batch > 0, "a reaper's batch cannot be empty");
        let stats = Arc::new(Stats::default());
        let (store, shared) = (self.clone(), Arc::clone(&stats));
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                loop {
                    match store.reap_expired(batch).await {
                        Ok(n) => {
                            shared.deleted.fetch_add(n, Relaxed);
                            if n < u64::from(batch) {
                                break;
                            }
                        }
                        Err(e) => {
                            shared.errors.fetch_add(1, Relaxed);
                            *shared.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(e.to_string());
                            break;
                        }
                    }
                }
                shared.passes.fetch_add(1, Relaxed);
            }
        });
        Reaper { task, stats }
    }
}

/// The task of [`PostgresStore::spawn_reaper`]; dropping it stops the task.
#[must_use = "dropping the reaper stops it"]
pub struct Reaper {
    task: JoinHandle<()>,
    stats: Arc<Stats>,
}

#[derive(Debug, Default)]
struct Stats {
    deleted: AtomicU64,
    passes: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Reaper {
    /// Entries deleted so far.
    pub fn deleted(&self) -> u64 {
        self.stats.deleted.load(Relaxed)
    }

    /// Passes completed so far (one per tick: batches until a short one,
    /// or an error).
    pub fn passes(&self) -> u64 {
        self.stats.passes.load(Relaxed)
    }

    /// Passes that ended with an error.
    pub fn errors(&self) -> u64 {
        self.stats.errors.load(Relaxed)
    }

    /// The last error, as text.
    pub fn last_error(&self) -> Option<String> {
        self.stats
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops the task and waits until it has stopped (a statement it had
    /// sent may still complete on the server).
    pub async fn stop(self) {
        self.task.abort();
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for Reaper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reaper")
            .field("deleted", &self.deleted())
            .field("passes", &self.passes())
            .field("errors", &self.errors())
            .finish_non_exhaustive()
    }
}
