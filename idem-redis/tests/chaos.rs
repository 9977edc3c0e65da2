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
//! A seed fixes the persistence, the fault schedule (each kind of fault
//! at least once: see [`Plan::draw`]) and the workers' draws (keys, work
//! lengths, failures); the interleaving of real processes is not fixed,
//! so a seed replays the same faults, not the same run.
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
//!    one is not counted, which only makes this bound lower). If A's work
//!    failed, its release may end it from the work's end. Only a restart
//!    without persistence between the two claims excuses a B before
//!    that bound.
//! 3. **A's fate** names the reason: killed mid-work (no `WORKEND`), killed
//!    while completing, completion refused (`LeaseLost`) after a pause, a
//!    Redis restart, proxy faults or none (slow renewals), the key
//!    released after a failed work, or a completion that could not reach
//!    Redis. A process that was not killed must have logged a result for
//!    every work it ran.
//!
//! Also, a renewal of A acknowledged although it was sent after B's claim
//! is a violation (Redis must have refused it), and two works under one
//! fence are.
//!
//! Where the logs cannot tell, the check gives the benefit of the doubt,
//! and says so: a completion whose answer was lost (the owner killed
//! while completing, or `Unavailable`) may have written A's record; if
//! nobody ever saw that record, B is allowed by rule 2 alone (A's lease
//! had ended). A store that wrote such a record and ran B anyway is still
//! caught by any replay of that record (rule 1), or at the end if Redis
//! still holds it (a stale record, below).
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
use std::path::{Path, PathBuf};
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
    /// The workers' connections speak RESP3, or RESP2.
    resp3: bool,
    /// Each fault, after a pause.
    steps: Vec<(Duration, Fault)>,
}

