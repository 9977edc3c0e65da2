//! Issue 8, test 11: chaos with fixed seeds. Worker processes
//! (`src/bin/idem-redis-worker.rs --chaos`, each a `Durable` on a
//! `RedisStore`) call the same few keys at a time, concurrently, through a
//! TCP proxy (`support/proxy.rs`) to a `redis-server` the test starts,
//! while the test, on a schedule drawn from the seed, kills a worker
//! (`kill -9`, then starts another), pauses one past its lease
//! (`SIGSTOP`/`SIGCONT`), cuts every proxied connection, delays replies,
//! blackholes the proxy, and kills and restarts Redis (with
//! `--appendonly yes --appendfsync always` on some seeds, without
//! persistence on the others).
//!
//! The invariant, checked from logs the workers keep outside the store:
//! **a key runs again only after its previous execution's lease ended**
//! (the owner was killed, paused past its lease, lost its lease, or
//! released the key after a failed work) **and left no record**, or after a
//! Redis restart without persistence lost the record or the lease. Each
//! second execution is counted by its reason and printed; any other fails
//! the test. Nothing hangs: every call has a timeout in the worker, every
//! run one here, and every process is killed when its handle drops.
//!
//! `IDEM_CHAOS_SEED=<n or 0xhex> cargo test -p idem-redis --test chaos --
//! --nocapture` runs one seed; every failure names its seed.
//!
//! # How the logs decide
//!
//! Every worker writes lines with the wall-clock time in µs (see the
//! worker's docs): `START`/`WORKEND` from the work itself, the store
//! operations the executor made and their answers, and each call's
//! result. Redis and the workers share this machine's clock, and a
//! fencing token is the server's `TIME` in µs when the lease was granted
//! (or the last token + 1, within a µs of it), so **a fence is the time of
//! its claim** on the same clock as the logs and the test's fault times.
//! For the executions of a key in fence order, each pair A → B must pass:
//!
//! 1. **A's record**: if A's completion was acknowledged (`COMPLETE … ok`),
//!    or any call anywhere got A's value (`<pid>:<fence>`, replayed,
//!    waited for, or coalesced), A's record existed; B may run only if a
//!    Redis restart without persistence happened between A's claim and
//!    B's claim. With AOF (`appendfsync always`) nothing excuses B.
//! 2. **A's lease**: otherwise A's lease must have ended before B's claim:
//!    B's fence must be at least the end A's lease had for sure, the
//!    latest of A's claim and its acknowledged renewals' send times, plus
//!    the lease (a renewal is applied after it is sent; an unacknowledged
//!    one is not counted, which only makes this bound lower). A release
//!    A sent (after its work failed) ends it earlier. Only a restart
//!    without persistence between the two claims excuses a B before
//!    that bound.
//! 3. **A's fate** names the reason: killed mid-work (no `WORKEND`), killed
//!    while completing, completion refused (`LeaseLost`) after a pause, a
//!    Redis restart, proxy faults or none (slow renewals), the key
//!    released after a failed work, or a completion that could not reach
//!    Redis. A process that was not killed must have logged a result for
//!    every work it ran.
//!
//! And at the end, read from Redis: a key's record, if any, carries the
//! fence of the key's last execution (an earlier one means a stale
//! completion was accepted, or a record was not respected), and a record
//! whose completion was acknowledged is still there unless a restart
//! without persistence came after its claim. No call may time out, panic,
//! or see a mismatch or a corrupt record.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idem::store::StoreKey;
use idem_redis::RedisStore;
use support::proxy::Proxy;
use support::{namespace, Server, TempDir};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const WORKER: &str = env!("CARGO_BIN_EXE_idem-redis-worker");

/// The fixed seeds (each also decides the persistence: see
/// [`Plan::draw`]); `IDEM_CHAOS_SEED` replaces them with one.
const SEEDS: [u64; 4] = [0x5eed_0001, 0x5eed_0002, 0x00c0_ffee, 0x0bad_cafe];

