//! How far the kernel's coarse monotonic clock lags the precise one on this
//! machine, how it steps, what that does to idem's ttls, and what each way of
//! checking a ttl costs per hit.
//!
//! Sections, each idle and then under load (two CPU-bound threads, or two
//! threads that alternate 1 ms of work with 1 ms of sleep):
//!
//! * **lag, spinning**: `precise - coarse`, read back to back in a tight
//!   loop (the lag a busy server sees), and the coarse clock's steps: how
//!   much it jumps and how long (precise time) it holds each value;
//! * **lag, after sleep**: the same, read right after a random 0–20 ms sleep
//!   (a request arriving at a server that was idle);
//! * **idem, end to end**: through the public API, how long after its store
//!   a result with a 1 ns ttl is still served (`get` returns it), and how
//!   late (or early) a 20 ms and a 100 ms ttl end, against the precise
//!   clock;
//! * **cost** (idle only): ns per ttl check for each candidate, in
//!   interleaved rounds, and ns per `get` hit of the idem being built.
//!
//! `cargo run --release -p idem-benches --bin clock_lag [-- --quick]`;
//! `-- --costs` for the cost table only.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use idem::SingleFlight;
use rustix::time::{clock_getres, clock_gettime, ClockId, Timespec};

fn ns(ts: Timespec) -> u64 {
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[inline(always)]
fn coarse() -> u64 {
    ns(clock_gettime(ClockId::MonotonicCoarse))
}

#[inline(always)]
fn precise() -> u64 {
    ns(clock_gettime(ClockId::Monotonic))
}

/// A small xorshift, for sleep lengths.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Steal and busy time of the whole machine so far, in USER_HZ (100 per
/// second) ticks (`/proc/stat`).
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if cpu.len() < 8 {
        return (0, 0);
    }
    let busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6];
    (cpu[7], busy)
}

/// Percentiles of a sample, in µs.
fn summary(mut v: Vec<u64>) -> String {
    if v.is_empty() {
        return "(no samples)".into();
    }
    v.sort_unstable();
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
    format!(
        "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
        v.len(),
        p(0.0),
        p(0.5),
        p(0.9),
        p(0.99),
        p(0.999),
        p(1.0)
    )
}

const HEADER: &str = "| what | samples | min µs | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|---|";

/// A histogram of lags in 10 µs buckets (the last one collects the rest),
/// turned back into a sample list of bucket floors for [`summary`].
struct Hist(Vec<u64>);

impl Hist {
    const BUCKET: u64 = 10_000;
    fn new() -> Self {
        Self(vec![0; 20_001])
    }
    fn add(&mut self, x: u64) {
        let i = ((x / Self::BUCKET) as usize).min(self.0.len() - 1);
        self.0[i] += 1;
    }
    /// Samples at or above `x` ns (to the bucket).
    fn at_least(&self, x: u64) -> u64 {
        self.0[(x / Self::BUCKET) as usize..].iter().sum()
    }

    fn row(&self) -> String {
        let n: u64 = self.0.iter().sum();
        let at = |q: f64| {
            let target = ((n - 1) as f64 * q).round() as u64;
            let mut seen = 0;
            for (i, &c) in self.0.iter().enumerate() {
                seen += c;
                if seen > target {
                    return (i as u64 * Self::BUCKET) as f64 / 1e3;
                }
            }
            f64::NAN
        };
        format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            n,
            at(0.0),
            at(0.5),
            at(0.9),
            at(0.99),
            at(0.999),
            at(1.0)
        )
    }
}

