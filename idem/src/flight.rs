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
    /// waker on re-poll, and clears it and frees the index on drop, so
    /// waiters that come and go (clients timing out and retrying) reuse
    /// slots instead of growing the slab.
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
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
                free: Vec::new(),
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
            state.free = Vec::new();
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
                        let waker = Some(cx.waker().clone());
                        this.slot = Some(match state.free.pop() {
                            Some(i) => {
                                state.wakers[i] = waker;
                                i
                            }
                            None => {
                                state.wakers.push(waker);
                                state.wakers.len() - 1
                            }
                        });
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
            // The slab is emptied when the flight ends; a stale index then
            // points past its end and there is nothing to free.
            if let Some(w) = state.wakers.get_mut(i) {
                *w = None;
                state.free.push(i);
            }
        }
    }
}

#[cfg(all(test, not(idem_loom)))]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn waiters_that_come_and_go_reuse_slots() {
        let flight = Arc::new(Flight::<u8, ()>::new());
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..10_000 {
            let mut a = Wait::new(Arc::clone(&flight));
            let mut b = Wait::new(Arc::clone(&flight));
            assert!(Pin::new(&mut a).poll(&mut cx).is_pending());
            assert!(Pin::new(&mut b).poll(&mut cx).is_pending());
        }
        assert_eq!(flight.state.lock().wakers.len(), 2);
        let mut c = Wait::new(Arc::clone(&flight));
        assert!(Pin::new(&mut c).poll(&mut cx).is_pending());
        flight.end(Ended::Done(Ok(1)));
        assert!(matches!(
            Pin::new(&mut c).poll(&mut cx),
            Poll::Ready(Ended::Done(Ok(1)))
        ));
    }
}