/// Short, so that pauses, kills and slow renewals end leases.
const LEASE_MS: u64 = 400;
/// Worker processes, and concurrent calls in each.
const WORKERS: usize = 3;
const LANES: usize = 6;
/// The key window: `WINDOW` keys at a time, sliding by one every
/// `SLOT_MS`, so each key is called for about half a second by every
/// process.
const SLOT_MS: u64 = 60;
const WINDOW: u64 = 8;
/// A caller waits this long for another process's work.
const WAIT_MS: u64 = 2_000;
/// The workers' connection and response timeout: well under the lease.
const TIMEOUT_MS: u64 = 200;
/// The longest a call may take before its worker reports it hung.
const CALL_TIMEOUT_MS: u64 = 20_000;
/// The longest a worker may take to start, or to end once told to stop.
const WORKER_LINE: Duration = Duration::from_secs(30);
/// The longest a whole run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(90);
/// Slack for comparisons of times from different processes on one clock:
/// Redis expires keys by the millisecond.
const TOL_US: u64 = 3_000;

/// Microseconds since the Unix epoch: the clock of Redis's `TIME`.
fn now_us() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_micros()).unwrap()
}

/// SplitMix64: a small deterministic generator for the fault schedule.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.between(lo, hi))
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

/// A fault the test injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `kill -9` a worker; another starts in its place after `down`.
    Kill { worker: usize, down: Duration },
    /// `SIGSTOP` a worker for `span` (past its lease), then `SIGCONT`.
    Pause { worker: usize, span: Duration },
    /// Close every proxied connection at once.
    Cut,
    /// Hold every reply `delay` for `span`.
    Delay { delay: Duration, span: Duration },
    /// Let nothing through the proxy for `span`.
    Blackhole { span: Duration },
    /// `kill -9` Redis; start it again after `down`.
    Restart { down: Duration },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::Kill { worker, down } => write!(f, "kill -9 w{worker}, down {down:?}"),
            Fault::Pause { worker, span } => write!(f, "SIGSTOP w{worker} for {span:?}"),
            Fault::Cut => f.write_str("cut every connection"),
            Fault::Delay { delay, span } => write!(f, "delay replies {delay:?} for {span:?}"),
            Fault::Blackhole { span } => write!(f, "blackhole for {span:?}"),
            Fault::Restart { down } => write!(f, "restart Redis, down {down:?}"),
        }
    }
}

/// A run, drawn from its seed.
#[derive(Debug)]
struct Plan {
    seed: u64,
    /// Redis with `--appendonly yes --appendfsync always`, or without
    /// persistence.
    aof: bool,
    /// Each fault, after a pause.
    steps: Vec<(Duration, Fault)>,
}

impl Plan {
    /// The persistence (the first draw), then every kind of fault once and
    /// two more drawn at random, shuffled, each after 150–450 ms of calm.
    fn draw(seed: u64) -> Self {
        let mut rng = SplitMix(seed);
        let aof = rng.next() % 2 == 1;
        let lease = Duration::from_millis(LEASE_MS);
        let draw_fault = |rng: &mut SplitMix, kind: usize| match kind {
            0 => Fault::Kill {
                worker: rng.below(WORKERS),
                down: rng.ms(0, 300),
            },
            1 => Fault::Pause {
                worker: rng.below(WORKERS),
                span: lease.mul_f64(1.5 + rng.between(0, 150) as f64 / 100.0),
            },
            2 => Fault::Cut,
            3 => Fault::Delay {
                delay: rng.ms(50, 400),
                span: rng.ms(300, 1_000),
            },
            4 => Fault::Blackhole {
                span: rng.ms(200, 800),
            },
            _ => Fault::Restart {
                down: rng.ms(0, 300),
            },
        };
        let mut kinds: Vec<usize> = (0..6).collect();
        kinds.extend([rng.below(6), rng.below(6)]);
        // Fisher-Yates.
        for i in (1..kinds.len()).rev() {
            kinds.swap(i, rng.below(i + 1));
        }
        let steps = kinds
            .into_iter()
            .map(|kind| (rng.ms(150, 450), draw_fault(&mut rng, kind)))
            .collect();
        Self { seed, aof, steps }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let persistence = if self.aof {
            "AOF, appendfsync always"
        } else {
            "no persistence"
        };
        write!(f, "seed {:#x} ({persistence}):", self.seed)?;
        for (calm, fault) in &self.steps {
            write!(f, " +{}ms {fault};", calm.as_millis())?;
        }
        Ok(())
    }
}

/// A span of wall-clock time, µs since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    from: u64,
    to: u64,
}

impl Span {
    fn overlaps(&self, from: u64, to: u64) -> bool {
        self.from <= to && from <= self.to
    }
}

