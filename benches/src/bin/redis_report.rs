//! Issue 8's Redis report: idem's `RedisStore` and `Durable` executor
//! against a naive design (`SET NX` + `GET` + `SET`, no fencing) and the
//! `idempotent` crate's Valkey store, on one `redis-server` this binary
//! starts on a free port (`--save ""`; killed on exit, on a panic too).
//!
//! Workloads, each design in turn in every round (the order rotates), a
//! round re-measured when other processes took more than 10% of the
//! machine (up to `--tries` times):
//!
//! * **unique**: `--calls` calls of fresh keys over `--tasks` tasks (a
//!   first execution each);
//! * **replay**: `--calls` calls over `--replay-keys` completed keys;
//! * **storm**: `--storm` callers of one key at once in one process, the
//!   work sleeping `--work-ms`;
//! * **storm across processes**: the same callers spread over
//!   `--processes` processes, each a set of tasks with its own connection
//!   and its own design instance (its own `Durable`): processes stood in
//!   for by tasks, which is what the server sees of them;
//! * **renewals**: idem's executor with a short lease, to count renewals.
//!
//! Each measurement zeroes the server's counts (`CONFIG RESETSTAT`) and
//! reads them back (`INFO commandstats`); round trips are counted by the
//! client. Prints Markdown for `BENCHMARKS.md` and writes the latency
//! distributions as an SVG (`--plot`, default `benches/plots/redis-latency.svg`).
//!
//! `cargo run --release -p idem-benches --bin redis_report` (about 2
//! minutes); `--quick` for a smoke run; `--help` for the flags.

use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use idem_benches::median;
use idem_benches::redis::idem_designs::{IdemDurable, IdemStore, OneTripClaim};
use idem_benches::redis::naive::Naive;
use idem_benches::redis::noise::Ticks;
use idem_benches::redis::peer::Peer;
use idem_benches::redis::plot::{self, Panel};
use idem_benches::redis::server::Server;
use idem_benches::redis::stats::{self, per, Commands};
use idem_benches::redis::workload::{self, quantile, race, Plan, Run, Work, HOWS};
use idem_benches::redis::{multiplexed, Design, Settings, Tally};
use idem_redis::RedisStore;
use redis::aio::MultiplexedConnection;

type Store = RedisStore<idem_benches::redis::Conn>;

/// A round in which other processes used more than this share of the
/// machine is measured again.
const MAX_OTHERS_SHARE: f64 = 0.10;

#[derive(Debug, Clone)]
struct Args {
    rounds: usize,
    storm_rounds: usize,
    calls: usize,
    tasks: usize,
    replay_keys: usize,
    storm: usize,
    processes: usize,
    work: Duration,
    tries: usize,
    what_if: bool,
    only: Option<Vec<String>>,
    plot: Option<PathBuf>,
}

impl Args {
    /// Whether the workload named `name` is measured (`--only`).
    fn wants(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name))
    }
}

const HELP: &str = "\
redis_report: idem on Redis against a naive design and the idempotent crate

  --rounds N        rounds of the unique and replay workloads (5)
  --storm-rounds N  rounds of the storms (3)
  --calls N         calls per unique or replay measurement (20000)
  --tasks N         tasks making them (16)
  --replay-keys N   completed keys the replays cycle over (1000)
  --storm N         callers of one key in a storm (10000)
  --processes N     processes of the cross-process storm (4)
  --work-ms N       how long a storm's work sleeps (20)
  --tries N         measurements of a noisy round before keeping it (3)
  --no-what-if      leave out idem's designs on the 1-round-trip claim
  --only LIST       some workloads only, of unique,replay,storm,across,renewals
  --plot PATH       where the SVG goes (benches/plots/redis-latency.svg; with
                    --only, no SVG unless given)
  --no-plot         no SVG
  --quick           a smoke run: 1 round, 2000 calls, storms of 1000
";

