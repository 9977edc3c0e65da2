//! A stampede of duplicate requests against a slow backend, with and without
//! idem's table in front of it.
//!
//! Run it with `cargo run --example quickstart`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use idem::{Outcome, SingleFlight};

/// The expensive call we want to make at most once per key: it takes 50 ms
/// and counts how often it really ran.
async fn slow_lookup(calls: &AtomicUsize, user: u32) -> Result<String, String> {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(format!("profile of user {user}"))
}

#[tokio::main]
async fn main() {
    let profiles: SingleFlight<u32, String, String> = SingleFlight::builder()
        .ttl(Duration::from_secs(2))
        .max_entries(10_000)
        .build()
        .expect("valid settings");
    let backend_calls = Arc::new(AtomicUsize::new(0));

    for (wave, label) in [
        (1, "first wave (cold)"),
        (2, "second wave (within the ttl)"),
    ] {
        // 1,000 concurrent requests for 10 distinct users.
        let tasks: Vec<_> = (0..1_000)
            .map(|i| {
                let (profiles, calls) = (profiles.clone(), Arc::clone(&backend_calls));
                tokio::spawn(async move {
                    let user = i % 10;
                    profiles
                        .run_with_outcome(user, || slow_lookup(&calls, user))
                        .await
                })
            })
            .collect();
        let mut counts = std::collections::HashMap::<Outcome, usize>::new();
        for task in tasks {
            let (profile, outcome) = task.await.expect("task panicked");
            assert!(profile
                .expect("lookup failed")
                .starts_with("profile of user"));
            *counts.entry(outcome).or_default() += 1;
        }
        let count = |outcome| counts.get(&outcome).copied().unwrap_or(0);
        println!(
            "{label}: 1000 requests -> executed {}, coalesced {}, cached {}",
            count(Outcome::Executed),
            count(Outcome::Coalesced),
            count(Outcome::Cached)
        );
        assert_eq!(wave == 2, count(Outcome::Cached) == 1_000);
    }

    println!(
        "backend calls: {} (without idem: 2000)",
        backend_calls.load(Ordering::SeqCst)
    );
    let stats = profiles.stats();
    println!(
        "stats: executions {}, coalesced {}, hits {}, entries held {}",
        stats.executions,
        stats.coalesced,
        stats.hits,
        profiles.len()
    );

    // After the ttl the stored profiles expire and the next request runs again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, outcome) = profiles
        .run_with_outcome(3, || slow_lookup(&backend_calls, 3))
        .await;
    println!("after the ttl: {outcome:?}");
}