impl Plan {
    /// The persistence (the first draw) and the protocol (the second),
    /// then every kind of fault once and two more drawn at random,
    /// shuffled, each after 150–450 ms of calm.
    fn draw(seed: u64) -> Self {
        let mut rng = SplitMix(seed);
        let aof = rng.next() % 2 == 1;
        let resp3 = rng.next() % 2 == 1;
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
        Self {
            seed,
            aof,
            resp3,
            steps,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let persistence = if self.aof {
            "AOF, appendfsync always"
        } else {
            "no persistence"
        };
        let protocol = if self.resp3 { "RESP3" } else { "RESP2" };
        write!(f, "seed {:#x} ({persistence}, {protocol}):", self.seed)?;
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

/// One execution of a key: a work that began under a lease.
#[derive(Debug, Default)]
struct Exec {
    /// Index into [`History::incarnations`].
    inc: usize,
    pid: u32,
    fence: u64,
    start: u64,
    /// When the work ended, and whether it failed (then its key is
    /// released).
    workend: Option<(u64, bool)>,
    /// Send times of the renewals answered `ok`.
    renewed: Vec<u64>,
    /// Whether its completion was acknowledged (`COMPLETE … ok`).
    completed: bool,
    /// When the call that ran it returned, and what: `ok <value>` or
    /// `err <error>`.
    done: Option<(u64, String)>,
}

/// What the check found.
#[derive(Debug, Default)]
struct Verdict {
    /// What broke, and how.
    violations: Vec<(&'static str, String)>,
    allowed: BTreeMap<Reason, usize>,
    keys: usize,
    executions: usize,
    outcomes: BTreeMap<String, usize>,
    errors: BTreeMap<String, usize>,
}

impl Verdict {
    fn fail(&mut self, kind: &'static str, detail: String) {
        self.violations.push((kind, detail));
    }

    fn allow(&mut self, reason: Reason) {
        *self.allowed.entry(reason).or_default() += 1;
    }

    /// How many violations of each kind, and the first of each.
    fn violations(&self) -> String {
        let mut kinds: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
        for (kind, detail) in &self.violations {
            kinds.entry(kind).or_insert((0, detail)).0 += 1;
        }
        kinds
            .iter()
            .map(|(kind, (n, first))| format!("{n} × {kind}; the first:\n{first}\n"))
            .collect::<Vec<_>>()
            .join("\n")
    }
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

/// What the logs say.
#[derive(Debug, Default)]
struct Parsed {
    execs: Execs,
    /// The `(key, fence)` of every record seen: a value a call returned
    /// (executed, replayed, waited for or coalesced), or a claim answered
    /// with the record.
    records: BTreeSet<(String, u64)>,
    /// Every value returned: `(key, fence, pid)`.
    values: Vec<(String, u64, u32)>,
    /// Every call: `(process, outcome, result)`.
    calls: Vec<(String, String, String)>,
    /// Every line naming a key, by key, in time order, with its process.
    lines: BTreeMap<String, Vec<(u64, String)>>,
}

/// The execution `(key, fence)` of process `inc`, which `line` of its log
/// names.
fn exec_of<'a>(
    execs: &'a mut Execs,
    inc: usize,
    key: &str,
    fence: &str,
    line: &str,
) -> Result<&'a mut Exec, String> {
    let fence = number(fence, line)?;
    execs
        .get_mut(key)
        .and_then(|runs| runs.get_mut(&fence))
        .filter(|e| e.inc == inc)
        .ok_or_else(|| format!("{line:?} names a work its process did not start"))
}

fn parse(h: &History) -> Result<Parsed, String> {
    let mut p = Parsed::default();
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
                p.lines
                    .entry(key.to_owned())
                    .or_default()
                    .push((t, format!("{} {line}", i.name)));
            }
            match f[..] {
                ["HELLO", n] => pid = Some(u32::try_from(number(n, line)?).unwrap()),
                ["START", key, fence] => {
                    let pid = pid.ok_or_else(|| at("START before HELLO"))?;
                    let fence = number(fence, line)?;
                    let e = Exec {
                        inc,
                        pid,
                        fence,
                        start: t,
                        ..Exec::default()
                    };
                    let runs = p.execs.entry(key.to_owned()).or_default();
                    if let Some(other) = runs.insert(fence, e) {
                        return Err(format!(
                            "{key} ran twice under fence {fence}, in {} and {}: two works \
                             under one lease",
                            h.incarnations[other.inc].name, i.name
                        ));
                    }
                }
                ["WORKEND", key, fence, _held, ok] => {
                    exec_of(&mut p.execs, inc, key, fence, line)?.workend = Some((t, ok == "err"));
                }
                ["RENEW", key, fence, sent, answer] => {
                    let sent = number(sent, line)?;
                    let e = exec_of(&mut p.execs, inc, key, fence, line)?;
                    if answer == "ok" {
                        e.renewed.push(sent);
                    }
                }
                [what @ ("COMPLETE" | "RELEASE"), key, fence, _sent, answer] => {
                    let e = exec_of(&mut p.execs, inc, key, fence, line)?;
                    if what == "COMPLETE" && answer == "ok" {
                        e.completed = true;
                    }
                }
                ["CLAIM", key, _, "record", fence] => {
                    p.records.insert((key.to_owned(), number(fence, line)?));
                }
                ["CLAIM", ..] => {}
                ["DONE", key, how, fence, ref result @ ..] => {
                    let result = result.join(" ");
                    if let Some(value) = result.strip_prefix("ok ") {
                        let (pid, fence) = value
                            .split_once(':')
                            .ok_or_else(|| at("a value that is not <pid>:<fence>"))?;
                        let (pid, fence) = (number(pid, line)?, number(fence, line)?);
                        p.records.insert((key.to_owned(), fence));
                        p.values
                            .push((key.to_owned(), fence, u32::try_from(pid).unwrap()));
                    }
                    if fence != "-" {
                        let e = exec_of(&mut p.execs, inc, key, fence, line)?;
                        if e.done.is_some() {
                            return Err(at("a second result for one work"));
                        }
                        e.done = Some((t, result.clone()));
                    }
                    p.calls.push((i.name.clone(), how.to_owned(), result));
                }
                _ => return Err(at("not a chaos log line")),
            }
        }
    }
    for lines in p.lines.values_mut() {
        lines.sort();
    }
    Ok(p)
}