fn args() -> Args {
    let mut a = Args {
        rounds: 5,
        storm_rounds: 3,
        calls: 20_000,
        tasks: 16,
        replay_keys: 1_000,
        storm: 10_000,
        processes: 4,
        work: Duration::from_millis(20),
        tries: 3,
        what_if: true,
        only: None,
        plot: Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/plots/redis-latency.svg"
        ))),
    };
    let mut plot_given = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = || -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{flag} takes a number\n{HELP}"))
        };
        match flag.as_str() {
            "--rounds" => a.rounds = number().max(1),
            "--storm-rounds" => a.storm_rounds = number().max(1),
            "--calls" => a.calls = number().max(1),
            "--tasks" => a.tasks = number().max(1),
            "--replay-keys" => a.replay_keys = number().max(1),
            "--storm" => a.storm = number().max(1),
            "--processes" => a.processes = number().max(1),
            "--work-ms" => a.work = Duration::from_millis(number() as u64),
            "--tries" => a.tries = number().max(1),
            "--no-what-if" => a.what_if = false,
            "--only" => {
                let list = it.next().expect("--only takes a list");
                a.only = Some(list.split(',').map(str::to_owned).collect());
            }
            "--no-plot" => a.plot = None,
            "--plot" => {
                a.plot = Some(PathBuf::from(it.next().expect("--plot takes a path")));
                plot_given = true;
            }
            "--quick" => {
                a.rounds = 1;
                a.storm_rounds = 1;
                a.calls = 2_000;
                a.replay_keys = 200;
                a.storm = 1_000;
            }
            "--help" | "-h" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => panic!("unknown flag {other}\n{HELP}"),
        }
    }
    // A partial run does not overwrite the committed plot unless told to.
    if a.only.is_some() && !plot_given {
        a.plot = None;
    }
    a
}

/// One design's processes, behind a face the report can keep in a list.
trait Contestant: Send + Sync {
    fn name(&self) -> &'static str;
    fn counts_requests(&self) -> bool;
    fn tally(&self) -> &Tally;
    fn run(&self, plans: Vec<Plan>, work: Work) -> Pin<Box<dyn Future<Output = Run> + Send + '_>>;
}

struct Processes<D> {
    processes: Vec<Arc<D>>,
    tally: Arc<Tally>,
}

impl<D: Design> Contestant for Processes<D> {
    fn name(&self) -> &'static str {
        D::name()
    }

    fn counts_requests(&self) -> bool {
        D::counts_requests()
    }

    fn tally(&self) -> &Tally {
        &self.tally
    }

    fn run(&self, plans: Vec<Plan>, work: Work) -> Pin<Box<dyn Future<Output = Run> + Send + '_>> {
        Box::pin(race(&self.processes, plans, work))
    }
}

async fn processes<D: Design>(url: &str, settings: Settings, n: usize) -> Box<dyn Contestant> {
    let tally = Arc::new(Tally::default());
    let mut processes = Vec::with_capacity(n);
    for _ in 0..n {
        processes.push(Arc::new(
            D::connect(url, settings, Arc::clone(&tally)).await,
        ));
    }
    Box::new(Processes { processes, tally })
}

/// One measurement of one design.
struct Measure {
    run: Run,
    commands: Commands,
    /// requests, claims, polls, completes, renewals.
    client: [u64; 5],
    server_cpu: f64,
    client_cpu: f64,
}

impl Measure {
    fn throughput(&self) -> f64 {
        self.run.calls() as f64 / self.run.wall.as_secs_f64()
    }

    /// Round trips: the client's count, or for a design whose connection
    /// the bench cannot wrap, its scripts' calls on the server.
    fn round_trips(&self, counted: bool) -> u64 {
        if counted {
            self.client[0]
        } else {
            self.commands.get("evalsha")
                + self.commands.get("eval")
                + self.commands.get("script|load")
        }
    }
}

struct Bench {
    admin: MultiplexedConnection,
    server: u32,
}

impl Bench {
    async fn measure(&mut self, c: &dyn Contestant, plans: Vec<Plan>, work: Work) -> Measure {
        c.tally().reset();
        let cpu0 = stats::cpu(&mut self.admin).await;
        stats::reset(&mut self.admin).await;
        let t0 = Ticks::now(self.server);
        let run = c.run(plans, work).await;
        let t1 = Ticks::now(self.server);
        let commands = stats::commands(&mut self.admin).await;
        let cpu1 = stats::cpu(&mut self.admin).await;
        Measure {
            run,
            commands,
            client: c.tally().read(),
            server_cpu: cpu1 - cpu0,
            client_cpu: t0.mine_since(&t1),
        }
    }
}