/// One worker process: what the test did to it, and what it logged.
#[derive(Debug, Default)]
struct Incarnation {
    /// `w<slot>.<n>`: the n-th process of worker slot `slot`.
    name: String,
    /// When the test killed it (`kill -9` sent, process gone).
    killed: Option<Span>,
    /// When it was stopped (`SIGSTOP` sent, `SIGCONT` sent).
    paused: Vec<Span>,
    /// Its chaos log.
    log: String,
}

/// What a run did and logged: everything the check reads.
#[derive(Debug, Default)]
struct History {
    lease_us: u64,
    aof: bool,
    incarnations: Vec<Incarnation>,
    /// Redis restarts: `down` from the kill sent to the process gone; `up`
    /// once it answered again.
    restarts: Vec<(Span, u64)>,
    /// The proxy's faults, by name.
    proxy: Vec<(&'static str, Span)>,
    /// Each executed key's record in Redis at the end: its fence, if any.
    records: BTreeMap<String, Option<u64>>,
}

/// Why a key was allowed to run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reason {
    RecordLostInRestart,
    LeaseLostInRestart,
    KilledMidWork,
    KilledCompleting,
    FencedAfterPause,
    FencedAfterRestart,
    FencedAfterProxyFault,
    FencedSlow,
    Released,
    CompletionUnreachable,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::RecordLostInRestart => "record lost in a restart without persistence",
            Reason::LeaseLostInRestart => "lease lost in a restart without persistence",
            Reason::KilledMidWork => "owner killed mid-work",
            Reason::KilledCompleting => "owner killed while completing",
            Reason::FencedAfterPause => "owner paused past its lease, completion fenced",
            Reason::FencedAfterRestart => {
                "lease expired while Redis restarted (AOF), completion fenced"
            }
            Reason::FencedAfterProxyFault => {
                "renewals failed through proxy faults, completion fenced"
            }
            Reason::FencedSlow => "renewals late without a fault, completion fenced",
            Reason::Released => "released after a failed work",
            Reason::CompletionUnreachable => "completion could not reach Redis, lease expired",
        })
    }
}

/// A fenced store operation, as a worker logged it.
#[derive(Debug, Clone)]
struct Op {
    sent: u64,
    answer: String,
}

/// One execution of a key: a work that began under a lease.
#[derive(Debug, Default)]
struct Exec {
    /// Index into [`History::incarnations`].
    inc: usize,
    pid: u32,
    fence: u64,
    start: u64,
    /// When the work ended, whether its fence was lost, whether it failed.
    workend: Option<(u64, bool, bool)>,
    /// Send times of the renewals answered `ok`.
    renewed: Vec<u64>,
    completes: Vec<Op>,
    releases: Vec<Op>,
    /// The result of the call that ran it: `(time, outcome, result)`.
    done: Option<(u64, String, String)>,
}

/// What the check found.
#[derive(Debug, Default)]
struct Verdict {
    violations: Vec<String>,
    allowed: BTreeMap<Reason, usize>,
    keys: usize,
    executions: usize,
    outcomes: BTreeMap<String, usize>,
    errors: BTreeMap<String, usize>,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let calls: usize = self.outcomes.values().sum();
        write!(
            f,
            "{calls} calls, outcomes {:?}, errors {:?}; {} executions of {} keys; second executions \
             allowed: {}",
            self.outcomes,
            self.errors,
            self.executions,
            self.keys,
            self.allowed.values().sum::<usize>()
        )?;
        for (reason, n) in &self.allowed {
            write!(f, "\n    {n:>4}  {reason}")?;
        }
        Ok(())
    }
}

/// The fields of a log line after its time.
fn fields(line: &str) -> Result<(u64, Vec<&str>), String> {
    let mut f = line.split(' ');
    let t = f
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("a line without a time: {line:?}"))?;
    Ok((t, f.collect()))
}

fn number(s: &str, line: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|e| format!("{s:?} in {line:?} is not a number: {e}"))
}

/// Executions by key and fence.
type Execs = BTreeMap<String, BTreeMap<u64, Exec>>;