/// The end `a`'s lease had for sure, as seen from a claim at `before`:
/// its claim or its latest acknowledged renewal sent before then (a
/// renewal is applied after it is sent), plus the lease. After a failed
/// work, earlier: its release, sent after the work's end (the executor
/// may send it from a task of its own, which a process that exits or is
/// killed may not have logged).
fn lease_end(a: &Exec, lease_us: u64, before: u64) -> u64 {
    let renewed = a.renewed.iter().filter(|&&sent| sent < before);
    let held = renewed.fold(a.fence, |end, &sent| end.max(sent)) + lease_us;
    match a.workend {
        Some((ended, true)) => held.min(ended),
        _ => held,
    }
}

/// Checks the invariant on a run's history (see the module docs).
fn check(h: &History) -> Verdict {
    let mut v = Verdict::default();
    let Parsed {
        execs,
        records,
        values,
        calls,
        lines,
    } = match parse(h) {
        Ok(parsed) => parsed,
        Err(e) => {
            v.fail("unreadable log", e);
            return v;
        }
    };
    let killed = |e: &Exec| h.incarnations[e.inc].killed.is_some();
    let who = |e: &Exec| format!("fence {} in {}", e.fence, h.incarnations[e.inc].name);
    // A restart without persistence between two claims: the first before
    // the old server was gone, the second after it was killed.
    let lost_between = |a: u64, b: u64| {
        !h.aof
            && h.restarts
                .iter()
                .any(|(down, _)| a < down.to + TOL_US && down.from < b + TOL_US)
    };

    for (name, how, result) in &calls {
        *v.outcomes.entry(how.clone()).or_default() += 1;
        if let Some(e) = result.strip_prefix("err ") {
            let kind = e.split(' ').next().unwrap_or_default();
            if matches!(kind, "TIMEOUT" | "Panicked" | "Mismatch" | "Other")
                || e.contains("Corrupt")
            {
                v.fail("a call failed", format!("{name}: {result}"));
            }
            *v.errors.entry(kind.to_owned()).or_default() += 1;
        }
    }
    // Every record seen is an execution's, and a value names its process.
    for (key, fence) in &records {
        if !execs.get(key).is_some_and(|e| e.contains_key(fence)) {
            v.fail(
                "a record no work wrote",
                format!("{key}: a record of fence {fence} that no logged work ran"),
            );
        }
    }
    for (key, fence, pid) in &values {
        if let Some(e) = execs.get(key).and_then(|e| e.get(fence)) {
            if e.pid != *pid {
                v.fail(
                    "a record no work wrote",
                    format!(
                        "{key}: the value {pid}:{fence}, of a work of process {}",
                        e.pid
                    ),
                );
            }
        }
    }

    for (key, runs) in &execs {
        v.keys += 1;
        v.executions += runs.len();
        let history = || {
            lines.get(key).map_or(String::new(), |lines| {
                lines.iter().map(|(_, l)| format!("\n    {l}")).collect()
            })
        };
        let runs: Vec<&Exec> = runs.values().collect();
        for e in &runs {
            // A fence is its claim's time: the work began after it.
            if e.start + TOL_US < e.fence {
                v.fail(
                    "the clocks disagree",
                    format!(
                        "{key}: {} logged its start at {}, before its claim: the check cannot \
                         order the logs",
                        who(e),
                        e.start
                    ),
                );
            }
            if e.done.is_none() && !killed(e) {
                v.fail(
                    "a work without a result",
                    format!(
                        "{key}: {} was not killed, and has no result:{}",
                        who(e),
                        history()
                    ),
                );
            }
        }
        for pair in runs.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let lost = lost_between(a.fence, b.fence);
            // A renewal sent after B's claim reached Redis after it:
            // it must have been refused, restart or not.
            if let Some(late) = a.renewed.iter().find(|&&sent| sent > b.fence + TOL_US) {
                v.fail(
                    "a stale renewal accepted",
                    format!(
                        "{key}: {} renewed its lease at {late}, after {} claimed the key:{}",
                        who(a),
                        who(b),
                        history()
                    ),
                );
            }
            // 1. A's record existed: only a restart without persistence
            // excuses B.
            let recorded = a.completed || records.contains(&(key.clone(), a.fence));
            if recorded {
                if lost {
                    v.allow(Reason::RecordLostInRestart);
                } else {
                    v.fail(
                        "ran again over a record",
                        format!(
                            "{key} ran again ({}) although the record of {} was written, and \
                             no restart without persistence lost it:{}",
                            who(b),
                            who(a),
                            history()
                        ),
                    );
                }
                continue;
            }
            // 2. A's lease ended before B's claim.
            if lost {
                v.allow(Reason::LeaseLostInRestart);
                continue;
            }
            let end = lease_end(a, h.lease_us, b.fence);
            if b.fence + TOL_US < end {
                v.fail(
                    "ran again during a lease",
                    format!(
                        "{key} ran again ({}) {} µs before the lease of {} could have ended \
                         (claimed, renewed or released until {end}):{}",
                        who(b),
                        end - b.fence,
                        who(a),
                        history()
                    ),
                );
                continue;
            }
            // 3. Why A left no record.
            match fate(h, a) {
                Some(reason) => v.allow(reason),
                None => v.fail(
                    "ran again without a reason",
                    format!(
                        "{key} ran again ({}) after {} ended with {:?}, which leaves no \
                         reason:{}",
                        who(b),
                        who(a),
                        a.done,
                        history()
                    ),
                ),
            }
        }
        // At the end: the record is the last execution's, and an
        // acknowledged one is still there.
        let last = runs.last().expect("a key with executions");
        match h.records.get(key).copied().flatten() {
            Some(fence) if fence != last.fence => v.fail(
                "a stale record at the end",
                format!(
                    "{key}: Redis holds the record of fence {fence}, but {} ran after it:{}",
                    who(last),
                    history()
                ),
            ),
            Some(_) => {}
            None => {
                let acknowledged = last.completed;
                if acknowledged && !lost_between(last.fence, u64::MAX - TOL_US) {
                    v.fail(
                        "an acknowledged record gone",
                        format!(
                            "{key}: the record of {} was acknowledged, and is gone:{}",
                            who(last),
                            history()
                        ),
                    );
                }
            }
        }
    }
    v
}