/// The workloads, in the order of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unique,
    Replay,
    Storm,
    StormAcross,
}

impl Kind {
    fn title(self, a: &Args) -> String {
        match self {
            Kind::Unique => format!(
                "unique keys: {} first executions, {}, one process",
                num(a.calls as f64),
                tasks(a.tasks)
            ),
            Kind::Replay => format!(
                "replays: {} calls over {} completed keys, {}, one process",
                num(a.calls as f64),
                num(a.replay_keys as f64),
                tasks(a.tasks)
            ),
            Kind::Storm => format!(
                "storm: {} callers of one key at once, one process, work {:?}",
                num(a.storm as f64),
                a.work
            ),
            Kind::StormAcross => format!(
                "storm across processes: {} callers of one key, {} processes, work {:?}",
                num(a.storm as f64),
                a.processes,
                a.work
            ),
        }
    }

    fn short(self, a: &Args) -> String {
        match self {
            Kind::Unique => "unique keys".into(),
            Kind::Replay => "replays".into(),
            Kind::Storm => format!("storm, {} callers, 1 process", num(a.storm as f64)),
            Kind::StormAcross => format!(
                "storm, {} callers, {} processes",
                num(a.storm as f64),
                a.processes
            ),
        }
    }

    /// Its name for `--only`.
    fn flag(self) -> &'static str {
        match self {
            Kind::Unique => "unique",
            Kind::Replay => "replay",
            Kind::Storm => "storm",
            Kind::StormAcross => "across",
        }
    }

    fn is_storm(self) -> bool {
        matches!(self, Kind::Storm | Kind::StormAcross)
    }
}

/// Runs one workload on one design, preparing what it needs first (not
/// measured).
async fn one(bench: &mut Bench, a: &Args, kind: Kind, c: &dyn Contestant, round: usize) -> Measure {
    stats::flush(&mut bench.admin).await;
    let tag = format!("r{round}");
    match kind {
        Kind::Unique => {
            bench
                .measure(c, workload::unique(&tag, a.calls, a.tasks), Work::Ready)
                .await
        }
        Kind::Replay => {
            let prepared = c
                .run(workload::unique(&tag, a.replay_keys, a.tasks), Work::Ready)
                .await;
            assert_eq!(
                prepared.errors,
                0,
                "{}: preparing replays: {:?}",
                c.name(),
                prepared.first_error
            );
            bench
                .measure(
                    c,
                    workload::cycling(&tag, a.replay_keys, a.calls, a.tasks),
                    Work::Ready,
                )
                .await
        }
        Kind::Storm => {
            bench
                .measure(c, workload::storm(&tag, a.storm, 1), Work::Sleep(a.work))
                .await
        }
        Kind::StormAcross => {
            bench
                .measure(
                    c,
                    workload::storm(&tag, a.storm, a.processes),
                    Work::Sleep(a.work),
                )
                .await
        }
    }
}

/// Every kept measurement of one workload: `[round][design]`, designs in
/// the list's order.
struct Results {
    kind: Kind,
    rounds: Vec<Vec<Measure>>,
    noisy_kept: usize,
    retried: usize,
}

async fn workload_rounds(
    bench: &mut Bench,
    a: &Args,
    kind: Kind,
    designs: &[Box<dyn Contestant>],
) -> Results {
    let n = if kind.is_storm() {
        a.storm_rounds
    } else {
        a.rounds
    };
    let mut results = Results {
        kind,
        rounds: Vec::new(),
        noisy_kept: 0,
        retried: 0,
    };
    for round in 0..n {
        for attempt in 1..=a.tries {
            let t0 = Ticks::now(bench.server);
            let mut slots: Vec<Option<Measure>> = (0..designs.len()).map(|_| None).collect();
            for k in 0..designs.len() {
                let d = (round + k) % designs.len();
                slots[d] = Some(one(bench, a, kind, &*designs[d], round).await);
            }
            let share = t0.others_share(&Ticks::now(bench.server));
            if share > MAX_OTHERS_SHARE && attempt < a.tries {
                eprintln!(
                    "  {}: round {round} again: other processes took {:.0}% of the machine",
                    kind.short(a),
                    share * 100.0
                );
                results.retried += 1;
                continue;
            }
            if share > MAX_OTHERS_SHARE {
                results.noisy_kept += 1;
            }
            results
                .rounds
                .push(slots.into_iter().map(|m| m.expect("measured")).collect());
            break;
        }
    }
    results
}