/// The executions in the logs, by key and fence; the `(key, fence)` of
/// every record seen (a value returned or replayed, a claim answered with
/// the record); the calls' outcomes and errors; every line by key.
type Parsed = (
    Execs,
    BTreeSet<(String, u64, Option<u32>)>,
    Vec<(String, String, String)>,
    BTreeMap<String, Vec<(u64, String)>>,
);

fn parse(h: &History) -> Result<Parsed, String> {
    let mut execs: Execs = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut calls = Vec::new();
    let mut by_key: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for (inc, i) in h.incarnations.iter().enumerate() {
        let mut pid = None;
        // A process killed mid-write could leave a last line without its
        // end; every other line is whole.
        let mut lines: Vec<&str> = i.log.split_inclusive('\n').collect();
        if i.killed.is_some() && lines.last().is_some_and(|l| !l.ends_with('\n')) {
            lines.pop();
        }
        for line in lines {
            let line = line.trim_end_matches('\n');
            let at = |what: &str| format!("{} line {line:?}: {what}", i.name);
            let (t, f) = fields(line)?;
            if let [_, key, ..] = f[..] {
                by_key
                    .entry(key.to_owned())
                    .or_default()
                    .push((t, format!("{} {line}", i.name)));
            }
            // The execution a line of this process names.
            macro_rules! exec {
                ($key:expr, $fence:expr) => {{
                    let fence = number($fence, line)?;
                    execs
                        .get_mut($key)
                        .and_then(|e| e.get_mut(&fence))
                        .filter(|e| e.inc == inc)
                        .ok_or_else(|| at("names a work this process did not start"))?
                }};
            }
            match f[..] {
                ["HELLO", p] => pid = Some(number(p, line)? as u32),
                ["START", key, fence] => {
                    let pid = pid.ok_or_else(|| at("START before HELLO"))?;
                    let fence = number(fence, line)?;
                    let previous = execs.entry(key.to_owned()).or_default().insert(
                        fence,
                        Exec {
                            inc,
                            pid,
                            fence,
                            start: t,
                            ..Exec::default()
                        },
                    );
                    if let Some(other) = previous {
                        return Err(format!(
                            "{key} ran twice under fence {fence}: in {} and {}: two works \
                             under one lease",
                            h.incarnations[other.inc].name, i.name
                        ));
                    }
                }
                ["WORKEND", key, fence, held, ok] => {
                    exec!(key, fence).workend = Some((t, held == "lost", ok == "err"));
                }
                ["RENEW", key, fence, sent, answer] => {
                    if answer == "ok" {
                        let sent = number(sent, line)?;
                        exec!(key, fence).renewed.push(sent);
                    }
                }
                ["COMPLETE" | "RELEASE", key, fence, sent, answer] => {
                    let op = Op {
                        sent: number(sent, line)?,
                        answer: answer.to_owned(),
                    };
                    let e = exec!(key, fence);
                    if f[0] == "COMPLETE" {
                        e.completes.push(op);
                    } else {
                        e.releases.push(op);
                    }
                }
                ["CLAIM", key, _sent, "record", fence] => {
                    seen.insert((key.to_owned(), number(fence, line)?, None));
                }
                ["CLAIM", ..] => {}
                ["DONE", key, how, fence, ref result @ ..] => {
                    let result = result.join(" ");
                    if let Some(value) = result.strip_prefix("ok ") {
                        let (p, f) = value
                            .split_once(':')
                            .ok_or_else(|| at("a value that is not <pid>:<fence>"))?;
                        seen.insert((
                            key.to_owned(),
                            number(f, line)?,
                            Some(number(p, line)? as u32),
                        ));
                    }
                    if fence != "-" {
                        let e = exec!(key, fence);
                        if e.done.is_some() {
                            return Err(at("a second result for one work"));
                        }
                        e.done = Some((t, how.to_owned(), result.clone()));
                    }
                    calls.push((i.name.clone(), how.to_owned(), result));
                }
                _ => return Err(at("not a chaos log line")),
            }
        }
    }
    for lines in by_key.values_mut() {
        lines.sort();
    }
    Ok((execs, seen, calls, by_key))
}

