//! The transactional mode: claim, business write and completion in one
//! transaction, against concurrent duplicates, rollbacks, killed
//! connections and lock timeouts.

mod support;

use std::time::{Duration, Instant};

use idem::store::{Claimed, Owner, Store, StoreKey};
use idem::Fingerprint;
use idem_postgres::{PostgresStore, TxClaim};
use sqlx::{Connection, PgPool};
use support::Db;

const NS: &str = "payments";

fn key(order: &str) -> StoreKey<'_> {
    StoreKey {
        namespace: NS,
        key: order,
    }
}

fn fp(cents: i64) -> Option<Fingerprint> {
    Some(Fingerprint::of(&cents))
}

/// What one call of [`pay`] did.
#[derive(Debug, PartialEq, Eq)]
enum Paid {
    Executed(Vec<u8>),
    Replayed(Vec<u8>),
    Mismatch,
    InProgress,
}

/// A store on a fresh schema, with a `payments` table without any unique
/// constraint: a duplicate payment would be a second row.
async fn setup(test: &str, connections: u32, lock_timeout: Duration) -> (Db, PostgresStore) {
    let db = Db::new(test, connections).await;
    let store = db.builder().lock_timeout(lock_timeout).build().unwrap();
    store.migrate().await.unwrap();
    sqlx::query("CREATE TABLE payments (order_id text NOT NULL, cents bigint NOT NULL, fence bigint NOT NULL)")
        .execute(&db.pool)
        .await
        .unwrap();
    (db, store)
}

/// The idempotent payment: the claim, the row and the receipt in one
/// transaction.
async fn pay(store: &PostgresStore, pool: &PgPool, order: &str, cents: i64) -> Paid {
    let mut tx = pool.begin().await.unwrap();
    match store
        .claim_in(&mut tx, key(order), fp(cents))
        .await
        .unwrap()
    {
        TxClaim::Claimed(claim) => {
            sqlx::query("INSERT INTO payments (order_id, cents, fence) VALUES ($1, $2, $3)")
                .bind(order)
                .bind(cents)
                .bind(claim.fence() as i64)
                .execute(&mut *tx)
                .await
                .unwrap();
            let receipt = format!("paid {cents} for {order}").into_bytes();
            claim.complete(&mut tx, &receipt).await.unwrap();
            tx.commit().await.unwrap();
            Paid::Executed(receipt)
        }
        TxClaim::Completed(record) => Paid::Replayed(record.payload),
        TxClaim::Mismatch => Paid::Mismatch,
        TxClaim::InProgress { .. } => Paid::InProgress,
        // `TxClaim` is not `non_exhaustive`: a new variant breaks this.
    }
}

