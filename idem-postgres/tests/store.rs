//! The store through the pool (the executor's way): takeovers and fences,
//! fingerprints, fencing tokens across releases and the reaper.

mod support;

use std::time::Duration;

use idem::store::{Claimed, Lease, Owner, Store, StoreError, StoreKey};
use idem::Fingerprint;
use idem_postgres::PostgresStore;
use support::Db;

const LONG: Duration = Duration::from_secs(600);

fn key(k: &str) -> StoreKey<'_> {
    StoreKey {
        namespace: "accounts",
        key: k,
    }
}

async fn lease(store: &PostgresStore, k: &str, fp: Option<Fingerprint>, ttl: Duration) -> Lease {
    match store.claim(key(k), fp, Owner::random(), ttl).await.unwrap() {
        Claimed::Leased(lease) => lease,
        other => panic!("{k}: expected a lease, got {other:?}"),
    }
}

/// Waits until the database's clock has passed the end of a lease of
/// `ttl` taken before the call.
async fn until_expired(db: &Db, ttl: Duration) {
    sqlx::query("SELECT pg_sleep($1)")
        .bind(ttl.as_secs_f64())
        .execute(&db.pool)
        .await
        .unwrap();
}

/// A stalled owner's lease expires and is taken over: the store refuses
/// the stale owner's renewal, completion and release, and a table that
/// checks the fence (`WHERE fence < $1`) refuses its late write after the
/// new owner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_and_the_stale_owner_fenced_downstream_too() {
    let db = Db::new("takeover", 4).await;
    let store = db.store().await;
    sqlx::query("CREATE TABLE balances (account text PRIMARY KEY, cents bigint NOT NULL, fence bigint NOT NULL)")
        .execute(&db.pool)
        .await
        .unwrap();
    let fenced_write = |cents: i64, fence: u64| {
        let pool = db.pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO balances VALUES ('acct-1', $1, $2) \
                 ON CONFLICT (account) DO UPDATE SET cents = EXCLUDED.cents, fence = EXCLUDED.fence \
                 WHERE balances.fence < EXCLUDED.fence",
            )
            .bind(cents)
            .bind(fence as i64)
            .execute(&pool)
            .await
            .unwrap()
            .rows_affected()
        }
    };
    let ttl = Duration::from_millis(100);
    let stale = lease(&store, "acct-1", None, ttl).await;
    until_expired(&db, ttl).await;
    let newer = lease(&store, "acct-1", None, LONG).await;
    assert!(newer.fence > stale.fence);
    assert_eq!(fenced_write(200, newer.fence).await, 1);
    // The stale owner wakes up.
    assert_eq!(
        fenced_write(100, stale.fence).await,
        0,
        "the table refuses the stale write"
    );
    let k = key("acct-1");
    assert!(matches!(
        store.renew(k, &stale, LONG).await,
        Err(StoreError::Fenced)
    ));
    assert!(matches!(
        store.complete(k, &stale, b"stale", LONG).await,
        Err(StoreError::Fenced)
    ));
    assert!(matches!(
        store.release(k, &stale).await,
        Err(StoreError::Fenced)
    ));
    store.complete(k, &newer, b"200", LONG).await.unwrap();
    let c = store.claim(k, None, Owner::random(), LONG).await.unwrap();
    assert!(matches!(c, Claimed::Completed(r) if r.payload == b"200" && r.fence == newer.fence));
    let cents: i64 = sqlx::query_scalar("SELECT cents FROM balances")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(cents, 200);
}

#[tokio::test]
async fn fingerprints_are_checked_on_leases_and_records() {
    let db = Db::new("fingerprints", 2).await;
    let store = db.store().await;
    let (a, b) = (Some(Fingerprint::of(&100)), Some(Fingerprint::of(&200)));
    let l = lease(&store, "k", a, LONG).await;
    let claim = |fp| store.claim(key("k"), fp, Owner::random(), LONG);
    assert_eq!(claim(b).await.unwrap(), Claimed::Mismatch);
    assert!(matches!(claim(a).await.unwrap(), Claimed::Running { .. }));
    store.complete(key("k"), &l, b"v", LONG).await.unwrap();
    assert_eq!(claim(b).await.unwrap(), Claimed::Mismatch);
    assert!(matches!(claim(a).await.unwrap(), Claimed::Completed(_)));
    assert!(matches!(claim(None).await.unwrap(), Claimed::Completed(_)));
    // The 64 bits survive the signed column: a fingerprint with its top
    // bit set matches itself only.
    let (hi, hi2) = (
        Some(Fingerprint::from_u64(u64::MAX)),
        Some(Fingerprint::from_u64(1 << 63)),
    );
    let l = lease(&store, "hi", hi, LONG).await;
    store.complete(key("hi"), &l, b"v", LONG).await.unwrap();
    let claim = |fp| store.claim(key("hi"), fp, Owner::random(), LONG);
    assert!(matches!(claim(hi).await.unwrap(), Claimed::Completed(_)));
    assert_eq!(claim(hi2).await.unwrap(), Claimed::Mismatch);
}

/// Fencing tokens come from a sequence: they grow for a key across
/// releases, expiries and the reaper's deletes, and across keys.
#[tokio::test]
async fn fences_grow_across_releases_expiries_and_deletes() {
    let db = Db::new("fences", 2).await;
    let store = db.store().await;
    let mut last = 0;
    for round in 0..3 {
        let l = lease(&store, "f", None, LONG).await;
        assert!(l.fence > last, "round {round}");
        store.release(key("f"), &l).await.unwrap();
        last = l.fence;
        let l = lease(&store, "f", None, Duration::from_micros(1)).await;
        assert!(l.fence > last, "round {round}, after a release");
        last = l.fence;
        until_expired(&db, Duration::from_millis(1)).await;
        assert!(store.reap_expired(100).await.unwrap() >= 1);
        let other = lease(&store, "other", None, Duration::from_micros(1)).await;
        assert!(other.fence > last, "round {round}, another key");
        last = other.fence;
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM idem_records WHERE key = 'f'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "the reaper deleted the key's expired row");
}

/// Expiry is the database's clock's: a lease taken, read and renewed
/// reports the time left by it.
#[tokio::test]
async fn the_time_left_is_the_databases() {
    let db = Db::new("clock", 2).await;
    let store = db.store().await;
    let l = lease(&store, "t", None, Duration::from_secs(10)).await;
    assert!(
        l.ttl <= Duration::from_secs(10) && l.ttl > Duration::from_secs(9),
        "{:?}",
        l.ttl
    );
    store
        .renew(key("t"), &l, Duration::from_secs(100))
        .await
        .unwrap();
    match store
        .claim(key("t"), None, Owner::random(), LONG)
        .await
        .unwrap()
    {
        Claimed::Running { retry_after } => {
            assert!(
                retry_after > Duration::from_secs(99) && retry_after <= Duration::from_secs(100)
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A row written by hand that idem-postgres cannot read is reported as
/// corrupt, naming the key.
#[tokio::test]
async fn an_unreadable_row_is_corrupt() {
    let db = Db::new("corrupt", 2).await;
    let store = db.store().await;
    sqlx::query(
        "INSERT INTO idem_records (namespace, key, state, fence, owner, expires_at) \
         VALUES ('accounts', 'bad', 'completed', -4, '00000000-0000-0000-0000-000000000000', now() + interval '1 hour')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    match store.claim(key("bad"), None, Owner::random(), LONG).await {
        Err(StoreError::Corrupt { key, reason }) => {
            assert_eq!(key, "accounts/bad");
            assert!(reason.contains("-4"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
