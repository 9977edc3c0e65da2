//! Randomized stress tests with fixed seeds.
//!
//! Many tasks call one table with keys drawn from a small set. Each call
//! plans its work's outcome (a value, an error or a panic) and duration,
//! may run detached, and, depending on the scenario, may be cancelled part
//! way (a timeout, a `select!` that gives up, an aborted task); callers also
//! `forget` and `clear` keys at random, and read them with `get`. Every
//! execution gets an id, and the values and errors it produces carry it, so
//! that everything a caller sees can be traced back to the execution that
//! produced it.
//!
//! Each scenario runs three times per seed (without a ttl, with one, and
//! with one and a `max_entries` below the key count), in one of two worlds:
//!
//! * `threads`: a two-worker runtime on the real clock, for true
//!   parallelism on the shard locks and flights;
//! * `paused`: a single-threaded runtime on tokio's paused clock, where
//!   delays and ttls are virtual, so ttl expiry can be checked exactly.
//!
//! The invariants checked:
//!
//! * nothing hangs: every scenario runs on a thread of its own, inside a
//!   `tokio::time::timeout`, watched by a real-time watchdog;
//! * without `forget`, at most one execution per key runs at any instant,
//!   cancellations included (an abandoned leader's work is dropped before a
//!   waiter takes over); with `forget`, each forget may add one more;
//! * every result comes from an execution that ran, for the caller's key,
//!   and ended the way the result says; `Executed` results come from the
//!   caller's own work, `Coalesced` and `Cached` ones from someone else's;
//!   errors and panics are never cached, and without a ttl nothing is: a
//!   call that starts after some caller received an execution's result can
//!   only see that result as `Cached`; a cached value is never older than an
//!   execution claimed after it ended, never comes from an execution
//!   forgotten while it ran, and (paused clock) is only returned within its
//!   ttl; the same holds for `get`;
//! * the table ends empty, and the `stats()` counters equal what the test
//!   counted: executions, failures, panics, coalesced calls, hits,
//!   expirations, and no takeovers without cancellations.
//!
//! Violations found inside work are recorded, not asserted there: a panic
//! in the work would be caught by idem and look like a planned one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use idem::{Error, Outcome, SingleFlight};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

const SEEDS: [u64; 8] = [
    1,
    2,
    7,
    42,
    1234,
    0x5eed_cafe,
    0x9e37_79b9,
    0xdead_beef_f00d,
];
const KEYS: usize = 4;
const TASKS: usize = 16;
const OPS_PER_TASK: usize = 300;
/// Real time after which a scenario is declared hung. Generous: a scenario
/// takes well under a second.
const HANG: Duration = Duration::from_secs(30);
/// Message prefix of the panics the work is told to raise.
const PLANNED_PANIC: &str = "stress: planned panic of execution #";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum World {
    /// Multi-threaded runtime, real clock.
    Threads,
    /// Single-threaded runtime, paused clock.
    Paused,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    seed: u64,
    world: World,
    ttl: Option<Duration>,
    /// A bound below the key count (with a ttl only), so that results are
    /// evicted while the scenario runs.
    max_entries: Option<usize>,
    shards: usize,
    cancel: bool,
    forget: bool,
}

type Table = SingleFlight<u8, Val, Fail>;

/// A value: which execution produced it, for which key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Val {
    key: u8,
    exec: u64,
}

/// An error, likewise.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fail {
    key: u8,
    exec: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Succeed,
    Fail,
    Panic,
}

/// How long a piece of work (or a pause between calls) takes.
#[derive(Debug, Clone, Copy)]
struct Delay {
    yields: u8,
    sleep: Duration,
}

impl Delay {
    fn work(rng: &mut SmallRng, world: World) -> Self {
        match world {
            World::Threads => Delay {
                yields: rng.random_range(0..6),
                sleep: if rng.random_bool(0.05) {
                    Duration::from_millis(1)
                } else {
                    Duration::ZERO
                },
            },
            World::Paused => Delay {
                yields: rng.random_range(0..3),
                sleep: if rng.random_bool(0.7) {
                    Duration::from_micros(rng.random_range(0..3000))
                } else {
                    Duration::ZERO
                },
            },
        }
    }

