//! Keys and retention, against the peers, in one run (issue 7, section 2
//! and the `never` mode):
//!
//! * `hasher_*`: idem with its default hasher (SipHash-1-3), foldhash and
//!   ahash, on the hit and distinct-keys workloads of `contention.rs`,
//!   beside the raw floor (a `DashMap` with std's SipHash) and moka.
//! * `string_hit_by_ref`: a `String`-keyed hit looked up by `&str`, one
//!   task: idem's `run_by_ref` and `get`, moka's `get_with_by_ref`, and a
//!   raw `DashMap<String, _>` read. Time per call.
//! * `eviction_*`: `Eviction::Never` against `Eviction::Adaptive` at the
//!   same bound, on the zipf and distinct workloads.
//!
//! `cargo bench -p idem-benches --bench keys`; figures in `BENCHMARKS.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use dashmap::DashMap;

use idem_benches::cases::{hit_case, pass_case, per_call, per_pass};
use idem_benches::{
    distinct, hot_values, runtime, value, zipf, zipf_keys, FloorMap, Idem, Moka, Value,
};

const LONG: Duration = Duration::from_secs(3600);
const DISTINCT_KEYS: u64 = 200_000;
const ZIPF_CALLS: usize = 1_000_000;
const ZIPF_KEYS: u64 = 100_000;
const ZIPF_CAPACITY: usize = 10_000;
const ZIPF_TTL: Duration = Duration::from_secs(1);
const ZIPF_SEED: u64 = 0x1de5_eed5;
const STRING_KEYS: usize = 1024;

fn bench_hashers(cr: &mut Criterion) {
    let rt = runtime();
    let values = hot_values(1024);
    let mut g = cr.benchmark_group("hasher_hit_1024_keys_2_tasks");
    per_call(&mut g);
    hit_case(
        &mut g,
        &rt,
        "idem_siphash",
        Idem::with_ttl(LONG),
        &values,
        2,
    );
    let fold = Idem::with_hasher(LONG, foldhash::fast::RandomState::default());
    hit_case(&mut g, &rt, "idem_foldhash", fold, &values, 2);
    let ahash = Idem::with_hasher(LONG, ahash::RandomState::new());
    hit_case(&mut g, &rt, "idem_ahash", ahash, &values, 2);
    hit_case(&mut g, &rt, "moka", Moka::with_ttl(LONG), &values, 2);
    hit_case(
        &mut g,
        &rt,
        "floor_dashmap",
        FloorMap::default(),
        &values,
        2,
    );
    g.finish();

    let group = "hasher_distinct_200k_keys_2_tasks";
    let mut g = cr.benchmark_group(group);
    per_pass(&mut g, DISTINCT_KEYS, Duration::from_secs(2));
    let pass = |c| distinct(c, DISTINCT_KEYS, 2);
    pass_case(
        &mut g,
        &rt,
        group,
        "idem_siphash",
        || Idem::with_ttl(LONG),
        pass,
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "idem_foldhash",
        || Idem::with_hasher(LONG, foldhash::fast::RandomState::default()),
        |c| distinct(c, DISTINCT_KEYS, 2),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "idem_ahash",
        || Idem::with_hasher(LONG, ahash::RandomState::new()),
        |c| distinct(c, DISTINCT_KEYS, 2),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "moka",
        || Moka::with_ttl(LONG),
        |c| distinct(c, DISTINCT_KEYS, 2),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "floor_dashmap",
        FloorMap::default,
        |c| distinct(c, DISTINCT_KEYS, 2),
    );
    g.finish();
}

/// `iters` lookups cycling over `keys`, timed; `get` answers one.
fn string_loop<G: FnMut(&str) -> Value>(keys: &[String], iters: u64, mut get: G) -> Duration {
    let start = Instant::now();
    let mut i = 0;
    for _ in 0..iters {
        black_box(get(black_box(keys[i].as_str())));
        i += 1;
        if i == keys.len() {
            i = 0;
        }
    }
    start.elapsed()
}

