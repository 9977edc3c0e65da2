//! How long a bounded table (`Builder::max_entries`, S3-FIFO) keeps a result
//! that is not asked for again, counted in newer stores, through the public
//! API only.
//!
//! A workload stores one new key per step. A fraction of the keys (0, 10%,
//! 50%) is *retried*: one `get` of the key comes back after a random 1 to
//! `max_entries / 10` newer stores (soon enough to find it in S3-FIFO's
//! probationary queue, as the docs advised), or, in a second table, 1 to
//! `max_entries`. The other keys are one-offs. After a warm-up of `4 × max_entries` stores, every one-off key
//! stored in the next `max(max_entries, 2000)` steps is followed until its
//! result leaves the table; its *lifetime* is the number of newer stores
//! (in any shard) up to and including the one whose store evicted it.
//!
//! Leaving is observed without touching the result (a `get` would count as
//! a hit and change the policy's decision): each value is an `Arc` whose
//! last clone, the table's, records its key when it is dropped. When a
//! departure is recorded, `get` is checked to return `None` for that key.
//! With one shard (where the table's random hasher plays no part) the
//! lifetimes of a few keys are also checked by replaying the same workload
//! and calling `get` once, after `lifetime − 1` and after `lifetime` newer
//! stores: `Some`, then `None`.
//!
//! `cargo run --release -p idem-benches --bin retention [-- --quick]`

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use idem::SingleFlight;

/// A stored value that reports its key when the last clone is dropped.
#[derive(Debug)]
struct Tracked {
    key: u64,
    log: Arc<Mutex<Vec<u64>>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.log.lock().expect("log").push(self.key);
    }
}

type Table = SingleFlight<u64, Arc<Tracked>>;

/// A small xorshift: the workload is a function of its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy)]
struct Config {
    max_entries: usize,
    shards: usize,
    /// Retried keys per 1000.
    retry_permille: u64,
    /// Retries come back within 1 to this many newer stores.
    retry_within: u64,
}

fn table(c: Config) -> Table {
    SingleFlight::builder()
        .ttl(Duration::from_secs(3600))
        .max_entries(c.max_entries)
        .shards(c.shards)
        .build()
        .expect("valid settings")
}

/// One step of the workload: the key stored and whether it will be retried
/// (and after how many newer stores).
struct Workload {
    rng: Rng,
    c: Config,
    step: u64,
    /// (step at which to retry, key).
    retries: VecDeque<(u64, u64)>,
}

impl Workload {
    fn new(c: Config, seed: u64) -> Self {
        Self {
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            c,
            step: 0,
            retries: VecDeque::new(),
        }
    }

    /// Stores the next key; returns it and whether it is a one-off. Runs
    /// the retries that are due after this store.
    fn step(
        &mut self,
        t: &Table,
        log: &Arc<Mutex<Vec<u64>>>,
        served: &mut (u64, u64),
    ) -> (u64, bool) {
        let key = self.step;
        self.step += 1;
        let retried = self.rng.below(1000) < self.c.retry_permille;
        let delay = 1 + self.rng.below(self.c.retry_within);
        let v = Arc::new(Tracked {
            key,
            log: Arc::clone(log),
        });
        store(t, key, v);
        if retried {
            let at = key + delay;
            let i = self.retries.partition_point(|&(s, _)| s <= at);
            self.retries.insert(i, (at, key));
        }
        while let Some(&(at, k)) = self.retries.front() {
            if at > key {
                break;
            }
            self.retries.pop_front();
            served.1 += 1;
            if t.get(&k).is_some() {
                served.0 += 1;
            }
        }
        (key, !retried)
    }
}

fn store(t: &Table, key: u64, v: Arc<Tracked>) {
    let fut = t.run(key, move || async move { Ok::<_, Infallible>(v) });
    // The work is ready at once: the flight completes on its first poll.
    let out = poll_once(fut).expect("stored");
    drop(out);
}

/// Polls a future that completes without waiting (no runtime needed: the
/// ttl is an hour, so nothing expires and no sweeper is needed).
fn poll_once<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => unreachable!("ready work completes on its first poll"),
    }
}

struct RunResult {
    lifetimes: Vec<u64>,
    censored: usize,
    served: (u64, u64),
}