async fn payments(pool: &PgPool, order: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payments WHERE order_id = $1")
        .bind(order)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn records(pool: &PgPool, order: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM idem_records WHERE namespace = $1 AND key = $2")
        .bind(NS)
        .bind(order)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_transactions_make_one_payment_and_49_replays() {
    let (db, store) = setup("fifty", 52, Duration::from_secs(30)).await;
    // The first transaction claims and writes, and holds the key open
    // until all the others wait on it.
    let mut first = db.pool.begin().await.unwrap();
    let TxClaim::Claimed(claim) = store
        .claim_in(&mut first, key("o-1"), fp(500))
        .await
        .unwrap()
    else {
        panic!("the first claim of a new key")
    };
    sqlx::query("INSERT INTO payments (order_id, cents, fence) VALUES ('o-1', 500, $1)")
        .bind(claim.fence() as i64)
        .execute(&mut *first)
        .await
        .unwrap();
    let others: Vec<_> = (0..49)
        .map(|_| {
            let (store, pool) = (store.clone(), db.pool.clone());
            tokio::spawn(async move { pay(&store, &pool, "o-1", 500).await })
        })
        .collect();
    db.until_waiting_on_locks(49).await;
    assert_eq!(
        payments(&db.pool, "o-1").await,
        0,
        "nothing is visible before the commit"
    );
    claim.complete(&mut first, b"receipt-1").await.unwrap();
    first.commit().await.unwrap();
    for other in others {
        assert_eq!(other.await.unwrap(), Paid::Replayed(b"receipt-1".to_vec()));
    }
    assert_eq!(payments(&db.pool, "o-1").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_claim_lets_the_waiting_duplicate_run() {
    let (db, store) = setup("rollback", 4, Duration::from_secs(30)).await;
    let mut first = db.pool.begin().await.unwrap();
    let TxClaim::Claimed(_claim) = store
        .claim_in(&mut first, key("o-2"), fp(700))
        .await
        .unwrap()
    else {
        panic!("the first claim of a new key")
    };
    sqlx::query("INSERT INTO payments (order_id, cents, fence) VALUES ('o-2', 700, 0)")
        .execute(&mut *first)
        .await
        .unwrap();
    let second = {
        let (store, pool) = (store.clone(), db.pool.clone());
        tokio::spawn(async move { pay(&store, &pool, "o-2", 700).await })
    };
    db.until_waiting_on_locks(1).await;
    first.rollback().await.unwrap();
    let receipt = b"paid 700 for o-2".to_vec();
    assert_eq!(second.await.unwrap(), Paid::Executed(receipt.clone()));
    assert_eq!(
        pay(&store, &db.pool, "o-2", 700).await,
        Paid::Replayed(receipt)
    );
    assert_eq!(payments(&db.pool, "o-2").await, 1);

    // And without anyone waiting: a rollback leaves the key vacant.
    let mut tx = db.pool.begin().await.unwrap();
    assert!(matches!(
        store.claim_in(&mut tx, key("o-3"), None).await.unwrap(),
        TxClaim::Claimed(_)
    ));
    tx.rollback().await.unwrap();
    assert_eq!(records(&db.pool, "o-3").await, 0);
    assert!(matches!(
        pay(&store, &db.pool, "o-3", 1).await,
        Paid::Executed(_)
    ));
}

/// The connection of a transaction that claimed and wrote is killed from
/// another connection (`pg_terminate_backend`): nothing of it remains, the
/// duplicate that waited on it runs the payment once, and a retry
/// replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_transaction_leaves_nothing_and_the_retry_runs_once() {
    let (db, store) = setup("killed", 4, Duration::from_secs(30)).await;
    let mut conn = db.connection().await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    let TxClaim::Claimed(claim) = store.claim_in(&mut tx, key("o-4"), fp(900)).await.unwrap()
    else {
        panic!("the first claim of a new key")
    };
    sqlx::query("INSERT INTO payments (order_id, cents, fence) VALUES ('o-4', 900, 0)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let waiter = {
        let (store, pool) = (store.clone(), db.pool.clone());
        tokio::spawn(async move { pay(&store, &pool, "o-4", 900).await })
    };
    db.until_waiting_on_locks(1).await;

    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(killed);
    let e = claim.complete(&mut tx, b"never").await.unwrap_err();
    assert!(matches!(e, idem::store::StoreError::Unavailable(_)), "{e}");
    drop(tx);
    drop(conn);

    let receipt = b"paid 900 for o-4".to_vec();
    assert_eq!(waiter.await.unwrap(), Paid::Executed(receipt.clone()));
    assert_eq!(
        pay(&store, &db.pool, "o-4", 900).await,
        Paid::Replayed(receipt)
    );
    assert_eq!(payments(&db.pool, "o-4").await, 1);
    let fence: i64 = sqlx::query_scalar("SELECT fence FROM payments WHERE order_id = 'o-4'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(
        fence > 0,
        "the surviving payment is the waiter's, with its fence"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_with_another_fingerprint_is_a_mismatch() {
    let (db, store) = setup("mismatch", 4, Duration::from_secs(30)).await;
    assert!(matches!(
        pay(&store, &db.pool, "o-5", 100).await,
        Paid::Executed(_)
    ));
    assert_eq!(pay(&store, &db.pool, "o-5", 200).await, Paid::Mismatch);
    assert!(matches!(
        pay(&store, &db.pool, "o-5", 100).await,
        Paid::Replayed(_)
    ));
    let mut tx = db.pool.begin().await.unwrap();
    assert!(matches!(
        store.claim_in(&mut tx, key("o-5"), None).await.unwrap(),
        TxClaim::Completed(_)
    ));
    tx.rollback().await.unwrap();

    // A duplicate with another fingerprint that waited on the first.
    let mut first = db.pool.begin().await.unwrap();
    let TxClaim::Claimed(claim) = store
        .claim_in(&mut first, key("o-6"), fp(100))
        .await
        .unwrap()
    else {
        panic!("the first claim of a new key")
    };
    let other = {
        let (store, pool) = (store.clone(), db.pool.clone());
        tokio::spawn(async move { pay(&store, &pool, "o-6", 200).await })
    };
    db.until_waiting_on_locks(1).await;
    claim.complete(&mut first, b"r").await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(other.await.unwrap(), Paid::Mismatch);
    assert_eq!(payments(&db.pool, "o-5").await, 1);
}

/// A duplicate waits for the store's lock timeout, not longer, and is told
/// the key is in progress; its transaction is aborted, as PostgreSQL does
/// after a failed statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_timeout_answers_in_progress() {
    let (db, store) = setup("lock_timeout", 4, Duration::from_millis(200)).await;
    let mut first = db.pool.begin().await.unwrap();
    let TxClaim::Claimed(_claim) = store.claim_in(&mut first, key("o-7"), None).await.unwrap()
    else {
        panic!("the first claim of a new key")
    };
    let mut second = db.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '20s'")
        .execute(&mut *second)
        .await
        .unwrap();
    let start = Instant::now();
    let answer = store.claim_in(&mut second, key("o-7"), None).await.unwrap();
    let waited = start.elapsed();
    assert!(
        matches!(answer, TxClaim::InProgress { retry_after: None }),
        "{answer:?}"
    );
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(10),
        "waited {waited:?} with a lock timeout of 200 ms"
    );
    let e = sqlx::query("SELECT 1")
        .execute(&mut *second)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("aborted"), "{e}");
    second.rollback().await.unwrap();

    // The store's claims through the pool are bounded the same way.
    let c = store
        .claim(key("o-7"), None, Owner::random(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        c,
        Claimed::Running {
            retry_after: Duration::from_millis(200)
        }
    );
    first.commit().await.unwrap();
    let c = store
        .claim(key("o-7"), None, Owner::random(), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        matches!(&c, Claimed::Completed(r) if r.payload.is_empty()),
        "{c:?}"
    );
}

async fn lock_timeout_of(tx: &mut sqlx::PgConnection) -> String {
    sqlx::query_scalar("SELECT current_setting('lock_timeout')")
        .fetch_one(tx)
        .await
        .unwrap()
}

/// The claim's lock timeout is its own: the transaction's setting is back
/// after it, on each path (a new row, a replay, a takeover).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transactions_own_lock_timeout_is_restored() {
    let (db, store) = setup("restore", 4, Duration::from_millis(300)).await;
    assert!(matches!(
        pay(&store, &db.pool, "done", 1).await,
        Paid::Executed(_)
    ));
    // An expired lease: a microsecond long.
    let Claimed::Leased(stale) = store
        .claim(
            key("expired"),
            None,
            Owner::random(),
            Duration::from_micros(1),
        )
        .await
        .unwrap()
    else {
        panic!("a new key")
    };
    for (order, path) in [
        ("new", "a new row"),
        ("done", "a replay"),
        ("expired", "a takeover"),
    ] {
        let mut tx = db.pool.begin().await.unwrap();
        sqlx::query("SET LOCAL lock_timeout = '7s'")
            .execute(&mut *tx)
            .await
            .unwrap();
        let answer = store.claim_in(&mut tx, key(order), fp(1)).await.unwrap();
        assert_eq!(lock_timeout_of(&mut tx).await, "7s", "after {path}");
        match (order, answer) {
            ("new", TxClaim::Claimed(_)) | ("done", TxClaim::Completed(_)) => {}
            ("expired", TxClaim::Claimed(claim)) => {
                assert!(
                    claim.fence() > stale.fence,
                    "a takeover has a greater fence"
                );
            }
            (_, other) => panic!("{path}: {other:?}"),
        }
        tx.rollback().await.unwrap();
    }
}

/// A key leased through the pool (the executor's way) is in progress for
/// a transaction, which stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_lease_is_in_progress_for_a_transaction() {
    let (db, store) = setup("leased", 4, Duration::from_secs(30)).await;
    let Claimed::Leased(lease) = store
        .claim(key("o-8"), fp(5), Owner::random(), Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("a new key")
    };
    let mut tx = db.pool.begin().await.unwrap();
    match store.claim_in(&mut tx, key("o-8"), fp(5)).await.unwrap() {
        TxClaim::InProgress {
            retry_after: Some(left),
        } => assert!(
            left > Duration::from_secs(30) && left <= Duration::from_secs(60),
            "{left:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.claim_in(&mut tx, key("o-8"), fp(6)).await.unwrap(),
        TxClaim::Mismatch
    ));
    sqlx::query("SELECT 1")
        .execute(&mut *tx)
        .await
        .expect("the transaction is not aborted");
    tx.rollback().await.unwrap();
    store
        .complete(key("o-8"), &lease, b"done", Duration::from_secs(60))
        .await
        .unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let answer = store.claim_in(&mut tx, key("o-8"), fp(5)).await.unwrap();
    assert!(matches!(answer, TxClaim::Completed(r) if r.payload == b"done"));
}

/// A commit without `complete` still records the key as done.
#[tokio::test]
async fn a_commit_without_completion_records_an_empty_result() {
    let (db, store) = setup("no_complete", 2, Duration::from_secs(30)).await;
    let mut tx = db.pool.begin().await.unwrap();
    let TxClaim::Claimed(claim) = store.claim_in(&mut tx, key("o-9"), None).await.unwrap() else {
        panic!("a new key")
    };
    let fence = claim.fence();
    drop(claim);
    tx.commit().await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    match store.claim_in(&mut tx, key("o-9"), None).await.unwrap() {
        TxClaim::Completed(r) => assert_eq!((r.fence, r.payload), (fence, vec![])),
        other => panic!("{other:?}"),
    }
}

/// Under `REPEATABLE READ`, a claim that waited on another transaction
/// cannot read what that one committed: it fails with a serialization
/// error (40001), as the docs say, and the retried transaction replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_repeatable_read_a_claim_that_waited_fails_to_serialize() {
    let (db, store) = setup("repeatable", 4, Duration::from_secs(30)).await;
    let mut first = db.pool.begin().await.unwrap();
    let TxClaim::Claimed(claim) = store.claim_in(&mut first, key("o-10"), None).await.unwrap()
    else {
        panic!("a new key")
    };
    let second = {
        let (store, pool) = (store.clone(), db.pool.clone());
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap(); // takes the snapshot
            store.claim_in(&mut tx, key("o-10"), None).await
        })
    };
    db.until_waiting_on_locks(1).await;
    claim.complete(&mut first, b"r").await.unwrap();
    first.commit().await.unwrap();
    match second.await.unwrap() {
        Err(idem::store::StoreError::Unavailable(e)) => {
            assert!(e.to_string().contains("could not serialize"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .unwrap();
    let answer = store.claim_in(&mut tx, key("o-10"), None).await.unwrap();
    assert!(matches!(answer, TxClaim::Completed(r) if r.payload == b"r"));
}

/// A transaction that claims a key twice finds its own claim.
#[tokio::test]
async fn a_second_claim_in_the_same_transaction_finds_the_first() {
    let (db, store) = setup("twice", 2, Duration::from_secs(30)).await;
    let mut tx = db.pool.begin().await.unwrap();
    let TxClaim::Claimed(claim) = store.claim_in(&mut tx, key("o-11"), None).await.unwrap() else {
        panic!("a new key")
    };
    let fence = claim.fence();
    claim.complete(&mut tx, b"so far").await.unwrap();
    match store.claim_in(&mut tx, key("o-11"), None).await.unwrap() {
        TxClaim::Completed(r) => assert_eq!((r.fence, r.payload), (fence, b"so far".to_vec())),
        other => panic!("{other:?}"),
    }
}

/// A connection outside a transaction is refused: its claim would commit
/// on its own, before the work.
#[tokio::test]
async fn a_claim_outside_a_transaction_is_refused_and_writes_nothing() {
    let (db, store) = setup("autocommit", 2, Duration::from_secs(30)).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let e = store
        .claim_in(&mut conn, key("o-12"), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("needs a transaction"), "{e}");
    assert_eq!(records(&db.pool, "o-12").await, 0);
    // A transaction of sqlx's on the same connection is one.
    let mut tx = conn.begin().await.unwrap();
    assert!(matches!(
        store.claim_in(&mut tx, key("o-12"), None).await.unwrap(),
        TxClaim::Claimed(_)
    ));
}

/// The completion rewrites the payload only, so PostgreSQL can make it a
/// HOT update (no new index entries; the page has room in a fresh table):
/// `pg_stat_xact_user_tables` counts this transaction's updates as they
/// happen.
#[tokio::test]
async fn the_completion_is_a_hot_update() {
    let (db, store) = setup("hot_complete", 2, Duration::from_secs(30)).await;
    let mut tx = db.pool.begin().await.unwrap();
    let TxClaim::Claimed(claim) = store.claim_in(&mut tx, key("o-10"), None).await.unwrap() else {
        panic!("a new key")
    };
    claim.complete(&mut tx, b"receipt").await.unwrap();
    let table = format!("\"{}\".idem_records", db.schema);
    let (updates, hot): (i64, i64) = sqlx::query_as(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relid = $1::regclass",
    )
    .bind(&table)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!((updates, hot), (1, 1), "updates, HOT updates of {table}");
    tx.commit().await.unwrap();
}