/// Why `a`, which left no record and whose lease ended, did so; `None` if
/// nothing explains it.
fn fate(h: &History, a: &Exec) -> Option<Reason> {
    let inc = &h.incarnations[a.inc];
    let Some((ended, result)) = &a.done else {
        return inc.killed.map(|_| match a.workend {
            None => Reason::KilledMidWork,
            Some(_) => Reason::KilledCompleting,
        });
    };
    if result == "err LeaseLost" {
        // What could have ended the lease while it ran.
        let (from, to) = (a.fence, *ended);
        return Some(if inc.paused.iter().any(|p| p.overlaps(from, to)) {
            Reason::FencedAfterPause
        } else if h.restarts.iter().any(|(down, up)| {
            Span {
                from: down.from,
                to: *up,
            }
            .overlaps(from, to)
        }) {
            Reason::FencedAfterRestart
        } else if h.proxy.iter().any(|(_, s)| s.overlaps(from, to)) {
            Reason::FencedAfterProxyFault
        } else {
            Reason::FencedSlow
        });
    }
    if result.starts_with("err Failed ") {
        return Some(Reason::Released);
    }
    if result.starts_with("err Store ") {
        return Some(Reason::CompletionUnreachable);
    }
    None
}

/// A chaos worker process, killed (`SIGKILL`) when its handle drops.
struct Worker {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    fn spawn(name: String, url: &str, ns: &str, log: &Path, seed: u64, epoch_us: u64) -> Self {
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

/// A run in progress: Redis, the proxy, the workers, what happened.
struct Run<'p> {
    plan: &'p Plan,
    server: Server,
    proxy: Proxy,
    ns: String,
    /// The workers' logs.
    logs: TempDir,
    /// When the key window starts sliding.
    epoch: u64,
    /// Each slot's current process, and its index in
    /// `history.incarnations`.
    workers: Vec<(Worker, usize)>,
    history: History,
}

impl<'p> Run<'p> {
    async fn start(plan: &'p Plan) -> Self {
        let persistence: &[&str] = if plan.aof {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let server = Server::start_with(persistence);
        let proxy = Proxy::start(server.port()).await;
        let mut run = Self {
            plan,
            server,
            proxy,
            ns: namespace("chaos"),
            logs: TempDir::new("chaos-logs"),
            epoch: now_us(),
            workers: Vec::new(),
            history: History {
                lease_us: LEASE_MS * 1000,
                aof: plan.aof,
                ..History::default()
            },
        };
        for slot in 0..WORKERS {
            let worker = run.spawn(slot).await;
            run.workers.push(worker);
        }
        run
    }

    fn log_of(&self, inc: usize) -> PathBuf {
        let name = &self.history.incarnations[inc].name;
        self.logs.path().join(format!("{name}.log"))
    }

    /// A new process for worker slot `slot`, once it is ready.
    async fn spawn(&mut self, slot: usize) -> (Worker, usize) {
        let incs = &mut self.history.incarnations;
        let n = incs
            .iter()
            .filter(|i| i.name.starts_with(&format!("w{slot}.")))
            .count();
        incs.push(Incarnation {
            name: format!("w{slot}.{n}"),
            ..Incarnation::default()
        });
        let inc = incs.len() - 1;
        let mut url = self.proxy.url();
        if self.plan.resp3 {
            url.push_str("?protocol=resp3");
        }
        let mut worker = Worker::spawn(
            format!("seed {:#x} worker w{slot}.{n}", self.plan.seed),
            &url,
            &self.ns,
            &self.log_of(inc),
            self.plan.seed ^ ((slot as u64) << 32) ^ ((n as u64) << 48),
            self.epoch,
        );
        worker.expect("READY").await;
        (worker, inc)
    }

    /// Injects `fault`, and records when.
    async fn inject(&mut self, fault: Fault) {
        let from = now_us();
        let h = &mut self.history;
        match fault {
            Fault::Kill { worker, down } => {
                let (w, inc) = &mut self.workers[worker];
                w.kill9().await;
                h.incarnations[*inc].killed = Some(Span { from, to: now_us() });
                tokio::time::sleep(down).await;
                self.workers[worker] = self.spawn(worker).await;
            }
            Fault::Pause { worker, span } => {
                let (w, inc) = &self.workers[worker];
                w.signal("STOP").await;
                tokio::time::sleep(span).await;
                w.signal("CONT").await;
                let to = now_us();
                h.incarnations[*inc].paused.push(Span { from, to });
            }
            Fault::Cut => {
                self.proxy.cut();
                h.proxy.push(("cut", Span { from, to: now_us() }));
            }
            Fault::Delay { delay, span } => {
                self.proxy.set_delay(delay);
                tokio::time::sleep(span).await;
                self.proxy.set_delay(Duration::ZERO);
                h.proxy.push(("delay", Span { from, to: now_us() }));
            }
            Fault::Blackhole { span } => {
                self.proxy.set_blackhole(true);
                tokio::time::sleep(span).await;
                self.proxy.set_blackhole(false);
                h.proxy.push(("blackhole", Span { from, to: now_us() }));
            }
            Fault::Restart { down } => {
                // `kill` and `start_again` wait for the process, blocking.
                tokio::task::block_in_place(|| self.server.kill());
                let gone = now_us();
                tokio::time::sleep(down).await;
                tokio::task::block_in_place(|| self.server.start_again());
                h.restarts.push((Span { from, to: gone }, now_us()));
            }
        }
    }

    /// Stops the workers, and reads their logs and Redis's records.
    async fn finish(mut self) -> History {
        let seed = self.plan.seed;
        for (w, _) in &mut self.workers {
            w.stop().await;
        }
        for inc in 0..self.history.incarnations.len() {
            let path = self.log_of(inc);
            self.history.incarnations[inc].log = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("seed {seed:#x}: reading {}: {e}", path.display()));
        }
        // The records Redis holds at the end, read around the proxy.
        let mut conn = redis::Client::open(self.server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("seed {seed:#x}: connecting to Redis: {e}"));
        let store = RedisStore::new(conn.clone());
        let keys: BTreeSet<String> = self
            .history
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
                namespace: &self.ns,
                key: &key,
            });
            let raw: Option<Vec<u8>> = redis::cmd("GET")
                .arg(redis_key)
                .query_async(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("seed {seed:#x}: reading {key}'s record: {e}"));
            // `idem1 <fence> <fingerprint>\n<payload>`
            let fence = raw.map(|raw| {
                let header = String::from_utf8_lossy(&raw);
                header
                    .strip_prefix("idem1 ")
                    .and_then(|rest| rest.split(' ').next()?.parse().ok())
                    .unwrap_or_else(|| panic!("seed {seed:#x}: {key}'s record: {header:?}"))
            });
            self.history.records.insert(key, fence);
        }
        self.history
    }
}

