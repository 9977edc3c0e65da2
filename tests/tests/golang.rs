//! A port of the tests of Go's `singleflight` package to idem.
//!
//! Ported from `singleflight/singleflight_test.go` of `golang.org/x/sync`,
//! <https://github.com/golang/sync/blob/master/singleflight/singleflight_test.go>,
//! and, for the `ForgetUnshared` tests, from Go's own
//! `src/internal/singleflight/singleflight_test.go`,
//! <https://github.com/golang/go/blob/master/src/internal/singleflight/singleflight_test.go>.
//! The originals are Copyright 2013 The Go Authors and are distributed under
//! the BSD-3-Clause license reproduced below. The Rust code here is a
//! rewrite, not a translation line by line: each test keeps the scenario and
//! the property its Go ancestor checks, expressed with idem's API.
//!
//! How Go's API maps onto idem's:
//!
//! | Go `singleflight.Group`        | idem `SingleFlight`                               |
//! |--------------------------------|---------------------------------------------------|
//! | `Do(key, fn)`                  | [`SingleFlight::run`] / `run_with_outcome`        |
//! | `DoChan(key, fn)`              | `tokio::spawn` of [`SingleFlight::run_detached`]  |
//! | the `shared` result            | [`Outcome::Coalesced`] (for the callers that joined) |
//! | `Forget(key)`                  | [`SingleFlight::forget`]                          |
//! | a panic in `fn`, re-raised     | [`Error::Panicked`] (re-raise: [`Error::resume_panic`]) |
//! | `runtime.Goexit` in `fn`       | the task driving the work is cancelled            |
//! | `ForgetUnshared(key)`          | no counterpart; see `forget_unshared`             |
//!
//! Two differences run through the whole file. Go's leader also reports
//! `shared == true` once somebody joined it; idem's leader always sees
//! [`Outcome::Executed`]. And Go's tests let goroutines "enter `Do`" by
//! sleeping; here, callers are either [`Probe`]s polled by hand or tasks on a
//! paused tokio clock, so every interleaving the assertions rely on is forced,
//! and real-time timeouts appear only as hang detectors.

// Copyright 2013 The Go Authors. All rights reserved.
//
// Redistribution and use in source and binary forms, with or without
// modification, are permitted provided that the following conditions are
// met:
//
//    * Redistributions of source code must retain the above copyright
// notice, this list of conditions and the following disclaimer.
//    * Redistributions in binary form must reproduce the above
// copyright notice, this list of conditions and the following disclaimer
// in the documentation and/or other materials provided with the
// distribution.
//    * Neither the name of Google LLC nor the names of its
// contributors may be used to endorse or promote products derived from
// this software without specific prior written permission.
//
// THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
// "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
// LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR
// A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
// OWNER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
// SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
// LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
// DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
// THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
// (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
// OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use idem::{Error, Outcome, SingleFlight};
use idem_tests::{Counter, Gate, Probe};
use tokio::sync::{mpsc, watch, Semaphore};

/// Real time after which a test that should have finished is declared hung
/// (Go's tests use one second; debug builds on a loaded machine get more).
const HANG: Duration = Duration::from_secs(10);

/// `TestDo`: a lone call runs its work and returns the value.
///
/// Go also checks the dynamic type of the value; in Rust the table's `V`
/// fixes it at compile time. A lone caller is not shared: `Executed`.
#[tokio::test]
async fn do_simple() {
    let flight: SingleFlight<&str, &str> = SingleFlight::new();
    let (v, outcome) = flight.run_with_outcome("key", || async { Ok("bar") }).await;
    assert_eq!(v, Ok("bar"));
    assert_eq!(outcome, Outcome::Executed);
    assert!(flight.is_empty());
}

