//! The sweeper's lifecycle: it ends with its table, and a runtime that goes
//! away for any reason lets the next stored result start a new one.

use std::time::Duration;

use idem::SingleFlight;

fn table() -> SingleFlight<u32, u32> {
    SingleFlight::builder()
        .ttl(Duration::from_millis(50))
        .sweep_interval(Duration::from_secs(3600))
        .build()
        .unwrap()
}

#[test]
fn a_dropped_table_takes_its_sweeper_with_it() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let alive = || rt.metrics().num_alive_tasks();
    for _ in 0..100 {
        let flight = table();
        rt.block_on(flight.run(1, || async { Ok(1) })).unwrap();
        drop(flight);
    }
    // Let the runtime reap the aborted tasks (a few scheduler ticks).
    rt.block_on(async {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    });
    assert_eq!(alive(), 0, "each sweeper would sleep for an hour");
}

#[test]
fn a_runtime_dropped_while_unwinding_does_not_stop_sweeping_for_good() {
    let flight = table();
    // A failing test's runtime: dropped while its thread unwinds, with the
    // table's first sweeper on it.
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(flight.run(1, || async { Ok(1) })).unwrap();
        let _dropped_while_unwinding = rt;
        panic!("a failing test");
    }));
    assert!(failed.is_err());
    // The next runtime stores a result: it must get a sweeper that removes
    // it once expired, without the key being asked for again.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let flight = SingleFlight::clone(&flight);
    rt.block_on(async {
        flight.run(2, || async { Ok(2) }).await.unwrap();
        assert_eq!(flight.len(), 2, "key 1 expired but was not swept yet");
        tokio::time::sleep(Duration::from_secs(3601)).await;
        assert_eq!(flight.len(), 0, "swept");
    });
}
