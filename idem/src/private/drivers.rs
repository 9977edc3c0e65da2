//! The code the expansion awaits: the body of the function as the work of
//! a flight, in the function's own table or in a `flight = ...`, inline or
//! `detached`.

use std::future::Future;
use std::hash::Hash;

use super::diagnostics::DetachedWork;
use super::key_probe::KeyKind;
use super::return_probe::ReturnKind;
use super::slot::{Config, Slot};
use super::user_flight::Adapter;
use crate::SingleFlight;

/// The body of an `#[idempotent]` function with a table of its own.
///
/// `M` is the type of a closure written in the function (see [`Slot`]).
#[allow(clippy::too_many_arguments)]
pub async fn run<M, Ret, C, K, Cfg, F, Fut>(
    slot: &'static Slot,
    _instantiation: M,
    _return_kind: Ret,
    _kind: C,
    key: K,
    config: Cfg,
    work: F,
) -> Ret::Output
where
    M: 'static,
    Ret: ReturnKind,
    C: KeyKind<K>,
    Cfg: FnOnce() -> Config,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Ret::Output>,
{
    let table = slot.table::<M, C::Key, Ret::Value, Ret::Error>(config);
    let out = table
        .run(C::into_key(key), move || async move {
            Ret::into_result(work().await)
        })
        .await;
    Ret::from_result(out)
}

/// [`run`] with `detached`: the work runs on its own task.
#[allow(clippy::too_many_arguments)]
pub async fn run_detached<M, Ret, C, K, Cfg, F, Fut>(
    slot: &'static Slot,
    _instantiation: M,
    _return_kind: Ret,
    _kind: C,
    key: K,
    config: Cfg,
    work: F,
) -> Ret::Output
where
    M: 'static,
    Ret: ReturnKind,
    C: KeyKind<K>,
    Cfg: FnOnce() -> Config,
    F: FnOnce() -> Fut + DetachedWork,
    Fut: Future<Output = Ret::Output> + DetachedWork,
{
    let table = slot.table::<M, C::Key, Ret::Value, Ret::Error>(config);
    let out = table
        .run_detached(C::into_key(key), move || async move {
            Ret::into_result(work().await)
        })
        .await;
    Ret::from_result(out)
}

/// The body of an `#[idempotent(flight = ...)]` function. The adapter
/// comes from [`fit`](super::fit()), which checks the flight's types against
/// the return type.
pub async fn run_in<K, V, E, R, F, Fut>(
    flight: &SingleFlight<K, V, E>,
    adapter: Adapter<V, E, R>,
    key: K,
    work: F,
) -> R
where
    K: Hash + Eq,
    V: Clone,
    E: Clone,
    F: FnOnce() -> Fut,
    Fut: Future<Output = R>,
{
    let Adapter {
        into_result,
        from_result,
    } = adapter;
    let out = flight
        .run(key, move || async move { into_result(work().await) })
        .await;
    from_result(out)
}

/// [`run_in`] with `detached`.
pub async fn run_in_detached<K, V, E, R, F, Fut>(
    flight: &SingleFlight<K, V, E>,
    adapter: Adapter<V, E, R>,
    key: K,
    work: F,
) -> R
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    R: 'static,
    F: FnOnce() -> Fut + DetachedWork,
    Fut: Future<Output = R> + DetachedWork,
{
    let Adapter {
        into_result,
        from_result,
    } = adapter;
    let out = flight
        .run_detached(key, move || async move { into_result(work().await) })
        .await;
    from_result(out)
}