/// The end A's lease had for sure: its claim or its latest acknowledged
/// renewal (applied after it was sent), plus the lease; or earlier, a
/// release it sent (answered or not: it may have been applied). A
/// process killed after its work failed may have sent its release
/// without logging it: then the work's end.
fn lease_end(a: &Exec, killed: bool, lease_us: u64) -> u64 {
    let held = a.renewed.iter().fold(a.fence, |end, &sent| end.max(sent)) + lease_us;
    let mut released = a
        .releases
        .iter()
        .filter(|op| op.answer != "fenced")
        .map(|op| op.sent)
        .min();
    if released.is_none() && killed && a.done.is_none() {
        released = a.workend.filter(|w| w.2).map(|w| w.0);
    }
    released.map_or(held, |r| held.min(r))
}

/// Checks the invariant on a run's history (see the module docs).
fn check(h: &History) -> Verdict {
    let mut v = Verdict::default();
    let (execs, seen, calls, by_key) = match parse(h) {
        Ok(parsed) => parsed,
        Err(e) => {
            v.violations.push(e);
            return v;
        }
    };
    let killed = |e: &Exec| h.incarnations[e.inc].killed.is_some();
    // A restart without persistence between two claims: the first claim
    // before the old server was gone, the second after it was killed.
    let lost_between = |a: u64, b: u64| {
        !h.aof
            && h.restarts
                .iter()
                .any(|(down, _)| a < down.to + TOL_US && down.from < b + TOL_US)
    };
    // Calls.
    for (name, how, result) in &calls {
        *v.outcomes.entry(how.clone()).or_default() += 1;
        if let Some(e) = result.strip_prefix("err ") {
            let kind = e.split(' ').next().unwrap_or_default().to_owned();
            if matches!(
                kind.as_str(),
                "TIMEOUT" | "Panicked" | "Mismatch" | "Other"
            ) || e.contains("Corrupt")
            {
                v.violations
                    .push(format!("{name}: a call ended with {result:?}"));
            }
            *v.errors.entry(kind).or_default() += 1;
        }
    }
    // Every record seen is an execution's, and a value names its process.
    for (key, fence, pid) in &seen {
        match execs.get(key).and_then(|e| e.get(fence)) {
            None => v.violations.push(format!(
                "{key}: a record of fence {fence} that no logged work ran"
            )),
            Some(e) if pid.is_some_and(|p| p != e.pid) => v.violations.push(format!(
                "{key}: a value {}:{fence} for the work of process {}",
                pid.unwrap_or(0),
                e.pid
            )),
            Some(_) => {}
        }
    }
    let recorded = |key: &str, e: &Exec| {
        e.completes.iter().any(|op| op.answer == "ok")
            || seen.range((key.to_owned(), e.fence, None)..).next().is_some_and(|(k, f, _)| k == key && *f == e.fence)
    };
    for (key, runs) in &execs {
        v.keys += 1;
        v.executions += runs.len();
        let history = || {
            by_key.get(key).map_or(String::new(), |lines| {
                lines
                    .iter()
                    .map(|(_, l)| format!("\n    {l}"))
                    .collect::<String>()
            })
        };
        let runs: Vec<&Exec> = runs.values().collect();
        for e in &runs {
            // A fence is its claim's time: the work began after it.
            if e.start + TOL_US < e.fence {
                v.violations.push(format!(
                    "{key}: work of fence {} logged its start at {}, before its claim: the \
                     clocks disagree, and the check cannot order the logs",
                    e.fence, e.start
                ));
            }
            if e.done.is_none() && !killed(e) {
                v.violations.push(format!(
                    "{key}: the work of fence {} in {} (not killed) has no result:{}",
                    e.fence,
                    h.incarnations[e.inc].name,
                    history()
                ));
            }
        }
        for pair in runs.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let lost = lost_between(a.fence, b.fence);
            let who = |e: &Exec| format!("fence {} in {}", e.fence, h.incarnations[e.inc].name);
            // 1. A's record existed: only a restart without persistence
            // excuses B.
            if recorded(key, a) {
                if lost {
                    *v.allowed.entry(Reason::RecordLostInRestart).or_default() += 1;
                } else {
                    v.violations.push(format!(
                        "{key} ran again ({}) although the record of {} was written, and no \
                         restart without persistence lost it:{}",
                        who(b),
                        who(a),
                        history()
                    ));
                }
                continue;
            }
            // 2. A's lease ended before B's claim.
            let end = lease_end(a, killed(a), h.lease_us);
            if lost {
                *v.allowed.entry(Reason::LeaseLostInRestart).or_default() += 1;
                continue;
            }
            if b.fence + TOL_US < end {
                v.violations.push(format!(
                    "{key} ran again ({}) {} ms before the lease of {} could have ended \
                     (claim, acknowledged renewals or release at {end}):{}",
                    who(b),
                    (end - b.fence) / 1000,
                    who(a),
                    history()
                ));
                continue;
            }
            // 3. Why A left no record.
            let reason = match &a.done {
                None if killed(a) && a.workend.is_none() => Reason::KilledMidWork,
                None if killed(a) => Reason::KilledCompleting,
                Some((_, _, r)) if r == "err LeaseLost" => {
                    let (from, to) = (a.fence, a.done.as_ref().map_or(a.fence, |d| d.0));
                    let inc = &h.incarnations[a.inc];
                    if inc.paused.iter().any(|p| p.overlaps(from, to)) {
                        Reason::FencedAfterPause
                    } else if h
                        .restarts
                        .iter()
                        .any(|(down, up)| Span { from: down.from, to: *up }.overlaps(from, to))
                    {
                        Reason::FencedAfterRestart
                    } else if h.proxy.iter().any(|(_, s)| s.overlaps(from, to)) {
                        Reason::FencedAfterProxyFault
                    } else {
                        Reason::FencedSlow
                    }
                }
                Some((_, _, r)) if r.starts_with("err Failed ") => Reason::Released,
                Some((_, _, r)) if r.starts_with("err Store ") => Reason::CompletionUnreachable,
                other => {
                    v.violations.push(format!(
                        "{key} ran again ({}) after {} ended with {other:?}, which leaves no \
                         reason:{}",
                        who(b),
                        who(a),
                        history()
                    ));
                    continue;
                }
            };
            *v.allowed.entry(reason).or_default() += 1;
        }
        // At the end: the record is the last execution's, and an
        // acknowledged one is still there.
        let last = runs.last().expect("a key with executions");
        match h.records.get(key).copied().flatten() {
            Some(fence) if fence != last.fence => v.violations.push(format!(
                "{key}: Redis holds the record of fence {fence}, but fence {} ran after it:{}",
                last.fence,
                history()
            )),
            Some(_) => {}
            None => {
                let acknowledged = last.completes.iter().any(|op| op.answer == "ok");
                let lost = !h.aof
                    && h.restarts
                        .iter()
                        .any(|(down, _)| last.fence < down.to + TOL_US);
                if acknowledged && !lost {
                    v.violations.push(format!(
                        "{key}: the record of fence {} was acknowledged, and is gone:{}",
                        last.fence,
                        history()
                    ));
                }
            }
        }
    }
    v
}