/// `1 task`, `16 tasks`.
fn tasks(n: usize) -> String {
    if n == 1 {
        "1 task".into()
    } else {
        format!("{n} tasks")
    }
}

/// `1234567.8` as `1,234,568`.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let s = format!("{:.0}", x);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// Per-design totals over the kept rounds of one workload.
struct Summary {
    name: &'static str,
    throughput: f64,
    latencies: Vec<u64>,
    calls: u64,
    round_trips: u64,
    commands: Commands,
    client: [u64; 5],
    server_cpu: f64,
    client_cpu: f64,
    executions: u64,
    hows: [u64; 4],
    errors: u64,
    first_error: Option<String>,
    wall: Vec<f64>,
}

fn summarize(r: &Results, designs: &[Box<dyn Contestant>]) -> Vec<Summary> {
    designs
        .iter()
        .enumerate()
        .map(|(d, c)| {
            let ms: Vec<&Measure> = r.rounds.iter().map(|round| &round[d]).collect();
            let mut latencies: Vec<u64> = ms
                .iter()
                .flat_map(|m| m.run.latencies.iter().copied())
                .collect();
            latencies.sort_unstable();
            let mut commands = Commands::default();
            let mut client = [0u64; 5];
            let mut hows = [0u64; 4];
            for m in &ms {
                commands.add(&m.commands);
                for (t, v) in client.iter_mut().zip(m.client) {
                    *t += v;
                }
                for (t, v) in hows.iter_mut().zip(m.run.hows) {
                    *t += v;
                }
            }
            Summary {
                name: c.name(),
                throughput: median(ms.iter().map(|m| m.throughput()).collect()),
                calls: ms.iter().map(|m| m.run.calls()).sum(),
                round_trips: ms.iter().map(|m| m.round_trips(c.counts_requests())).sum(),
                latencies,
                commands,
                client,
                server_cpu: ms.iter().map(|m| m.server_cpu).sum(),
                client_cpu: ms.iter().map(|m| m.client_cpu).sum(),
                executions: ms.iter().map(|m| m.run.executions).sum(),
                hows,
                errors: ms.iter().map(|m| m.run.errors).sum(),
                first_error: ms.iter().find_map(|m| m.run.first_error.clone()),
                wall: ms.iter().map(|m| m.run.wall.as_secs_f64()).collect(),
            }
        })
        .collect()
}

/// The median over rounds of design `a`'s throughput divided by `b`'s in
/// the same round.
fn ratio(r: &Results, a: usize, b: usize) -> f64 {
    median(
        r.rounds
            .iter()
            .map(|round| round[a].throughput() / round[b].throughput())
            .collect(),
    )
}

fn micros(ns: u64) -> String {
    let us = ns as f64 / 1_000.0;
    if us >= 100.0 {
        num(us)
    } else {
        format!("{us:.1}")
    }
}

fn report_per_call(out: &mut String, a: &Args, r: &Results, s: &[Summary]) {
    let _ = writeln!(out, "### {}\n", r.kind.title(a));
    let _ = writeln!(
        out,
        "| design | calls/s | × naive | p50 µs | p99 µs | round trips/call | commands/call | server CPU µs/call | client CPU µs/call |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (d, x) in s.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2}x | {} | {} | {} | {} | {:.1} | {:.1} |",
            x.name,
            num(x.throughput),
            ratio(r, d, 0),
            micros(quantile(&x.latencies, 0.50)),
            micros(quantile(&x.latencies, 0.99)),
            per(x.round_trips, x.calls),
            per(x.commands.total(), x.calls),
            x.server_cpu * 1e6 / x.calls as f64,
            x.client_cpu * 1e6 / x.calls as f64,
        );
    }
    let _ = writeln!(out);
}

