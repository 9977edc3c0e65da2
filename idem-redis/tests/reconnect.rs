//! Issue 8, tests 5 and 12: Redis restarted while an owner is mid-work,
//! through the executor, on both protocols, with and without persistence.
//!
//! After a restart, redis-rs's RESP2 connection learns that its socket is
//! dead only when a request on it fails; here that request is the owner's
//! completion (the lease is long, so no renewal runs in between). A
//! `ConnectionManager` reconnects after that failure, and the executor
//! retries the completion under the same owner and fence while the lease
//! lasts: with AOF the lease survived, so the result is recorded and the
//! work ran once. Without persistence the lease is gone: the completion is
//! refused ([`DurableError::LeaseLost`]), which is what a user loses.

mod support;

use std::sync::Arc;
use std::time::Duration;

use idem::durable::{Durable, DurableError, DurableOutcome, OnRunning};
use idem_redis::RedisStore;
use idem_tests::{Counter, Gate};
use support::Server;
use tokio::sync::Notify;

/// Long enough that no renewal runs while the test holds the work: the
/// first request after the restart is the completion.
const LEASE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy)]
enum Protocol {
    Resp2,
    Resp3,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Persistence {
    None,
    AofAlways,
}

type Process<C> = Durable<RedisStore<C>, String, String>;

fn process<C>(conn: C) -> Process<C>
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    Durable::builder(RedisStore::new(conn))
        .namespace("reconnect")
        .lease(LEASE)
        .on_running(OnRunning::Reject)
        .build()
        .unwrap()
}

fn url(server: &Server, protocol: Protocol) -> String {
    match protocol {
        Protocol::Resp2 => server.url(),
        Protocol::Resp3 => format!("{}?protocol=resp3", server.url()),
    }
}

async fn manager(server: &Server, protocol: Protocol) -> redis::aio::ConnectionManager {
    redis::Client::open(url(server, protocol))
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap()
}

fn start(persistence: Persistence) -> Server {
    match persistence {
        Persistence::None => Server::start(),
        Persistence::AofAlways => {
            Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
        }
    }
}

/// Runs one work on a `ConnectionManager`, restarts the server while the
/// work runs, and checks what the owner got and what another process finds
/// afterwards.
async fn restart_mid_work(protocol: Protocol, persistence: Persistence) {
    let what = format!("{protocol:?}, {persistence:?}");
    let mut server = start(persistence);
    let owner = Arc::new(process(manager(&server, protocol).await));
    let runs = Counter::new();
    let gate = Gate::new();
    let started = Arc::new(Notify::new());
    let call = tokio::spawn({
        let (owner, runs, gate, started) = (
            Arc::clone(&owner),
            runs.clone(),
            gate.clone(),
            Arc::clone(&started),
        );
        async move {
            owner
                .run("order-1", |_| async move {
                    runs.hit();
                    started.notify_one();
                    gate.wait().await;
                    Ok::<_, String>("receipt".to_string())
                })
                .await
        }
    });
    started.notified().await;
    server.restart();
    gate.open();
    let (r, how) = tokio::time::timeout(LEASE * 2, call)
        .await
        .unwrap_or_else(|_| panic!("{what}: the owner hung"))
        .unwrap();

    let other = process(manager(&server, protocol).await);
    let (again, again_how) = other
        .run("order-1", |_| async {
            runs.hit();
            Ok("run again".to_string())
        })
        .await;
    match persistence {
        Persistence::AofAlways => {
            assert_eq!(
                (r.as_deref(), how),
                (Ok("receipt"), DurableOutcome::Executed),
                "{what}: the completion survives the reconnect"
            );
            assert_eq!(
                (again.as_deref(), again_how),
                (Ok("receipt"), DurableOutcome::Replayed),
                "{what}"
            );
            assert_eq!(runs.get(), 1, "{what}: one execution");
        }
        Persistence::None => {
            assert_eq!(
                r,
                Err(DurableError::LeaseLost),
                "{what}: the restart lost the lease"
            );
            assert_eq!(
                (again.as_deref(), again_how),
                (Ok("run again"), DurableOutcome::Executed),
                "{what}: without persistence the key is run again"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp2_with_aof_a_completion_survives_the_restart() {
    restart_mid_work(Protocol::Resp2, Persistence::AofAlways).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_with_aof_a_completion_survives_the_restart() {
    restart_mid_work(Protocol::Resp3, Persistence::AofAlways).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp2_without_persistence_the_owner_learns_its_lease_is_lost() {
    restart_mid_work(Protocol::Resp2, Persistence::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_without_persistence_the_owner_learns_its_lease_is_lost() {
    restart_mid_work(Protocol::Resp3, Persistence::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multiplexed_connection_never_reconnects_so_the_completion_fails_clearly() {
    // A `MultiplexedConnection` is not reopened once its socket is gone:
    // the completion is retried until the lease ends, then reported as
    // unavailable (the result may or may not be recorded: here it is not).
    let mut server = start(Persistence::AofAlways);
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let owner: Process<_> = Durable::builder(RedisStore::new(conn))
        .namespace("reconnect")
        .lease(Duration::from_secs(1))
        .build()
        .unwrap();
    let gate = Gate::new();
    let started = Arc::new(Notify::new());
    let call = owner.run("multiplexed", |_| {
        let (gate, started) = (gate.clone(), Arc::clone(&started));
        async move {
            started.notify_one();
            gate.wait().await;
            Ok::<_, String>("receipt".to_string())
        }
    });
    let mut call = std::pin::pin!(call);
    tokio::select! {
        _ = &mut call => panic!("the work is held"),
        () = started.notified() => {}
    }
    server.restart();
    gate.open();
    let (r, _) = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the owner hung");
    let Err(DurableError::Store(e)) = r else {
        panic!("{r:?}")
    };
    assert!(matches!(*e, idem::store::StoreError::Unavailable(_)), "{e}");
}