/// Runs `plan` against a fresh Redis and workers: its history.
async fn run(plan: &Plan) -> History {
    let mut run = Run::start(plan).await;
    // Works in flight before the first fault.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for &(calm, fault) in &plan.steps {
        tokio::time::sleep(calm).await;
        run.inject(fault).await;
    }
    // The takeovers the last faults cause, then the end.
    tokio::time::sleep(Duration::from_millis(2 * LEASE_MS)).await;
    run.finish().await
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
            "chaos seed {:#x}: {} violations of the invariant:\n{}\nthe plan: {plan}\nkilled: \
             {:?}\npaused: {:?}\nRedis down: {restarts:?}\nproxy: {:?}\n{verdict}",
            plan.seed,
            verdict.violations.len(),
            verdict.violations(),
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

/// The fixed seeds run both persistences and both protocols.
#[test]
fn the_fixed_seeds_cover_both_persistences_and_protocols() {
    let plans: Vec<Plan> = SEEDS.iter().map(|&s| Plan::draw(s)).collect();
    let aof: BTreeSet<bool> = plans.iter().map(|p| p.aof).collect();
    let resp3: BTreeSet<bool> = plans.iter().map(|p| p.resp3).collect();
    assert_eq!((aof.len(), resp3.len()), (2, 2), "{SEEDS:x?}");
}

