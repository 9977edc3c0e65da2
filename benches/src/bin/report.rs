//! Runs every workload of the criterion bench *interleaved*: in each round,
//! each contender of a workload is measured once, in an order that rotates
//! from round to round, and each contender's time is divided by the
//! reference contenders' times of the same round. On a shared, noisy
//! two-core machine, where the load changes from one second to the next,
//! ratios of neighbouring measurements are far steadier than ratios of
//! criterion's medians, which are taken minutes apart.
//!
//! A round during which other processes used more than 10% of the
//! machine's CPU time (read from `/proc/stat` and `/proc/self/stat`, steal
//! time included) is thrown away and measured again, up to 12 tries.
//!
//! Prints Markdown tables (median ns per call, spread, ratios, executions)
//! for `BENCHMARKS.md`. `cargo run --release -p idem-benches --bin report`;
//! `--quick` for a smoke run with few rounds; `--only <title prefix>` (say
//! `--only hit`) to measure some workloads only.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use idem_benches::{
    distinct, hit, hot_values, lookups, median, prefill, runtime, storm, zipf, zipf_keys,
    AsyncSingleflight, Contender, FloorCell, FloorMap, Idem, IdemGet, Moka, NaiveMap, ShardedTable,
    SingleflightAsync, Value, ATTEMPTS, UNSPREAD_RACES,
};
use tokio::runtime::Runtime;

/// A round in which other processes used more than this share of the
/// machine's CPU time is measured again.
const MAX_OTHERS_SHARE: f64 = 0.10;
/// Tries per round before a noisy round is kept anyway.
const MAX_TRIES: usize = 12;

/// CPU time used so far, in clock ticks (USER_HZ): by the whole machine
/// (busy, including steal) and by this process. Linux only.
#[derive(Clone, Copy)]
struct CpuTicks {
    busy: u64,
    mine: u64,
}

impl CpuTicks {
    fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        let busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + cpu.get(7).copied().unwrap_or(0);
        let me = std::fs::read_to_string("/proc/self/stat").ok()?;
        // After the command name: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = me.rsplit_once(')')?.1.split_whitespace().collect();
        let mine = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Self { busy, mine })
    }

    /// The share of the machine's CPU time, since `self` (read at `t0`),
    /// that went to other processes (or was stolen by the hypervisor).
    fn others_share_since(self, t0: Instant) -> f64 {
        let Some(now) = Self::now() else { return 0.0 };
        let others = (now.busy - self.busy).saturating_sub(now.mine - self.mine);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let capacity = t0.elapsed().as_secs_f64() * 100.0 * cpus;
        others as f64 / capacity.max(1.0)
    }
}

/// One measurement: wall time, calls made, executions of the work.
struct Sample {
    elapsed: Duration,
    calls: u64,
    execs: Option<u64>,
}

impl Sample {
    fn ns_per_call(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.calls as f64
    }
}

/// A contender in one workload: a name and a closure that measures once.
struct Case<'a> {
    name: &'static str,
    measure: Box<dyn FnMut() -> Sample + 'a>,
}

/// A per-call case: `f(calls)` runs `calls` calls and returns the wall time.
/// The first measurement calibrates `calls` so that one takes about
/// `target`.
fn per_call<'a>(
    name: &'static str,
    target: Duration,
    mut f: impl FnMut(u64) -> Duration + 'a,
) -> Case<'a> {
    let mut calls = 0u64;
    Case {
        name,
        measure: Box::new(move || {
            if calls == 0 {
                let mut n = 10_000u64;
                loop {
                    let d = f(n);
                    if d >= Duration::from_millis(5) || n >= 1 << 30 {
                        let scale = target.as_secs_f64() / d.as_secs_f64().max(1e-9);
                        calls = ((n as f64 * scale) as u64).max(1_000);
                        break;
                    }
                    n *= 4;
                }
            }
            Sample {
                elapsed: f(calls),
                calls,
                execs: None,
            }
        }),
    }
}

/// A per-pass case: `f()` runs one pass of `calls` calls on a fresh
/// contender and returns the wall time and the executions.
fn per_pass<'a>(
    name: &'static str,
    calls: u64,
    mut f: impl FnMut() -> (Duration, u64) + 'a,
) -> Case<'a> {
    Case {
        name,
        measure: Box::new(move || {
            let (elapsed, execs) = f();
            Sample {
                elapsed,
                calls,
                execs: Some(execs),
            }
        }),
    }
}