/// A chaos worker process, killed (`SIGKILL`) when its handle drops.
struct Worker {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    fn spawn(name: String, url: &str, ns: &str, log: &PathBuf, seed: u64, epoch_us: u64) -> Self {
        let n = |v: u64| v.to_string();
        let mut child = Command::new(WORKER)
            .arg(url)
            .arg(ns)
            .arg("--chaos")
            .arg(log)
            .args(["--seed", &n(seed)])
            .args(["--lanes", &LANES.to_string()])
            .args(["--epoch-us", &n(epoch_us)])
            .args(["--slot-ms", &n(SLOT_MS)])
            .args(["--window", &n(WINDOW)])
            .args(["--lease-ms", &n(LEASE_MS)])
            .args(["--wait-ms", &n(WAIT_MS)])
            .args(["--timeout-ms", &n(TIMEOUT_MS)])
            .args(["--call-timeout-ms", &n(CALL_TIMEOUT_MS)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {WORKER}: {e}"));
        let stdout = BufReader::new(child.stdout.take().expect("a piped stdout")).lines();
        Self {
            name,
            stdin: child.stdin.take(),
            child,
            stdout,
        }
    }

    /// Waits for the line `prefix…`.
    async fn expect(&mut self, prefix: &str) {
        let line = tokio::time::timeout(WORKER_LINE, async {
            while let Some(line) = self.stdout.next_line().await.ok().flatten() {
                if line.starts_with(prefix) {
                    return true;
                }
            }
            false
        })
        .await;
        match line {
            Ok(true) => {}
            Ok(false) => panic!("{} ended without a line {prefix:?}", self.name),
            Err(_) => panic!("{}: no line {prefix:?} within {WORKER_LINE:?}", self.name),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("a running worker")
    }

    async fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .await
            .expect("running kill");
        assert!(status.success(), "kill -{signal} {}: {status}", self.name);
    }

    async fn kill9(&mut self) {
        self.child.kill().await.expect("SIGKILL");
        let status = self.child.wait().await.expect("waiting for a worker");
        assert_eq!(status.signal(), Some(9), "{}: {status}", self.name);
    }

    /// Tells it to stop, and waits for its `END` and its exit.
    async fn stop(&mut self) {
        let mut stdin = self.stdin.take().expect("not stopped yet");
        stdin.write_all(b"stop\n").await.expect("writing stop");
        self.expect("END").await;
        let status = tokio::time::timeout(WORKER_LINE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit after END", self.name))
            .expect("waiting for a worker");
        assert!(status.success(), "{} exited with {status}", self.name);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Also a stopped one: SIGKILL needs no SIGCONT.
        let _ = self.child.start_kill();
    }
}

/// Prints how to replay a seed when its run panics.
struct ReplayHint(u64);

impl Drop for ReplayHint {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "chaos: seed {:#x} failed; run it alone with IDEM_CHAOS_SEED={:#x} cargo test -p \
                 idem-redis --test chaos -- --nocapture",
                self.0, self.0
            );
        }
    }
}