// The check itself, on hand-written logs (times in µs, a 400 ms lease):
// it must catch what breaks the invariant, and allow what does not.

/// A history of `(process, killed, log)`; each process's log gets its
/// `HELLO` (pid 100, 101, …).
fn written(aof: bool, logs: &[(&str, bool, &str)]) -> History {
    let incarnations = logs
        .iter()
        .enumerate()
        .map(|(n, (name, killed, log))| Incarnation {
            name: (*name).to_owned(),
            killed: killed.then_some(Span { from: 0, to: 0 }),
            paused: Vec::new(),
            log: format!("0 HELLO {}\n", 100 + n)
                + &log
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| format!("{l}\n"))
                    .collect::<String>(),
        })
        .collect();
    History {
        lease_us: 400_000,
        aof,
        incarnations,
        ..History::default()
    }
}

/// A work that ran from its claim at `fence` and completed, in process
/// `pid`.
fn completed(fence: u64, pid: u32) -> String {
    format!(
        "{} START k {fence}
         {} WORKEND k {fence} held ok
         {} COMPLETE k {fence} {} ok
         {} DONE k Executed {fence} ok {pid}:{fence}",
        fence + 10,
        fence + 100_000,
        fence + 100_200,
        fence + 100_010,
        fence + 100_300
    )
}