fn bench_string_keys(cr: &mut Criterion) {
    // With timers: a table that stores results starts its sweeper on the
    // runtime of its first store (without them, idem's probe for timers
    // prints tokio's panic message once).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let keys: Vec<String> = (0..STRING_KEYS).map(|k| format!("order-{k:08}")).collect();
    let idem: idem::SingleFlight<String, Value> = idem::SingleFlight::builder()
        .ttl(LONG)
        .build()
        .expect("valid settings");
    let moka: moka::future::Cache<String, Value> =
        moka::future::Cache::builder().time_to_live(LONG).build();
    let dash: DashMap<String, Value> = DashMap::new();
    rt.block_on(async {
        for (k, key) in keys.iter().enumerate() {
            let v = value(k as u64);
            let _ = idem
                .run(key.clone(), || async { Ok(Value::clone(&v)) })
                .await;
            moka.insert(key.clone(), Value::clone(&v)).await;
            dash.insert(key.clone(), v);
        }
    });
    let mut g = cr.benchmark_group("string_hit_by_ref_1_task");
    per_call(&mut g);
    let noop = || async { Ok(value(0)) };
    g.bench_function("idem_run_by_ref", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let mut i = 0;
                for _ in 0..iters {
                    let k = black_box(keys[i].as_str());
                    black_box(idem.run_by_ref(k, noop).await.expect("a hit"));
                    i = (i + 1) % keys.len();
                }
                start.elapsed()
            })
        });
    });
    g.bench_function("idem_get", |b| {
        b.iter_custom(|iters| string_loop(&keys, iters, |k| idem.get(k).expect("a hit")));
    });
    g.bench_function("moka_get_with_by_ref", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let mut i = 0;
                for _ in 0..iters {
                    let k = black_box(keys[i].as_str());
                    black_box(moka.get_with_by_ref(k, async { value(0) }).await);
                    i = (i + 1) % keys.len();
                }
                start.elapsed()
            })
        });
    });
    g.bench_function("floor_dashmap_get", |b| {
        b.iter_custom(|iters| {
            string_loop(&keys, iters, |k| Value::clone(&dash.get(k).expect("a hit")))
        });
    });
    g.finish();
}

fn bench_eviction(cr: &mut Criterion) {
    let rt = runtime();
    let keys = zipf_keys(ZIPF_CALLS, ZIPF_KEYS, 1.0, ZIPF_SEED);
    let group = "eviction_zipf_1m_calls_100k_keys_8_tasks";
    let mut g = cr.benchmark_group(group);
    per_pass(&mut g, ZIPF_CALLS as u64, Duration::from_secs(3));
    pass_case(
        &mut g,
        &rt,
        group,
        "idem_adaptive_10k",
        || Idem::bounded(ZIPF_TTL, ZIPF_CAPACITY),
        |c| zipf(c, &keys, 8),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "idem_never_10k",
        || Idem::never(ZIPF_TTL, ZIPF_CAPACITY),
        |c| zipf(c, &keys, 8),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "idem_adaptive_100k",
        || Idem::bounded(ZIPF_TTL, ZIPF_KEYS as usize),
        |c| zipf(c, &keys, 8),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "idem_never_100k",
        || Idem::never(ZIPF_TTL, ZIPF_KEYS as usize),
        |c| zipf(c, &keys, 8),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "moka_10k",
        || Moka::bounded(ZIPF_TTL, ZIPF_CAPACITY as u64),
        |c| zipf(c, &keys, 8),
    );
    g.finish();

    let group = "eviction_distinct_200k_keys_2_tasks";
    let mut g = cr.benchmark_group(group);
    per_pass(&mut g, DISTINCT_KEYS, Duration::from_secs(2));
    let cap = DISTINCT_KEYS as usize;
    pass_case(
        &mut g,
        &rt,
        group,
        "idem_adaptive_200k",
        || Idem::bounded(LONG, cap),
        |c| distinct(c, DISTINCT_KEYS, 2),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "idem_never_200k",
        || Idem::never(LONG, cap),
        |c| distinct(c, DISTINCT_KEYS, 2),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "idem_unbounded",
        || Idem::with_ttl(LONG),
        |c| distinct(c, DISTINCT_KEYS, 2),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "moka_200k",
        || Moka::bounded(LONG, cap as u64),
        |c| distinct(c, DISTINCT_KEYS, 2),
    );
    g.finish();
}

fn main() {
    let mut cr = Criterion::default().without_plots().configure_from_args();
    bench_hashers(&mut cr);
    bench_string_keys(&mut cr);
    bench_eviction(&mut cr);
    cr.final_summary();
}
