//! Waiting on a flight: the caller that found its key running.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{clone_for_caller, Flight, Phase, Shared};
use crate::sync::Arc;
use crate::table::Shard;
use crate::Error;

/// What a waiter got.
pub(crate) enum Waited<V, E> {
    /// The flight ended: this caller's copy of its result.
    Done(Result<V, Error<E>>),
    /// The flight's driver was dropped and this caller drives it now: it
    /// must run its own work and [`finish`](super::Driver::finish) the
    /// flight.
    Lead(Arc<Flight<V, E>>),
    /// The flight's driver was dropped, and this caller, which brought no
    /// work of its own, cannot drive it.
    Orphaned,
    /// The flight is over without a result and out of the table: the caller
    /// looks its key up again.
    Gone(Arc<Flight<V, E>>),
}

/// Waits for a flight to end, or to need a driver. Dropping it
/// deregisters the waiter and disturbs nobody else; the last registered
/// waiter of an orphaned flight takes it out of the table.
pub(crate) struct Waiter<'a, K, V, E> {
    shard: &'a Shard<K, V, E>,
    hash: u64,
    flight: Option<Arc<Flight<V, E>>>,
    slot: Option<usize>,
    /// Whether the caller has work of its own to drive an orphaned flight
    /// with.
    may_lead: bool,
}

impl<'a, K, V, E> Waiter<'a, K, V, E> {
    pub(crate) fn new(
        shard: &'a Shard<K, V, E>,
        hash: u64,
        flight: Arc<Flight<V, E>>,
        may_lead: bool,
    ) -> Self {
        Self {
            shard,
            hash,
            flight: Some(flight),
            slot: None,
            may_lead,
        }
    }

    /// The flight's identity, for the re-entrancy check.
    pub(crate) fn flight_id(&self) -> usize {
        super::driver::flight_id(self.flight.as_ref().expect("not yet polled"))
    }
}

impl<K, V: Clone, E: Clone> Future for Waiter<'_, K, V, E> {
    type Output = Waited<V, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let flight = this
            .flight
            .as_ref()
            .expect("a waiter is not polled once ready");
        let mut state = flight.state.lock();
        match &state.phase {
            Phase::Driven => {
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
                return Poll::Pending;
            }
            // Left registered: dropping the waiter unregisters it, and
            // takes the orphan out of the table if it was the last.
            Phase::Orphaned if !this.may_lead => return Poll::Ready(Waited::Orphaned),
            _ => {}
        }
        if let Some(slot) = this.slot.take() {
            state.unregister(slot);
        }
        let waited = match &state.phase {
            Phase::Done(Shared::Error(e)) => {
                let r = clone_for_caller(|| Err(e.clone()));
                drop(state);
                this.flight = None;
                return Poll::Ready(Waited::Done(r));
            }
            Phase::Done(Shared::Value(v)) => {
                // The last handle on the flight (its driver let go before
                // the wake-up, the table holds it no more): nobody else can
                // read the value, take it.
                let v = if Arc::strong_count(flight) == 1 {
                    match std::mem::replace(&mut state.phase, Phase::Dropped) {
                        Phase::Done(Shared::Value(v)) => v,
                        _ => unreachable!("matched above"),
                    }
                } else {
                    Arc::clone(v)
                };
                drop(state);
                this.flight = None;
                // Cloned here, outside the flight's mutex, unless this
                // waiter held the only copy.
                let v = match Arc::try_unwrap(v) {
                    Ok(v) => Ok(v),
                    Err(v) => clone_for_caller(|| Ok(V::clone(&v))),
                };
                return Poll::Ready(Waited::Done(v));
            }
            Phase::Orphaned => {
                state.phase = Phase::Driven;
                drop(state);
                Waited::Lead
            }
            Phase::Dropped => {
                drop(state);
                Waited::Gone
            }
            Phase::Driven => unreachable!("handled above"),
        };
        let flight = this.flight.take().expect("checked above");
        Poll::Ready(waited(flight))
    }
}

impl<K, V, E> Drop for Waiter<'_, K, V, E> {
    fn drop(&mut self) {
        let (Some(flight), Some(slot)) = (self.flight.take(), self.slot) else {
            return;
        };
        let last_of_an_orphan = {
            let mut state = flight.state.lock();
            state.unregister(slot);
            matches!(state.phase, Phase::Orphaned) && state.registered() == 0
        };
        if last_of_an_orphan {
            // Checked again under the shard lock: a new caller may have
            // found the orphan and started driving it meanwhile.
            let removed = self
                .shard
                .remove_flight_if(self.hash, &flight, || flight.drop_if_unattended());
            drop(flight);
            drop(removed);
        }
    }
}
