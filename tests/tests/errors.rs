//! Semantics 3 and 4: errors and panics reach every caller of the flight
//! that produced them, once, are never stored, and never leave a key stuck.

use std::time::Duration;

use idem::{Error, Outcome, SingleFlight};
use idem_tests::{Counter, Gate, Probe};

fn table() -> SingleFlight<u32, u32, String> {
    SingleFlight::builder()
        .ttl(Duration::from_secs(60))
        .shards(1)
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_error_goes_to_every_caller_of_its_flight_from_one_execution() {
    let flight = table();
    let runs = Counter::new();
    let gate = Gate::new();
    let work = || async {
        runs.hit();
        gate.wait().await;
        Err::<u32, _>("card declined".to_string())
    };
    let mut callers: Vec<_> = (0..10).map(|_| Probe::new(flight.run(1, work))).collect();
    callers.iter_mut().for_each(Probe::pending);
    gate.open();
    for c in &mut callers {
        assert_eq!(c.ready(), Err(Error::Failed("card declined".to_string())));
    }
    assert_eq!(
        runs.get(),
        1,
        "waiters share the error; they do not retry one by one"
    );
    let s = flight.stats();
    assert_eq!((s.executions, s.failures, s.coalesced), (1, 1, 9));
}

#[tokio::test]
async fn errors_are_never_stored() {
    let flight = table();
    let res = flight.run(1, || async { Err("down".to_string()) }).await;
    assert_eq!(res, Err(Error::Failed("down".into())));
    assert_eq!(flight.get(&1), None);
    assert!(flight.is_empty());
    let res = flight.run_with_outcome(1, || async { Ok(1) }).await;
    assert_eq!(res, (Ok(1), Outcome::Executed));
}

#[tokio::test]
async fn a_panic_reaches_every_caller_with_its_message_and_frees_the_key() {
    let flight = table();
    let gate = Gate::new();
    let work = || async {
        gate.wait().await;
        panic!("out of {}", "ink");
    };
    let mut callers: Vec<_> = (0..5).map(|_| Probe::new(flight.run(1, work))).collect();
    callers.iter_mut().for_each(Probe::pending);
    gate.open();
    for c in &mut callers {
        match c.ready() {
            Err(Error::Panicked(p)) => assert_eq!(p.message(), "out of ink"),
            other => panic!("expected a panic, got {other:?}"),
        }
    }
    assert_eq!(flight.stats().panics, 1);
    assert!(flight.is_empty(), "the key is not stuck");
    assert_eq!(flight.run(1, || async { Ok(2) }).await, Ok(2));
}

#[tokio::test]
async fn a_panic_while_creating_the_work_is_caught_too() {
    let flight = table();
    let res = flight
        .run(1, || -> std::future::Ready<Result<u32, String>> {
            panic!("before the future exists")
        })
        .await;
    let Err(Error::Panicked(p)) = res else {
        panic!("expected a panic, got {res:?}")
    };
    assert_eq!(p.message(), "before the future exists");
    assert_eq!(flight.run(1, || async { Ok(3) }).await, Ok(3));
}

#[tokio::test]
async fn a_panic_does_not_poison_the_shard() {
    let flight = table(); // one shard: every key shares it
    let res = flight.run(1, || async { panic!("boom") }).await;
    assert!(matches!(res, Err(Error::Panicked(_))));
    for k in 2..20 {
        assert_eq!(flight.run(k, || async move { Ok(k) }).await, Ok(k));
    }
}

#[tokio::test]
async fn a_panic_with_a_non_string_payload_has_a_placeholder_message() {
    let flight = table();
    let res = flight
        .run(1, || async { std::panic::panic_any(42_u8) })
        .await;
    let Err(Error::Panicked(p)) = res else {
        panic!("expected a panic")
    };
    assert_eq!(p.message(), "<panic payload is not a string>");
    assert_eq!(
        Error::<String>::Panicked(p).to_string(),
        "work panicked: <panic payload is not a string>"
    );
}

#[test]
fn resume_panic_turns_a_panic_back_into_one() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = rt.block_on(async {
        table()
            .run(1, || async { panic!("original") })
            .await
            .unwrap_err()
    });
    let payload = std::panic::catch_unwind(|| err.resume_panic()).unwrap_err();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "original");
    // Other errors pass through.
    let e: Error<String> = Error::Failed("x".into());
    assert_eq!(e.resume_panic(), Error::Failed("x".into()));
}
