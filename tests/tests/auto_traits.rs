//! Pins the auto traits of the handle and of every future it returns, so a
//! change that loses `Send` (say, a lock guard held across an `.await`) is
//! caught here rather than in a user's `tokio::spawn`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use idem::{BuildError, Builder, Error, Outcome, Panicked, SingleFlight, Stats};

fn send_sync<T: Send + Sync>(_: &T) {}
fn send<T: Send>(_: &T) {}
fn is_static<T: 'static>(_: &T) {}
fn unpin<T: Unpin>() {}
fn clone<T: Clone>() {}
fn error<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn the_handle_is_send_sync_clone_and_unpin() {
    type Table = SingleFlight<String, Arc<[u8; 64]>, String>;
    let t = Table::new();
    send_sync(&t);
    is_static(&t);
    unpin::<Table>();
    clone::<Table>();
    // Clone needs no `Clone` on the key type.
    #[derive(Hash, PartialEq, Eq)]
    struct NotClone;
    clone::<SingleFlight<NotClone, u8>>();
    send_sync(&SingleFlight::<u8, u8>::builder());
    unpin::<Builder<u8, u8, ()>>();
}

#[test]
fn the_small_types_are_plain_values() {
    fn copy<T: Copy + Send + Sync + 'static>() {}
    copy::<Outcome>();
    copy::<Stats>();
    error::<Error<std::fmt::Error>>();
    error::<Panicked>();
    error::<BuildError>();
    send_sync(&Error::<Infallible>::Aborted);
}

#[test]
fn every_future_is_send_when_its_work_is() {
    let t: SingleFlight<u64, Arc<String>, String> = SingleFlight::new();
    let work = || async { Ok(Arc::new(String::new())) };
    send(&t.run(1, work));
    send(&t.run_with_outcome(1, work));
    send(&t.run_detached(1, work));
    send(&t.run_detached_with_outcome(1, work));
    // The work may borrow locals and stay `Send`.
    let local = String::from("borrowed");
    let borrowed = || async { Ok(Arc::new(local.clone())) };
    let fut = t.run(2, borrowed);
    send(&fut);
    fn assert_future<F: Future>(_: &F) {}
    assert_future(&fut);
}

#[test]
fn errors_need_not_be_sync() {
    // A `Cell` is `Send` but not `Sync`: fine as an error type, even for a
    // table that stores results and for detached work.
    type E = std::cell::Cell<u8>;
    let t: SingleFlight<u64, u8, E> = SingleFlight::builder()
        .ttl(std::time::Duration::from_secs(1))
        .build()
        .unwrap();
    send_sync(&t);
    send(&t.run_detached(1, || async { Ok(1) }));
}
