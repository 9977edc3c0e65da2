//! What the expansion awaits: the body of the function as the work of a
//! flight, [`run`] inline or [`run_detached`] on a task of its own, and
//! with `fingerprint = ...`, [`run_with_fingerprint`] or
//! [`run_detached_with_fingerprint`].
//!
//! All take the table already found (the function's own,
//! [`own_table`](super::own_table), or a `flight = ...`,
//! [`fit`](super::fit())), the [`ReturnKind`] that converts between the
//! function's return type and the table's value and error types, and the
//! [`OnRefusal`] marker that says what a refused call returns; the
//! fingerprinted ones also the call's [`Fingerprint`] and the
//! [`OnMismatch`] marker that says what a mismatched call returns. They
//! differ only in the method of the table they call and in what that
//! method needs of the body, which they state as bounds of their own: a
//! body that is not `Send` is reported as "required by a bound in
//! `run_detached`", once, at `detached`.

use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use super::diagnostics::DetachedWork;
use super::fingerprint_probe::{NoFingerprint, OnMismatch};
use super::refusal_probe::OnRefusal;
use super::return_probe::ReturnKind;
use crate::{Error, Fingerprint, Refused, SingleFlight};

/// The body of an `#[idempotent]` function: `work` runs as the flight of
/// `key` in `table`, driven by the caller that starts it. A refusal of the
/// table's is returned or is a panic, as `_refusals` says. `name` gives the
/// function's path, for messages: a closure that captures nothing, so that
/// it takes no room in the future.
///
/// Not an `async fn`: its future is the table's, wrapped ([`Answer`]), not
/// one more state machine that would keep a copy of its arguments beside
/// the table's (which has its own). On a cache hit, the moves of the
/// future are most of what the macro costs over a hand-written call: an
/// `async fn` here made it 280 bytes rather than 240 (232 by hand), and a
/// hit 20% dearer rather than 5%, in instructions.
pub fn run<Ret, Rf, K, S, F, Fut, N>(
    table: &SingleFlight<K, Ret::Value, Ret::Error, S>,
    _return_kind: Ret,
    _refusals: Rf,
    name: N,
    key: K,
    work: F,
) -> impl Future<Output = Ret::Output> + use<'_, Ret, Rf, K, S, F, Fut, N>
where
    Ret: ReturnKind,
    Rf: OnRefusal<Ret>,
    K: Hash + Eq,
    S: BuildHasher,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Ret::Output>,
    N: Fn() -> &'static str,
{
    Answer::<Ret, Rf, NoFingerprint, _, _>::new(
        table.run(key, move || async move { Ret::into_result(work().await) }),
        name,
    )
}

/// [`run`] with `detached`: the work runs on its own task.
pub fn run_detached<Ret, Rf, K, S, F, Fut, N>(
    table: &SingleFlight<K, Ret::Value, Ret::Error, S>,
    _return_kind: Ret,
    _refusals: Rf,
    name: N,
    key: K,
    work: F,
) -> impl Future<Output = Ret::Output> + use<'_, Ret, Rf, K, S, F, Fut, N>
where
    Ret: ReturnKind,
    Rf: OnRefusal<Ret>,
    K: Hash + Eq + Send + Sync + 'static,
    S: BuildHasher,
    F: FnOnce() -> Fut + DetachedWork,
    Fut: Future<Output = Ret::Output> + DetachedWork,
    N: Fn() -> &'static str,
{
    Answer::<Ret, Rf, NoFingerprint, _, _>::new(
        table.run_detached(key, move || async move { Ret::into_result(work().await) }),
        name,
    )
}

/// [`run`] with `fingerprint = ...`: the call carries the `fingerprint` of
/// what it asks for (`SingleFlight::run_with_fingerprint`), and a call
/// whose key is running or stored for another fingerprint returns the
/// mismatch as `_mismatch` says, without running `work`.
#[allow(
    clippy::too_many_arguments,
    reason = "each is one thing the expansion found; a struct would be one more to build"
)]
pub fn run_with_fingerprint<Ret, Rf, Mm, K, S, F, Fut, N>(
    table: &SingleFlight<K, Ret::Value, Ret::Error, S>,
    _return_kind: Ret,
    _refusals: Rf,
    _mismatch: Mm,
    name: N,
    key: K,
    fingerprint: Fingerprint,
    work: F,
) -> impl Future<Output = Ret::Output> + use<'_, Ret, Rf, Mm, K, S, F, Fut, N>
where
    Ret: ReturnKind,
    Rf: OnRefusal<Ret>,
    Mm: OnMismatch<Ret>,
    K: Hash + Eq,
    S: BuildHasher,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Ret::Output>,
    N: Fn() -> &'static str,
{
    Answer::<Ret, Rf, Mm, _, _>::new(
        table.run_with_fingerprint(key, fingerprint, move || async move {
            Ret::into_result(work().await)
        }),
        name,
    )
}