    fn between_ops(rng: &mut SmallRng, world: World) -> Self {
        match world {
            World::Threads => Delay {
                yields: rng.random_range(0..2),
                sleep: Duration::ZERO,
            },
            World::Paused => Delay {
                yields: 0,
                sleep: if rng.random_bool(0.5) {
                    Duration::from_micros(rng.random_range(0..1500))
                } else {
                    Duration::ZERO
                },
            },
        }
    }

    async fn wait(self) {
        for _ in 0..self.yields {
            tokio::task::yield_now().await;
        }
        if !self.sleep.is_zero() {
            tokio::time::sleep(self.sleep).await;
        }
    }
}

/// How a caller may give up.
#[derive(Debug, Clone, Copy)]
enum Drive {
    /// Await the call to its end.
    Await,
    /// Spawn the call on a task and await that.
    Spawn,
    /// Give up after a timeout.
    Timeout(Duration),
    /// Race the call against a few yields, in a `select!` polling the call
    /// first.
    Select(u8),
    /// Spawn the call, yield a few times, then abort its task.
    Abort(u8),
}

/// One execution, as its work saw it.
#[derive(Debug, Clone)]
struct Exec {
    key: u8,
    plan: Plan,
    /// When the call whose work this is started (before it claimed).
    caller_start: u64,
    start_seq: u64,
    /// When the work returned (or raised its planned panic).
    end: Option<(u64, Instant)>,
    /// The work future was dropped (finished or cancelled).
    stopped: bool,
}

/// What a call that ran to its end saw.
#[derive(Debug, Clone)]
struct Attempt {
    start_seq: u64,
    start_time: Instant,
    end_seq: u64,
    result: Result<Val, Error<Fail>>,
    outcome: Outcome,
}

#[derive(Debug)]
struct Call {
    key: u8,
    detached: bool,
    drive: Drive,
    slot: Arc<Slot>,
    /// `None` if the call was cancelled before it returned.
    attempt: Option<Attempt>,
}

/// Shared by a call and its work.
#[derive(Debug)]
struct Slot {
    /// The call's start, on the logical clock.
    start_seq: AtomicU64,
    /// The execution this call's own work started, plus one; zero if its
    /// work never ran.
    own: AtomicU64,
}

/// A `forget` (of one key) or a `clear` (of all), on the logical clock.
#[derive(Debug)]
struct Forget {
    key: Option<u8>,
    begin: u64,
    end: u64,
}

#[derive(Debug)]
struct Peek {
    key: u8,
    time: Instant,
    value: Val,
}

/// Everything the test counts and records.
struct State {
    cfg: Config,
    /// A logical clock ordering the events of all tasks.
    seq: AtomicU64,
    running: [AtomicUsize; KEYS],
    /// Forgets (and clears) begun, per key.
    forgets: [AtomicUsize; KEYS],
    execs: Mutex<Vec<Exec>>,
    calls: Mutex<Vec<Call>>,
    peeks: Mutex<Vec<Peek>>,
    forgotten: Mutex<Vec<Forget>>,
    violations: Mutex<Vec<String>>,
}

impl State {
    fn new(cfg: Config) -> Self {
        Self {
            cfg,
            seq: AtomicU64::new(0),
            running: Default::default(),
            forgets: Default::default(),
            execs: Mutex::default(),
            calls: Mutex::default(),
            peeks: Mutex::default(),
            forgotten: Mutex::default(),
            violations: Mutex::default(),
        }
    }

    fn tick(&self) -> u64 {
        self.seq.fetch_add(1, SeqCst)
    }

    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }
}

/// Marks an execution as running for its key while it lives; checks on
/// entry that no other execution of the key runs (or, with `forget`, no
/// more than the forgets so far can explain).
struct Running {
    state: Arc<State>,
    key: u8,
    exec: u64,
}

impl Running {
    fn enter(state: &Arc<State>, key: u8, plan: Plan, caller_start: u64) -> Self {
        let k = usize::from(key);
        // Read the forgets before claiming the slot: a forget that begins
        // later cannot explain an overlap that already exists.
        let forgets = state.forgets[k].load(SeqCst);
        let now_running = state.running[k].fetch_add(1, SeqCst) + 1;
        let exec = {
            let mut execs = state.execs.lock().unwrap();
            execs.push(Exec {
                key,
                plan,
                caller_start,
                start_seq: state.tick(),
                end: None,
                stopped: false,
            });
            execs.len() as u64 - 1
        };
        let allowed = if state.cfg.forget { 1 + forgets } else { 1 };
        if now_running > allowed {
            state.violation(format!(
                "execution #{exec} of key {key} started while {} other(s) ran \
                 (at most {allowed} may run; forgets so far: {forgets})",
                now_running - 1
            ));
        }
        Self {
            state: Arc::clone(state),
            key,
            exec,
        }
    }

