//! The workloads: tasks, each with its list of calls, released at once;
//! every call timed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Design, How};

/// What the work of a call does.
#[derive(Debug, Clone, Copy)]
pub enum Work {
    /// Returns its value at once.
    Ready,
    /// Sleeps, then returns its value (a remote call that takes time).
    Sleep(Duration),
}

/// One task's calls: for each, which process makes it, and the key.
pub type Plan = Vec<(usize, Arc<str>)>;

/// What a workload did.
#[derive(Debug, Default)]
pub struct Run {
    /// From the release of the tasks to the end of the last.
    pub wall: Duration,
    /// Every call's latency, in nanoseconds.
    pub latencies: Vec<u64>,
    /// How many times the work ran.
    pub executions: u64,
    /// Calls per [`How`]: executed, replayed, waited, coalesced.
    pub hows: [u64; 4],
    /// Calls that failed.
    pub errors: u64,
    /// The first failure's message.
    pub first_error: Option<String>,
}

impl Run {
    /// Calls made.
    pub fn calls(&self) -> u64 {
        self.latencies.len() as u64
    }
}

/// The value every work returns for `key`.
pub fn value(key: &str) -> String {
    format!("receipt for {key}")
}

/// Runs `plans` (one task each) against `processes`, all tasks released
/// at once, and times every call.
///
/// # Panics
///
/// If a task panics, or if a call returns another value than its key's.
pub async fn race<D: Design>(processes: &[Arc<D>], plans: Vec<Plan>, work: Work) -> Run {
    let executions = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicUsize::new(0));
    let (go, gate) = watch::channel(false);
    let tasks = plans.len();
    let handles: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let processes: Vec<Arc<D>> = processes.to_vec();
            let executions = Arc::clone(&executions);
            let ready = Arc::clone(&ready);
            let mut gate = gate.clone();
            tokio::spawn(async move {
                ready.fetch_add(1, Ordering::Relaxed);
                let _ = gate.wait_for(|go| *go).await;
                let mut run = Run {
                    latencies: Vec::with_capacity(plan.len()),
                    ..Run::default()
                };
                for (p, key) in plan {
                    let executions = &executions;
                    let work_key = Arc::clone(&key);
                    let work = move || async move {
                        if let Work::Sleep(d) = work {
                            tokio::time::sleep(d).await;
                        }
                        executions.fetch_add(1, Ordering::Relaxed);
                        value(&work_key)
                    };
                    let t0 = Instant::now();
                    let r = processes[p].call(&key, work).await;
                    run.latencies.push(t0.elapsed().as_nanos() as u64);
                    match r {
                        Ok((v, how)) => {
                            assert_eq!(v, value(&key), "{}: a wrong value", D::name());
                            run.hows[how as usize] += 1;
                        }
                        Err(e) => {
                            run.errors += 1;
                            run.first_error.get_or_insert(e);
                        }
                    }
                }
                run
            })
        })
        .collect();
    while ready.load(Ordering::Relaxed) < tasks {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let start = Instant::now();
    go.send_replace(true);
    let mut total = Run::default();
    for h in handles {
        let run = h.await.expect("a bench task panicked");
        total.latencies.extend(run.latencies);
        for (t, n) in total.hows.iter_mut().zip(run.hows) {
            *t += n;
        }
        total.errors += run.errors;
        if total.first_error.is_none() {
            total.first_error = run.first_error;
        }
    }
    total.wall = start.elapsed();
    total.executions = executions.load(Ordering::Relaxed);
    total
}

/// `calls` calls of fresh keys `<tag>-<i>`, over `tasks` tasks, all on
/// process 0.
pub fn unique(tag: &str, calls: usize, tasks: usize) -> Vec<Plan> {
    (0..tasks)
        .map(|t| {
            (t..calls)
                .step_by(tasks)
                .map(|i| (0, Arc::from(format!("{tag}-{i}"))))
                .collect()
        })
        .collect()
}

/// `calls` calls over `tasks` tasks cycling over keys `<tag>-<i>`,
/// `i < keys`, all on process 0. Each task has keys of its own (`i ≡ t`
/// modulo `tasks`), so no two calls of a key overlap: every call is a
/// replay, none is coalesced.
pub fn cycling(tag: &str, keys: usize, calls: usize, tasks: usize) -> Vec<Plan> {
    let names: Vec<Arc<str>> = (0..keys).map(|i| Arc::from(format!("{tag}-{i}"))).collect();
    let per_task = (keys / tasks).max(1);
    (0..tasks)
        .map(|t| {
            (t..calls)
                .step_by(tasks)
                .enumerate()
                .map(|(j, _)| (0, Arc::clone(&names[(t + tasks * (j % per_task)) % keys])))
                .collect()
        })
        .collect()
}

/// `callers` tasks making one call each for the key `key`, spread over
/// `processes` processes (caller `i` on process `i % processes`).
pub fn storm(key: &str, callers: usize, processes: usize) -> Vec<Plan> {
    let key: Arc<str> = Arc::from(key);
    (0..callers)
        .map(|i| vec![(i % processes, Arc::clone(&key))])
        .collect()
}

/// The latency below which a share `q` (0 to 1) of `sorted` lies, in
/// nanoseconds.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((q * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[i]
}

/// The [`How`] names, in [`Run::hows`] order.
pub const HOWS: [&str; 4] = ["executed", "replayed", "waited", "coalesced"];

const _: () = {
    assert!(How::Executed as usize == 0 && How::Coalesced as usize == 3);
};