fn report_storm(out: &mut String, a: &Args, r: &Results, s: &[Summary]) {
    let rounds = r.rounds.len().max(1) as u64;
    let _ = writeln!(out, "### {}\n", r.kind.title(a));
    let _ = writeln!(
        out,
        "Per storm (the mean of {rounds} storms). Claims: calls that asked Redis for the key (a call coalesced \
         in its process asks nothing; a caller that starts after the record was written gets it from its claim); \
         polls: looks again after a pause."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| design | wall ms | p50 ms | p99 ms | executions | claims | polls | round trips | commands | commands ÷ idem durable's | how the calls ended |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    let durable = s
        .iter()
        .position(|x| x.name == IdemDurable::<Store>::name());
    for x in s {
        let vs = durable.map_or(f64::NAN, |d| {
            x.commands.total() as f64 / s[d].commands.total().max(1) as f64
        });
        let hows: Vec<String> = x
            .hows
            .iter()
            .zip(HOWS)
            .filter(|(n, _)| **n > 0)
            .map(|(n, h)| format!("{h} {}", num((*n / rounds) as f64)))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
            x.name,
            median(x.wall.clone()) * 1e3,
            quantile(&x.latencies, 0.50) as f64 / 1e6,
            quantile(&x.latencies, 0.99) as f64 / 1e6,
            per(x.executions, rounds),
            num((x.client[1] / rounds) as f64),
            num((x.client[2] / rounds) as f64),
            num((x.round_trips / rounds) as f64),
            num((x.commands.total() / rounds) as f64),
            if vs.is_finite() {
                format!("{vs:.0}x")
            } else {
                "–".into()
            },
            hows.join(", "),
        );
    }
    let _ = writeln!(out);
}

fn report_commands(out: &mut String, a: &Args, all: &[(Results, Vec<Summary>)]) {
    let _ = writeln!(out, "### Server commands per call (`INFO commandstats`)\n");
    let _ = writeln!(
        out,
        "A script's own commands are counted under their names as well as under its `evalsha`."
    );
    let _ = writeln!(out);
    for (r, s) in all {
        let _ = writeln!(out, "{}:\n", r.kind.short(a));
        for x in s {
            let _ = writeln!(out, "* {}: {}", x.name, x.commands.per_call(x.calls));
        }
        let _ = writeln!(out);
    }
}

/// The goals of issue 8, judged on this run.
fn report_goals(out: &mut String, a: &Args, all: &[(Results, Vec<Summary>)], names: &[&str]) {
    let find = |kind: Kind| all.iter().find(|(r, _)| r.kind == kind);
    let index = |name: &str| names.iter().position(|n| *n == name);
    let durable = IdemDurable::<Store>::name();
    let store = IdemStore::<Store>::name();
    let peer = Peer::name();
    let verdict = |ok: bool| if ok { "**met**" } else { "**missed**" };
    let _ = writeln!(out, "### Goals, on this run\n");
    if let (Some((r, s)), Some(d), Some(st)) = (find(Kind::Unique), index(durable), index(store)) {
        let (rd, rs) = (ratio(r, d, 0), ratio(r, st, 0));
        let _ = writeln!(
            out,
            "* Fencing and renewal cost at most 10% of the naive design's throughput on unique keys: \
             {}. The executor does {rd:.2}x naive ({} round trips and {} commands per call against {} and {}); \
             the store alone {rs:.2}x.",
            verdict(rd >= 0.90),
            per(s[d].round_trips, s[d].calls),
            per(s[d].commands.total(), s[d].calls),
            per(s[0].round_trips, s[0].calls),
            per(s[0].commands.total(), s[0].calls),
        );
        for what_if in [
            IdemDurable::<OneTripClaim>::name(),
            IdemStore::<OneTripClaim>::name(),
        ] {
            if let Some(w) = index(what_if) {
                let _ = writeln!(
                    out,
                    "  With a 1-round-trip claim ({what_if}): {:.2}x naive, {} round trips and {} commands per call.",
                    ratio(r, w, 0),
                    per(s[w].round_trips, s[w].calls),
                    per(s[w].commands.total(), s[w].calls),
                );
            }
        }
    }
    if let (Some((r, s)), Some(d), Some(p)) = (find(Kind::Replay), index(durable), index(peer)) {
        let one = s[d].commands.total() <= s[d].calls && s[d].round_trips <= s[d].calls;
        let vs = ratio(r, d, p);
        let _ = writeln!(
            out,
            "* A replay is one command and at least as fast as the crate's: {}. {} command(s) and {} round trip(s) per replay; \
             {vs:.2}x the crate's throughput in the same rounds (the store alone {:.2}x).",
            verdict(one && vs >= 1.0),
            per(s[d].commands.total(), s[d].calls),
            per(s[d].round_trips, s[d].calls),
            index(store).map_or(f64::NAN, |st| ratio(r, st, p)),
        );
    }
    for kind in [Kind::Storm, Kind::StormAcross] {
        if let (Some((_, s)), Some(d)) = (find(kind), index(durable)) {
            let mine = s[d].commands.total().max(1) as f64;
            let fewest_peer = [0, index(peer).unwrap_or(0)]
                .iter()
                .map(|&i| s[i].commands.total() as f64 / mine)
                .fold(f64::INFINITY, f64::min);
            let _ = writeln!(
                out,
                "* Duplicate storms at least 10x cheaper in Redis commands than either peer ({}): {}, {:.0}x fewer than the cheaper peer.",
                kind.short(a),
                verdict(fewest_peer >= 10.0),
                fewest_peer,
            );
        }
    }
    if let (Some((r, s)), Some(d)) = (find(Kind::StormAcross), index(durable)) {
        let rounds = r.rounds.len().max(1) as u64;
        let waiting = a.processes.saturating_sub(1).max(1) as u64;
        let _ = writeln!(
            out,
            "* Waiting processes do not hammer Redis: {} claims and {} polls per storm of {} callers in {} processes \
             ({:.1} polls per waiting process; one poller per process, backoff 10 ms doubling).",
            per(s[d].client[1], rounds),
            per(s[d].client[2], rounds),
            num(a.storm as f64),
            a.processes,
            s[d].client[2] as f64 / (rounds * waiting) as f64,
        );
    }
    let _ = writeln!(out);
}

