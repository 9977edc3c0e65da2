//! Issue 9: what idem-http's layer costs per request, in process (no
//! sockets, no HTTP parsing), on one thread, and what its steps cost.
//!
//! ```sh
//! cargo bench -p idem-benches --bench http_layer
//! ```
//!
//! * `service/*`: the load test's router (`src/http/app.rs`) called with
//!   `tower_service::Service::call`, bare and behind the layer on a
//!   `MemoryStore` (`src/http/layers.rs`), on unique keys and on replays
//!   of 1,000 recorded keys, the response body read whole;
//! * `steps/*`: the layer's steps one at a time (`src/http/inproc.rs`):
//!   its fingerprint (the JSON body parsed and re-written canonically, as
//!   idem-http does, its keys in order or not, or the raw bytes), the
//!   `Durable` executor on a `MemoryStore` (`run_detached`, as the layer
//!   calls it, and `run`), the store alone, a `tokio::spawn`, and
//!   `Owner::random`.
//!
//! Every bench runs on a current-thread tokio runtime: spawned tasks run on
//! the bench's thread, so their cost is in the figures.

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use idem::durable::Codec;
use idem::store::{MemoryStore, Owner};
use idem_benches::http::inproc::{self, BODY, REPLAY_KEYS};

/// [`BODY`] with its keys in reverse order.
const REORDERED: &str = r#"{"currency":"EUR","amount_cents":1250}"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn service(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("service");
    for (name, router) in inproc::routers() {
        let next = Cell::new(0_u64);
        g.bench_function(format!("unique/{name}"), |b| {
            b.to_async(&rt).iter(|| {
                let mut r = router.clone();
                let n = next.replace(next.get() + 1);
                async move { inproc::send(&mut r, inproc::request(&format!("unique-{n}"))).await }
            })
        });
        rt.block_on(async {
            let mut r = router.clone();
            for n in 0..REPLAY_KEYS {
                inproc::send(&mut r, inproc::request(&format!("replay-{n}"))).await;
            }
        });
        g.bench_function(format!("replay/{name}"), |b| {
            b.to_async(&rt).iter(|| {
                let mut r = router.clone();
                let n = next.replace(next.get() + 1) % REPLAY_KEYS;
                async move { inproc::send(&mut r, inproc::request(&format!("replay-{n}"))).await }
            })
        });
    }
    g.finish();
}

fn steps(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("steps");
    g.bench_function("fingerprint/canonical_json", |b| {
        b.iter(|| inproc::canonical_fingerprint(black_box(BODY.as_bytes())))
    });
    // The same body with its keys in the other order: the canonical form
    // then re-orders an object instead of writing it as it comes.
    g.bench_function("fingerprint/canonical_json_reordered", |b| {
        b.iter(|| inproc::canonical_fingerprint(black_box(REORDERED.as_bytes())))
    });
    g.bench_function("fingerprint/raw_bytes", |b| {
        b.iter(|| inproc::fingerprint(black_box(BODY.as_bytes())))
    });

    let next = Cell::new(0_u64);
    let fp = inproc::fingerprint(BODY.as_bytes());
    let d = inproc::durable();
    g.bench_function("durable/run_detached/unique", |b| {
        b.to_async(&rt).iter(|| {
            let key = format!("u-{}", next.replace(next.get() + 1));
            let d = &d;
            async move { inproc::durable_detached(d, &key, fp).await }
        })
    });
    g.bench_function("durable/run/unique", |b| {
        b.to_async(&rt).iter(|| {
            let key = format!("r-{}", next.replace(next.get() + 1));
            let d = &d;
            async move { inproc::durable_inline(d, &key, fp).await }
        })
    });
    rt.block_on(async {
        for n in 0..REPLAY_KEYS {
            let _ = inproc::durable_inline(&d, &format!("d-{n}"), fp).await;
        }
    });
    g.bench_function("durable/run_detached/replay", |b| {
        b.to_async(&rt).iter(|| {
            let key = format!("d-{}", next.replace(next.get() + 1) % REPLAY_KEYS);
            let d = &d;
            async move { inproc::durable_detached(d, &key, fp).await }
        })
    });

    let store = MemoryStore::new();
    let payload = Codec::encode(&inproc::Raw, &inproc::recorded()).expect("encodes");
    g.bench_function("store/claim_complete/unique", |b| {
        b.to_async(&rt).iter(|| {
            let key = format!("s-{}", next.replace(next.get() + 1));
            let (store, payload) = (&store, &payload);
            async move { inproc::claim_complete(store, &key, fp, payload).await }
        })
    });
    rt.block_on(async {
        for n in 0..REPLAY_KEYS {
            inproc::claim_complete(&store, &format!("sr-{n}"), fp, &payload).await;
        }
    });
    g.bench_function("store/claim/replay", |b| {
        b.to_async(&rt).iter(|| {
            let key = format!("sr-{}", next.replace(next.get() + 1) % REPLAY_KEYS);
            let store = &store;
            async move { inproc::claim_replay(store, &key, fp).await }
        })
    });
    g.bench_function("tokio_spawn_and_join", |b| {
        b.to_async(&rt)
            .iter(|| async { tokio::spawn(async { black_box(1) }).await })
    });
    g.bench_function("owner_random", |b| b.iter(Owner::random));
    g.finish();
}

fn main() {
    // What `criterion_group!`/`criterion_main!` expand to, minus an
    // undocumented `pub fn`.
    let mut cr = Criterion::default()
        .without_plots()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    service(&mut cr);
    steps(&mut cr);
    cr.final_summary();
}
