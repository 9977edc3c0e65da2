//! One flight: the execution that the callers of one key share, and every
//! way it can end.
//!
//! A flight is created by the caller that finds its key vacant and is put in
//! the table, where every caller that arrives while it runs finds it. The
//! caller running its work is the *driver* (it holds a [`Driver`] guard);
//! the others are *waiters* (each polls a [`Waiter`]). The driver can be
//! dropped before the work is done (a timeout, a client gone): the flight
//! then outlives it, and the first waiter to be polled drives it next with
//! its own work. The waiters stay attached to the one flight through any
//! number of drivers and all get its outcome, however late they are polled
//! (moka#59 and async_singleflight#12 are the bugs a re-claim from the table
//! causes instead: a waiter polled after the takeover finished finds the key
//! free and runs its own work).
//!
//! # States
//!
//! | from | event | to | by | the table |
//! |---|---|---|---|---|
//! | (new) | a caller finds the key vacant | `Driven` | that caller | the flight is inserted |
//! | `Driven` | the work ends (value, error or panic) | `Done` | the driver ([`Driver::finish`]) | entry replaced by the stored result, or removed, *before* the flight ends |
//! | `Driven` | the driver is dropped; some waiter registered | `Orphaned` | the driver's guard | unchanged: new callers join the orphan |
//! | `Driven` | the driver is dropped; no waiter registered | `Dropped` | the driver's guard | entry removed under the same shard lock |
//! | `Orphaned` | a waiter (or a new caller) is polled | `Driven` | that caller, now the driver | unchanged |
//! | `Orphaned` | the last registered waiter leaves | `Dropped` | that waiter | entry removed under the same shard lock |
//!
//! `Done` and `Dropped` are final. The invariant that makes the table safe:
//! **a flight leaves the table before it ends** (in the same critical
//! section of the shard lock for `Dropped`), so a caller that looks its key
//! up again never finds a flight that is over, and "re-claim, find the same
//! dead flight, re-claim" cannot loop. A caller that holds a `Dropped`
//! flight (it found it in the table just before the last waiter left)
//! removes it from the table if it is somehow still there, then looks its
//! key up again.
//!
//! A *registered* waiter is one that has been polled and is waiting (it
//! owns a slot in the waker slab); a caller that holds the flight but has
//! not been polled yet does not count, and will find the flight `Done`,
//! `Orphaned` (and drive it) or `Dropped` (and look again) when it is.
//!
//! Lock order: a shard's lock, then a flight's mutex. User code never runs
//! under either: results are handed out as a shared [`Arc`] and cloned by
//! each waiter after the mutex is released.

mod driver;
mod waiter;

pub(crate) use driver::Driver;
pub(crate) use waiter::{Waited, Waiter};

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Waker;

use crate::error::Panicked;
use crate::sync::{Arc, Mutex};
use crate::Error;

/// The shared state of one execution.
pub(crate) struct Flight<V, E> {
    state: Mutex<State<V, E>>,
}

enum Phase<V, E> {
    /// A caller is running work for the flight.
    Driven,
    /// The driver was dropped before the work ended; the registered waiters
    /// were woken, and the first to be polled drives next.
    Orphaned,
    /// The work ended; every waiter gets a clone of this.
    Done(Shared<V, E>),
    /// Orphaned with nobody registered, and out of the table.
    Dropped,
}

/// A flight's result, as its waiters share it. A value is behind an `Arc`
/// so that each waiter clones it after the mutex is released (values are
/// `Sync`); an error is cloned under the mutex, because `E` need only be
/// `Send`.
enum Shared<V, E> {
    Value(Arc<V>),
    Error(Error<E>),
}

impl<V, E> Shared<V, E> {
    /// The result itself, to share: for a driver that does not need it
    /// back (a detached task).
    fn owned(result: Result<V, Error<E>>) -> Self {
        match result {
            Ok(v) => Shared::Value(Arc::new(v)),
            Err(e) => Shared::Error(e),
        }
    }
}

impl<V: Clone, E: Clone> Shared<V, E> {
    /// The copy to share, made by the driver. A `Clone` that panics gives
    /// the waiters [`Error::Panicked`] instead, never a second execution.
    fn of(result: &Result<V, Error<E>>) -> Self {
        match catch_unwind(AssertUnwindSafe(|| result.clone())) {
            Ok(Ok(v)) => Shared::Value(Arc::new(v)),
            Ok(Err(e)) => Shared::Error(e),
            Err(p) => Shared::Error(Error::Panicked(Panicked::in_clone(&*p))),
        }
    }
}

