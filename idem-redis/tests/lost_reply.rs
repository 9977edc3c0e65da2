//! Issue 8, test 9: a lost or late reply. A TCP proxy between the store's
//! connection and its Redis (`support/proxy.rs`) drops the connection
//! after forwarding a command, once the command has run and before its
//! reply reaches the client, or holds that reply past the client's
//! response timeout. The
//! caller gets [`StoreError::Unavailable`]; retrying under the same owner
//! (claim) or lease (completion) recognises what already happened and goes
//! on at once, instead of waiting for the lease to expire.

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idem::durable::{Durable, DurableOutcome};
use idem::store::{Claimed, Lease, Owner, Store, StoreError, StoreKey};
use idem_redis::RedisStore;
use support::proxy::{Fault, Proxy};
use support::Server;

/// Long enough that waiting it out instead of recognising the retry would
/// fail the tests' bound on the retry.
const LEASE: Duration = Duration::from_secs(30);
/// How fast a retry must go on: far less than [`LEASE`].
const AT_ONCE: Duration = Duration::from_secs(2);
/// Every script call is an `EVALSHA` (redis-rs `Script`).
const SCRIPT: &[u8] = b"EVALSHA";

/// A reconnecting connection through the proxy, with `response_timeout`
/// (redis-rs's default, 500 ms, when `None`).
async fn manager(
    proxy: &Proxy,
    response_timeout: Option<Duration>,
) -> redis::aio::ConnectionManager {
    let mut config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(2);
    if response_timeout.is_some() {
        config = config.set_response_timeout(response_timeout);
    }
    redis::Client::open(proxy.url())
        .unwrap()
        .get_connection_manager_with_config(config)
        .await
        .unwrap()
}

/// A store straight on the server, to see what the proxied one did.
async fn direct(server: &Server) -> RedisStore<redis::aio::MultiplexedConnection> {
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    RedisStore::new(conn)
}

/// Loads every script into the server (a claim, a completion, a claim and
/// a release), so that the armed `EVALSHA` runs its script rather than
/// answering `NOSCRIPT`.
async fn warm_up<S: Store>(store: &S) {
    for key in ["warm-complete", "warm-release"] {
        let key = StoreKey {
            namespace: "lost-reply-warm-up",
            key,
        };
        let lease = leased(store.claim(key, None, Owner::random(), LEASE).await);
        if key.key == "warm-complete" {
            store.complete(key, &lease, b"warm", LEASE).await.unwrap();
        } else {
            store.release(key, &lease).await.unwrap();
        }
    }
}

#[track_caller]
fn leased(r: Result<Claimed, StoreError>) -> Lease {
    match r {
        Ok(Claimed::Leased(lease)) => lease,
        other => panic!("expected a lease, got {other:?}"),
    }
}

#[track_caller]
fn unavailable<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::Unavailable(_))),
        "{what} whose reply was lost: {r:?}"
    );
}