/// Runs `rounds` interleaved rounds (after one warm-up round) and returns a
/// Markdown table. Ratios are medians of per-round ratios against the
/// contenders named in `refs` (those present in the workload).
fn run(title: &str, unit: &str, mut cases: Vec<Case<'_>>, rounds: usize, refs: &[&str]) -> String {
    // `--only <prefix>` measures just the workloads whose title starts so.
    let mut args = std::env::args().skip_while(|a| a != "--only");
    if let Some(only) = args.nth(1) {
        if !title.starts_with(&only) {
            return String::new();
        }
    }
    let n = cases.len();
    let mut samples: Vec<Vec<Sample>> = (0..n).map(|_| Vec::new()).collect();
    let started = Instant::now();
    let unspread_before = UNSPREAD_RACES.load(Ordering::Relaxed);
    let (mut discarded, mut noisy_kept) = (0, 0);
    for round in 0..=rounds {
        let mut tries = 0;
        loop {
            tries += 1;
            let before = CpuTicks::now();
            let t0 = Instant::now();
            let round_samples: Vec<(usize, Sample)> = (0..n)
                .map(|i| {
                    let c = (i + round) % n;
                    (c, (cases[c].measure)())
                })
                .collect();
            let others = before.map(|b| b.others_share_since(t0));
            let quiet = others.is_none_or(|share| share <= MAX_OTHERS_SHARE);
            if round == 0 || quiet || tries >= MAX_TRIES {
                if round > 0 {
                    if !quiet {
                        noisy_kept += 1;
                    }
                    for (c, s) in round_samples {
                        samples[c].push(s);
                    }
                }
                break;
            }
            discarded += 1;
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    eprintln!(
        "{title}: {rounds} rounds in {:.1} s ({discarded} noisy rounds discarded, {noisy_kept} kept)",
        started.elapsed().as_secs_f64()
    );
    let refs: Vec<(usize, &str)> = refs
        .iter()
        .filter_map(|r| cases.iter().position(|c| c.name == *r).map(|i| (i, *r)))
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "#### {title}\n");
    let mut header = format!("| contender | median {unit} | min–max |");
    let mut rule = String::from("|---|---:|---:|");
    for (_, r) in &refs {
        let _ = write!(header, " vs {r} |");
        rule.push_str("---:|");
    }
    let has_execs = samples.iter().any(|s| s.iter().any(|x| x.execs.is_some()));
    if has_execs {
        header.push_str(" executions per pass (min–max) |");
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for (i, case) in cases.iter().enumerate() {
        let ns: Vec<f64> = samples[i].iter().map(Sample::ns_per_call).collect();
        let lo = ns.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ns.iter().copied().fold(0.0, f64::max);
        let mut row = format!(
            "| {} | {:.1} | {:.1}–{:.1} |",
            case.name,
            median(ns.clone()),
            lo,
            hi
        );
        for (r, _) in &refs {
            let ratios: Vec<f64> = samples[i]
                .iter()
                .zip(&samples[*r])
                .map(|(a, b)| a.ns_per_call() / b.ns_per_call())
                .collect();
            let _ = write!(row, " {:.2}x |", median(ratios));
        }
        if has_execs {
            let execs: Vec<u64> = samples[i].iter().filter_map(|s| s.execs).collect();
            let min = execs.iter().min().copied().unwrap_or(0);
            let max = execs.iter().max().copied().unwrap_or(0);
            if min == max {
                let _ = write!(row, " {min} |");
            } else {
                let _ = write!(row, " {min}–{max} |");
            }
        }
        let _ = writeln!(out, "{row}");
    }
    let _ = writeln!(
        out,
        "\n{rounds} rounds kept; {discarded} rounds discarded because other processes \
         used more than {:.0}% of the machine meanwhile{}.",
        MAX_OTHERS_SHARE * 100.0,
        if noisy_kept > 0 {
            format!(" ({noisy_kept} noisy rounds kept after {MAX_TRIES} tries)")
        } else {
            String::new()
        }
    );
    let unspread = UNSPREAD_RACES.load(Ordering::Relaxed) - unspread_before;
    if unspread > 0 {
        let _ = writeln!(
            out,
            "\n({unspread} races ended with every task on one worker; a hit or substrate \
             race is then run again, up to {ATTEMPTS} times.)"
        );
    }
    out
}

fn hit_case<'a, C: Contender>(
    rt: &'a Runtime,
    name: &'static str,
    c: C,
    values: &Arc<[Value]>,
    tasks: usize,
) -> Case<'a> {
    let c = Arc::new(c);
    rt.block_on(prefill(&*c, values));
    let values = Arc::clone(values);
    per_call(name, Duration::from_millis(40), move |calls| {
        rt.block_on(hit(&c, &values, tasks, calls))
    })
}

