//! Issue 8, test 8: a fingerprint mismatch is reported on the claim, wait
//! and replay paths of the executor on Redis. Two executors on two
//! connections stand for two processes (the cross-process mechanics are in
//! `processes.rs`).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use idem::durable::{Durable, DurableError, DurableOutcome, OnRunning};
use idem::store::{Claimed, StoreError};
use idem::Fingerprint;
use idem_redis::RedisStore;
use idem_tests::Observed;
use support::{namespace, Server};
use tokio::sync::Notify;

/// The Redis store, telling the test when one of its claims found the key
/// running: so the test knows a waiter is waiting, without a sleep.
type Watched = Observed<
    RedisStore<redis::aio::MultiplexedConnection>,
    Box<dyn Fn(&Result<Claimed, StoreError>) + Send + Sync>,
>;
type Payments = Durable<Watched, String, String>;

async fn process(server: &Server, ns: &str) -> Payments {
    process_watched(server, ns, std::sync::Arc::new(Notify::new())).await
}

async fn process_watched(
    server: &Server,
    ns: &str,
    saw_running: std::sync::Arc<Notify>,
) -> Payments {
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let store: Watched = Observed::new(
        RedisStore::new(conn),
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
async fn a_reused_key_is_a_mismatch_on_the_replay_path() {
    let server = Server::start();
    let ns = namespace("fp-replay");
    let (a, b) = (process(&server, &ns).await, process(&server, &ns).await);
    let runs = AtomicUsize::new(0);
    let charge = |cents: u64| {
        let runs = &runs;
        move |_| async move {
            runs.fetch_add(1, SeqCst);
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
    let (r, _) = b
        .run_with_fingerprint("order-1", fp(999), charge(999))
        .await;
    assert_eq!(r, Err(DurableError::Mismatch));
    let (r, how) = b
        .run_with_fingerprint("order-1", fp(100), charge(100))
        .await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("charged 100"), DurableOutcome::Replayed)
    );
    let (r, how) = b.run("order-1", charge(0)).await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("charged 100"), DurableOutcome::Replayed),
        "a call without a fingerprint is not checked"
    );
    assert_eq!(runs.load(SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_key_is_a_mismatch_while_another_process_runs_it() {
    let server = Server::start();
    let ns = namespace("fp-wait");
    let saw_running = std::sync::Arc::new(Notify::new());
    let a = process(&server, &ns).await;
    let b = process_watched(&server, &ns, std::sync::Arc::clone(&saw_running)).await;
    let (started, release) = (Notify::new(), Notify::new());
    let owner = a.run_with_fingerprint("order-2", fp(100), |_| async {
        started.notify_one();
        release.notified().await;
        Ok::<_, String>("charged 100".to_string())
    });
    let others = async {
        started.notified().await;
        // Another payload: refused at once, without waiting for the owner.
        let (r, _) = tokio::time::timeout(
            Duration::from_secs(5),
            b.run_with_fingerprint("order-2", fp(999), |_| async {
                Ok::<_, String>("charged 999".to_string())
            }),
        )
        .await
        .expect("a mismatch does not wait for the running owner");
        assert_eq!(r, Err(DurableError::Mismatch));
        // The same payload waits (its claim found the key running before
        // the owner is let go), and gets the owner's result.
        let waiter = b.run_with_fingerprint("order-2", fp(100), |_| async {
            Ok::<_, String>("charged twice".to_string())
        });
        let let_go = async {
            saw_running.notified().await;
            release.notify_one();
        };
        tokio::join!(waiter, let_go).0
    };
    let ((r1, how1), (r2, how2)) = tokio::join!(owner, others);
    assert_eq!(
        (r1.as_deref(), how1),
        (Ok("charged 100"), DurableOutcome::Executed)
    );
    assert_eq!(
        (r2.as_deref(), how2),
        (Ok("charged 100"), DurableOutcome::Waited)
    );
}
