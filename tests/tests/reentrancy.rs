//! Semantics 9: work that calls back into its own key is detected instead
//! of deadlocking silently; recursion over other keys works.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use idem::{Error, SingleFlight};

type Table = SingleFlight<u32, u64, String>;

fn expect_reentrant(res: Result<u64, Error<String>>) {
    match res {
        Err(Error::Panicked(p)) => {
            assert!(p.message().contains("re-entrant"), "{}", p.message())
        }
        other => panic!("expected a re-entrancy panic, got {other:?}"),
    }
}

#[tokio::test]
async fn calling_the_same_key_from_inside_its_work_is_detected() {
    let flight = Table::new();
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        flight.run(1, || async {
            // The outer flight is this very call: waiting would never end.
            flight
                .run(1, || async { Ok(0) })
                .await
                .map_err(|e| e.to_string())
        }),
    )
    .await
    .expect("re-entrancy must not hang");
    expect_reentrant(res);
    assert!(flight.is_empty());
    assert_eq!(flight.run(1, || async { Ok(5) }).await, Ok(5));
}

#[tokio::test]
async fn a_cycle_across_keys_is_detected() {
    let flight = Table::new();
    let res = flight
        .run(1, || async {
            let inner = flight
                .run(2, || async {
                    flight
                        .run(1, || async { Ok(0) })
                        .await
                        .map_err(|e| e.to_string())
                })
                .await;
            // Key 2's work panicked with the re-entrancy message.
            match inner {
                Err(Error::Panicked(p)) => panic!("{}", p.message()),
                other => other.map_err(|e| e.to_string()),
            }
        })
        .await;
    expect_reentrant(res);
    assert!(flight.is_empty());
}

fn factorial(
    flight: &Table,
    n: u32,
) -> Pin<Box<dyn Future<Output = Result<u64, Error<String>>> + '_>> {
    Box::pin(async move {
        flight
            .run(n, || async move {
                if n <= 1 {
                    Ok(1)
                } else {
                    let below = factorial(flight, n - 1).await.map_err(|e| e.to_string())?;
                    Ok(u64::from(n) * below)
                }
            })
            .await
    })
}

#[tokio::test]
async fn recursion_over_other_keys_works() {
    let flight: Table = SingleFlight::builder()
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(factorial(&flight, 10).await, Ok(3_628_800));
    assert_eq!(flight.stats().executions, 10);
    assert_eq!(factorial(&flight, 12).await, Ok(479_001_600));
    assert_eq!(
        flight.stats().executions,
        12,
        "11 and 12 were new, 10 was cached"
    );
}

#[tokio::test]
async fn the_same_key_on_another_table_is_not_re_entrant() {
    let outer = Table::new();
    let inner = Table::new();
    let res = outer
        .run(1, || async {
            inner
                .run(1, || async { Ok(7) })
                .await
                .map_err(|e| e.to_string())
        })
        .await;
    assert_eq!(res, Ok(7));
}