/// Runs `plan` against a fresh Redis and workers: its history.
async fn run(plan: &Plan) -> History {
    let mut args = vec!["--appendonly", "no"];
    if plan.aof {
        args = vec!["--appendonly", "yes", "--appendfsync", "always"];
    }
    let mut server = Server::start_with(&args);
    let proxy = Proxy::start(server.port()).await;
    let ns = namespace("chaos");
    let logs = TempDir::new("chaos-logs");
    let epoch = now_us();
    let mut h = History {
        lease_us: LEASE_MS * 1000,
        aof: plan.aof,
        ..History::default()
    };
    // Worker slot `slot`'s current process: its index in `h.incarnations`.
    let mut current = Vec::new();
    let spawn = |h: &mut History, slot: usize| {
        let n = h.incarnations.iter().filter(|i| i.name.starts_with(&format!("w{slot}."))).count();
        let name = format!("w{slot}.{n}");
        let log = logs.path().join(format!("{name}.log"));
        let seed = plan.seed ^ ((slot as u64) << 32) ^ ((n as u64) << 48);
        let worker = Worker::spawn(
            format!("seed {:#x} worker {name}", plan.seed),
            &proxy.url(),
            &ns,
            &log,
            seed,
            epoch,
        );
        h.incarnations.push(Incarnation {
            name,
            ..Incarnation::default()
        });
        (worker, h.incarnations.len() - 1, log)
    };
    let mut workers = Vec::new();
    for slot in 0..WORKERS {
        let (w, inc, log) = spawn(&mut h, slot);
        workers.push(w);
        current.push((inc, log));
    }
    let mut paths: Vec<PathBuf> = current.iter().map(|(_, p)| p.clone()).collect();
    for w in &mut workers {
        w.expect("READY").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    for &(calm, fault) in &plan.steps {
        tokio::time::sleep(calm).await;
        let from = now_us();
        match fault {
            Fault::Kill { worker, down } => {
                workers[worker].kill9().await;
                h.incarnations[current[worker].0].killed = Some(Span { from, to: now_us() });
                tokio::time::sleep(down).await;
                let (w, inc, log) = spawn(&mut h, worker);
                workers[worker] = w;
                workers[worker].expect("READY").await;
                paths.push(log.clone());
                current[worker] = (inc, log);
            }
            Fault::Pause { worker, span } => {
                workers[worker].signal("STOP").await;
                tokio::time::sleep(span).await;
                workers[worker].signal("CONT").await;
                let to = now_us();
                h.incarnations[current[worker].0].paused.push(Span { from, to });
            }
            Fault::Cut => {
                proxy.cut();
                h.proxy.push(("cut", Span { from, to: now_us() }));
            }
            Fault::Delay { delay, span } => {
                proxy.set_delay(delay);
                tokio::time::sleep(span).await;
                proxy.set_delay(Duration::ZERO);
                h.proxy.push(("delay", Span { from, to: now_us() }));
            }
            Fault::Blackhole { span } => {
                proxy.set_blackhole(true);
                tokio::time::sleep(span).await;
                proxy.set_blackhole(false);
                h.proxy.push(("blackhole", Span { from, to: now_us() }));
            }
            Fault::Restart { down } => {
                tokio::task::block_in_place(|| server.kill());
                let gone = now_us();
                tokio::time::sleep(down).await;
                tokio::task::block_in_place(|| server.start_again());
                h.restarts.push((Span { from, to: gone }, now_us()));
            }
        }
    }
    // The takeovers the last faults caused, then the end.
    tokio::time::sleep(Duration::from_millis(2 * LEASE_MS)).await;
    for w in &mut workers {
        w.stop().await;
    }
    for (inc, path) in paths.iter().enumerate() {
        h.incarnations[inc].log = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("seed {:#x}: reading {}: {e}", plan.seed, path.display()));
    }

    // The records Redis holds at the end, read around the proxy.
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("seed {:#x}: connecting to Redis: {e}", plan.seed));
    let store = RedisStore::new(conn.clone());
    let keys: BTreeSet<String> = h
        .incarnations
        .iter()
        .flat_map(|i| i.log.lines())
        .filter_map(|l| match fields(l).ok()?.1[..] {
            ["START", key, _] => Some(key.to_owned()),
            _ => None,
        })
        .collect();
    for key in keys {
        let redis_key = store.record_key(StoreKey {
            namespace: &ns,
            key: &key,
        });
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(redis_key)
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("seed {:#x}: reading {key}'s record: {e}", plan.seed));
        let fence = raw.map(|raw| {
            let header = String::from_utf8_lossy(&raw);
            header
                .strip_prefix("idem1 ")
                .and_then(|rest| rest.split(' ').next()?.parse().ok())
                .unwrap_or_else(|| panic!("seed {:#x}: {key}'s record: {header:?}", plan.seed))
        });
        h.records.insert(key, fence);
    }
    drop(proxy);
    h
}

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(RUN_DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {RUN_DEADLINE:?}: it hangs"))
}