fn kinds(v: &Verdict) -> BTreeSet<&'static str> {
    v.violations.iter().map(|(kind, _)| *kind).collect()
}

#[test]
fn check_catches_a_key_run_again_over_its_record() {
    let mut h = written(
        true,
        &[
            ("a", false, &completed(1_000_000, 100)),
            ("b", false, &completed(2_000_000, 101)),
        ],
    );
    h.records.insert("k".into(), Some(2_000_000));
    assert_eq!(
        kinds(&check(&h)),
        BTreeSet::from(["ran again over a record"])
    );

    // A value of the first work replayed anywhere is its record too.
    let first = "1000010 START k 1000000
                 1100000 WORKEND k 1000000 held ok
                 1100300 DONE k Executed 1000000 err Store the store is unavailable";
    let replay = "1200000 CLAIM k 1190000 record 1000000
                  1200010 DONE k Replayed - ok 100:1000000";
    let mut h = written(
        true,
        &[
            ("a", false, first),
            ("r", false, replay),
            ("b", false, &completed(2_000_000, 102)),
        ],
    );
    h.records.insert("k".into(), Some(2_000_000));
    assert_eq!(
        kinds(&check(&h)),
        BTreeSet::from(["ran again over a record"])
    );
}

#[test]
fn check_excuses_a_lost_record_only_in_a_restart_without_persistence() {
    for aof in [false, true] {
        let mut h = written(
            aof,
            &[
                ("a", false, &completed(1_000_000, 100)),
                ("b", false, &completed(2_000_000, 101)),
            ],
        );
        h.restarts.push((
            Span {
                from: 1_500_000,
                to: 1_500_100,
            },
            1_600_000,
        ));
        h.records.insert("k".into(), Some(2_000_000));
        let v = check(&h);
        if aof {
            assert_eq!(kinds(&v), BTreeSet::from(["ran again over a record"]));
        } else {
            assert!(v.violations.is_empty(), "{:?}", v.violations);
            assert_eq!(
                v.allowed,
                BTreeMap::from([(Reason::RecordLostInRestart, 1)])
            );
        }
    }
}

#[test]
fn check_allows_a_takeover_once_a_killed_owners_lease_ended() {
    for (takeover, ok) in [(1_400_000, true), (1_300_000, false)] {
        let mut h = written(
            true,
            &[
                ("a", true, "1000010 START k 1000000"),
                ("b", false, &completed(takeover, 101)),
            ],
        );
        h.records.insert("k".into(), Some(takeover));
        let v = check(&h);
        if ok {
            assert!(v.violations.is_empty(), "{:?}", v.violations);
            assert_eq!(v.allowed, BTreeMap::from([(Reason::KilledMidWork, 1)]));
        } else {
            assert_eq!(kinds(&v), BTreeSet::from(["ran again during a lease"]));
        }
    }
}