/// Lag and steps of the coarse clock in a tight loop for `d`.
fn spin(d: Duration, label: &str) {
    let end = precise() + d.as_nanos() as u64;
    let mut lag = Hist::new();
    // Steps seen while this thread ran throughout (no gap of 50 µs or more
    // between two of its reads since the last step), and the others.
    let mut steps = Vec::new();
    let mut holds = Vec::new();
    let mut gapped_steps = Vec::new();
    let mut gaps = Vec::new();
    let mut gapped = false;
    let mut ahead = 0u64;
    let mut last_c = coarse();
    let mut since = precise();
    let mut last_p = since;
    loop {
        let p1 = precise();
        let c = coarse();
        let p2 = precise();
        if c > p2 {
            ahead += 1;
        }
        if p1 - last_p >= 50_000 || p2 - p1 >= 50_000 {
            gapped = true;
            gaps.push((p1 - last_p).max(p2 - p1));
        }
        last_p = p2;
        if p2 - p1 < 50_000 {
            lag.add(p1.saturating_sub(c));
        }
        if c != last_c {
            if gapped {
                gapped_steps.push(c - last_c);
            } else {
                steps.push(c - last_c);
                holds.push(p1 - since);
            }
            gapped = false;
            last_c = c;
            // After `c` was read: holds are not overestimated when this
            // thread is preempted between `p1` and `c`.
            since = p2;
        }
        if p2 > end {
            break;
        }
    }
    println!("| {label}: lag (precise − coarse) {}", lag.row());
    let n = lag.0.iter().sum::<u64>() as f64;
    let tick = ns(clock_getres(ClockId::MonotonicCoarse));
    println!(
        "| {label}: share of reads lagging ≥ 1, 1.25, 1.5, 2 ticks | {:.1}% | {:.2}% | {:.4}% | {:.4}% | | | |",
        lag.at_least(tick) as f64 / n * 100.0,
        lag.at_least(tick * 5 / 4) as f64 / n * 100.0,
        lag.at_least(tick * 3 / 2) as f64 / n * 100.0,
        lag.at_least(2 * tick) as f64 / n * 100.0,
    );
    println!(
        "| {label}: coarse steps, thread running throughout {}",
        summary(steps)
    );
    println!(
        "| {label}: time a coarse value is held, thread running throughout {}",
        summary(holds)
    );
    println!(
        "| {label}: coarse steps across a gap in this thread's reads {}",
        summary(gapped_steps)
    );
    println!(
        "| {label}: gaps ≥ 50 µs in this thread's reads (preempted) {}",
        summary(gaps)
    );
    if ahead > 0 {
        println!("| {label}: COARSE AHEAD OF PRECISE {ahead} times | | | | | | | |");
    }
}

/// Lag right after a random 0–20 ms sleep, `n` times.
fn after_sleep(n: usize, label: &str) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut lags = Vec::with_capacity(n);
    for _ in 0..n {
        thread::sleep(Duration::from_micros(rng.below(20_000)));
        let p = precise();
        let c = coarse();
        lags.push(p.saturating_sub(c));
    }
    println!("| {label}: lag after sleep {}", summary(lags));
}

/// Through idem: how long a 1 ns ttl result stays readable, and how a
/// 20 ms and a 100 ms ttl end, `n` trials each (`n / 5` for 100 ms), with a random 0–10 ms sleep before
/// each store.
fn end_to_end(rt: &tokio::runtime::Runtime, n: usize, label: &str) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for (ttl, n) in [
        (Duration::from_nanos(1), n),
        (Duration::from_millis(20), n),
        (Duration::from_millis(100), n / 5),
    ] {
        let flight = SingleFlight::<u64, u64>::builder()
            .ttl(ttl)
            .build()
            .expect("valid settings");
        let ttl_ns = ttl.as_nanos() as u64;
        // Served later than the ttl after the store, at the latest; and
        // the earliest "gone" before the ttl, if any.
        let mut late = Vec::with_capacity(n);
        let mut early = Vec::with_capacity(n);
        for k in 0..n as u64 {
            thread::sleep(Duration::from_micros(rng.below(10_000)));
            let t0 = precise();
            rt.block_on(flight.run(k, || async { Ok::<_, Infallible>(k) }))
                .expect("stored");
            let t1 = precise();
            let mut last_served = None;
            let gone = loop {
                let before = precise();
                if flight.get(&k).is_none() {
                    break precise();
                }
                last_served = Some(before);
            };
            // Stored between t0 and t1: served at `before` >= the serve
            // time, so `before - t1 - ttl` is a lower bound on lateness.
            if let Some(h) = last_served {
                late.push((h.saturating_sub(t1)).saturating_sub(ttl_ns));
            }
            // Gone at or before `gone`; stored at or after t0.
            early.push((t0 + ttl_ns).saturating_sub(gone));
        }
        let early_count = early.iter().filter(|&&e| e > 0).count();
        println!(
            "| {label}: ttl {ttl:?}, served past the ttl by {}",
            summary(late)
        );
        println!(
            "| {label}: ttl {ttl:?}, gone before the ttl by ({early_count} of {n} early) {}",
            summary(early)
        );
    }
}

