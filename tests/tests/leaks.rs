//! Semantics 8: a table that stores nothing ends empty whatever its flights
//! did: succeed, fail, panic, or get cancelled.

use idem::SingleFlight;
use idem_tests::{Gate, Probe};

#[tokio::test]
async fn a_coalescing_table_ends_empty_after_every_kind_of_ending() {
    let flight: SingleFlight<u32, u32, &'static str> = SingleFlight::new();
    let gate = Gate::new();

    flight.run(1, || async { Ok(1) }).await.unwrap();
    flight.run(2, || async { Err("failed") }).await.unwrap_err();
    flight
        .run(3, || async { panic!("panicked") })
        .await
        .unwrap_err();

    // Cancelled with nobody waiting.
    let mut lone = Probe::new(flight.run(4, || async {
        gate.wait().await;
        Ok(4)
    }));
    lone.pending();
    drop(lone);

    // Cancelled leader, then every waiter leaves too.
    let mut leader = Probe::new(flight.run(5, || async {
        gate.wait().await;
        Ok(5)
    }));
    let mut waiter = Probe::new(flight.run(5, || async {
        gate.wait().await;
        Ok(5)
    }));
    leader.pending();
    waiter.pending();
    drop(leader);
    waiter.pending(); // took over
    drop(waiter);

    // Forgotten while running, then finished.
    let mut forgotten = Probe::new(flight.run(6, || async {
        gate.wait().await;
        Ok(6)
    }));
    forgotten.pending();
    flight.forget(&6);
    gate.open();
    forgotten.ready().unwrap();

    assert_eq!(flight.len(), 0);
    let s = flight.stats();
    assert_eq!((s.failures, s.panics, s.takeovers), (1, 1, 1));
}