/// `TestDoErr`: the work's error comes back as is: the very same error
/// value (Go compares the interface for identity; here the `Arc` is the
/// same allocation), and no value.
#[tokio::test]
async fn do_err() {
    let flight: SingleFlight<&str, &str, Arc<std::io::Error>> = SingleFlight::new();
    let some_err = Arc::new(std::io::Error::other("a failure of our own"));
    let res = flight
        .run("key", || async { Err(Arc::clone(&some_err)) })
        .await;
    match res {
        Err(Error::Failed(e)) => assert!(Arc::ptr_eq(&e, &some_err), "a different error: {e}"),
        other => panic!("expected the work's error, got {other:?}"),
    }
    assert_eq!(flight.stats().failures, 1);
    assert!(flight.is_empty());
}

/// `TestDoDupSuppress`: ten callers arrive while the first execution is
/// blocked; they share it.
///
/// Go's goroutines signal a WaitGroup before entering `Do` and its work
/// sleeps 10 ms "to let more goroutines enter"; it then accepts any number of
/// executions from 1 to n-1. Here the WaitGroup is a semaphore, the value
/// channel that the work pumps is a `watch`, and the 10 ms sleep runs on the
/// paused clock of a single-threaded runtime, which only advances once every
/// task is idle, that is, once every caller is parked inside `run`. That
/// makes the outcome exact: one execution, nine coalesced callers.
#[tokio::test(start_paused = true)]
async fn do_dup_suppress() {
    const N: usize = 10;
    let flight: SingleFlight<&'static str, String> = SingleFlight::new();
    let calls = Counter::new();
    let (value_tx, value_rx) = watch::channel(None::<String>);
    // A WaitGroup: one permit per caller about to call, one for the first
    // execution once it has started.
    let arrived = Arc::new(Semaphore::new(0));

    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let (flight, calls, arrived) = (flight.clone(), calls.clone(), Arc::clone(&arrived));
            let value_rx = value_rx.clone();
            tokio::spawn(async move {
                arrived.add_permits(1);
                flight
                    .run_with_outcome("key", || async {
                        if calls.hit() == 1 {
                            arrived.add_permits(1);
                        }
                        // Every execution can read the value once it is sent.
                        let mut rx = value_rx.clone();
                        let v = rx.wait_for(Option::is_some).await.unwrap().clone();
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Ok(v.unwrap())
                    })
                    .await
            })
        })
        .collect();

    let all_in = arrived.acquire_many(N as u32 + 1).await.unwrap();
    all_in.forget();
    // At least one execution is running and every caller is inside `run`.
    value_tx.send(Some("bar".to_owned())).unwrap();

    let mut executed = 0;
    for t in tasks {
        let (v, outcome) = t.await.unwrap();
        assert_eq!(v.as_deref(), Ok("bar"));
        executed += usize::from(outcome == Outcome::Executed);
    }
    // Go's bound, then the exact count the deterministic schedule gives.
    assert!(
        calls.get() > 0 && calls.get() < N,
        "calls = {}",
        calls.get()
    );
    assert_eq!(calls.get(), 1);
    assert_eq!(executed, 1);
    let s = flight.stats();
    assert_eq!((s.executions, s.coalesced), (1, N as u64 - 1));
}

/// `TestForget` (golang/go#31420): after `forget`, a new call starts a new
/// execution, the forgotten one finishing does not disturb it, and a call
/// that arrives after that joins the new execution.
///
/// Go's `DoChan` registers its call before returning; the hand-polled
/// [`Probe`]s give the same guarantee (a `pending` poll means the caller
/// has claimed or joined the flight).
#[tokio::test]
async fn forget() {
    let flight: SingleFlight<&str, i32> = SingleFlight::new();
    let (unblock_first, unblock_second) = (Gate::new(), Gate::new());
    let first_started = Counter::new();

    let mut first = Probe::new(flight.run("key", || async {
        first_started.hit();
        unblock_first.wait().await;
        Ok(1)
    }));
    first.pending();
    assert_eq!(first_started.get(), 1);
    assert!(flight.forget("key"));

    let mut second = Probe::new(flight.run_with_outcome("key", || async {
        unblock_second.wait().await;
        Ok(2)
    }));
    second.pending();

    unblock_first.open();
    assert_eq!(first.ready(), Ok(1), "the first call finishes on its own");

    let mut third = Probe::new(flight.run_with_outcome("key", || async { Ok(3) }));
    third.pending();

    unblock_second.open();
    assert_eq!(second.ready(), (Ok(2), Outcome::Executed));
    assert_eq!(
        third.ready(),
        (Ok(2), Outcome::Coalesced),
        "the third call gets the result of the second"
    );
    assert_eq!(flight.stats().executions, 2);
    assert!(flight.is_empty());
}

