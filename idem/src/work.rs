//! Running the user's work: catching its panics and noticing when it calls
//! back into a flight it is itself computing.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::task::Poll;

use crate::error::Panicked;

#[cfg(not(idem_loom))]
std::thread_local! {
    /// Identities of the flights whose work is being polled on this thread,
    /// innermost last. A call that would wait on one of them is a call from
    /// inside that very work: it would wait for itself forever.
    static POLLING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

#[cfg(idem_loom)]
loom::thread_local! {
    static POLLING: RefCell<Vec<usize>> = RefCell::new(Vec::new());
}

/// Whether the work of flight `id` is being polled further up this thread's
/// stack.
pub(crate) fn is_polling(id: usize) -> bool {
    POLLING.with(|p| p.borrow().contains(&id))
}

/// Pops the flight identity even if polling the work unwinds.
struct Polling;

impl Polling {
    fn enter(id: usize) -> Self {
        POLLING.with(|p| p.borrow_mut().push(id));
        Polling
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        POLLING.with(|p| {
            p.borrow_mut().pop();
        });
    }
}

/// Creates and drives a flight's work: the closure call, every poll of its
/// future and the future's drop once it is done run inside `catch_unwind`,
/// and while they run the flight's identity is on this thread's
/// [`POLLING`] stack. The work's future is pinned in place, inside the
/// caller's own future: no allocation.
///
/// A future whose `Drop` panics after it returned counts as panicked work:
/// its result is not delivered, so that the panic reaches every caller as
/// [`Panicked`] (the flight is not abandoned and run again).
pub(crate) async fn run_work<F, Fut, T>(id: usize, f: F) -> Result<T, Panicked>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    let fut = {
        let _polling = Polling::enter(id);
        catch_unwind(AssertUnwindSafe(f)).map_err(|p| Panicked::from_payload(&*p))?
    };
    let mut fut = pin!(Some(fut));
    poll_fn(|cx| {
        let _polling = Polling::enter(id);
        let Some(running) = fut.as_mut().as_pin_mut() else {
            unreachable!("the work is not polled after it is done")
        };
        let out = match catch_unwind(AssertUnwindSafe(|| running.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(out)) => Ok(out),
            Err(payload) => Err(Panicked::from_payload(&*payload)),
        };
        // Done: drop the future here, where its panics are caught.
        let dropped = catch_unwind(AssertUnwindSafe(|| fut.set(None)));
        Poll::Ready(match (out, dropped) {
            (Ok(_), Err(payload)) => Err(Panicked::from_payload(&*payload)),
            (out, _) => out,
        })
    })
    .await
}
