//! `idem::durable::Durable` on the PostgreSQL store, unchanged: two
//! executors on two pools stand for two processes.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use idem::durable::{Durable, DurableError, DurableOutcome, OnRunning};
use idem::store::{Claimed, StoreError};
use idem::Fingerprint;
use idem_postgres::PostgresStore;
use idem_tests::Observed;
use support::{namespace, Db};
use tokio::sync::Notify;

/// The store, telling the test when one of its claims found the key
/// running: so the test knows a waiter waits, without a sleep.
type Watched = Observed<PostgresStore, Box<dyn Fn(&Result<Claimed, StoreError>) + Send + Sync>>;
type Payments = Durable<Watched, String, String>;

async fn process(db: &Db, ns: &str, saw_running: Arc<Notify>) -> Payments {
    // A pool of its own, as another process would have.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(db.pool.connect_options().as_ref().clone())
        .await
        .unwrap();
    let store = PostgresStore::builder(pool)
        .schema(&db.schema)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let store: Watched = Observed::new(
        store,
        Box::new(move |answer| {
            if matches!(answer, Ok(Claimed::Running { .. })) {
                saw_running.notify_one();
            }
        }),
    );
    Durable::builder(store)
        .namespace(ns)
        .lease(Duration::from_secs(10))
        .on_running(OnRunning::Wait {
            timeout: Duration::from_secs(10),
        })
        .build()
        .unwrap()
}

fn fp(amount: u64) -> Fingerprint {
    Fingerprint::of(&amount)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_is_recorded_once_and_replayed_by_another_process() {
    let db = Db::new("durable", 2).await;
    let ns = namespace("durable");
    let a = process(&db, &ns, Arc::default()).await;
    let b = process(&db, &ns, Arc::default()).await;
    let runs = AtomicUsize::new(0);
    let charge = |cents: u64| {
        let runs = &runs;
        move |fence: idem::durable::Fence| async move {
            runs.fetch_add(1, SeqCst);
            assert!(fence.token() > 0);
            Ok::<_, String>(format!("charged {cents}"))
        }
    };
    let (r, how) = a
        .run_with_fingerprint("order-1", fp(100), charge(100))
        .await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("charged 100"), DurableOutcome::Executed)
    );
    let (r, how) = b
        .run_with_fingerprint("order-1", fp(100), charge(100))
        .await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("charged 100"), DurableOutcome::Replayed)
    );
    let (r, _) = b
        .run_with_fingerprint("order-1", fp(999), charge(999))
        .await;
    assert_eq!(r, Err(DurableError::Mismatch));
    assert_eq!(runs.load(SeqCst), 1);

    // An error is not recorded: the next call runs again.
    let (r, how) = a
        .run("order-2", |_| async {
            Err::<String, _>("declined".to_string())
        })
        .await;
    assert_eq!(
        (r, how),
        (
            Err(DurableError::Failed("declined".to_string())),
            DurableOutcome::Executed
        )
    );
    let (r, how) = b.run("order-2", charge(5)).await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("charged 5"), DurableOutcome::Executed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_waits_for_the_first_and_gets_its_result() {
    let db = Db::new("durable_wait", 2).await;
    let ns = namespace("wait");
    let saw_running = Arc::new(Notify::new());
    let a = process(&db, &ns, Arc::default()).await;
    let b = process(&db, &ns, Arc::clone(&saw_running)).await;
    let (started, release) = (Notify::new(), Notify::new());
    let owner = a.run("order-3", |_| async {
        started.notify_one();
        release.notified().await;
        Ok::<_, String>("charged once".to_string())
    });
    let other = async {
        started.notified().await;
        let waiter = b.run("order-3", |_| async {
            Ok::<_, String>("charged twice".to_string())
        });
        let let_go = async {
            saw_running.notified().await;
            release.notify_one();
        };
        tokio::join!(waiter, let_go).0
    };
    let ((r1, how1), (r2, how2)) = tokio::join!(owner, other);
    assert_eq!(
        (r1.as_deref(), how1),
        (Ok("charged once"), DurableOutcome::Executed)
    );
    assert_eq!(
        (r2.as_deref(), how2),
        (Ok("charged once"), DurableOutcome::Waited)
    );
}