/// `TestDoChan`: the call returns at once and the result arrives later.
/// `DoChan` runs the work on a goroutine of its own and hands back a
/// channel; here the call runs on a task of its own, its work on another
/// (`run_detached`), and the `JoinHandle` is the channel.
#[tokio::test]
async fn do_chan() {
    let flight: SingleFlight<&'static str, &'static str> = SingleFlight::new();
    let ch = tokio::spawn({
        let flight = flight.clone();
        async move {
            flight
                .run_detached_with_outcome("key", || async { Ok("bar") })
                .await
        }
    });
    let (v, outcome) = tokio::time::timeout(HANG, ch)
        .await
        .expect("DoChan hangs")
        .unwrap();
    assert_eq!(v, Ok("bar"));
    assert_eq!(outcome, Outcome::Executed);
    assert!(flight.is_empty());
}

/// `TestPanicDo` (golang/go#41133): work that panics makes every caller
/// panic, and nobody hangs.
///
/// idem catches the panic and hands each caller [`Error::Panicked`];
/// [`Error::resume_panic`] turns it back into a panic of the caller, as Go's
/// `Do` does. Each caller is a task on a multi-threaded runtime, as each is
/// a goroutine in Go, and each task must end in a panic with the work's
/// message. Callers may share an execution or, arriving after one
/// panicked, run their own: both are fine, as in Go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_do() {
    const N: usize = 5;
    const MESSAGE: &str = "nil map dereference in work";
    let flight: SingleFlight<&'static str, u32> = SingleFlight::new();
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let flight = flight.clone();
            tokio::spawn(async move {
                flight
                    .run("key", || async { panic!("{MESSAGE}") })
                    .await
                    .map_err(Error::resume_panic)
            })
        })
        .collect();

    let panics = tokio::time::timeout(HANG, async {
        let mut panics = 0;
        for t in tasks {
            let err = t.await.expect_err("the caller should have panicked");
            let payload = err.into_panic();
            assert_eq!(payload.downcast_ref::<String>().unwrap(), MESSAGE);
            panics += 1;
        }
        panics
    })
    .await
    .expect("Do hangs");
    assert_eq!(panics, N);
    let s = flight.stats();
    assert_eq!(s.panics, s.executions, "every execution panicked");
    assert_eq!(s.executions + s.coalesced, N as u64);
    assert!(flight.is_empty(), "the key is free again");
}