    fn end(&self) {
        let end = (self.state.tick(), Instant::now());
        self.state.execs.lock().unwrap()[self.exec as usize].end = Some(end);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let cancelled = {
            let mut execs = self.state.execs.lock().unwrap();
            let e = &mut execs[self.exec as usize];
            e.stopped = true;
            e.end.is_none()
        };
        if cancelled && self.state.cfg.world == World::Threads {
            // Linger a little while the work is being dropped: a waiter that
            // took over too early (before this drop ended) would be caught
            // overlapping, instead of slipping through a window of a few
            // instructions.
            for _ in 0..4 {
                std::thread::yield_now();
            }
        }
        self.state.running[usize::from(self.key)].fetch_sub(1, SeqCst);
    }
}

/// The work of one call.
async fn work(
    state: Arc<State>,
    key: u8,
    plan: Plan,
    delay: Delay,
    slot: Arc<Slot>,
) -> Result<Val, Fail> {
    let running = Running::enter(&state, key, plan, slot.start_seq.load(SeqCst));
    let exec = running.exec;
    if slot.own.swap(exec + 1, SeqCst) != 0 {
        state.violation(format!("a caller's work ran twice (#{exec})"));
    }
    delay.wait().await;
    running.end();
    match plan {
        Plan::Succeed => Ok(Val { key, exec }),
        Plan::Fail => Err(Fail { key, exec }),
        Plan::Panic => panic!("{PLANNED_PANIC}{exec}"),
    }
}

/// The future of one call, and the slot where its work records itself.
fn call(
    state: &Arc<State>,
    flight: &Table,
    key: u8,
    plan: Plan,
    delay: Delay,
    detached: bool,
) -> (Arc<Slot>, impl Future<Output = Attempt> + Send + 'static) {
    let slot = Arc::new(Slot {
        start_seq: AtomicU64::new(u64::MAX),
        own: AtomicU64::new(0),
    });
    let (state, flight, for_work) = (Arc::clone(state), flight.clone(), Arc::clone(&slot));
    let fut = async move {
        let start_seq = state.tick();
        for_work.start_seq.store(start_seq, SeqCst);
        let start_time = Instant::now();
        let (result, outcome) = if detached {
            let st = Arc::clone(&state);
            flight
                .run_detached_with_outcome(key, move || work(st, key, plan, delay, for_work))
                .await
        } else {
            flight
                .run_with_outcome(key, || work(Arc::clone(&state), key, plan, delay, for_work))
                .await
        };
        Attempt {
            start_seq,
            start_time,
            end_seq: state.tick(),
            result,
            outcome,
        }
    };
    (slot, fut)
}

async fn drive<F>(state: &State, how: Drive, fut: F) -> Option<Attempt>
where
    F: Future<Output = Attempt> + Send + 'static,
{
    match how {
        Drive::Await => Some(fut.await),
        Drive::Spawn => match tokio::spawn(fut).await {
            Ok(a) => Some(a),
            Err(e) => {
                state.violation(format!("a spawned call failed: {e}"));
                None
            }
        },
        Drive::Timeout(d) => tokio::time::timeout(d, fut).await.ok(),
        Drive::Select(n) => {
            tokio::select! {
                biased;
                a = fut => Some(a),
                () = Delay { yields: n, sleep: Duration::ZERO }.wait() => None,
            }
        }
        Drive::Abort(n) => {
            let task = tokio::spawn(fut);
            Delay {
                yields: n,
                sleep: Duration::ZERO,
            }
            .wait()
            .await;
            task.abort();
            match task.await {
                Ok(a) => Some(a),
                Err(e) if e.is_cancelled() => None,
                Err(e) => {
                    state.violation(format!("an aborted call failed: {e}"));
                    None
                }
            }
        }
    }
}

