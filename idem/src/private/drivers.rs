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

use super::diagnostics::DetachedWork;
use super::return_probe::ReturnKind;
use crate::{Error, SingleFlight};

/// The body of an `#[idempotent]` function: `work` runs as the flight of
/// `key` in `table`, driven by the caller that starts it.
pub async fn run<Ret, K, F, Fut>(
    table: &SingleFlight<K, Ret::Value, Ret::Error>,
    _return_kind: Ret,
    key: K,
    work: F,
) -> Ret::Output
where
    Ret: ReturnKind,
    K: Hash + Eq,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Ret::Output>,
{
    let out = table
        .run(key, move || async move { Ret::into_result(work().await) })
        .await;
    answer::<Ret>(out)
}

/// [`run`] with `detached`: the work runs on its own task.
pub async fn run_detached<Ret, K, F, Fut>(
    table: &SingleFlight<K, Ret::Value, Ret::Error>,
    _return_kind: Ret,
    key: K,
    work: F,
) -> Ret::Output
where
    Ret: ReturnKind,
    K: Hash + Eq + Send + Sync + 'static,
    F: FnOnce() -> Fut + DetachedWork,
    Fut: Future<Output = Ret::Output> + DetachedWork,
{
    let out = table
        .run_detached(key, move || async move { Ret::into_result(work().await) })
        .await;
    answer::<Ret>(out)
}

/// The table's answer, as the function returns it: a value, or the work's
/// own error. Anything else becomes a panic of the caller's (see [`fail`]).
#[inline]
fn answer<Ret: ReturnKind>(out: Result<Ret::Value, Error<Ret::Error>>) -> Ret::Output {
    Ret::from_result(out.map_err(fail))
}

/// What a caller does when the flight it was coalesced on did not return a
/// value: the work's own error is returned, a panic resumes as a panic with
/// its message.
fn fail<E>(e: Error<E>) -> E {
    match e {
        Error::Failed(e) => e,
        other => resume(other),
    }
}

/// Resumes a panic; any other error here is a detached flight whose task
/// was dropped.
fn resume<E>(e: Error<E>) -> ! {
    let _aborted = e.resume_panic();
    panic!(
        "idem: the detached work of an #[idempotent] fn was dropped before it finished \
         (its tokio runtime shut down)"
    )
}
