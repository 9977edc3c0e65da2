//! What the expansion awaits: the body of the function as the work of a
//! flight, [`run`] inline or [`run_detached`] on a task of its own.
//!
//! Both take the table already found (the function's own,
//! [`own_table`](super::own_table), or a `flight = ...`,
//! [`fit`](super::fit())) and the [`ReturnKind`] that converts between the
//! function's return type and the table's value and error types. They
//! differ only in the method of the table they call and in what that
//! method needs of the body, which they state as bounds of their own: a
//! body that is not `Send` is reported as "required by a bound in
//! `run_detached`", once, at `detached`.

use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use super::diagnostics::DetachedWork;
use super::return_probe::ReturnKind;
use crate::{Error, SingleFlight};

/// The body of an `#[idempotent]` function: `work` runs as the flight of
/// `key` in `table`, driven by the caller that starts it. `name` gives the
/// function's path, for messages: a closure that captures nothing, so that
/// it takes no room in the future.
///
/// Not an `async fn`: its future is the table's, wrapped ([`Answer`]), not
/// one more state machine that would keep a copy of its arguments beside
/// the table's (which has its own). On a cache hit, the moves of the
/// future are most of what the macro costs over a hand-written call: an
/// `async fn` here made it 280 bytes rather than 240 (232 by hand), and a
/// hit 20% dearer rather than 5%, in instructions.
pub fn run<Ret, K, F, Fut, N>(
    table: &SingleFlight<K, Ret::Value, Ret::Error>,
    _return_kind: Ret,
    name: N,
    key: K,
    work: F,
) -> impl Future<Output = Ret::Output> + use<'_, Ret, K, F, Fut, N>
where
    Ret: ReturnKind,
    K: Hash + Eq,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Ret::Output>,
    N: Fn() -> &'static str,
{
    Answer::<Ret, _, _>::new(
        table.run(key, move || async move { Ret::into_result(work().await) }),
        name,
    )
}

/// [`run`] with `detached`: the work runs on its own task.
pub fn run_detached<Ret, K, F, Fut, N>(
    table: &SingleFlight<K, Ret::Value, Ret::Error>,
    _return_kind: Ret,
    name: N,
    key: K,
    work: F,
) -> impl Future<Output = Ret::Output> + use<'_, Ret, K, F, Fut, N>
where
    Ret: ReturnKind,
    K: Hash + Eq + Send + Sync + 'static,
    F: FnOnce() -> Fut + DetachedWork,
    Fut: Future<Output = Ret::Output> + DetachedWork,
    N: Fn() -> &'static str,
{
    Answer::<Ret, _, _>::new(
        table.run_detached(key, move || async move { Ret::into_result(work().await) }),
        name,
    )
}

pin_project_lite::pin_project! {
    /// The future of both drivers: the table's call, and its answer as the
    /// function returns it.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    struct Answer<Ret, Call, N> {
        #[pin]
        call: Call,
        name: N,
        _return_kind: PhantomData<fn() -> Ret>,
    }
}

impl<Ret, Call, N> Answer<Ret, Call, N> {
    #[inline]
    fn new(call: Call, name: N) -> Self {
        Self {
            call,
            name,
            _return_kind: PhantomData,
        }
    }
}

impl<Ret, Call, N> Future for Answer<Ret, Call, N>
where
    Ret: ReturnKind,
    Call: Future<Output = Result<Ret::Value, Error<Ret::Error>>>,
    N: Fn() -> &'static str,
{
    type Output = Ret::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ret::Output> {
        let this = self.project();
        let out = ready!(this.call.poll(cx));
        Poll::Ready(answer::<Ret>(out, this.name))
    }
}

/// The table's answer, as the function `name` returns it: a value, or the
/// work's own error. Anything else becomes a panic of the caller's (see
/// [`fail`]).
#[inline]
fn answer<Ret: ReturnKind>(
    out: Result<Ret::Value, Error<Ret::Error>>,
    name: &impl Fn() -> &'static str,
) -> Ret::Output {
    Ret::from_result(out.map_err(|e| fail(e, name())))
}

/// What a caller of the function `name` does when the flight it was
/// coalesced on did not return a value. The work's own error is returned.
/// A panic, of the work or of the `Clone` of its result for this caller,
/// resumes as a panic with its message (which says which). An aborted
/// flight, whose detached task was dropped before it finished, is a panic
/// that says so, naming the function: the return type has no room for it.
///
/// The match is exhaustive (`Error` is `#[non_exhaustive]` for other
/// crates only): a new kind of error must be given its message here.
fn fail<E>(e: Error<E>, name: &'static str) -> E {
    match e.resume_panic() {
        Error::Failed(e) => e,
        Error::Aborted => aborted(name),
        Error::Panicked(_) => unreachable!("`resume_panic` resumes panics"),
        // Only a `flight = ...` table can be bounded this way today (the
        // macro's own options cannot ask for it yet): say so, naming the
        // function, until the return type can carry a refusal.
        refused @ (Error::Full { .. } | Error::Busy) => refused_call(name, &refused),
    }
}

/// The panic of a caller refused by its table's bounds: nothing ran.
#[cold]
#[inline(never)]
fn refused_call<E>(name: &'static str, refused: &Error<E>) -> ! {
    let why = match refused {
        Error::Busy => "max_in_flight flights are running".to_string(),
        Error::Full { retry_after } => {
            format!("its table is full (Eviction::Never); retry after {retry_after:?}")
        }
        _ => unreachable!("only refusals get here"),
    };
    panic!("idem: a call of `#[idempotent]` fn `{name}` was refused and nothing ran: {why}")
}

/// The panic of a caller whose detached flight was dropped unfinished.
#[cold]
#[inline(never)]
fn aborted(name: &'static str) -> ! {
    panic!(
        "idem: the detached work of `#[idempotent]` fn `{name}` was dropped before it \
         finished: the tokio runtime it was spawned on shut down"
    )
}
