//! Criterion benchmarks of idem against its peers, on a two-worker tokio
//! runtime. See `BENCHMARKS.md` at the workspace root for the figures and
//! `benches/run.sh` for the command that produces them.
//!
//! Per-call groups (`hit_*`, `substrate_*`) time `iters` calls split over
//! the tasks: criterion's time is ns per call. Per-pass groups (`storm_*`,
//! `distinct_*`, `zipf_*`) time one whole pass on a fresh contender per
//! iteration: criterion's time is per pass and its throughput (elements)
//! is the number of calls in a pass. Each per-pass bench also prints how
//! many times the work ran in each pass ("executions").

use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use dashmap::DashMap;

use idem_benches::cases::{hit_case, pass_case, per_call, per_pass, print_executions};
use idem_benches::{
    distinct, hot_values, lookups, runtime, storm, zipf, zipf_keys, AsyncSingleflight, Contender,
    FloorCell, FloorMap, Idem, IdemGet, Moka, NaiveMap, ShardedTable, SingleflightAsync, Value,
};
use tokio::runtime::Runtime;

/// The ttl of workloads that must always hit once filled.
const LONG: Duration = Duration::from_secs(3600);
/// Callers in one storm.
const STORM_CALLERS: usize = 10_000;
/// Keys in one distinct-keys pass.
const DISTINCT_KEYS: u64 = 200_000;
/// The zipf workload.
const ZIPF_CALLS: usize = 1_000_000;
const ZIPF_KEYS: u64 = 100_000;
const ZIPF_CAPACITY: usize = 10_000;
const ZIPF_TTL: Duration = Duration::from_secs(1);
const ZIPF_SEED: u64 = 0x1de5_eed5;

fn bench_hit(cr: &mut Criterion) {
    let rt = runtime();
    for (group, tasks, keys) in [
        ("hit_1_key_2_tasks", 2, 1),
        ("hit_1_key_16_tasks", 16, 1),
        ("hit_1024_keys_2_tasks", 2, 1024),
    ] {
        let values = hot_values(keys);
        let mut g = cr.benchmark_group(group);
        per_call(&mut g);
        hit_case(&mut g, &rt, "idem", Idem::with_ttl(LONG), &values, tasks);
        let get = IdemGet(Idem::with_ttl(LONG).0);
        hit_case(&mut g, &rt, "idem_get", get, &values, tasks);
        hit_case(&mut g, &rt, "moka", Moka::with_ttl(LONG), &values, tasks);
        let asf = AsyncSingleflight::new();
        hit_case(
            &mut g,
            &rt,
            "async_singleflight_nocache",
            asf,
            &values,
            tasks,
        );
        let sfa = SingleflightAsync::default();
        hit_case(
            &mut g,
            &rt,
            "singleflight_async_nocache",
            sfa,
            &values,
            tasks,
        );
        hit_case(
            &mut g,
            &rt,
            "naive_map",
            NaiveMap::default(),
            &values,
            tasks,
        );
        hit_case(
            &mut g,
            &rt,
            "floor_dashmap",
            FloorMap::default(),
            &values,
            tasks,
        );
        g.finish();
    }
}

fn storm_case<C: Contender>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    group: &str,
    id: &str,
    make: impl Fn() -> C,
    sleep: Option<Duration>,
) {
    let mut execs = Vec::new();
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (d, e) = rt.block_on(storm(Arc::new(make()), STORM_CALLERS, sleep));
                total += d;
                execs.push(e);
            }
            total
        });
    });
    print_executions(group, id, &execs);
}

fn bench_storm(cr: &mut Criterion) {
    let rt = runtime();
    let ttl = Duration::from_secs(60);
    for (group, sleep) in [
        ("storm_10k_sleep_1ms", Some(Duration::from_millis(1))),
        ("storm_10k_ready", None),
    ] {
        let mut g = cr.benchmark_group(group);
        per_pass(&mut g, STORM_CALLERS as u64, Duration::from_secs(1));
        storm_case(&mut g, &rt, group, "idem", || Idem::with_ttl(ttl), sleep);
        storm_case(
            &mut g,
            &rt,
            group,
            "idem_no_ttl",
            Idem::coalesce_only,
            sleep,
        );
        storm_case(&mut g, &rt, group, "moka", || Moka::with_ttl(ttl), sleep);
        storm_case(
            &mut g,
            &rt,
            group,
            "async_singleflight_nocache",
            AsyncSingleflight::new,
            sleep,
        );
        storm_case(
            &mut g,
            &rt,
            group,
            "singleflight_async_nocache",
            SingleflightAsync::default,
            sleep,
        );
        storm_case(&mut g, &rt, group, "naive_map", NaiveMap::default, sleep);
        storm_case(
            &mut g,
            &rt,
            group,
            "floor_oncecell",
            FloorCell::default,
            sleep,
        );
        g.finish();
    }
}

