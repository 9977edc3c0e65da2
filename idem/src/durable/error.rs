//! What a durable call can fail with, and how it got its value.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::store::StoreError;
use crate::Panicked;

/// Why a [`Durable`](super::Durable) call did not return a value.
#[derive(Clone)]
#[non_exhaustive]
pub enum DurableError<E> {
    /// The work returned `Err(e)`: released (the next call runs again), or
    /// recorded and replayed, as [`record_errors`](super::DurableBuilder::record_errors)
    /// decided.
    Failed(E),
    /// The work panicked; its lease was released.
    Panicked(Panicked),
    /// Another process is running the work: the table rejects duplicates
    /// ([`OnRunning::Reject`](super::OnRunning::Reject)), or waiting for it
    /// timed out. Retry after `retry_after`.
    Running {
        /// The time left on the other process's lease.
        retry_after: Duration,
    },
    /// The key was used for a different request (another fingerprint).
    Mismatch,
    /// The work ran, but its lease ended before it completed (renewal was
    /// refused, the store was unreachable for longer than the lease, or
    /// the work outran `max_run`), so its result was not recorded: another
    /// process may have taken the key over. Nothing was overwritten.
    LeaseLost,
    /// The call was [detached](super::Call::run_detached) and its task was
    /// dropped before it finished: its runtime shut down.
    Aborted,
    /// The store failed (fail closed: a work whose claim could not be
    /// recorded does not run), or holds bytes that are not a record this
    /// version can read.
    Store(Arc<StoreError>),
}

/// Store errors are equal when they are the same error (one `Arc`).
impl<E: PartialEq> PartialEq for DurableError<E> {
    fn eq(&self, other: &Self) -> bool {
        use DurableError::*;
        match (self, other) {
            (Failed(a), Failed(b)) => a == b,
            (Panicked(a), Panicked(b)) => a == b,
            (Running { retry_after: a }, Running { retry_after: b }) => a == b,
            (Mismatch, Mismatch) | (LeaseLost, LeaseLost) | (Aborted, Aborted) => true,
            (Store(a), Store(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl<E> From<StoreError> for DurableError<E> {
    fn from(e: StoreError) -> Self {
        DurableError::Store(Arc::new(e))
    }
}

impl<E: fmt::Debug> fmt::Debug for DurableError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurableError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
            DurableError::Panicked(p) => f.debug_tuple("Panicked").field(&p.message()).finish(),
            DurableError::Running { retry_after } => f
                .debug_struct("Running")
                .field("retry_after", retry_after)
                .finish(),
            DurableError::Mismatch => f.write_str("Mismatch"),
            DurableError::LeaseLost => f.write_str("LeaseLost"),
            DurableError::Aborted => f.write_str("Aborted"),
            DurableError::Store(e) => f.debug_tuple("Store").field(e).finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for DurableError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurableError::Failed(e) => fmt::Display::fmt(e, f),
            DurableError::Panicked(p) => fmt::Display::fmt(p, f),
            DurableError::Running { retry_after } => {
                write!(
                    f,
                    "another process is running this key; retry in {retry_after:?}"
                )
            }
            DurableError::Mismatch => {
                f.write_str("the key was used for a different request: nothing ran")
            }
            DurableError::LeaseLost => f.write_str(
                "the work's lease ended before it completed: its result was not recorded",
            ),
            DurableError::Aborted => f.write_str(
                "the detached call's task was dropped before it finished: its runtime shut down",
            ),
            DurableError::Store(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for DurableError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DurableError::Failed(e) => Some(e),
            DurableError::Store(e) => Some(&**e),
            _ => None,
        }
    }
}

/// How a durable call got its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DurableOutcome {
    /// This call claimed the key and ran the work.
    Executed,
    /// This call joined another call of this process that was running it.
    Coalesced,
    /// The store held the record: replayed, nothing ran.
    Replayed,
    /// Another process was running it; this call waited for its record.
    Waited,
    /// The store could not be reached and the executor fails open
    /// ([`OnUnavailable::FailOpen`](super::OnUnavailable::FailOpen)): the
    /// work ran here without a lease, and nothing was recorded.
    FailedOpen,
}