async fn caller_task(state: Arc<State>, flight: Table, seed: u64) {
    let cfg = state.cfg;
    let mut rng = SmallRng::seed_from_u64(seed);
    for _ in 0..OPS_PER_TASK {
        let key = rng.random_range(0..KEYS as u8);
        let roll = rng.random_range(0..100);
        if cfg.forget && roll < 6 {
            let all = roll == 5;
            if all {
                for f in &state.forgets {
                    f.fetch_add(1, SeqCst);
                }
            } else {
                state.forgets[usize::from(key)].fetch_add(1, SeqCst);
            }
            let begin = state.tick();
            if all {
                flight.clear();
            } else {
                flight.forget(&key);
            }
            let end = state.tick();
            let key = (!all).then_some(key);
            state
                .forgotten
                .lock()
                .unwrap()
                .push(Forget { key, begin, end });
        } else if roll < 12 {
            if let Some(value) = flight.get(&key) {
                let time = Instant::now();
                state.peeks.lock().unwrap().push(Peek { key, time, value });
            }
        } else {
            let plan = match rng.random_range(0..10) {
                0..=5 => Plan::Succeed,
                6..=7 => Plan::Fail,
                _ => Plan::Panic,
            };
            let delay = Delay::work(&mut rng, cfg.world);
            let detached = rng.random_bool(0.2);
            let how = match (cfg.cancel, rng.random_range(0..10)) {
                (false, 0..=7) | (true, 0..=4) => Drive::Await,
                (false, _) => Drive::Spawn,
                (true, 5..=6) => Drive::Timeout(match cfg.world {
                    World::Threads => Duration::from_micros(rng.random_range(1..1500)),
                    World::Paused => Duration::from_micros(rng.random_range(1..3000)),
                }),
                (true, 7..=8) => Drive::Select(rng.random_range(0..4)),
                (true, _) => Drive::Abort(rng.random_range(0..4)),
            };
            let (slot, fut) = call(&state, &flight, key, plan, delay, detached);
            let attempt = drive(&state, how, fut).await;
            state.calls.lock().unwrap().push(Call {
                key,
                detached,
                drive: how,
                slot,
                attempt,
            });
        }
        Delay::between_ops(&mut rng, cfg.world).wait().await;
    }
}

/// Polls `done` until it holds, sleeping 1 ms in between, at most `tries`
/// times. Only for waiting on background work (detached tasks, the
/// sweeper), never to let an interleaving happen.
async fn eventually(tries: usize, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    done()
}

async fn scenario(cfg: Config) -> Vec<String> {
    let flight: Table = {
        let b = SingleFlight::builder()
            .shards(cfg.shards)
            .sweep_interval(Duration::from_millis(1));
        match (cfg.ttl, cfg.max_entries) {
            (Some(ttl), Some(max)) => b.ttl(ttl).max_entries(max).build().unwrap(),
            (Some(ttl), None) => b.ttl(ttl).build().unwrap(),
            (None, _) => b.build().unwrap(),
        }
    };
    let state = Arc::new(State::new(cfg));
    let mut master = SmallRng::seed_from_u64(cfg.seed);
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let seed = master.random();
            tokio::spawn(caller_task(Arc::clone(&state), flight.clone(), seed))
        })
        .collect();
    for t in tasks {
        if let Err(e) = t.await {
            state.violation(format!("a caller task failed: {e}"));
        }
    }

    // Detached work may outlive its callers: wait for every claimed
    // execution to have started and stopped.
    let drained = eventually(10_000, || {
        let execs = state.execs.lock().unwrap();
        flight.stats().executions == execs.len() as u64 && execs.iter().all(|e| e.stopped)
    })
    .await;
    if !drained {
        let execs = state.execs.lock().unwrap();
        state.violation(format!(
            "executions never drained: stats say {}, work started {}, still running {}",
            flight.stats().executions,
            execs.len(),
            execs.iter().filter(|e| !e.stopped).count()
        ));
    }
    let mut violations = verify(&state, &flight);

    // Stored results must all expire and be swept.
    if let Some(ttl) = cfg.ttl {
        tokio::time::sleep(ttl).await;
        if !eventually(10_000, || flight.is_empty()).await {
            violations.push(format!(
                "{} entries left long after every ttl passed",
                flight.len()
            ));
        }
        let s = flight.stats();
        let execs = state.execs.lock().unwrap();
        let stored = execs
            .iter()
            .filter(|e| e.plan == Plan::Succeed && e.end.is_some())
            .count() as u64;
        // Every stored result leaves once: it expires or is evicted (or is
        // forgotten, which neither counts).
        let left = s.expirations + s.evictions;
        if cfg.forget {
            if left > stored {
                violations.push(format!(
                    "{} expirations and {} evictions but only {stored} successes",
                    s.expirations, s.evictions
                ));
            }
        } else if left != stored {
            // Without forget, every success is stored, and every stored
            // result expires or is evicted exactly once.
            violations.push(format!(
                "{} expirations and {} evictions, expected one per success: {stored}",
                s.expirations, s.evictions
            ));
        }
    }
    violations
}