fn storm_case<'a, C: Contender>(
    rt: &'a Runtime,
    name: &'static str,
    make: impl Fn() -> C + 'a,
    callers: usize,
    sleep: Option<Duration>,
) -> Case<'a> {
    per_pass(name, callers as u64, move || {
        rt.block_on(storm(Arc::new(make()), callers, sleep))
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let r = |full: usize| if quick { 2 } else { full };
    let rt = runtime();
    let long = Duration::from_secs(3600);
    let mut report = String::new();

    for (title, tasks, keys) in [
        ("hit: 1 hot key, 2 tasks", 2, 1),
        ("hit: 1 hot key, 16 tasks", 16, 1),
        ("hit: 1,024 hot keys, 2 tasks", 2, 1024),
    ] {
        let values = hot_values(keys);
        let cases = vec![
            hit_case(&rt, "idem", Idem::with_ttl(long), &values, tasks),
            hit_case(
                &rt,
                "idem_get",
                IdemGet(Idem::with_ttl(long).0),
                &values,
                tasks,
            ),
            hit_case(&rt, "moka", Moka::with_ttl(long), &values, tasks),
            hit_case(
                &rt,
                "async_singleflight (no cache)",
                AsyncSingleflight::new(),
                &values,
                tasks,
            ),
            hit_case(
                &rt,
                "singleflight_async (no cache)",
                SingleflightAsync::default(),
                &values,
                tasks,
            ),
            hit_case(&rt, "naive_map", NaiveMap::default(), &values, tasks),
            hit_case(&rt, "floor_dashmap", FloorMap::default(), &values, tasks),
        ];
        report += &run(
            title,
            "ns/call",
            cases,
            r(21),
            &["floor_dashmap", "moka", "naive_map"],
        );
        report.push('\n');
    }

    let ttl = Duration::from_secs(60);
    for (title, sleep) in [
        (
            "storm: 10,000 tasks, one key, work sleeps 1 ms",
            Some(Duration::from_millis(1)),
        ),
        ("storm: 10,000 tasks, one key, work ready at once", None),
    ] {
        let n = 10_000;
        let cases = vec![
            storm_case(&rt, "idem", move || Idem::with_ttl(ttl), n, sleep),
            storm_case(&rt, "idem_no_ttl", Idem::coalesce_only, n, sleep),
            storm_case(&rt, "moka", move || Moka::with_ttl(ttl), n, sleep),
            storm_case(
                &rt,
                "async_singleflight (no cache)",
                AsyncSingleflight::new,
                n,
                sleep,
            ),
            storm_case(
                &rt,
                "singleflight_async (no cache)",
                SingleflightAsync::default,
                n,
                sleep,
            ),
            storm_case(&rt, "naive_map", NaiveMap::default, n, sleep),
            storm_case(&rt, "floor_oncecell", FloorCell::default, n, sleep),
        ];
        let refs = [
            "floor_oncecell",
            "moka",
            "naive_map",
            "async_singleflight (no cache)",
        ];
        report += &run(title, "ns/caller", cases, r(9), &refs);
        report.push('\n');
    }

    let keys = 200_000;
    let cases = vec![
        per_pass("idem", keys, || {
            rt.block_on(distinct(Arc::new(Idem::with_ttl(long)), keys, 2))
        }),
        per_pass("moka", keys, || {
            rt.block_on(distinct(Arc::new(Moka::with_ttl(long)), keys, 2))
        }),
        per_pass("async_singleflight (no cache)", keys, || {
            rt.block_on(distinct(Arc::new(AsyncSingleflight::new()), keys, 2))
        }),
        per_pass("singleflight_async (no cache)", keys, || {
            rt.block_on(distinct(Arc::new(SingleflightAsync::default()), keys, 2))
        }),
        per_pass("naive_map", keys, || {
            rt.block_on(distinct(Arc::new(NaiveMap::default()), keys, 2))
        }),
        per_pass("floor_dashmap (no coalescing)", keys, || {
            rt.block_on(distinct(Arc::new(FloorMap::default()), keys, 2))
        }),
    ];
    let title = "distinct: 200,000 distinct keys, ready work, 2 tasks";
    report += &run(title, "ns/call", cases, r(7), &["moka", "naive_map"]);
    report.push('\n');

    let zkeys = zipf_keys(1_000_000, 100_000, 1.0, 0x1de5_eed5);
    let calls = zkeys.len() as u64;
    let ttl = Duration::from_secs(1);
    let z = &zkeys;
    let cases = vec![
        per_pass("idem", calls, || {
            rt.block_on(zipf(Arc::new(Idem::bounded(ttl, 10_000)), z, 8))
        }),
        per_pass("moka", calls, || {
            rt.block_on(zipf(Arc::new(Moka::bounded(ttl, 10_000)), z, 8))
        }),
        per_pass("idem_unbounded", calls, || {
            rt.block_on(zipf(Arc::new(Idem::with_ttl(ttl)), z, 8))
        }),
        per_pass("async_singleflight (no cache)", calls, || {
            rt.block_on(zipf(Arc::new(AsyncSingleflight::new()), z, 8))
        }),
        per_pass("singleflight_async (no cache)", calls, || {
            rt.block_on(zipf(Arc::new(SingleflightAsync::default()), z, 8))
        }),
        per_pass("naive_map (unbounded, no ttl)", calls, || {
            rt.block_on(zipf(Arc::new(NaiveMap::default()), z, 8))
        }),
    ];
    let title =
        "zipf: 1,000,000 calls over 100,000 keys (s = 1.0), 8 tasks, ttl 1 s, capacity 10,000";
    report += &run(
        title,
        "ns/call",
        cases,
        r(5),
        &["moka", "naive_map (unbounded, no ttl)"],
    );
    report.push('\n');

    // The same calls with a ttl that never expires during the run: the
    // misses are the eviction policy's alone, whatever each pass's speed.
    let long_cases = vec![
        per_pass("idem", calls, || {
            rt.block_on(zipf(Arc::new(Idem::bounded(long, 10_000)), z, 8))
        }),
        per_pass("moka", calls, || {
            rt.block_on(zipf(Arc::new(Moka::bounded(long, 10_000)), z, 8))
        }),
    ];
    let title = "zipf, eviction policy only: as above with ttl 1 h";
    report += &run(title, "ns/call", long_cases, r(3), &["moka"]);
    report.push('\n');

    for (title, keys) in [
        ("substrate: lookup + Arc clone, 1,024 keys, 2 tasks", 1024),
        ("substrate: lookup + Arc clone, 1 key, 2 tasks", 1),
    ] {
        let values = hot_values(keys);
        let dash: Arc<DashMap<u64, Value>> = Arc::new(DashMap::new());
        let table = Arc::new(ShardedTable::new(8));
        for (k, v) in values.iter().enumerate() {
            dash.insert(k as u64, Value::clone(v));
            table.insert(k as u64, Value::clone(v));
        }
        let target = Duration::from_millis(40);
        let rt = &rt;
        let cases = vec![
            per_call("dashmap (8 shards)", target, move |calls| {
                let get = |m: &DashMap<u64, Value>, k: u64| m.get(&k).map(|v| Value::clone(&v));
                rt.block_on(lookups(&dash, get, keys, 2, calls))
            }),
            per_call("RwLock<HashTable> (8 shards)", target, move |calls| {
                let get = |m: &ShardedTable, k: u64| m.get(k);
                rt.block_on(lookups(&table, get, keys, 2, calls))
            }),
        ];
        report += &run(title, "ns/call", cases, r(21), &["dashmap (8 shards)"]);
        report.push('\n');
    }

    println!("{report}");
}
