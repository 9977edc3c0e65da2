//! The background task that removes expired results.
//!
//! A table that stores results starts one sweeper task, on the tokio runtime
//! of the call that stores the first result, and only while it holds stored
//! results: the task ends when the table is empty of them (so an idle table
//! costs nothing and a paused test clock is not advanced forever) and when
//! the table is dropped (it holds only a `Weak`, and the table aborts it).
//! If its runtime shuts down, the next stored result starts a new one on the
//! caller's runtime. Without any tokio runtime, or on one without timers,
//! expired results are removed when their key is next claimed or when the
//! policy evicts them (a table whose first sweeper found no timer does not
//! try again: it would fail the same way on every store).

use std::hash::Hash;
use std::sync::atomic::{fence, Ordering::SeqCst};
#[cfg(not(idem_loom))]
use std::sync::Weak;

use super::Inner;
use crate::sync::Arc;

/// Starts a sweeper unless one is running. Called after a result is stored.
pub(super) fn ensure<K, V, E>(inner: &Arc<Inner<K, V, E>>) {
    // Pairs with the fence in `Sweeper::tick`: either the sweeper sees the
    // result just stored, or this call sees that no sweeper is running.
    fence(SeqCst);
    if inner.sweeping.load(SeqCst) || inner.sweeping.swap(true, SeqCst) {
        return;
    }
    match (inner.spawn_sweeper, tokio::runtime::Handle::try_current()) {
        (Some(spawn), Ok(handle)) => spawn(inner, &handle),
        _ => inner.sweeping.store(false, SeqCst),
    }
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
    let interval = inner.settings.sweep_interval;
    let task = handle.spawn(async move {
        let mut sweeper = sweeper;
        loop {
            if !sleep(interval).await {
                // No timer on this runtime: keep the flag, so that no other
                // sweeper is started only to fail the same way.
                sweeper.owns_flag = false;
                return;
            }
            if !sweeper.tick() {
                return;
            }
        }
    });
    *inner.sweeper_task.lock() = Some(task.abort_handle());
}

/// Sleeps for `interval`; `false`, at once, if the runtime has no timer
/// (tokio panics then, in `sleep` or its first poll).
#[cfg(not(idem_loom))]
async fn sleep(interval: std::time::Duration) -> bool {
    use std::future::Future;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::Poll;
    let Ok(sleep) = catch_unwind(|| tokio::time::sleep(interval)) else {
        return false;
    };
    let mut sleep = std::pin::pin!(sleep);
    std::future::poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| sleep.as_mut().poll(cx))) {
            Ok(poll) => poll.map(|()| true),
            Err(_) => Poll::Ready(false),
        },
    )
    .await
}

#[cfg(not(idem_loom))]
struct Sweeper<K, V, E> {
    inner: Weak<Inner<K, V, E>>,
    /// Whether this task is the one `Inner::sweeping` stands for.
    owns_flag: bool,
}

#[cfg(not(idem_loom))]
impl<K: Hash + Eq, V: Clone, E> Sweeper<K, V, E> {
    /// One sweep. `false` when the task should end.
    fn tick(&mut self) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        // A panicking `Drop` of an expired key or value must not end the
        // sweeping: the entries are out of the table by then.
        let remaining = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.sweep()));
        if remaining.map_or(true, |n| n > 0) {
            return true;
        }
        // Nothing stored: step down, then look again in case a result was
        // stored after the sweep by a caller that saw the flag still set.
        inner.sweeping.store(false, SeqCst);
        self.owns_flag = false;
        fence(SeqCst);
        if inner.stored() > 0 && !inner.sweeping.swap(true, SeqCst) {
            self.owns_flag = true;
            return true;
        }
        false
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