/// Checks the records against each other and against the table.
fn verify(state: &State, flight: &Table) -> Vec<String> {
    let cfg = state.cfg;
    let mut v = std::mem::take(&mut *state.violations.lock().unwrap());
    let execs = state.execs.lock().unwrap();
    let calls = state.calls.lock().unwrap();
    let stats = flight.stats();
    // Shown for a failing scenario (or with --nocapture).
    println!(
        "{cfg:?}: {stats:?}; {} calls, {} cancelled, {} gets that found a value",
        calls.len(),
        calls.iter().filter(|c| c.attempt.is_none()).count(),
        state.peeks.lock().unwrap().len()
    );

    // Whether a forget (or clear) of the execution's key certainly ran
    // while its flight was in the table (between the work's start and end):
    // then its result must never be stored (golang/go#31420).
    let forgotten = state.forgotten.lock().unwrap();
    let fenced = |e: &Exec| {
        e.end.is_some_and(|(end_seq, _)| {
            forgotten.iter().any(|f| {
                f.key.is_none_or(|k| k == e.key) && e.start_seq < f.begin && f.end < end_seq
            })
        })
    };

    // The first time any caller held each execution's result.
    let mut first_delivery: HashMap<u64, u64> = HashMap::new();
    let exec_of = |r: &Result<Val, Error<Fail>>| -> Option<u64> {
        match r {
            Ok(val) => Some(val.exec),
            Err(Error::Failed(f)) => Some(f.exec),
            Err(Error::Panicked(p)) => p.message().strip_prefix(PLANNED_PANIC)?.parse().ok(),
            Err(_) => None,
        }
    };
    for a in calls.iter().filter_map(|c| c.attempt.as_ref()) {
        if let Some(x) = exec_of(&a.result) {
            let d = first_delivery.entry(x).or_insert(a.end_seq);
            *d = (*d).min(a.end_seq);
        }
    }

    let (mut executed, mut coalesced, mut cached, mut cancelled) = (0, 0, 0, 0);
    for (i, c) in calls.iter().enumerate() {
        let own = c.slot.own.load(SeqCst).checked_sub(1);
        let Some(a) = &c.attempt else {
            cancelled += 1;
            if !cfg.cancel {
                v.push(format!(
                    "call {i} ({c:?}) did not return without cancellations"
                ));
            }
            continue;
        };
        let what = format!("call {i} (key {}, {:?}, {:?})", c.key, c.drive, a.outcome);
        match a.outcome {
            Outcome::Executed => executed += 1,
            Outcome::Coalesced => coalesced += 1,
            Outcome::Cached => cached += 1,
            other => {
                v.push(format!(
                    "{what}: an outcome this check does not know: {other:?}"
                ));
                continue;
            }
        }
        let Some(x) = exec_of(&a.result) else {
            v.push(format!(
                "{what}: a result from no execution: {:?}",
                a.result
            ));
            continue;
        };
        let Some(e) = execs.get(x as usize) else {
            v.push(format!("{what}: execution #{x} never started"));
            continue;
        };
        // The result matches the execution's key and ending.
        let plan = match &a.result {
            Ok(val) if val.key == c.key => Plan::Succeed,
            Err(Error::Failed(f)) if f.key == c.key => Plan::Fail,
            Err(Error::Panicked(_)) => Plan::Panic,
            other => {
                v.push(format!("{what}: result for another key: {other:?}"));
                continue;
            }
        };
        if e.key != c.key || e.plan != plan || e.end.is_none() {
            v.push(format!(
                "{what}: got {:?} from execution #{x}: {e:?}",
                a.result
            ));
        }
        // Who ran the work.
        match (a.outcome, own) {
            (Outcome::Executed, Some(o)) if o == x => {}
            (Outcome::Coalesced | Outcome::Cached, None) => {}
            (_, own) => v.push(format!(
                "{what}: result of #{x}, but the caller's own work was {own:?}"
            )),
        }
        // Nothing but successes is cached, and only with a ttl.
        if a.outcome == Outcome::Cached && (plan != Plan::Succeed || cfg.ttl.is_none()) {
            v.push(format!(
                "{what}: {:?} was cached (ttl {:?})",
                a.result, cfg.ttl
            ));
        }
        // A call that starts after someone already held an execution's
        // result cannot join that execution: only a stored copy can reach it.
        if first_delivery[&x] < a.start_seq && a.outcome != Outcome::Cached {
            v.push(format!(
                "{what}: got #{x}'s result, delivered before the call started"
            ));
        }
        if a.outcome == Outcome::Cached {
            if let (Some(ttl), Some((end_seq, end_time))) = (cfg.ttl, e.end) {
                // Stored no longer than the ttl (exact on the paused clock,
                // where no time passes between the work's end and the store).
                // The hit may come after the call started (a waiter whose
                // flight was abandoned claims again), never before it.
                if cfg.world == World::Paused && a.start_time >= end_time + ttl {
                    v.push(format!(
                        "{what}: hit on #{x} at {:?}, which ended at {:?} with ttl {ttl:?}",
                        a.start_time, end_time
                    ));
                }
                // Never older than a later execution of the key. An
                // execution Y claimed after X ended can only have been
                // claimed once X's result had left the table (with a fresh
                // result there, its caller would have hit; with X's flight
                // there, it would have joined); Y's claim happens before its
                // work starts, and its caller starts before it claims. So
                // once such a Y has started, X's result is gone. Without
                // forget, any Y whose work started after X ended will do:
                // Y's flight ends after its work starts, and no flight can
                // be claimed while an earlier one of its key is in the table.
                if let Some(y) = execs.iter().position(|y| {
                    let claimed_after =
                        end_seq < y.caller_start || (!cfg.forget && end_seq < y.start_seq);
                    y.key == c.key && claimed_after && y.start_seq < a.start_seq
                }) {
                    v.push(format!(
                        "{what}: hit on #{x} although #{y} was claimed after it had ended"
                    ));
                }
            }
            if fenced(e) {
                v.push(format!(
                    "{what}: hit on #{x}, which was forgotten while it ran"
                ));
            }
        }
        if c.detached && matches!(a.result, Err(Error::Aborted)) {
            v.push(format!("{what}: aborted while the runtime was alive"));
        }
    }

    for p in state.peeks.lock().unwrap().iter() {
        let ok = execs.get(p.value.exec as usize).is_some_and(|e| {
            let fresh = match (cfg.ttl, e.end) {
                (Some(ttl), Some((_, end))) => {
                    cfg.world == World::Threads || (end <= p.time && p.time < end + ttl)
                }
                _ => false,
            };
            e.key == p.key && p.value.key == p.key && e.plan == Plan::Succeed && fresh && !fenced(e)
        });
        if !ok {
            v.push(format!(
                "get({}) returned {:?} at {:?}",
                p.key, p.value, p.time
            ));
        }
    }

    // The counters agree with what the test saw.
    let n = |x: usize| x as u64;
    let ended = |plan: Plan| {
        n(execs
            .iter()
            .filter(|e| e.plan == plan && e.end.is_some())
            .count())
    };
    let ran_own_work = n(calls
        .iter()
        .filter(|c| c.slot.own.load(SeqCst) != 0)
        .count());
    let expect = [
        ("executions", stats.executions, n(execs.len())),
        ("callers whose work ran", ran_own_work, n(execs.len())),
        ("failures", stats.failures, ended(Plan::Fail)),
        ("panics", stats.panics, ended(Plan::Panic)),
        ("coalesced", stats.coalesced, coalesced),
        ("hits", stats.hits, cached),
    ];
    for (name, got, want) in expect {
        if got != want {
            v.push(format!("stats: {name} = {got}, counted {want}"));
        }
    }
    if executed > stats.executions {
        v.push(format!(
            "{executed} Executed results from {} executions",
            stats.executions
        ));
    }
    if !cfg.cancel && (stats.takeovers != 0 || cancelled != 0) {
        v.push(format!(
            "{} takeovers and {cancelled} cancelled calls without cancellations",
            stats.takeovers
        ));
    }
    if stats.takeovers > stats.executions {
        v.push(format!("{} takeovers", stats.takeovers));
    }
    if cfg.ttl.is_none() {
        if !flight.is_empty() || stats.expirations != 0 {
            v.push(format!(
                "without a ttl: {} entries left, {} expirations",
                flight.len(),
                stats.expirations
            ));
        }
    } else if flight.len() > KEYS {
        v.push(format!("{} entries for {KEYS} keys", flight.len()));
    }
    match cfg.max_entries {
        // Every flight has ended: only stored results are left.
        Some(max) if flight.len() > max => {
            v.push(format!("{} entries over max_entries({max})", flight.len()));
        }
        None if stats.evictions != 0 => {
            v.push(format!(
                "{} evictions in an unbounded table",
                stats.evictions
            ));
        }
        _ => {}
    }
    if stats.executions == 0 || (executed == 0 && !cfg.cancel) {
        v.push("the scenario ran nothing".to_string());
    }
    v
}

