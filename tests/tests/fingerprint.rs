//! Issue 7, section 5: a key reused for a different request gets
//! `Error::Mismatch`, never the other request's result, and nothing runs.

use std::time::Duration;

use idem::{Error, Fingerprint, SingleFlight};
use idem_tests::{Counter, Gate, Probe};
use tokio::time::advance;

const TTL: Duration = Duration::from_secs(30);

fn payments() -> SingleFlight<u64, u64> {
    SingleFlight::builder().ttl(TTL).build().unwrap()
}

fn fp(amount: u64) -> Fingerprint {
    Fingerprint::of(&amount)
}

#[tokio::test(start_paused = true)]
async fn a_stored_result_is_not_given_to_another_request() {
    let flight = payments();
    let runs = Counter::new();
    let charge = |amount: u64| {
        let runs = &runs;
        move || async move {
            runs.hit();
            Ok(amount)
        }
    };
    assert_eq!(
        flight.run_with_fingerprint(7, fp(100), charge(100)).await,
        Ok(100)
    );
    assert_eq!(
        flight.run_with_fingerprint(7, fp(999), charge(999)).await,
        Err(Error::Mismatch)
    );
    assert_eq!(
        flight.run_with_fingerprint(7, fp(100), charge(100)).await,
        Ok(100)
    );
    assert_eq!(runs.get(), 1, "the mismatched call ran nothing");
    let s = flight.stats();
    assert_eq!((s.executions, s.hits, s.mismatches), (1, 1, 1));
    // Once the result expired, the key is free for any request.
    advance(TTL).await;
    assert_eq!(
        flight.run_with_fingerprint(7, fp(999), charge(999)).await,
        Ok(999)
    );
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn a_running_flight_is_not_joined_by_another_request() {
    let flight = payments();
    let gate = Gate::new();
    let runs = Counter::new();
    let work = |amount: u64| {
        let (gate, runs) = (&gate, &runs);
        move || async move {
            runs.hit();
            gate.wait().await;
            Ok(amount)
        }
    };
    let mut leader = Probe::new(flight.run_with_fingerprint(1, fp(5), work(5)));
    leader.pending();
    // Answered at once, without waiting for the flight it does not match.
    let mut other = Probe::new(flight.run_with_fingerprint(1, fp(6), work(6)));
    assert_eq!(other.ready(), Err(Error::Mismatch));
    let mut same = Probe::new(flight.run_with_fingerprint(1, fp(5), work(5)));
    same.pending();
    gate.open();
    assert_eq!(leader.ready(), Ok(5));
    assert_eq!(same.ready(), Ok(5));
    assert_eq!(runs.get(), 1);
}

#[tokio::test]
async fn calls_without_a_fingerprint_are_not_checked() {
    let flight = payments();
    flight
        .run_with_fingerprint(1, fp(5), || async { Ok(5) })
        .await
        .unwrap();
    assert_eq!(flight.run(1, || async { Ok(6) }).await, Ok(5));
    flight.run(2, || async { Ok(7) }).await.unwrap();
    assert_eq!(
        flight
            .run_with_fingerprint(2, fp(8), || async { Ok(8) })
            .await,
        Ok(7),
        "a result stored without a fingerprint matches any call"
    );
    assert_eq!(flight.stats().mismatches, 0);
}

#[tokio::test]
async fn detached_calls_are_checked_too() {
    let flight = payments();
    let first = flight.run_detached_with_fingerprint(3, fp(1), || async { Ok(1) });
    assert_eq!(first.await, Ok(1));
    let reused = flight.run_detached_with_fingerprint(3, fp(2), || async { Ok(2) });
    assert_eq!(reused.await, Err(Error::Mismatch));
}

#[tokio::test]
async fn a_table_that_stores_nothing_checks_running_flights_only() {
    let flight: SingleFlight<u64, u64> = SingleFlight::new();
    let gate = Gate::new();
    let mut leader = Probe::new(flight.run_with_fingerprint(1, fp(1), || async {
        gate.wait().await;
        Ok(1)
    }));
    leader.pending();
    let mut other = Probe::new(flight.run_with_fingerprint(1, fp(2), || async { Ok(2) }));
    assert_eq!(other.ready(), Err(Error::Mismatch));
    gate.open();
    assert_eq!(leader.ready(), Ok(1));
    // Nothing stored: the next request with another payload runs.
    assert_eq!(
        flight
            .run_with_fingerprint(1, fp(2), || async { Ok(2) })
            .await,
        Ok(2)
    );
}
