//! The criterion cases the bench files share: group settings, a hit case
//! and a per-pass case that reports executions.

use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, SamplingMode, Throughput};
use tokio::runtime::Runtime;

use crate::{hit, prefill, Contender, Value};

/// Criterion settings of a per-call group (time per call, `iters` calls
/// split over the tasks).
pub fn per_call(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200));
}

/// Criterion settings of a per-pass group: time per pass of `calls` calls,
/// measured for `measure`.
pub fn per_pass(g: &mut BenchmarkGroup<'_, WallTime>, calls: u64, measure: Duration) {
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(measure)
        .throughput(Throughput::Elements(calls));
}

/// Prints how many times the work ran per pass, as `EXECUTIONS` lines the
/// run script collects.
pub fn print_executions(group: &str, id: &str, execs: &[u64]) {
    if execs.is_empty() {
        return;
    }
    let min = execs.iter().min().expect("not empty");
    let max = execs.iter().max().expect("not empty");
    let mean = execs.iter().sum::<u64>() as f64 / execs.len() as f64;
    println!(
        "EXECUTIONS {group}/{id}: min {min} max {max} mean {mean:.1} over {} passes",
        execs.len()
    );
}

/// A hit case: `c` prefilled with `values`, then `iters` hits split over
/// `tasks` tasks.
pub fn hit_case<C: Contender>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    id: &str,
    c: C,
    values: &Arc<[Value]>,
    tasks: usize,
) {
    let c = Arc::new(c);
    rt.block_on(prefill(&*c, values));
    g.bench_function(id, |b| {
        b.iter_custom(|iters| rt.block_on(hit(&c, values, tasks, iters)));
    });
}

/// One pass-based case: each iteration runs `pass` on a fresh contender.
pub fn pass_case<C, P, Fut>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    group: &str,
    id: &str,
    make: impl Fn() -> C,
    pass: P,
) where
    C: Contender,
    P: Fn(Arc<C>) -> Fut,
    Fut: std::future::Future<Output = (Duration, u64)>,
{
    let mut execs = Vec::new();
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let c = Arc::new(make());
                let (d, e) = rt.block_on(pass(Arc::clone(&c)));
                total += d;
                execs.push(e);
                // Dropped outside the timed region.
                drop(c);
            }
            total
        });
    });
    print_executions(group, id, &execs);
}