/// `TestGoexitDo`: the goroutine running the work exits (`runtime.Goexit`)
/// without returning from `Do`; no caller may hang, and none may see an
/// error.
///
/// Rust has no Goexit; its nearest relative is the task that drives the
/// work being cancelled mid-execution. Every caller's work announces itself
/// and never finishes, and the test aborts the task whose work is running.
/// Go's waiters then Goexit too; idem's hand the flight to one of them,
/// which runs its own work, and is aborted in turn. So every caller runs its
/// work once, is cancelled, and none returns an error; in the end the key
/// is free.
#[tokio::test]
async fn goexit_do() {
    const N: usize = 5;
    let flight: SingleFlight<&'static str, ()> = SingleFlight::new();
    let (running_tx, mut running_rx) = mpsc::unbounded_channel::<usize>();
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (flight, running_tx) = (flight.clone(), running_tx.clone());
            tokio::spawn(async move {
                flight
                    .run("key", || async move {
                        running_tx.send(i).unwrap();
                        std::future::pending::<Result<(), Infallible>>().await
                    })
                    .await
            })
        })
        .collect();
    drop(running_tx);

    tokio::time::timeout(HANG, async {
        for _ in 0..N {
            let i = running_rx.recv().await.expect("a caller never ran");
            tasks[i].abort();
        }
        for t in tasks {
            match t.await {
                Err(e) if e.is_cancelled() => {}
                Err(e) => panic!("unexpected task failure: {e}"),
                Ok(r) => panic!("a cancelled caller returned {r:?}"),
            }
        }
    })
    .await
    .expect("Do hangs");
    assert!(running_rx.recv().await.is_none(), "no work ran twice");

    let s = flight.stats();
    assert_eq!(s.executions, N as u64, "each caller ran its own work once");
    assert!(s.takeovers < N as u64);
    assert_eq!((s.failures, s.panics, s.coalesced), (0, 0, 0));
    assert!(flight.is_empty());
}

/// `TestPanicDoChan`: work started through `DoChan` panics.
///
/// Go cannot hand that panic to the channel's reader, so it re-raises it on
/// a fresh goroutine and the process dies; the Go test checks the crash in a
/// subprocess. idem's detached work runs on a tokio task that catches the
/// panic, so the caller gets [`Error::Panicked`] with the message, the
/// runtime carries on, and the key is free again.
#[tokio::test]
async fn panic_do_chan() {
    let flight: SingleFlight<&'static str, u32> = SingleFlight::new();
    let ch = tokio::spawn({
        let flight = flight.clone();
        async move {
            flight
                .run_detached("", || async { panic!("panic in detached work") })
                .await
        }
    });
    let res = tokio::time::timeout(HANG, ch)
        .await
        .expect("DoChan hangs")
        .expect("the caller itself does not panic");
    match res {
        Err(Error::Panicked(p)) => assert_eq!(p.message(), "panic in detached work"),
        other => panic!("expected Error::Panicked, got {other:?}"),
    }
    assert_eq!(flight.stats().panics, 1);
    assert!(flight.is_empty());
    assert_eq!(flight.run("", || async { Ok(1) }).await, Ok(1));
}

/// `TestPanicDoSharedByDoChan`: a `DoChan` caller joins a `Do` whose work
/// panics. Its own work must not run, and it must learn of the panic (in
/// Go, by crashing the process; here, as [`Error::Panicked`] carrying the
/// leader's message).
#[tokio::test]
async fn panic_do_shared_by_do_chan() {
    let flight: SingleFlight<&'static str, u32> = SingleFlight::new();
    let unblock = Gate::new();
    let mut leader = Probe::new(flight.run("", || async {
        unblock.wait().await;
        panic!("panic in the shared work")
    }));
    leader.pending();

    let mut joiner = Probe::new(
        flight.run_detached_with_outcome("", || async { panic!("the joiner's work must not run") }),
    );
    joiner.pending();

    unblock.open();
    let expect_panic = |res: Result<u32, Error<Infallible>>| match res {
        Err(Error::Panicked(p)) => assert_eq!(p.message(), "panic in the shared work"),
        other => panic!("expected the leader's panic, got {other:?}"),
    };
    expect_panic(leader.ready());
    let (res, outcome) = joiner.ready();
    expect_panic(res);
    assert_eq!(outcome, Outcome::Coalesced);
    let s = flight.stats();
    assert_eq!((s.executions, s.panics, s.coalesced), (1, 1, 1));
    assert!(flight.is_empty());
}

