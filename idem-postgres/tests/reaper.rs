//! The reaper deletes expired entries in batches, under concurrent claims
//! and completions, and never a live lease or record.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idem::store::{Claimed, Lease, Owner, Store, StoreKey};
use idem_postgres::PostgresStore;
use support::Db;

const LONG: Duration = Duration::from_secs(600);
/// A retention that has passed by the next statement.
const GONE: Duration = Duration::from_micros(1);

fn key(k: &str) -> StoreKey<'_> {
    StoreKey {
        namespace: "r",
        key: k,
    }
}

async fn lease(store: &PostgresStore, k: &str, ttl: Duration) -> Lease {
    match store
        .claim(key(k), None, Owner::random(), ttl)
        .await
        .unwrap()
    {
        Claimed::Leased(lease) => lease,
        other => panic!("{k}: expected a lease, got {other:?}"),
    }
}

async fn count(db: &Db, filter: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM idem_records WHERE {filter}"
    )))
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_under_traffic_deletes_only_expired_entries() {
    let db = Db::new("reaper", 8).await;
    let store = db.store().await;
    // Live: leases held, and records kept.
    let mut held = Vec::new();
    for i in 0..30 {
        held.push((
            format!("held-{i}"),
            lease(&store, &format!("held-{i}"), LONG).await,
        ));
        let k = format!("kept-{i}");
        let l = lease(&store, &k, LONG).await;
        store
            .complete(key(&k), &l, k.as_bytes(), LONG)
            .await
            .unwrap();
    }
    // Expired: released leases, which the traffic takes over while the
    // reaper runs, and records past their retention.
    for i in 0..120 {
        let k = format!("churn-{i}");
        let l = lease(&store, &k, LONG).await;
        store.release(key(&k), &l).await.unwrap();
        let k = format!("old-{i}");
        let l = lease(&store, &k, LONG).await;
        store.complete(key(&k), &l, b"old", GONE).await.unwrap();
    }
    assert_eq!(count(&db, "expires_at <= now()").await, 240);

    let traffic_done = Arc::new(AtomicBool::new(false));
    let deleted = Arc::new(AtomicU64::new(0));
    let reapers: Vec<_> = (0..2)
        .map(|_| {
            let (store, done, deleted) = (
                store.clone(),
                Arc::clone(&traffic_done),
                Arc::clone(&deleted),
            );
            tokio::spawn(async move {
                loop {
                    let traffic_over = done.load(SeqCst);
                    let n = store.reap_expired(7).await.unwrap();
                    deleted.fetch_add(n, SeqCst);
                    if traffic_over && n == 0 {
                        return;
                    }
                }
            })
        })
        .collect();
    let traffic: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (t..120).step_by(4) {
                    let k = format!("churn-{i}");
                    let l = lease(&store, &k, LONG).await;
                    store
                        .complete(key(&k), &l, k.as_bytes(), LONG)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in traffic {
        t.await.unwrap();
    }
    traffic_done.store(true, SeqCst);
    for r in reapers {
        r.await.unwrap();
    }

    assert_eq!(
        count(&db, "expires_at <= now()").await,
        0,
        "every expired entry is gone"
    );
    assert!(
        deleted.load(SeqCst) >= 120,
        "the old records at least: {}",
        deleted.load(SeqCst)
    );
    assert_eq!(count(&db, "true").await, 30 + 30 + 120);
    for (k, l) in &held {
        store
            .renew(key(k), l, LONG)
            .await
            .expect("a held lease survives");
    }
    for i in 0..30 {
        let k = format!("kept-{i}");
        let c = store
            .claim(key(&k), None, Owner::random(), LONG)
            .await
            .unwrap();
        assert!(
            matches!(c, Claimed::Completed(r) if r.payload == k.as_bytes()),
            "{k}"
        );
    }
    for i in 0..120 {
        let k = format!("churn-{i}");
        let c = store
            .claim(key(&k), None, Owner::random(), LONG)
            .await
            .unwrap();
        assert!(
            matches!(c, Claimed::Completed(r) if r.payload == k.as_bytes()),
            "{k}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_reaper_empties_the_table_of_expired_entries() {
    let db = Db::new("spawned", 4).await;
    let store = db.store().await;
    let live = lease(&store, "live", LONG).await;
    for i in 0..30 {
        let l = lease(&store, &format!("gone-{i}"), LONG).await;
        store.release(key(&format!("gone-{i}")), &l).await.unwrap();
    }
    let reaper = store.spawn_reaper(Duration::from_millis(20), 7);
    let start = Instant::now();
    while reaper.deleted() < 30 {
        assert!(start.elapsed() < Duration::from_secs(10), "{reaper:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(reaper.deleted(), 30);
    assert_eq!((reaper.errors(), reaper.last_error()), (0, None));
    reaper.stop().await;
    assert_eq!(count(&db, "true").await, 1);
    store.renew(key("live"), &live, LONG).await.unwrap();
}