/// [`run_with_fingerprint`] with `detached`: the work runs on its own task.
#[allow(
    clippy::too_many_arguments,
    reason = "each is one thing the expansion found; a struct would be one more to build"
)]
pub fn run_detached_with_fingerprint<Ret, Rf, Mm, K, S, F, Fut, N>(
    table: &SingleFlight<K, Ret::Value, Ret::Error, S>,
    _return_kind: Ret,
    _refusals: Rf,
    _mismatch: Mm,
    name: N,
    key: K,
    fingerprint: Fingerprint,
    work: F,
) -> impl Future<Output = Ret::Output> + use<'_, Ret, Rf, Mm, K, S, F, Fut, N>
where
    Ret: ReturnKind,
    Rf: OnRefusal<Ret>,
    Mm: OnMismatch<Ret>,
    K: Hash + Eq + Send + Sync + 'static,
    S: BuildHasher,
    F: FnOnce() -> Fut + DetachedWork,
    Fut: Future<Output = Ret::Output> + DetachedWork,
    N: Fn() -> &'static str,
{
    Answer::<Ret, Rf, Mm, _, _>::new(
        table.run_detached_with_fingerprint(key, fingerprint, move || async move {
            Ret::into_result(work().await)
        }),
        name,
    )
}

pin_project_lite::pin_project! {
    /// The future of both drivers: the table's call, and its answer as the
    /// function returns it.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    struct Answer<Ret, Rf, Mm, Call, N> {
        #[pin]
        call: Call,
        name: N,
        _kinds: PhantomData<fn() -> (Ret, Rf, Mm)>,
    }
}

impl<Ret, Rf, Mm, Call, N> Answer<Ret, Rf, Mm, Call, N> {
    #[inline]
    fn new(call: Call, name: N) -> Self {
        Self {
            call,
            name,
            _kinds: PhantomData,
        }
    }
}

impl<Ret, Rf, Mm, Call, N> Future for Answer<Ret, Rf, Mm, Call, N>
where
    Ret: ReturnKind,
    Rf: OnRefusal<Ret>,
    Mm: OnMismatch<Ret>,
    Call: Future<Output = Result<Ret::Value, Error<Ret::Error>>>,
    N: Fn() -> &'static str,
{
    type Output = Ret::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ret::Output> {
        let this = self.project();
        let out = ready!(this.call.poll(cx));
        Poll::Ready(answer::<Ret, Rf, Mm>(out, this.name))
    }
}

/// The table's answer, as the function `name` returns it: a value, the
/// work's own error, a refusal as `Rf` says, or a mismatch as `Mm` says.
/// Anything else becomes a panic of the caller's (see [`fail`]).
#[inline]
fn answer<Ret: ReturnKind, Rf: OnRefusal<Ret>, Mm: OnMismatch<Ret>>(
    out: Result<Ret::Value, Error<Ret::Error>>,
    name: &impl Fn() -> &'static str,
) -> Ret::Output {
    Ret::from_result(out.map_err(|e| fail::<Ret, Rf, Mm>(e, name())))
}

/// What a caller of the function `name` does when the flight it was
/// coalesced on did not return a value. The work's own error is returned.
/// A refusal of the table's (nothing ran) is returned as
/// `Err(E::from(Refused::..))` or is a panic naming the function, as `Rf`
/// says. A mismatch (the key is running or stored for a call with another
/// fingerprint; nothing ran) is returned as `Err(E::from(Mismatch))`, as
/// `Mm` says: only a call with a fingerprint can get one. A panic, of the
/// work or of the `Clone` of its result for this caller, resumes as a
/// panic with its message (which says which). An aborted flight, whose
/// detached task was dropped before it finished, is a panic that says so,
/// naming the function: the return type has no room for it.
///
/// The match is exhaustive (`Error` is `#[non_exhaustive]` for other
/// crates only): a new kind of error must be given its message here.
fn fail<Ret: ReturnKind, Rf: OnRefusal<Ret>, Mm: OnMismatch<Ret>>(
    e: Error<Ret::Error>,
    name: &'static str,
) -> Ret::Error {
    match e.resume_panic() {
        Error::Failed(e) => e,
        Error::Aborted => aborted(name),
        Error::Panicked(_) => unreachable!("`resume_panic` resumes panics"),
        Error::Full { retry_after } => Rf::refused(Refused::Full { retry_after }, name),
        Error::Busy => Rf::refused(Refused::Busy, name),
        Error::Mismatch => Mm::mismatch(name),
    }
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