/// `ExampleGroup`: two calls for one key while the first is blocked: only
/// the first call's work runs, the second is marked as sharing its result
/// (`Outcome::Coalesced`; Go's leader is marked shared as well, idem's is
/// `Executed`), and both get "func 1".
#[tokio::test]
async fn example_group() {
    let flight: SingleFlight<&str, &str> = SingleFlight::new();
    let block = Gate::new();
    let mut res1 = Probe::new(flight.run_with_outcome("key", || async {
        block.wait().await;
        Ok("func 1")
    }));
    let mut res2 = Probe::new(flight.run_with_outcome("key", || async {
        block.wait().await;
        Ok("func 2")
    }));
    res1.pending();
    res2.pending();
    block.open();
    let (v1, o1) = res1.ready();
    let (v2, o2) = res2.ready();
    assert_eq!((o1, o2), (Outcome::Executed, Outcome::Coalesced));
    assert_eq!(v1, v2, "equal results");
    assert_eq!(v1, Ok("func 1"));
}

/// `TestForgetUnshared` (Go's `internal/singleflight`).
///
/// `ForgetUnshared` forgets a key only while nobody has joined its call,
/// and reports whether it did; idem's `forget` detaches unconditionally and
/// has no such query, so those return-value checks are left out (calling
/// `forget` in their place would detach the flight the test goes on to
/// observe). What remains applies as is: after the first call is
/// forgotten, a second call runs its own work, a third joins it, and that
/// third call's work never runs; the forgotten first call finishing leaves
/// the second flight in place; the third gets the second's result.
#[tokio::test]
async fn forget_unshared() {
    let flight: SingleFlight<&str, i32> = SingleFlight::new();
    let (first_gate, second_gate) = (Gate::new(), Gate::new());
    let second_started = Counter::new();

    let mut first = Probe::new(flight.run("key", || async {
        first_gate.wait().await;
        Ok(1)
    }));
    first.pending();
    assert!(flight.forget("key"), "the first call's flight is forgotten");

    let mut second = Probe::new(flight.run_with_outcome("key", || async {
        second_started.hit();
        second_gate.wait().await;
        Ok(2)
    }));
    second.pending();
    assert_eq!(second_started.get(), 1);

    let mut third = Probe::new(flight.run_with_outcome("key", || async {
        panic!("the third call's work must not run")
    }));
    third.pending();

    first_gate.open();
    assert_eq!(first.ready(), Ok(1));
    assert_eq!(flight.len(), 1, "the second flight is still the key's");

    second_gate.open();
    assert_eq!(second.ready(), (Ok(2), Outcome::Executed));
    assert_eq!(third.ready(), (Ok(2), Outcome::Coalesced));
    assert_eq!(flight.stats().executions, 2);
}

/// `TestDoAndForgetUnsharedRace` (Go's `internal/singleflight`): many
/// callers share one execution; as each returns, the key must already be
/// unused, since nobody is left sharing it.
///
/// Go retries with a longer sleep until all goroutines happened to join one
/// execution. Here the work's sleep runs on the paused clock, which only
/// advances once every task has parked in `run`, so one execution is
/// certain. "Unused" is asked of idem with `forget`, which reports whether
/// the key held anything (and `ForgetUnshared` returning false, Go's failure
/// case, corresponds to `forget` finding a flight).
#[tokio::test(start_paused = true)]
async fn do_and_forget_unshared_race() {
    const N: usize = 1000;
    let flight: SingleFlight<&'static str, usize> = SingleFlight::new();
    let (calls, still_held) = (Counter::new(), Counter::new());
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let (flight, calls, still_held) = (flight.clone(), calls.clone(), still_held.clone());
            tokio::spawn(async move {
                let v = flight
                    .run("key", || async {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        Ok(calls.hit())
                    })
                    .await;
                if flight.forget("key") {
                    still_held.hit();
                }
                v
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(1));
    }
    assert_eq!(calls.get(), 1);
    assert_eq!(
        still_held.get(),
        0,
        "after one shared execution, a caller found the key still held"
    );
    assert!(flight.is_empty());
}
