//! The background task that removes expired results.
//!
//! A table that stores results starts one sweeper task, on the tokio runtime
//! of the call that stores the first result, and only while it holds stored
//! results: the task ends when the table is empty of them (so an idle table
//! costs nothing and a paused test clock is not advanced forever) and when
//! the table is dropped (it holds only a `Weak`, and the table aborts it).
//! If its runtime shuts down, the next stored result starts a new one on the
//! caller's runtime.
//!
//! The task sleeps until the oldest stored result expires, and at least
//! `sweep_interval`: a sweep costs O(shards + expired), and a table whose
//! results never expire (`ttl(Duration::MAX)`) is never swept at all.
//!
//! A runtime without timers cannot host the task. The caller finds that out
//! before claiming the table's sweeper (tokio has no query for it: creating
//! a `Sleep` there panics, so the probe catches that panic, and the panic
//! hook prints tokio's message once per such runtime). The table then
//! starts its sweeper on the first runtime with timers it is used from;
//! meanwhile expired results are removed when their key is next claimed or
//! when the policy makes room. Before, a table whose first sweeper landed on
//! a runtime without timers never swept again (issue 7, defect 2).

use std::hash::Hash;
use std::sync::atomic::{fence, Ordering::SeqCst};
#[cfg(not(idem_loom))]
use std::sync::Weak;
#[cfg(not(idem_loom))]
use std::time::Duration;

use tokio::runtime::Handle;

use super::Inner;
#[cfg(not(idem_loom))]
use crate::clock::Timestamp;
use crate::sync::Arc;

/// Starts a sweeper unless one is running. Called after a result is stored.
pub(super) fn ensure<K, V, E>(inner: &Arc<Inner<K, V, E>>) {
    // Pairs with the fence in `Sweeper::tick`: either the sweeper sees the
    // result just stored, or this call sees that no sweeper is running.
    fence(SeqCst);
    if inner.sweeping.load(SeqCst) {
        return;
    }
    let (Some(spawn), Ok(handle)) = (inner.spawn_sweeper, Handle::try_current()) else {
        return;
    };
    if !has_timers(&handle) || inner.sweeping.swap(true, SeqCst) {
        return;
    }
    spawn(inner, &handle);
}

/// Whether `handle`'s runtime (the current one) has a timer. Remembers the
/// last runtime found without one, so that its callers pay a lock and a
/// compare, not a caught panic, on every store.
fn has_timers(handle: &Handle) -> bool {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::Mutex;
    static LAST_WITHOUT: Mutex<Option<tokio::runtime::Id>> = Mutex::new(None);
    let id = handle.id();
    let mut last = LAST_WITHOUT.lock().unwrap_or_else(|p| p.into_inner());
    if *last == Some(id) {
        return false;
    }
    // Creating a `Sleep` panics at once on a runtime without timers.
    let probe = catch_unwind(AssertUnwindSafe(|| {
        drop(tokio::time::sleep(std::time::Duration::ZERO));
    }));
    if probe.is_err() {
        *last = Some(id);
    }
    probe.is_ok()
}

/// Under the loom model there is no runtime and no sweeper (loom's `Arc`
/// has no `Weak`); expiry on access is what the model sees.
#[cfg(idem_loom)]
pub(crate) fn spawn<K, V, E>(inner: &Arc<Inner<K, V, E>>, _: &tokio::runtime::Handle) {
    inner.sweeping.store(false, SeqCst);
}

/// Spawns the sweeper task; stored in the table by `Builder::build`, where
/// the bounds that make the task `Send` are known.
#[cfg(not(idem_loom))]
pub(crate) fn spawn<K, V, E>(inner: &Arc<Inner<K, V, E>>, handle: &tokio::runtime::Handle)
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + 'static,
{
    let sweeper = Sweeper {
        inner: Arc::downgrade(inner),
        owns_flag: true,
    };
    // The first result stored expires a ttl from now.
    let settings = &inner.settings;
    let first = settings
        .sweep_interval
        .max(settings.ttl.unwrap_or_default());
    let task = handle.spawn(async move {
        let mut sweeper = sweeper;
        let mut wait = first;
        loop {
            tokio::time::sleep(wait).await;
            match sweeper.tick() {
                Some(next) => wait = next,
                None => return,
            }
        }
    });
    *inner.sweeper_task.lock() = Some(task.abort_handle());
}

#[cfg(not(idem_loom))]
struct Sweeper<K, V, E> {
    inner: Weak<Inner<K, V, E>>,
    /// Whether this task is the one `Inner::sweeping` stands for.
    owns_flag: bool,
}

#[cfg(not(idem_loom))]
impl<K: Hash + Eq, V: Clone, E> Sweeper<K, V, E> {
    /// One sweep. How long to sleep until the next one, or `None` when
    /// the task should end.
    fn tick(&mut self) -> Option<Duration> {
        #[cfg(test)]
        TICKS.with(|t| t.set(t.get() + 1));
        let inner = self.inner.upgrade()?;
        let interval = inner.settings.sweep_interval;
        // A panicking `Drop` of an expired key or value must not end the
        // sweeping: the entries are out of the table by then.
        let swept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.sweep()));
        match swept {
            Err(_) => return Some(interval),
            Ok((remaining, next)) if remaining > 0 => {
                let due = next.map_or(Duration::ZERO, |t| t.saturating_since(Timestamp::now()));
                return Some(due.max(interval));
            }
            Ok(_) => {}
        }
        // Nothing stored: step down, then look again in case a result was
        // stored after the sweep by a caller that saw the flag still set.
        inner.sweeping.store(false, SeqCst);
        self.owns_flag = false;
        fence(SeqCst);
        if inner.stored() > 0 && !inner.sweeping.swap(true, SeqCst) {
            self.owns_flag = true;
            return Some(interval);
        }
        None
    }
}

#[cfg(not(idem_loom))]
impl<K, V, E> Drop for Sweeper<K, V, E> {
    fn drop(&mut self) {
        // The runtime shut down (or the table is gone): let the next stored
        // result start a new sweeper. (A runtime dropped while its thread
        // unwinds from an unrelated panic, a failing test's, counts too.)
        if self.owns_flag {
            if let Some(inner) = self.inner.upgrade() {
                inner.sweeping.store(false, SeqCst);
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Sweeps run on this thread (tests run the sweeper on a
    /// current-thread runtime).
    static TICKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(all(test, not(idem_loom)))]
mod tests {
    use std::time::Duration;

    use super::TICKS;
    use crate::SingleFlight;

    fn ticks() -> usize {
        TICKS.with(std::cell::Cell::get)
    }

    /// With `ttl(Duration::MAX)` the sweeper used to wake every
    /// `sweep_interval`, forever, to find nothing due.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn results_that_never_expire_wake_no_sweeper() {
        let flight: SingleFlight<u8, u8> = SingleFlight::builder()
            .ttl(Duration::MAX)
            .sweep_interval(Duration::from_secs(1))
            .build()
            .unwrap();
        flight.run(1, || async { Ok(1) }).await.unwrap();
        let before = ticks();
        tokio::time::sleep(Duration::from_secs(86_400)).await;
        assert_eq!(ticks() - before, 0);
        assert_eq!(flight.get(&1), Some(1));
    }
}
