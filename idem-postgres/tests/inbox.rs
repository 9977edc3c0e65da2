//! `Inbox::handle`, without a broker: concurrent deliveries of one
//! message, failing effects, fingerprints, the lock timeout, and claims
//! in a transaction of the caller's.

mod support;

use std::sync::Arc;
use std::time::Duration;

use idem::Fingerprint;
use idem_postgres::{HandleError, Handled, Inbox, TxClaim};
use sqlx::PgPool;
use support::Db;
use tokio::sync::{mpsc, Notify};

async fn setup(test: &str, connections: u32, lock_timeout: Duration) -> (Db, Inbox) {
    let db = Db::new(test, connections).await;
    let store = db.builder().lock_timeout(lock_timeout).build().unwrap();
    store.migrate().await.unwrap();
    sqlx::query("CREATE TABLE effects (message_id text NOT NULL)")
        .execute(&db.pool)
        .await
        .unwrap();
    (db, Inbox::new(store, "orders-queue"))
}

async fn effects(pool: &PgPool, id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM effects WHERE message_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Handles `id` with an effect that inserts a row, says it started on
/// `started`, and waits for `release` before it returns.
async fn handle_held(
    inbox: &Inbox,
    id: &str,
    started: mpsc::UnboundedSender<()>,
    release: Arc<Notify>,
) -> Handled<&'static str> {
    let id_owned = id.to_owned();
    inbox
        .handle(id, |conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO effects (message_id) VALUES ($1)")
                    .bind(&id_owned)
                    .execute(&mut *conn)
                    .await?;
                started.send(()).unwrap();
                release.notified().await;
                Ok::<_, sqlx::Error>("shipped")
            })
        })
        .await
        .unwrap()
}

/// Twenty deliveries of one message at once: the effect of one holds its
/// transaction open until the nineteen others wait on its claim; then it
/// commits, and they all find it processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_deliveries_run_the_effect_once() {
    let (db, inbox) = setup("inbox_twenty", 22, Duration::from_secs(30)).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let deliveries: Vec<_> = (0..20)
        .map(|_| {
            let (inbox, started, release) =
                (inbox.clone(), started_tx.clone(), Arc::clone(&release));
            tokio::spawn(async move { handle_held(&inbox, "m-1", started, release).await })
        })
        .collect();
    started.recv().await.unwrap();
    db.until_waiting_on_locks(19).await;
    release.notify_one();
    let mut processed = 0;
    for d in deliveries {
        match d.await.unwrap() {
            Handled::Processed("shipped") => processed += 1,
            Handled::Duplicate => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(processed, 1);
    assert!(started.try_recv().is_err(), "one effect started");
    assert_eq!(effects(&db.pool, "m-1").await, 1);
}

/// A failing effect rolls back with its writes: nothing is recorded, and
/// the next delivery runs it.
#[tokio::test]
async fn a_failed_effect_leaves_nothing_and_the_redelivery_runs_it() {
    let (db, inbox) = setup("inbox_failed", 2, Duration::from_secs(5)).await;
    let fail = |id: &'static str| {
        inbox.handle(id, move |conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO effects (message_id) VALUES ($1)")
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Err::<(), _>("the warehouse said no".to_owned())
            })
        })
    };
    match fail("m-2").await {
        Err(HandleError::Effect(e)) => assert_eq!(e, "the warehouse said no"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(effects(&db.pool, "m-2").await, 0);
    let ok = inbox
        .handle("m-2", |conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO effects (message_id) VALUES ('m-2')")
                    .execute(&mut *conn)
                    .await
                    .map(|_| 7)
            })
        })
        .await
        .unwrap();
    assert_eq!(ok, Handled::Processed(7));
    assert!(ok.ack());
    assert_eq!(effects(&db.pool, "m-2").await, 1);
}

#[tokio::test]
async fn a_message_id_reused_for_another_body_is_a_mismatch() {
    let (db, inbox) = setup("inbox_mismatch", 2, Duration::from_secs(5)).await;
    let handle = |body: &'static str| {
        inbox.handle_with_fingerprint("m-3", Some(Fingerprint::of(&body)), move |conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO effects (message_id) VALUES ('m-3')")
                    .execute(&mut *conn)
                    .await
                    .map(|_| body)
            })
        })
    };
    assert_eq!(
        handle("ship order-1").await.unwrap(),
        Handled::Processed("ship order-1")
    );
    assert_eq!(handle("ship order-1").await.unwrap(), Handled::Duplicate);
    let mismatch = handle("ship order-2").await.unwrap();
    assert_eq!(mismatch, Handled::Mismatch);
    assert!(!mismatch.ack());
    assert_eq!(effects(&db.pool, "m-3").await, 1);
}

/// A delivery that finds the message's claim held beyond the lock timeout
/// is told so, runs nothing, and is not to be acknowledged; once the first
/// commits, the next is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_held_beyond_the_lock_timeout_is_in_progress() {
    let (db, inbox) = setup("inbox_busy", 4, Duration::from_millis(100)).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let first = {
        let (inbox, release) = (inbox.clone(), Arc::clone(&release));
        tokio::spawn(async move { handle_held(&inbox, "m-4", started_tx, release).await })
    };
    started.recv().await.unwrap();
    let busy = inbox
        .handle("m-4", |_conn| {
            Box::pin(async { Ok::<_, sqlx::Error>("never") })
        })
        .await
        .unwrap();
    assert_eq!(busy, Handled::InProgress);
    assert!(!busy.ack());
    release.notify_one();
    assert_eq!(first.await.unwrap(), Handled::Processed("shipped"));
    let again = inbox
        .handle("m-4", |_conn| {
            Box::pin(async { Ok::<_, sqlx::Error>("never") })
        })
        .await
        .unwrap();
    assert_eq!(again, Handled::Duplicate);
    assert_eq!(effects(&db.pool, "m-4").await, 1);
}

/// `Inbox::claim` in a transaction of the caller's: the same records as
/// `handle`'s.
#[tokio::test]
async fn a_claim_in_the_callers_transaction_shares_the_records() {
    let (db, inbox) = setup("inbox_claim", 2, Duration::from_secs(5)).await;
    let mut tx = db.pool.begin().await.unwrap();
    let TxClaim::Claimed(claim) = inbox.claim(&mut tx, "m-5", None).await.unwrap() else {
        panic!("a new message id")
    };
    sqlx::query("INSERT INTO effects (message_id) VALUES ('m-5')")
        .execute(&mut *tx)
        .await
        .unwrap();
    claim.complete(&mut tx, b"").await.unwrap();
    tx.commit().await.unwrap();
    let again = inbox
        .handle("m-5", |_conn| Box::pin(async { Ok::<_, sqlx::Error>(()) }))
        .await
        .unwrap();
    assert_eq!(again, Handled::Duplicate);
    let mut tx = db.pool.begin().await.unwrap();
    assert!(matches!(
        inbox.claim(&mut tx, "m-5", None).await.unwrap(),
        TxClaim::Completed(_)
    ));
    assert_eq!(effects(&db.pool, "m-5").await, 1);
}