/// The executor with a lease short enough to be renewed twice during each
/// work: renewals counted.
async fn renewals(bench: &mut Bench, url: &str, settings: Settings) -> String {
    let lease = Duration::from_millis(300);
    let work = Duration::from_millis(250);
    let settings = Settings { lease, ..settings };
    let (calls, tasks) = (64, 16);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Renewals: {calls} first executions over {tasks} tasks, work {work:?}, lease {lease:?} (renewed every {:?})\n",
        lease / 3
    );
    let _ = writeln!(
        out,
        "| design | round trips/call | renewals/call | commands per call |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|");
    let designs = [
        processes::<IdemDurable<Store>>(url, settings, 1).await,
        processes::<IdemDurable<OneTripClaim>>(url, settings, 1).await,
    ];
    for c in &designs {
        // Once unmeasured: the renewal script loaded.
        let warm = c
            .run(
                workload::unique("warm-renew", tasks, tasks),
                Work::Sleep(work),
            )
            .await;
        assert_eq!(warm.errors, 0, "{}: {:?}", c.name(), warm.first_error);
        stats::flush(&mut bench.admin).await;
        let m = bench
            .measure(
                &**c,
                workload::unique("renew", calls, tasks),
                Work::Sleep(work),
            )
            .await;
        let n = m.run.calls();
        assert_eq!(m.run.errors, 0, "{}: {:?}", c.name(), m.run.first_error);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            c.name(),
            per(m.client[0], n),
            per(m.client[4], n),
            m.commands.per_call(n),
        );
    }
    let _ = writeln!(out);
    out
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "?".into());
    let run = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "{} CPUs ({cpu}); {}; {}; load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        run("rustc", "--version"),
        run("redis-server", "--version")
            .split(" sha=")
            .next()
            .unwrap_or("?"),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".into()),
    )
}

