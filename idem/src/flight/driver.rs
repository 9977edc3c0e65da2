//! Driving a flight: the caller running its work, and how it ends it.

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{Flight, Shared};
use crate::error::Panicked;
use crate::sync::Arc;
use crate::table::Inner;
use crate::Error;

/// The driver's hold on its flight. [`finish`](Driver::finish) ends the
/// flight with the work's result; dropping the guard unfinished (the caller
/// was cancelled, or its task dropped) orphans the flight to its waiters, or
/// drops it if nobody waits.
///
/// `R` is how the guard reaches the table: a borrow for a caller that runs
/// the work in its own future, an `Arc` for a detached task.
pub(crate) struct Driver<K, V, E, R: Borrow<Arc<Inner<K, V, E>>>> {
    inner: R,
    hash: u64,
    flight: Option<Arc<Flight<V, E>>>,
    _key: PhantomData<fn() -> K>,
}

impl<K, V, E, R: Borrow<Arc<Inner<K, V, E>>>> Driver<K, V, E, R> {
    pub(crate) fn new(inner: R, hash: u64, flight: Arc<Flight<V, E>>) -> Self {
        Self {
            inner,
            hash,
            flight: Some(flight),
            _key: PhantomData,
        }
    }

    /// The table's settings (its name, for tracing).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn settings(&self) -> &crate::builder::Settings {
        self.inner.borrow().settings()
    }

    /// The key's hash.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// The flight's identity, for the re-entrancy check.
    pub(crate) fn flight_id(&self) -> usize {
        flight_id(
            self.flight
                .as_ref()
                .expect("a driver holds its flight until it ends"),
        )
    }
}

/// A flight's identity: its address, unique while it lives.
pub(crate) fn flight_id<V, E>(flight: &Arc<Flight<V, E>>) -> usize {
    Arc::as_ptr(flight) as usize
}

impl<K, V: Clone, E: Clone, R: Borrow<Arc<Inner<K, V, E>>>> Driver<K, V, E, R> {
    /// `Driven` → `Done`: stores the result (if it is a value and the
    /// table keeps values) or removes the flight from the table, then hands
    /// the result to every waiter, and returns it to the driver.
    ///
    /// No user code runs between the table's update and the wake-up but
    /// the `Clone` of the result, whose panic is caught: a waiter of a
    /// flight that ran always gets its outcome (a copy of the result, or
    /// [`Error::Panicked`] saying the copy could not be made), and never
    /// runs the work again. The entries the table let go (the flight's own
    /// key, evicted results) are dropped last, after the wake-up.
    pub(crate) fn finish(self, r: Result<Result<V, E>, Panicked>) -> Result<V, Error<E>> {
        self.end(r, true).expect("kept for the driver")
    }

    /// As [`finish`](Self::finish), for a driver that has no use for the
    /// result (a detached task): the waiters get the result itself, not a
    /// copy.
    pub(crate) fn finish_detached(self, r: Result<Result<V, E>, Panicked>) {
        self.end(r, false);
    }

    fn end(mut self, r: Result<Result<V, E>, Panicked>, keep: bool) -> Option<Result<V, Error<E>>> {
        let inner = self.inner.borrow();
        let r = inner.count_ending(self.hash, r);
        // The copy to store is made before the table is touched, and its
        // panic only costs the store.
        let store = match &r {
            Ok(v) if inner.stores() => catch_unwind(AssertUnwindSafe(|| v.clone())).ok(),
            _ => None,
        };
        // The guard stays armed until the table is updated: a panic in
        // there (a broken invariant) orphans the flight instead of leaving
        // its waiters asleep.
        let flight = self.flight.as_ref().expect("a driver finishes once");
        let settled = Inner::settle(inner, self.hash, flight, store);
        let flight = self.flight.take().expect("checked above");
        // The table no longer holds the flight; if nobody else does, nobody
        // can be waiting for it, and nothing is cloned for nobody.
        let r = if Arc::strong_count(&flight) == 1 {
            keep.then_some(r)
        } else if keep {
            Flight::end(flight, Shared::of(&r));
            Some(r)
        } else {
            Flight::end(flight, Shared::owned(r));
            None
        };
        drop(settled);
        r
    }
}

impl<K, V, E, R: Borrow<Arc<Inner<K, V, E>>>> Drop for Driver<K, V, E, R> {
    /// `Driven` → `Orphaned`, or `Dropped` when no waiter is registered.
    fn drop(&mut self) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        let mut wakers = None;
        let removed =
            self.inner
                .borrow()
                .shard(self.hash)
                .remove_flight_if(self.hash, &flight, || {
                    wakers = flight.orphan();
                    wakers.is_none()
                });
        drop(flight);
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
        // The key's `Drop` runs last: if it panics, the waiters are awake.
        drop(removed);
    }
}
