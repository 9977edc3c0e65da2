//! Issue 9: heap allocations per request of the load test's service called
//! in process, bare and behind idem-http's layer on a `MemoryStore`, and of
//! the layer's steps (`idem_benches::http::inproc`), counted with a
//! counting global allocator (`stats_alloc`). Also the heap a recorded key
//! keeps (net bytes per unique request), and the longest claim and
//! completion on a `MemoryStore` growing to 2,000,000 keys (the pauses
//! behind the load test's p99 on unique keys).
//!
//! ```sh
//! cargo run --release -p idem-benches --bin http_allocs
//! # each allocation site of the layer's unique-key path, under DHAT:
//! valgrind --tool=dhat --dhat-out-file=/tmp/dhat.json target/release/http_allocs --calls 2000 --only idem-memory
//! ```
//!
//! `--calls N` (20,000 by default) calls per row; `--only NAME` runs only
//! the service rows of `bare` or `idem-memory`, and no step; `--case
//! unique` or `--case replay` only that row (and no warm-up of the other).

use std::alloc::System;
use std::future::Future;

use idem::durable::Codec;
use idem::store::{MemoryStore, Owner};
use idem_benches::http::inproc::{self, BODY, REPLAY_KEYS};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(20_000);

/// Allocations, bytes allocated and net bytes kept, per call.
struct PerCall {
    allocations: f64,
    bytes: f64,
    kept: f64,
}

/// Runs `call(n)` for n in 0..CALLS on `rt` and divides what was allocated
/// by CALLS.
fn per_call<F: Future>(rt: &tokio::runtime::Runtime, mut call: impl FnMut(u64) -> F) -> PerCall {
    let calls = CALLS.load(std::sync::atomic::Ordering::Relaxed);
    rt.block_on(async {
        let before = GLOBAL.stats();
        for n in 0..calls {
            call(n).await;
        }
        let after = GLOBAL.stats();
        let n = calls as f64;
        PerCall {
            allocations: (after.allocations + after.reallocations
                - before.allocations
                - before.reallocations) as f64
                / n,
            bytes: (after.bytes_allocated - before.bytes_allocated) as f64 / n,
            kept: ((after.bytes_allocated as i64 - after.bytes_deallocated as i64)
                - (before.bytes_allocated as i64 - before.bytes_deallocated as i64))
                as f64
                / n,
        }
    })
}

fn row(what: &str, p: &PerCall) {
    println!(
        "| {what} | {:.1} | {:.0} | {:.0} |",
        p.allocations, p.bytes, p.kept
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let calls = idem_benches::http::app::flag(&args, "--calls", 20_000_u64);
    let only: String = idem_benches::http::app::flag(&args, "--only", String::new());
    let case: String = idem_benches::http::app::flag(&args, "--case", String::new());
    let unique_rows = case.is_empty() || case == "unique";
    let replay_rows = case.is_empty() || case == "replay";
    CALLS.store(calls, std::sync::atomic::Ordering::Relaxed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    println!("Per call, {calls} calls, one thread (allocations include reallocations; kept: allocated minus freed).\n");
    println!("| what | allocations | bytes allocated | bytes kept |");
    println!("|---|---:|---:|---:|");
    for (name, router) in inproc::routers() {
        if !only.is_empty() && name != only {
            continue;
        }
        let replay = |n: u64| {
            let mut r = router.clone();
            async move {
                let key = format!("replay-{}", n % REPLAY_KEYS);
                inproc::send(&mut r, inproc::request(&key)).await
            }
        };
        if unique_rows {
            // Warm up lazily initialised state.
            per_call(&rt, |n| {
                let mut r = router.clone();
                async move { inproc::send(&mut r, inproc::request(&format!("warm-{n}"))).await }
            });
            let unique = per_call(&rt, |n| {
                let mut r = router.clone();
                async move { inproc::send(&mut r, inproc::request(&format!("unique-{n}"))).await }
            });
            row(&format!("service, unique keys: {name}"), &unique);
        }
        if replay_rows {
            // Record the keys, then replay them.
            per_call(&rt, replay);
            row(&format!("service, replays: {name}"), &per_call(&rt, replay));
        }
    }
    if !only.is_empty() || !case.is_empty() {
        return;
    }
    let fp = inproc::fingerprint(BODY.as_bytes());
    let d = &inproc::durable();
    let detached = |key: String| async move {
        let _ = inproc::durable_detached(d, &key, fp).await;
    };
    let inline = |key: String| async move {
        let _ = inproc::durable_inline(d, &key, fp).await;
    };
    per_call(&rt, |n| detached(format!("warm-{n}")));
    row(
        "step: durable run_detached, unique",
        &per_call(&rt, |n| detached(format!("u-{n}"))),
    );
    row(
        "step: durable run, unique",
        &per_call(&rt, |n| inline(format!("r-{n}"))),
    );
    row(
        "step: durable run_detached, replay",
        &per_call(&rt, |n| detached(format!("u-{}", n % REPLAY_KEYS))),
    );
    let store = &MemoryStore::new();
    let payload = &Codec::encode(&inproc::Raw, &inproc::recorded()).expect("encodes");
    let complete = |key: String| async move {
        inproc::claim_complete(store, &key, fp, payload).await;
    };
    per_call(&rt, |n| complete(format!("warm-{n}")));
    row(
        "step: store claim + complete, unique",
        &per_call(&rt, |n| complete(format!("s-{n}"))),
    );
    row(
        "step: store claim, replay",
        &per_call(&rt, |n| {
            let key = format!("s-{}", n % REPLAY_KEYS);
            async move {
                inproc::claim_replay(store, &key, fp).await;
            }
        }),
    );
    pauses(&rt, fp, payload);
    row(
        "step: fingerprint, canonical JSON",
        &per_call(&rt, |_| async {
            inproc::canonical_fingerprint(BODY.as_bytes());
        }),
    );
    row(
        "step: the key string (`format!`)",
        &per_call(&rt, |n| async move {
            std::hint::black_box(format!("unique-{n}"));
        }),
    );
    row(
        "step: tokio::spawn + join",
        &per_call(&rt, |_| async {
            let _ = tokio::spawn(async {}).await;
        }),
    );
    row(
        "step: Owner::random",
        &per_call(&rt, |_| async {
            std::hint::black_box(Owner::random());
        }),
    );
}

/// The slowest claim + completion of fresh keys while a `MemoryStore`
/// grows to 2,000,000 keys, and the store's size then: a map that doubles
/// rehashes every entry in the call that crosses the threshold.
fn pauses(rt: &tokio::runtime::Runtime, fp: idem::Fingerprint, payload: &[u8]) {
    let store = MemoryStore::new();
    let mut slowest = Vec::new();
    rt.block_on(async {
        for n in 0..2_000_000_u64 {
            let key = format!("p-{n}");
            let started = std::time::Instant::now();
            inproc::claim_complete(&store, &key, fp, payload).await;
            let took = started.elapsed();
            if took > std::time::Duration::from_millis(1) {
                slowest.push((took, n));
            }
        }
    });
    let listed: Vec<String> = slowest
        .iter()
        .map(|(took, n)| format!("{:.1} ms at {n} keys", took.as_secs_f64() * 1e3))
        .collect();
    println!(
        "| step: claim + complete over 1 ms while growing to 2,000,000 keys | {} | | |",
        if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join("; ")
        }
    );
}
