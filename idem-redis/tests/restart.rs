//! A Redis server killed and started again on the same port: clear errors
//! while it is down, no hang, recovery after, and fencing tokens that keep
//! growing although the restart lost them.

mod support;

use std::future::Future;
use std::time::Duration;

use idem::store::{Claimed, Lease, Owner, Store, StoreError, StoreKey};
use idem_redis::RedisStore;
use support::Server;

const LONG: Duration = Duration::from_secs(600);

/// Fails the test if `f` takes longer than half a minute: nothing may
/// hang on a dead server.
async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

#[track_caller]
fn unavailable<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::Unavailable(_))),
        "{what} on a dead server: {r:?}"
    );
}

/// A `ConnectionManager` that gives up reconnecting after two attempts:
/// with redis-rs's default (six, with exponential backoff) each call on a
/// dead server takes about 9.5 s to fail.
async fn manager(server: &Server) -> redis::aio::ConnectionManager {
    let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(2);
    redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager_with_config(config)
        .await
        .unwrap()
}

async fn multiplexed(server: &Server) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn lease<S: Store>(store: &S, key: StoreKey<'_>, owner: Owner) -> Lease {
    match store.claim(key, None, owner, LONG).await {
        Ok(Claimed::Leased(lease)) => lease,
        other => panic!("expected a lease for {key}, got {other:?}"),
    }
}

/// Retries `op` while the store is unavailable (a reconnecting
/// connection), at most for the bound of [`bounded`].
async fn retried<T, F, Fut>(what: &str, mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    bounded(what, async {
        loop {
            match op().await {
                Err(StoreError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_without_persistence_fails_clearly_then_recovers() {
    let mut server = Server::start();
    let store = RedisStore::new(manager(&server).await);
    let running = StoreKey {
        namespace: "restart",
        key: "mid-work",
    };
    let done = StoreKey {
        namespace: "restart",
        key: "completed",
    };
    let owner = Owner::random();
    let before = lease(&store, running, owner).await;
    let completed = lease(&store, done, Owner::random()).await;
    store.complete(done, &completed, b"v", LONG).await.unwrap();

    server.kill();
    // Down: every operation fails as unavailable, none hangs.
    unavailable(
        "claim",
        bounded("claim", store.claim(running, None, owner, LONG)).await,
    );
    unavailable(
        "renew",
        bounded("renew", store.renew(running, &before, LONG)).await,
    );
    unavailable(
        "complete",
        bounded("complete", store.complete(running, &before, b"v", LONG)).await,
    );
    unavailable(
        "release",
        bounded("release", store.release(running, &before)).await,
    );

    server.start_again();
    // Up again, empty: the owner mid-work learns that its lease is gone.
    let r = retried("complete", || store.complete(running, &before, b"v", LONG)).await;
    assert!(matches!(r, Err(StoreError::Fenced)), "{r:?}");
    // The key is claimed anew, with a greater token than before the
    // restart although the restart lost the last one.
    let Ok(Claimed::Leased(after)) =
        retried("claim", || store.claim(running, None, owner, LONG)).await
    else {
        panic!("the key is free after a restart without persistence")
    };
    assert!(
        after.fence > before.fence,
        "{} after {}",
        after.fence,
        before.fence
    );
    // What a restart without persistence loses: the record, so the work
    // runs again.
    assert!(matches!(
        store.claim(done, None, Owner::random(), LONG).await,
        Ok(Claimed::Leased(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multiplexed_connection_fails_clearly_and_a_new_one_recovers() {
    // A `MultiplexedConnection` is not reopened once its socket is gone:
    // its requests fail at once, and the user makes a new connection.
    let mut server = Server::start();
    let store = RedisStore::new(multiplexed(&server).await);
    let key = StoreKey {
        namespace: "restart",
        key: "multiplexed",
    };
    let before = lease(&store, key, Owner::random()).await;
    server.restart();
    unavailable(
        "complete",
        bounded("complete", store.complete(key, &before, b"v", LONG)).await,
    );
    unavailable(
        "claim",
        bounded("claim", store.claim(key, None, Owner::random(), LONG)).await,
    );
    let fresh = RedisStore::new(multiplexed(&server).await);
    let after = lease(&fresh, key, Owner::random()).await;
    assert!(after.fence > before.fence);
    assert!(matches!(
        fresh.complete(key, &before, b"stale", LONG).await,
        Err(StoreError::Fenced)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_keep_growing_across_restarts_that_lost_them() {
    let mut server = Server::start();
    let key = StoreKey {
        namespace: "restart",
        key: "tokens",
    };
    let mut last = 0;
    for round in 0..3 {
        let store = RedisStore::new(multiplexed(&server).await);
        let lease = lease(&store, key, Owner::random()).await;
        assert!(
            lease.fence > last,
            "round {round}: {} after {last}",
            lease.fence
        );
        last = lease.fence;
        server.restart();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_aof_always_records_and_leases_survive_a_restart() {
    let mut server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = RedisStore::new(manager(&server).await);
    let done = StoreKey {
        namespace: "aof",
        key: "completed",
    };
    let running = StoreKey {
        namespace: "aof",
        key: "mid-work",
    };
    let completed = lease(&store, done, Owner::random()).await;
    store
        .complete(done, &completed, b"kept", LONG)
        .await
        .unwrap();
    let owner = Owner::random();
    let mid = lease(&store, running, owner).await;

    server.restart(); // SIGKILL: no shutdown save, only the AOF.
    let r = retried("replay", || store.claim(done, None, Owner::random(), LONG)).await;
    assert!(
        matches!(&r, Ok(Claimed::Completed(rec)) if rec.payload == b"kept" && rec.fence == completed.fence),
        "{r:?}"
    );
    // The owner mid-work still holds its lease, and completes.
    assert!(matches!(
        store.claim(running, None, Owner::random(), LONG).await,
        Ok(Claimed::Running { .. })
    ));
    store.complete(running, &mid, b"late", LONG).await.unwrap();
}