#[test]
fn check_holds_a_lease_to_its_last_acknowledged_renewal() {
    // Renewed at 1.3 s: the lease lasts until 1.7 s at least.
    let fenced = "1000010 START k 1000000
                  1300100 RENEW k 1000000 1300000 ok
                  1800000 RENEW k 1000000 1790000 fenced
                  1900000 WORKEND k 1000000 lost ok
                  1900100 COMPLETE k 1000000 1900010 fenced
                  1900200 DONE k Executed 1000000 err LeaseLost";
    for (takeover, paused, expected) in [
        (1_600_000, false, None),
        (1_750_000, false, Some(Reason::FencedSlow)),
        (1_750_000, true, Some(Reason::FencedAfterPause)),
    ] {
        let mut h = written(
            true,
            &[
                ("a", false, fenced),
                ("b", false, &completed(takeover, 101)),
            ],
        );
        if paused {
            h.incarnations[0].paused.push(Span {
                from: 1_310_000,
                to: 1_750_000,
            });
        }
        h.records.insert("k".into(), Some(takeover));
        let v = check(&h);
        match expected {
            None => assert_eq!(kinds(&v), BTreeSet::from(["ran again during a lease"])),
            Some(reason) => {
                assert!(v.violations.is_empty(), "{:?}", v.violations);
                assert_eq!(v.allowed, BTreeMap::from([(reason, 1)]));
            }
        }
    }
}

#[test]
fn check_catches_a_stale_renewal_and_a_released_key_taken_early() {
    // Renewed after the next claim: it must have been refused.
    let stale = "1000010 START k 1000000
                 1600100 RENEW k 1000000 1600000 ok
                 1900000 WORKEND k 1000000 lost ok
                 1900100 COMPLETE k 1000000 1900010 fenced
                 1900200 DONE k Executed 1000000 err LeaseLost";
    let mut h = written(
        true,
        &[
            ("a", false, stale),
            ("b", false, &completed(1_500_000, 101)),
        ],
    );
    h.records.insert("k".into(), Some(1_500_000));
    assert_eq!(
        kinds(&check(&h)),
        BTreeSet::from(["a stale renewal accepted"])
    );

    // A release ends the lease: after it, not before.
    let released = "1000010 START k 1000000
                    1050000 WORKEND k 1000000 held err
                    1050200 RELEASE k 1000000 1050100 ok
                    1050300 DONE k Executed 1000000 err Failed injected failure";
    for (takeover, ok) in [(1_050_200, true), (1_040_000, false)] {
        let mut h = written(
            true,
            &[
                ("a", false, released),
                ("b", false, &completed(takeover, 101)),
            ],
        );
        h.records.insert("k".into(), Some(takeover));
        let v = check(&h);
        if ok {
            assert!(v.violations.is_empty(), "{:?}", v.violations);
            assert_eq!(v.allowed, BTreeMap::from([(Reason::Released, 1)]));
        } else {
            assert_eq!(kinds(&v), BTreeSet::from(["ran again during a lease"]));
        }
    }
}

#[test]
fn check_reads_the_records_left_at_the_end() {
    let later = completed(1_500_000, 101);
    let logs = [
        ("a", true, "1000010 START k 1000000"),
        ("b", false, later.as_str()),
    ];
    // The killed owner's record over the later one: a stale completion.
    let mut h = written(true, &logs);
    h.records.insert("k".into(), Some(1_000_000));
    assert_eq!(
        kinds(&check(&h)),
        BTreeSet::from(["a stale record at the end"])
    );
    // An acknowledged record gone, with AOF.
    let mut h = written(true, &logs);
    h.records.insert("k".into(), None);
    assert_eq!(
        kinds(&check(&h)),
        BTreeSet::from(["an acknowledged record gone"])
    );
}

#[test]
fn check_wants_every_call_to_end_well_and_every_work_a_result() {
    let hung = "1000010 START k 1000000
                1000020 DONE k - 1000000 err TIMEOUT";
    let h = written(true, &[("a", false, hung)]);
    assert_eq!(kinds(&check(&h)), BTreeSet::from(["a call failed"]));
    let silent = "1000010 START k 1000000";
    let h = written(true, &[("a", false, silent)]);
    assert_eq!(
        kinds(&check(&h)),
        BTreeSet::from(["a work without a result"])
    );
    let h = written(true, &[("a", false, "1000010 WORKEND k 1000000 held ok")]);
    assert_eq!(kinds(&check(&h)), BTreeSet::from(["unreadable log"]));
}