struct State<V, E> {
    phase: Phase<V, E>,
    /// A slab of registered waiters' wakers: each waiter keeps its index,
    /// replaces its waker on re-poll, and clears it and frees the index when
    /// it stops waiting, so waiters that come and go (clients timing out and
    /// retrying) reuse slots instead of growing the slab.
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl<V, E> State<V, E> {
    fn registered(&self) -> usize {
        self.wakers.len() - self.free.len()
    }

    fn unregister(&mut self, slot: usize) {
        // The slab is emptied when the flight ends; a stale index then
        // points past its end and there is nothing to free.
        if let Some(w) = self.wakers.get_mut(slot) {
            *w = None;
            self.free.push(slot);
        }
    }

    /// The wakers of every registered waiter, to wake once the mutex is
    /// released.
    fn wakers(&self) -> Vec<Waker> {
        self.wakers.iter().flatten().cloned().collect()
    }
}

impl<V, E> Flight<V, E> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                phase: Phase::Driven,
                wakers: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    /// `Driven` → `Done`: publishes the result and wakes every registered
    /// waiter. The table must no longer hold the flight. The driver's
    /// handle is let go before the wake-up, so that a waiter left alone
    /// with the flight can take the value instead of cloning it.
    /// (An associated function: loom's `Arc` cannot be a receiver.)
    fn end(this: Arc<Self>, result: Shared<V, E>) {
        let wakers = {
            let mut state = this.state.lock();
            debug_assert!(matches!(state.phase, Phase::Driven));
            state.phase = Phase::Done(result);
            state.free = Vec::new();
            std::mem::take(&mut state.wakers)
        };
        drop(this);
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    /// `Driven` → `Orphaned` (returns the wakers to wake) when a waiter is
    /// registered, else `Driven` → `Dropped` (returns `None`; the caller
    /// holds the shard lock and removes the entry).
    fn orphan(&self) -> Option<Vec<Waker>> {
        let mut state = self.state.lock();
        if !matches!(state.phase, Phase::Driven) {
            // Already ended: the guard of a driver that finished is
            // disarmed, so only a broken invariant gets here.
            return Some(Vec::new());
        }
        if state.registered() == 0 {
            state.phase = Phase::Dropped;
            None
        } else {
            state.phase = Phase::Orphaned;
            Some(state.wakers())
        }
    }

    /// `Orphaned` → `Dropped` if no waiter is registered. Called under the
    /// shard lock by the last waiter to leave; `true` if the caller must
    /// remove the entry.
    fn drop_if_unattended(&self) -> bool {
        let mut state = self.state.lock();
        if matches!(state.phase, Phase::Orphaned) && state.registered() == 0 {
            state.phase = Phase::Dropped;
            true
        } else {
            false
        }
    }
}

impl Panicked {
    /// A panic of the `Clone` of a result that had to be handed to a caller.
    fn in_clone(payload: &(dyn std::any::Any + Send)) -> Self {
        let inner = Panicked::from_payload(payload);
        Panicked::from_message(format!(
            "the work succeeded, but cloning its result for this caller panicked: {}",
            inner.message()
        ))
    }
}

/// Runs a `Clone` for one caller: one that panics costs this caller its
/// copy (it gets [`Error::Panicked`]), never a second execution.
fn clone_for_caller<V, E>(clone: impl FnOnce() -> Result<V, Error<E>>) -> Result<V, Error<E>> {
    catch_unwind(AssertUnwindSafe(clone))
        .unwrap_or_else(|p| Err(Error::Panicked(Panicked::in_clone(&*p))))
}

/// Ends a flight nobody waits on (`Dropped`) without touching the table:
/// the broken invariant a test needs to stage.
#[cfg(all(test, not(idem_loom)))]
pub(crate) fn orphan_for_test<V, E>(flight: &Flight<V, E>) -> bool {
    flight.orphan().is_none()
}

#[cfg(all(test, not(idem_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_registered_count_follows_the_slab() {
        let flight = Flight::<u8, ()>::new();
        let mut state = flight.state.lock();
        state.wakers = vec![
            Some(Waker::noop().clone()),
            None,
            Some(Waker::noop().clone()),
        ];
        state.free = vec![1];
        assert_eq!(state.registered(), 2);
        state.unregister(0);
        assert_eq!(state.registered(), 1);
        state.unregister(7);
        assert_eq!(state.registered(), 1, "a stale index frees nothing");
    }
}