/// Fails the test if `f` takes longer than half a minute.
async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// Retries `op` while the store is unavailable (the connection
/// reconnecting); its result and how long it took.
async fn retried<T, F, Fut>(what: &str, mut op: F) -> (Result<T, StoreError>, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let started = Instant::now();
    let r = bounded(what, async {
        loop {
            match op().await {
                Err(StoreError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => return other,
            }
        }
    })
    .await;
    (r, started.elapsed())
}

/// The fencing token of the lease Redis holds for `key`, by `owner`.
async fn lease_in_redis(
    direct: &RedisStore<redis::aio::MultiplexedConnection>,
    server: &Server,
    key: StoreKey<'_>,
    owner: Owner,
) -> u64 {
    let value = server.cli(&["GET", &direct.lease_key(key)]);
    let mut fields = value.split_whitespace();
    let fence = fields.next().and_then(|f| f.parse().ok());
    assert_eq!(
        fields.next(),
        Some(owner.to_hex().as_str()),
        "the lease in Redis: {value:?}"
    );
    fence.unwrap_or_else(|| panic!("the lease in Redis: {value:?}"))
}

/// Claims `key` through the proxy with `fault` on the claim's reply, then
/// retries with the same owner: the retry gets the lease the lost claim
/// took, at once. Returns how long the retry took.
async fn lost_claim(fault: Fault, response_timeout: Option<Duration>, name: &str) -> Duration {
    let server = Server::start();
    let proxy = Proxy::start(server.port()).await;
    let store = RedisStore::new(manager(&proxy, response_timeout).await);
    let direct = direct(&server).await;
    warm_up(&store).await;
    let ns = support::namespace(name);
    let key = StoreKey {
        namespace: &ns,
        key: "order-7",
    };
    let owner = Owner::random();

    proxy.arm(SCRIPT, fault);
    unavailable(
        "a claim",
        bounded("claim", store.claim(key, None, owner, LEASE)).await,
    );
    assert_eq!(proxy.fired(), 1, "the proxy applied its fault");
    // The claim ran: the key is leased to `owner`, and another owner
    // would have to wait the whole lease.
    let fence = lease_in_redis(&direct, &server, key, owner).await;
    match direct.claim(key, None, Owner::random(), LEASE).await {
        Ok(Claimed::Running { retry_after }) => assert!(retry_after > LEASE - AT_ONCE),
        other => panic!("another owner: {other:?}"),
    }

    // The same owner goes on at once, with the lease its lost claim took.
    let (r, took) = retried("the claim's retry", || store.claim(key, None, owner, LEASE)).await;
    let lease = leased(r);
    assert!(took < AT_ONCE, "the retried claim took {took:?}");
    assert_eq!((lease.fence, lease.owner), (fence, owner));
    assert!(lease.ttl > LEASE - AT_ONCE, "{lease:?}");

    // And the lease is good for the rest of the protocol.
    store.complete(key, &lease, b"done", LEASE).await.unwrap();
    match direct.claim(key, None, Owner::random(), LEASE).await {
        Ok(Claimed::Completed(record)) => {
            assert_eq!((record.fence, &record.payload[..]), (fence, &b"done"[..]));
        }
        other => panic!("after the completion: {other:?}"),
    }
    eprintln!("{name}: the retried claim got its lease after {took:?} (lease {LEASE:?})");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_reply_was_lost_is_recognised_by_its_retry() {
    lost_claim(Fault::Drop, None, "lost-claim").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_reply_came_late_is_recognised_by_its_retry() {
    // The reply comes 600 ms late, past a 200 ms response timeout.
    lost_claim(
        Fault::Delay(Duration::from_millis(600)),
        Some(Duration::from_millis(200)),
        "late-claim",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_reply_was_lost_succeeds_on_retry() {
    let server = Server::start();
    let proxy = Proxy::start(server.port()).await;
    let store = RedisStore::new(manager(&proxy, None).await);
    let direct = direct(&server).await;
    warm_up(&store).await;
    let ns = support::namespace("lost-completion");
    let key = StoreKey {
        namespace: &ns,
        key: "order-7",
    };
    let lease = leased(store.claim(key, None, Owner::random(), LEASE).await);

    proxy.arm(SCRIPT, Fault::Drop);
    unavailable(
        "a completion",
        bounded("complete", store.complete(key, &lease, b"receipt", LEASE)).await,
    );
    assert_eq!(proxy.fired(), 1, "the proxy applied its fault");
    // The completion ran: the record is there.
    let expected = (lease.fence, &b"receipt"[..]);
    match direct.claim(key, None, Owner::random(), LEASE).await {
        Ok(Claimed::Completed(record)) => {
            assert_eq!((record.fence, &record.payload[..]), expected);
        }
        other => panic!("after the lost completion: {other:?}"),
    }

    // Its retry under the same lease finds its own record: done, not
    // fenced.
    let (r, took) = retried("the completion's retry", || {
        store.complete(key, &lease, b"receipt", LEASE)
    })
    .await;
    r.unwrap();
    assert!(took < AT_ONCE, "the retried completion took {took:?}");
    match store.claim(key, None, Owner::random(), LEASE).await {
        Ok(Claimed::Completed(record)) => {
            assert_eq!((record.fence, &record.payload[..]), expected);
        }
        other => panic!("after the retried completion: {other:?}"),
    }
    eprintln!("lost-completion: the retried completion succeeded after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_returns_the_value_whose_completion_reply_was_lost() {
    let server = Server::start();
    let proxy = Arc::new(Proxy::start(server.port()).await);
    let store = RedisStore::new(manager(&proxy, None).await);
    warm_up(&store).await;
    let durable: Durable<_, String, String> = Durable::builder(store)
        .namespace(support::namespace("lost-reply-durable"))
        .lease(LEASE)
        .retain(LEASE)
        .build()
        .unwrap();
    let runs = AtomicUsize::new(0);
    let work = |fence: idem::durable::Fence| {
        let proxy = Arc::clone(&proxy);
        let runs = &runs;
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            // The claim is done and the lease far from its first renewal:
            // the next script is the completion.
            proxy.arm(SCRIPT, Fault::Drop);
            Ok(format!("receipt {}", fence.token()))
        }
    };

    let (r, how) = bounded("the call", durable.run("order-7", work)).await;
    let value = r.unwrap_or_else(|e| panic!("the call: {e:?}"));
    assert_eq!(how, DurableOutcome::Executed);
    assert_eq!(proxy.fired(), 1, "the completion's reply was lost");
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // The record is the one the executor completed, retried or not.
    let (again, how) = bounded("the replay", durable.run("order-7", work)).await;
    assert_eq!((again.unwrap(), how), (value, DurableOutcome::Replayed));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the work ran once");
}