fn bench_distinct(cr: &mut Criterion) {
    let rt = runtime();
    let group = "distinct_200k_keys_2_tasks";
    let mut g = cr.benchmark_group(group);
    per_pass(&mut g, DISTINCT_KEYS, Duration::from_secs(2));
    pass_case(
        &mut g,
        &rt,
        group,
        "idem",
        || Idem::with_ttl(LONG),
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
        "async_singleflight_nocache",
        AsyncSingleflight::new,
        |c| distinct(c, DISTINCT_KEYS, 2),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "singleflight_async_nocache",
        SingleflightAsync::default,
        |c| distinct(c, DISTINCT_KEYS, 2),
    );
    pass_case(&mut g, &rt, group, "naive_map", NaiveMap::default, |c| {
        distinct(c, DISTINCT_KEYS, 2)
    });
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

fn bench_zipf(cr: &mut Criterion) {
    let rt = runtime();
    let keys = zipf_keys(ZIPF_CALLS, ZIPF_KEYS, 1.0, ZIPF_SEED);
    let group = "zipf_1m_calls_100k_keys_8_tasks";
    let mut g = cr.benchmark_group(group);
    per_pass(&mut g, ZIPF_CALLS as u64, Duration::from_secs(3));
    let bounded_idem = || Idem::bounded(ZIPF_TTL, ZIPF_CAPACITY);
    pass_case(&mut g, &rt, group, "idem", bounded_idem, |c| {
        zipf(c, &keys, 8)
    });
    let bounded_moka = || Moka::bounded(ZIPF_TTL, ZIPF_CAPACITY as u64);
    pass_case(&mut g, &rt, group, "moka", bounded_moka, |c| {
        zipf(c, &keys, 8)
    });
    let unbounded_idem = || Idem::with_ttl(ZIPF_TTL);
    pass_case(&mut g, &rt, group, "idem_unbounded", unbounded_idem, |c| {
        zipf(c, &keys, 8)
    });
    pass_case(
        &mut g,
        &rt,
        group,
        "async_singleflight_nocache",
        AsyncSingleflight::new,
        |c| zipf(c, &keys, 8),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "singleflight_async_nocache",
        SingleflightAsync::default,
        |c| zipf(c, &keys, 8),
    );
    pass_case(
        &mut g,
        &rt,
        group,
        "naive_map_unbounded",
        NaiveMap::default,
        |c| zipf(c, &keys, 8),
    );
    g.finish();
}

fn bench_substrate(cr: &mut Criterion) {
    let rt = runtime();
    for (group, keys) in [
        ("substrate_1024_keys_2_tasks", 1024),
        ("substrate_1_key_2_tasks", 1),
    ] {
        let values = hot_values(keys);
        let mut g = cr.benchmark_group(group);
        per_call(&mut g);

        let dash: Arc<DashMap<u64, Value>> = Arc::new(DashMap::new());
        let table = Arc::new(ShardedTable::new(8));
        for (k, v) in values.iter().enumerate() {
            dash.insert(k as u64, Value::clone(v));
            table.insert(k as u64, Value::clone(v));
        }
        // DashMap's default: (4 x CPUs).next_power_of_two() shards, 8 here.
        g.bench_function("dashmap_8_shards", |b| {
            b.iter_custom(|iters| {
                let get = |m: &DashMap<u64, Value>, k: u64| m.get(&k).map(|v| Value::clone(&v));
                rt.block_on(lookups(&dash, get, keys, 2, iters))
            });
        });
        g.bench_function("rwlock_hashtable_8_shards", |b| {
            b.iter_custom(|iters| {
                let get = |m: &ShardedTable, k: u64| m.get(k);
                rt.block_on(lookups(&table, get, keys, 2, iters))
            });
        });
        g.finish();
    }
}

fn main() {
    // What `criterion_group!`/`criterion_main!` expand to, minus an
    // undocumented `pub fn`.
    let mut cr = Criterion::default().without_plots().configure_from_args();
    bench_hit(&mut cr);
    bench_storm(&mut cr);
    bench_distinct(&mut cr);
    bench_zipf(&mut cr);
    bench_substrate(&mut cr);
    cr.final_summary();
}