/// Silences the panic hook for the panics the work is told to raise (and
/// only those): hundreds of them would bury any real failure's output.
fn quiet_planned_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            if !msg.is_some_and(|m| m.starts_with(PLANNED_PANIC)) {
                default(info);
            }
        }));
    });
}

/// Runs one scenario on a runtime of its own, on a thread of its own,
/// and fails if it hangs or breaks an invariant.
fn run(cfg: Config) {
    quiet_planned_panics();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = match cfg.world {
            World::Threads => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
            World::Paused => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build(),
        }
        .unwrap();
        // Real time for `Threads`; virtual time for `Paused`, where a
        // deadlock lets the clock run to the limit at once (the watchdog
        // below catches a livelock).
        let limit = match cfg.world {
            World::Threads => HANG,
            World::Paused => Duration::from_secs(30),
        };
        let res = runtime.block_on(async { tokio::time::timeout(limit, scenario(cfg)).await });
        let _ = tx.send(res.map_err(|_| format!("timed out after {limit:?}")));
    });
    match rx.recv_timeout(HANG + Duration::from_secs(5)) {
        Ok(Ok(violations)) => {
            thread.join().unwrap();
            assert!(
                violations.is_empty(),
                "{cfg:?}: {} violation(s):\n{}",
                violations.len(),
                violations
                    .iter()
                    .take(20)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        Ok(Err(hang)) => panic!("{cfg:?}: hung: {hang}"),
        Err(RecvTimeoutError::Timeout) => panic!("{cfg:?}: hung (watchdog, real time)"),
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => panic!("{cfg:?}: the scenario thread vanished"),
        },
    }
}

