//! One flight: the execution that the callers of one key share.
//!
//! A flight is created by the caller that finds its key vacant (the leader)
//! and is shared, through the table, with every caller that arrives while it
//! runs (the waiters). It ends in exactly one of three ways, each of which
//! wakes every waiter:
//!
//! * `Done(Ok)` / `Done(Err)`: the work finished or failed, or panicked
//!   (caught, delivered as [`Error::Panicked`]); every waiter gets a clone.
//! * `Abandoned`: the leader was dropped before the work finished (the
//!   caller timed out or was cancelled). Waiters go back to the table, where
//!   exactly one of them starts a new flight with its own work and the others
//!   join it (moka#59, async_singleflight#12 are the bugs this avoids).
//!
//! The leader holds a guard (`Leader`, in the table module) whose `Drop`
//! abandons the flight, so no path leaves a waiter asleep.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::sync::{Arc, Mutex};

use crate::Error;

/// How a flight ended, as seen by one waiter.
pub(crate) enum Ended<V, E> {
    Done(Result<V, Error<E>>),
    Abandoned,
}

enum Phase<V, E> {
    Running,
    Done(Result<V, Error<E>>),
    Abandoned,
}

struct State<V, E> {
    phase: Phase<V, E>,
    /// A slab of waiters' wakers: each waiter keeps its index, replaces its
    /// waker on re-poll and clears it on drop.
    wakers: Vec<Option<Waker>>,
}

/// The shared state of one execution.
pub(crate) struct Flight<V, E> {
    state: Mutex<State<V, E>>,
}

impl<V, E> Flight<V, E> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                phase: Phase::Running,
                wakers: Vec::new(),
            }),
        }
    }

    /// Records how the flight ended and wakes every waiter. Only the first
    /// call has an effect; the wakers are woken outside the lock.
    pub(crate) fn end(&self, ended: Ended<V, E>) {
        let wakers = {
            let mut state = self.state.lock();
            if !matches!(state.phase, Phase::Running) {
                return;
            }
            state.phase = match ended {
                Ended::Done(r) => Phase::Done(r),
                Ended::Abandoned => Phase::Abandoned,
            };
            std::mem::take(&mut state.wakers)
        };
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }
}

/// Waits for a flight to end. Dropping it deregisters the waiter and
/// disturbs nobody else.
pub(crate) struct Wait<V, E> {
    flight: Arc<Flight<V, E>>,
    slot: Option<usize>,
}

impl<V, E> Wait<V, E> {
    pub(crate) fn new(flight: Arc<Flight<V, E>>) -> Self {
        Self { flight, slot: None }
    }
}

impl<V: Clone, E: Clone> Future for Wait<V, E> {
    type Output = Ended<V, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut state = this.flight.state.lock();
        match &state.phase {
            Phase::Done(r) => {
                let r = r.clone();
                drop(state);
                this.slot = None;
                Poll::Ready(Ended::Done(r))
            }
            Phase::Abandoned => {
                drop(state);
                this.slot = None;
                Poll::Ready(Ended::Abandoned)
            }
            Phase::Running => {
                match this.slot {
                    Some(i) => match &mut state.wakers[i] {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        w => *w = Some(cx.waker().clone()),
                    },
                    None => {
                        this.slot = Some(state.wakers.len());
                        state.wakers.push(Some(cx.waker().clone()));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<V, E> Drop for Wait<V, E> {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let mut state = self.flight.state.lock();
            // The vector is emptied when the flight ends; a stale index then
            // points past its end.
            if let Some(w) = state.wakers.get_mut(i) {
                *w = None;
            }
        }
    }
}