/// One run: warm up, follow the one-off keys of the window until they
/// leave (or the run ends).
fn run(c: Config, seed: u64) -> RunResult {
    let t = table(c);
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut w = Workload::new(c, seed);
    let warmup = 4 * c.max_entries as u64;
    let window = (c.max_entries as u64).max(2000);
    let cap = warmup + window + 20 * c.max_entries as u64 + 20_000;
    let mut served = (0, 0);
    let mut born: HashMap<u64, u64> = HashMap::new();
    let mut lifetimes = Vec::new();
    let mut step = 0u64;
    loop {
        let (key, one_off) = w.step(&t, &log, &mut served);
        if one_off && (warmup..warmup + window).contains(&step) {
            born.insert(key, step);
        }
        let gone: Vec<u64> = std::mem::take(&mut *log.lock().expect("log"));
        for k in gone {
            if let Some(b) = born.remove(&k) {
                assert!(t.get(&k).is_none(), "key {k} dropped but still served");
                lifetimes.push(step - b);
            }
        }
        step += 1;
        if step >= warmup + window && born.is_empty() || step >= cap {
            break;
        }
    }
    RunResult {
        lifetimes,
        censored: born.len(),
        served,
    }
}

/// With one shard: replays the workload of `seed` and checks with a single
/// `get` that the one-off key stored at `born` is served after
/// `lifetime - 1` newer stores and gone after `lifetime`.
fn check_by_replay(c: Config, seed: u64, born: u64, lifetime: u64) {
    for (newer, expect) in [(lifetime - 1, true), (lifetime, false)] {
        let t = table(c);
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut w = Workload::new(c, seed);
        let mut served = (0, 0);
        for _ in 0..=born + newer {
            w.step(&t, &log, &mut served);
        }
        assert_eq!(
            t.get(&born).is_some(),
            expect,
            "key stored at {born}, {newer} newer stores"
        );
    }
}

fn pct(v: &[u64], q: f64) -> u64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 5 };

    // The replay check, on one shard, for a few keys of each retry mix.
    for permille in [0, 100, 500] {
        let c = Config {
            max_entries: 100,
            shards: 1,
            retry_permille: permille,
            retry_within: 10,
        };
        let seed = 7;
        // Find some one-off keys' lifetimes in an instrumented run...
        let t = table(c);
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut w = Workload::new(c, seed);
        let mut served = (0, 0);
        let mut born = HashMap::new();
        let mut found = Vec::new();
        for step in 0..1000u64 {
            let (key, one_off) = w.step(&t, &log, &mut served);
            if one_off && (400..420).contains(&step) {
                born.insert(key, step);
            }
            for k in std::mem::take(&mut *log.lock().expect("log")) {
                if let Some(b) = born.remove(&k) {
                    found.push((b, step - b));
                }
            }
        }
        // ...and confirm them with `get` on replays.
        for &(b, l) in &found {
            check_by_replay(c, seed, b, l);
        }
        eprintln!(
            "replay check, {}% retried: {} lifetimes confirmed with get",
            permille / 10,
            found.len()
        );
    }

    for (within, tenth) in [("max_entries / 10", true), ("max_entries", false)] {
        println!(
            "\nLifetime of a one-off result, in newer stores (table-wide) until it \
             is gone; retries come back within 1..={within} newer stores.\n"
        );
        table_for(runs, tenth);
    }
}

/// One table of lifetimes, retries coming back within a tenth of
/// `max_entries` newer stores or within `max_entries`.
fn table_for(runs: u64, tenth: bool) {
    println!(
        "| max_entries | shards | retried | one-offs followed | min | p10 | median | p90 | max | retries served |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for max_entries in [100usize, 1000, 10_000] {
        for shards in [1usize, 8, 64] {
            for retry_permille in [0u64, 100, 500] {
                let c = Config {
                    max_entries,
                    shards,
                    retry_permille,
                    retry_within: if tenth {
                        (max_entries as u64 / 10).max(1)
                    } else {
                        max_entries as u64
                    },
                };
                let mut all = Vec::new();
                let mut censored = 0;
                let mut served = (0, 0);
                for seed in 0..runs {
                    let r = run(c, seed + 1);
                    all.extend(r.lifetimes);
                    censored += r.censored;
                    served.0 += r.served.0;
                    served.1 += r.served.1;
                }
                all.sort_unstable();
                let served = if served.1 == 0 {
                    "–".to_string()
                } else {
                    format!("{:.1}%", served.0 as f64 / served.1 as f64 * 100.0)
                };
                println!(
                    "| {max_entries} | {shards} | {}% | {}{} | {} | {} | {} | {} | {} | {served} |",
                    retry_permille / 10,
                    all.len(),
                    if censored > 0 {
                        format!(" (+{censored} still stored at the end)")
                    } else {
                        String::new()
                    },
                    all[0],
                    pct(&all, 0.1),
                    pct(&all, 0.5),
                    pct(&all, 0.9),
                    all[all.len() - 1],
                );
            }
        }
    }
}
