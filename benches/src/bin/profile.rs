//! Runs one contender on one storm workload, over and over, for a profiler:
//! `perf stat -e instructions,cycles target/release/profile idem sleep 200`
//! counts what a storm costs one contender, without the other contenders'
//! work in the same process (the `report` binary interleaves them all).
//!
//! Usage: `profile <contender> <sleep|ready> <passes>`, the contender one of
//! `idem`, `idem_no_ttl`, `naive_map`, `floor_oncecell`, or `naive_map+N`
//! (N = 8, 16, 24, 32, 64, 128: the naive map with N more bytes in its call
//! future, which is how we found that the storms' wall time follows glibc's
//! heap trimming rather than the contender; see BENCHMARKS.md). Prints the
//! executions and the time per caller, inside the measured window and wall.
//! `SIZES=1` also prints the size of each contender's call future.

use std::sync::Arc;
use std::time::{Duration, Instant};

use idem_benches::{runtime, storm, Contender, FloorCell, Idem, NaiveMap};

const CALLERS: usize = 10_000;

fn run<C: Contender>(make: impl Fn() -> C, sleep: Option<Duration>, passes: usize) {
    let rt = runtime();
    let mut execs = 0;
    let mut measured = Duration::ZERO;
    let start = Instant::now();
    for _ in 0..passes {
        let (elapsed, n) = rt.block_on(storm(Arc::new(make()), CALLERS, sleep));
        measured += elapsed;
        execs += n;
    }
    let per_caller = |d: Duration| d.as_nanos() as f64 / (passes * CALLERS) as f64;
    println!(
        "{passes} storms of {CALLERS} callers: {execs} executions; per caller {:.1} ns measured \
         (release to last task's end), {:.1} ns wall (spawning and teardown included)",
        per_caller(measured),
        per_caller(start.elapsed()),
    );
}

fn main() {
    if std::env::var_os("SIZES").is_some() {
        sizes();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: profile <idem|idem_no_ttl|naive_map|naive_map+N|floor_oncecell> <sleep|ready> <passes>";
    let [contender, work, passes] = args.as_slice() else {
        panic!("{usage}");
    };
    let sleep = match work.as_str() {
        "sleep" => Some(Duration::from_millis(1)),
        "ready" => None,
        _ => panic!("{usage}"),
    };
    let passes: usize = passes.parse().expect(usage);
    let ttl = Duration::from_secs(3600);
    match contender.as_str() {
        "idem" => run(|| Idem::with_ttl(ttl), sleep, passes),
        "idem_no_ttl" => run(Idem::coalesce_only, sleep, passes),
        "naive_map" => run(NaiveMap::default, sleep, passes),
        "naive_map+8" => run(|| Padded::<_, 8>(NaiveMap::default()), sleep, passes),
        "naive_map+16" => run(|| Padded::<_, 16>(NaiveMap::default()), sleep, passes),
        "naive_map+24" => run(|| Padded::<_, 24>(NaiveMap::default()), sleep, passes),
        "naive_map+32" => run(|| Padded::<_, 32>(NaiveMap::default()), sleep, passes),
        "naive_map+64" => run(|| Padded::<_, 64>(NaiveMap::default()), sleep, passes),
        "naive_map+128" => run(|| Padded::<_, 128>(NaiveMap::default()), sleep, passes),
        "floor_oncecell" => run(FloorCell::default, sleep, passes),
        _ => panic!("{usage}"),
    }
}

/// Prints the size of each contender's call future.
fn sizes() {
    use idem_benches::value;
    let ttl = Duration::from_secs(1);
    let idem = Idem::with_ttl(ttl);
    let naive = NaiveMap::default();
    let cell = FloorCell::default();
    let work = || async { Ok(value(0)) };
    eprintln!("idem call: {}", std::mem::size_of_val(&idem.call(0, work)));
    eprintln!(
        "naive call: {}",
        std::mem::size_of_val(&naive.call(0, work))
    );
    eprintln!("cell call: {}", std::mem::size_of_val(&cell.call(0, work)));
    let p = Padded::<_, 8>(NaiveMap::default());
    eprintln!("naive+8 call: {}", std::mem::size_of_val(&p.call(0, work)));
    let p = Padded::<_, 32>(NaiveMap::default());
    eprintln!("naive+32 call: {}", std::mem::size_of_val(&p.call(0, work)));
}

/// `C` with `N` more bytes in its call future, to see how the task size
/// alone moves the figures.
struct Padded<C, const N: usize>(C);

impl<C: Contender, const N: usize> Contender for Padded<C, N> {
    async fn call<F, Fut>(&self, key: u64, work: F) -> idem_benches::Value
    where
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future<Output = idem_benches::Out> + Send,
    {
        let pad = std::hint::black_box([0u8; N]);
        let v = self.0.call(key, work).await;
        std::hint::black_box(pad);
        v
    }
}