/// Runs `f` with background load of the given kind.
fn with_load(kind: &str, f: impl FnOnce()) {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..if kind == "idle" { 0 } else { 2 })
        .map(|_| {
            let stop = Arc::clone(&stop);
            let bursty = kind == "bursty";
            thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let until = Instant::now() + Duration::from_millis(1);
                    while Instant::now() < until {
                        x = black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                    if bursty {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    let (steal0, busy0) = cpu_jiffies();
    let t = Instant::now();
    f();
    let (steal1, busy1) = cpu_jiffies();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("load thread");
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "| ({kind}: {secs:.1} s, machine busy {:.0}%, steal {:.1}% of 2 CPUs) | | | | | | | |",
        (busy1 - busy0) as f64 / (secs * 100.0 * 2.0) * 100.0,
        (steal1 - steal0) as f64 / (secs * 100.0 * 2.0) * 100.0,
    );
}

/// ns per call of `f`, `iters` calls.
fn per_call(iters: u64, mut f: impl FnMut() -> bool) -> f64 {
    let t = Instant::now();
    let mut n = 0u64;
    for _ in 0..iters {
        n += u64::from(f());
    }
    black_box(n);
    t.elapsed().as_nanos() as f64 / iters as f64
}

fn costs(rt: &tokio::runtime::Runtime, rounds: usize) {
    // An expiry an hour away, hidden from the optimiser.
    let far = precise() + 3_600_000_000_000;
    let margin = 20_000_000u64;
    let far_instant = Instant::now() + Duration::from_secs(3600);
    let flight = SingleFlight::<u64, u64>::builder()
        .ttl(Duration::from_secs(3600))
        .build()
        .expect("valid settings");
    rt.block_on(flight.run(1, || async { Ok::<_, Infallible>(1) }))
        .expect("stored");
    let short_flight = SingleFlight::<u64, u64>::builder()
        .ttl(Duration::from_millis(30))
        .build()
        .expect("valid settings");
    let short = AtomicBool::new(false);
    type Case<'a> = (&'a str, Box<dyn FnMut() -> bool + 'a>);
    let mut cases: Vec<Case<'_>> = vec![
        (
            "coarse < expiry (today; also `expiry − res`)",
            Box::new(|| coarse() < black_box(far)),
        ),
        (
            "precise < expiry (clock_gettime MONOTONIC)",
            Box::new(|| precise() < black_box(far)),
        ),
        (
            "Instant::now() < expiry",
            Box::new(|| Instant::now() < black_box(far_instant)),
        ),
        (
            "coarse, precise within 20 ms of expiry (far from it)",
            Box::new(|| {
                let e = black_box(far);
                let c = coarse();
                if c + margin < e {
                    true
                } else {
                    c < e && precise() < e
                }
            }),
        ),
        (
            "coarse, precise within 20 ms of expiry (inside it)",
            Box::new(|| {
                let e = black_box(coarse() + margin / 2);
                let c = coarse();
                if c + margin < e {
                    true
                } else {
                    c < e && precise() < e
                }
            }),
        ),
        (
            "per-entry flag: precise if the ttl is short, else coarse",
            Box::new(|| {
                let e = black_box(far);
                if short.load(Ordering::Relaxed) {
                    precise() < e
                } else {
                    coarse() < e
                }
            }),
        ),
        (
            "idem `get` hit, ttl 1 h, as built",
            Box::new(|| flight.get(black_box(&1)).is_some()),
        ),
        (
            "idem `get` hit, ttl 30 ms (inside a 32 ms margin), as built",
            Box::new(|| {
                if short_flight.get(black_box(&1)).is_some() {
                    return true;
                }
                // Expired: stored again, once per 30 ms of hits.
                rt.block_on(short_flight.run(1, || async { Ok::<_, Infallible>(1) }))
                    .is_ok()
            }),
        ),
    ];
    let iters = 2_000_000;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for i in 0..cases.len() {
            let j = (i + round) % cases.len();
            samples[j].push(per_call(iters, &mut cases[j].1));
        }
    }
    println!("| check | median ns | min ns | max ns |\n|---|---|---|---|");
    for (i, (name, _)) in cases.iter().enumerate() {
        let s = &mut samples[i];
        s.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            s[s.len() / 2],
            s[0],
            s[s.len() - 1]
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let costs_only = std::env::args().any(|a| a == "--costs");
    let res = |id| {
        let t = clock_getres(id);
        format!("{} ns", ns(t))
    };
    println!(
        "clock_getres: MONOTONIC_COARSE {}, MONOTONIC {}",
        res(ClockId::MonotonicCoarse),
        res(ClockId::Monotonic)
    );
    let clocksource =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_default();
    println!("clocksource: {}", clocksource.trim());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (spin_for, sleeps, trials, rounds) = if quick {
        (Duration::from_millis(500), 50, 20, 5)
    } else {
        (Duration::from_secs(20), 500, 300, 31)
    };
    if costs_only {
        costs(&rt, rounds);
        return;
    }
    println!("\n{HEADER}");
    for kind in ["idle", "cpu-bound", "bursty"] {
        with_load(kind, || {
            spin(spin_for, kind);
            after_sleep(sleeps, kind);
            end_to_end(&rt, trials, kind);
        });
    }
    println!();
    costs(&rt, rounds);
}
