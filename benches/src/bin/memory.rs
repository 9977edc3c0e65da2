//! Heap bytes per stored result and per running flight, measured with a
//! counting global allocator (`stats_alloc`): the net bytes allocated
//! (allocated minus freed) across filling a table, divided by the entries.
//!
//! The values are clones of one shared `Arc<[u8; 64]>`, so the figures are
//! the tables' own overhead; a distinct value per entry adds its own
//! allocation (80 bytes of `ArcInner<[u8; 64]>`, 96 with malloc's header).
//!
//! `cargo run --release -p idem-benches --bin memory`

use std::alloc::System;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use dashmap::DashMap;
use idem_benches::{value, Idem, Moka, NaiveMap, Value};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Net heap bytes allocated so far.
fn net() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

const ENTRIES: u64 = 100_000;
const FLIGHTS: u64 = 10_000;

/// Bytes per entry of filling a fresh table made by `make` with `ENTRIES`
/// keys through `fill`; the table is kept alive while measuring.
fn per_entry<T>(make: impl FnOnce() -> T, fill: impl FnOnce(&T)) -> f64 {
    let before = net();
    let t = make();
    fill(&t);
    let after = net();
    drop(t);
    (after - before) as f64 / ENTRIES as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let shared = value(7);
    let work = || {
        let v = Value::clone(&shared);
        async move { Ok::<_, Infallible>(v) }
    };
    let long = Duration::from_secs(3600);

    // Warm up lazily initialised runtime and allocator state.
    rt.block_on(async {
        let t = Idem::with_ttl(long);
        for k in 0..1000 {
            t.0.run(k, work).await.expect("ok");
        }
    });

    println!("## Stored results: heap bytes per entry at {ENTRIES} entries\n");
    println!("| table | bytes/entry |");
    println!("|---|---:|");
    let idem_unbounded = per_entry(
        || Idem::with_ttl(long),
        |t| {
            rt.block_on(async {
                for k in 0..ENTRIES {
                    t.0.run(k, work).await.expect("ok");
                }
                assert_eq!(t.0.len() as u64, ENTRIES);
            })
        },
    );
    println!("| idem, ttl, unbounded | {idem_unbounded:.1} |");
    let idem_bounded = per_entry(
        || Idem::bounded(long, 2 * ENTRIES as usize),
        |t| {
            rt.block_on(async {
                for k in 0..ENTRIES {
                    t.0.run(k, work).await.expect("ok");
                }
                assert_eq!(t.0.len() as u64, ENTRIES);
            })
        },
    );
    println!(
        "| idem, ttl, max_entries({}) | {idem_bounded:.1} |",
        2 * ENTRIES
    );
    let moka = per_entry(
        || Moka::with_ttl(long),
        |t| {
            rt.block_on(async {
                for k in 0..ENTRIES {
                    let r: Result<Value, Arc<Infallible>> = t.0.try_get_with(k, work()).await;
                    r.expect("ok");
                }
                t.0.run_pending_tasks().await;
                assert_eq!(t.0.entry_count(), ENTRIES);
            })
        },
    );
    println!("| moka future::Cache, ttl, unbounded | {moka:.1} |");
    let moka_bounded = per_entry(
        || Moka::bounded(long, 2 * ENTRIES),
        |t| {
            rt.block_on(async {
                for k in 0..ENTRIES {
                    let r: Result<Value, Arc<Infallible>> = t.0.try_get_with(k, work()).await;
                    r.expect("ok");
                }
                t.0.run_pending_tasks().await;
                assert_eq!(t.0.entry_count(), ENTRIES);
            })
        },
    );
    println!(
        "| moka future::Cache, ttl, max_capacity({}) | {moka_bounded:.1} |",
        2 * ENTRIES
    );
    let naive = per_entry(NaiveMap::default, |t| {
        rt.block_on(async {
            for k in 0..ENTRIES {
                let cell = Arc::clone(&t.0.entry(k).or_default());
                let r: Result<&Value, Infallible> = cell.get_or_try_init(work).await;
                r.expect("ok");
            }
        })
    });
    println!("| naive DashMap<u64, Arc<OnceCell<V>>> | {naive:.1} |");
    let floor = per_entry(DashMap::<u64, Value>::new, |t| {
        for k in 0..ENTRIES {
            t.insert(k, Value::clone(&shared));
        }
    });
    println!("| floor DashMap<u64, V> | {floor:.1} |");

    // Running flights: futures polled once by hand, their work parked on a
    // Notify, so that the table holds FLIGHTS running flights at once.
    println!("\n## Running flights (idem)\n");
    let baseline = net();
    let pending = rt.block_on(async {
        let t = Idem::with_ttl(long);
        let notify = tokio::sync::Notify::new();
        let mut cx = Context::from_waker(Waker::noop());
        let park = || async {
            notify.notified().await;
            Ok::<_, Infallible>(Value::clone(&shared))
        };
        type Call<'a> = Pin<Box<dyn Future<Output = Result<Value, idem::Error<Infallible>>> + 'a>>;

        // One leader per key.
        let mut leaders: Vec<Call<'_>> = (0..FLIGHTS)
            .map(|k| Box::pin(t.0.run(k, park)) as Call<'_>)
            .collect();
        let future_size = std::mem::size_of_val(&*leaders[0]);
        let before = net();
        for f in &mut leaders {
            assert!(f.as_mut().poll(&mut cx).is_pending());
        }
        let per_flight = (net() - before) as f64 / FLIGHTS as f64;
        assert_eq!(t.0.len() as u64, FLIGHTS);

        // Many waiters on one flight.
        let mut waiters: Vec<Call<'_>> = (0..=FLIGHTS)
            .map(|_| Box::pin(t.0.run(FLIGHTS + 1, park)) as Call<'_>)
            .collect();
        let before = net();
        for f in &mut waiters {
            assert!(f.as_mut().poll(&mut cx).is_pending());
        }
        let per_waiter = (net() - before) as f64 / FLIGHTS as f64;

        // Finish them all: the results are stored (ttl), then forgotten.
        notify.notify_waiters();
        for f in leaders.iter_mut().chain(waiters.iter_mut()) {
            assert!(matches!(f.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
        }
        let stats = t.0.stats();
        assert_eq!(stats.executions, FLIGHTS + 1);
        assert_eq!(stats.coalesced, FLIGHTS);
        drop(leaders);
        drop(waiters);
        t.0.clear();
        assert!(t.0.is_empty());
        (future_size, per_flight, per_waiter)
    });
    let (future_size, per_flight, per_waiter) = pending;
    println!("| what | bytes |");
    println!("|---|---:|");
    println!(
        "| heap per running flight (table entry + `Flight`), {FLIGHTS} flights | {per_flight:.1} |"
    );
    println!(
        "| heap per extra waiter on one flight (waker slot), {FLIGHTS} waiters | {per_waiter:.1} |"
    );
    println!("| size of the `run` future (in the caller's task, with this work) | {future_size} |");
    // Dropping the tables and the futures frees everything they allocated.
    let leaked = net() - baseline;
    println!("\nnet heap bytes left after dropping the in-flight table: {leaked}");
}