fn seeds() -> Vec<u64> {
    match std::env::var("IDEM_CHAOS_SEED") {
        Ok(s) => {
            let s = s.trim();
            let seed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            vec![seed.unwrap_or_else(|e| panic!("IDEM_CHAOS_SEED={s:?}: {e}"))]
        }
        Err(_) => SEEDS.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_keeps_each_key_executed_once_unless_its_lease_ended() {
    let plans: Vec<Plan> = seeds().into_iter().map(Plan::draw).collect();
    for plan in &plans {
        let _hint = ReplayHint(plan.seed);
        eprintln!("chaos: {plan}");
        let started = std::time::Instant::now();
        let history = bounded(&format!("chaos seed {:#x}", plan.seed), run(plan)).await;
        let verdict = check(&history);
        let restarts: Vec<String> = history
            .restarts
            .iter()
            .map(|(down, up)| format!("{}..{}", down.from, up))
            .collect();
        assert!(
            verdict.violations.is_empty(),
            "chaos seed {:#x}: {} violations of the invariant; the first:\n{}\n\nthe plan: \
             {plan}\nkilled: {:?}\npaused: {:?}\nRedis down: {restarts:?}\nproxy: {:?}\n{verdict}",
            plan.seed,
            verdict.violations.len(),
            verdict.violations[..verdict.violations.len().min(3)].join("\n\n"),
            history
                .incarnations
                .iter()
                .filter_map(|i| Some((&i.name, i.killed?)))
                .collect::<Vec<_>>(),
            history
                .incarnations
                .iter()
                .filter(|i| !i.paused.is_empty())
                .map(|i| (&i.name, &i.paused))
                .collect::<Vec<_>>(),
            history.proxy,
        );
        assert!(
            verdict.executions > verdict.keys,
            "chaos seed {:#x}: no key ran twice: the faults reached no work ({verdict})",
            plan.seed
        );
        eprintln!(
            "chaos seed {:#x}: ok in {:?}: {verdict}",
            plan.seed,
            started.elapsed()
        );
    }
}

/// The fixed seeds run both kinds of Redis.
#[test]
fn the_fixed_seeds_cover_both_persistences() {
    let aof: BTreeSet<bool> = SEEDS.iter().map(|&s| Plan::draw(s).aof).collect();
    assert_eq!(aof.len(), 2, "{SEEDS:x?}");
}