fn main() {
    let a = args();
    let server = Server::start();
    let url = server.url();
    let rt = idem_benches::runtime();
    let settings = Settings {
        lease: Duration::from_secs(30),
        retain: Duration::from_secs(3600),
        wait: Duration::from_secs(30),
    };
    let started = std::time::Instant::now();
    let out = rt.block_on(async {
        let mut bench = Bench {
            admin: multiplexed(&url).await,
            server: server.pid(),
        };
        let p = a.processes;
        let mut designs: Vec<Box<dyn Contestant>> = vec![
            processes::<Naive>(&url, settings, p).await,
            processes::<Peer>(&url, settings, p).await,
            processes::<IdemStore<Store>>(&url, settings, p).await,
            processes::<IdemDurable<Store>>(&url, settings, p).await,
        ];
        if a.what_if {
            designs.push(processes::<IdemStore<OneTripClaim>>(&url, settings, p).await);
            designs.push(processes::<IdemDurable<OneTripClaim>>(&url, settings, p).await);
        }
        let names: Vec<&str> = designs.iter().map(|d| d.name()).collect();

        // Warm up: scripts loaded, connections and allocators in use.
        for c in &designs {
            stats::flush(&mut bench.admin).await;
            let warm = c.run(workload::unique("warm", 2_000, a.tasks), Work::Ready).await;
            assert_eq!(warm.errors, 0, "{}: {:?}", c.name(), warm.first_error);
            let warm = c.run(workload::cycling("warm", 2_000, 2_000, a.tasks), Work::Ready).await;
            assert_eq!(warm.errors, 0, "{}: {:?}", c.name(), warm.first_error);
            let warm = c
                .run(workload::storm("warm-storm", 200, p), Work::Sleep(a.work))
                .await;
            assert_eq!(warm.errors, 0, "{}: {:?}", c.name(), warm.first_error);
        }

        let mut all = Vec::new();
        for kind in [Kind::Unique, Kind::Replay, Kind::Storm, Kind::StormAcross] {
            if !a.wants(kind.flag()) {
                continue;
            }
            eprintln!("measuring: {}", kind.title(&a));
            let r = workload_rounds(&mut bench, &a, kind, &designs).await;
            let s = summarize(&r, &designs);
            all.push((r, s));
        }
        let renew = if a.wants("renewals") {
            renewals(&mut bench, &url, settings).await
        } else {
            String::new()
        };

        let mut out = String::new();
        let _ = writeln!(out, "## Redis report\n");
        let _ = writeln!(
            out,
            "`redis_report {}`\n",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        );
        let _ = writeln!(out, "Machine: {}.\n", machine());
        let _ = writeln!(
            out,
            "Settings: lease {:?}, retain {:?}; {} rounds of unique keys and replays, {} of each storm; \
             a storm's waiting callers poll from 10 ms doubling to 1 s (±25%). One tokio runtime, 2 workers; \
             one multiplexed connection per process (the crate: its own `ConnectionManager`).\n",
            settings.lease, settings.retain, a.rounds, a.storm_rounds
        );
        for (r, s) in &all {
            if r.kind.is_storm() {
                report_storm(&mut out, &a, r, s);
            } else {
                report_per_call(&mut out, &a, r, s);
            }
            if r.retried > 0 || r.noisy_kept > 0 {
                let _ = writeln!(
                    out,
                    "Noise: {} round(s) measured again, {} kept although other processes took more than 10% of the machine.\n",
                    r.retried, r.noisy_kept
                );
            }
            for x in s {
                if x.errors > 0 {
                    let _ = writeln!(
                        out,
                        "Errors: {} failed {} call(s); the first: {}\n",
                        x.name,
                        x.errors,
                        x.first_error.as_deref().unwrap_or("?")
                    );
                }
            }
        }
        report_commands(&mut out, &a, &all);
        out.push_str(&renew);
        report_goals(&mut out, &a, &all, &names);

        if let Some(path) = &a.plot {
            let panels: Vec<Panel<'_>> = all
                .iter()
                .map(|(r, s)| Panel {
                    title: r.kind.short(&a),
                    curves: s.iter().map(|x| (x.name, x.latencies.as_slice())).collect(),
                })
                .collect();
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let caption = "Latency per call, idem on Redis against its peers (one run, loopback)";
            match plot::write(path, caption, &names, &panels) {
                Ok(()) => eprintln!("plot: {}", path.display()),
                Err(e) => eprintln!("plot: {e}"),
            }
        }
        out
    });
    print!("{out}");
    eprintln!("done in {:.0?}", started.elapsed());
    drop(server);
}