/// Runs every seed: without a ttl, with one, and with one and a bound.
fn each_seed(world: World, cancel: bool, forget: bool) {
    for seed in SEEDS {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
        let shards = [1, 2, 16][rng.random_range(0..3)];
        let ttl_us = match world {
            World::Threads => rng.random_range(20..=800),
            World::Paused => rng.random_range(1000..=8000),
        };
        let ttl = Duration::from_micros(ttl_us);
        for (ttl, max_entries) in [(None, None), (Some(ttl), None), (Some(ttl), Some(2))] {
            run(Config {
                seed,
                world,
                ttl,
                max_entries,
                shards,
                cancel,
                forget,
            });
        }
    }
}

#[test]
fn threads_without_cancellation_or_forget() {
    each_seed(World::Threads, false, false);
}

#[test]
fn threads_with_cancellation() {
    each_seed(World::Threads, true, false);
}

#[test]
fn threads_with_cancellation_and_forget() {
    each_seed(World::Threads, true, true);
}

#[test]
fn paused_clock_without_cancellation_or_forget() {
    each_seed(World::Paused, false, false);
}

#[test]
fn paused_clock_with_cancellation() {
    each_seed(World::Paused, true, false);
}

#[test]
fn paused_clock_with_cancellation_and_forget() {
    each_seed(World::Paused, true, true);
}
