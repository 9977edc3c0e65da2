//! The store on one standalone `redis-server`, over each kind of
//! connection a user may pass.

mod support;

use std::time::Duration;

use idem::store::{Claimed, Owner, Store, StoreError, StoreKey};
use idem_redis::{NotReplicated, RedisStore};
use idem_tests::conformance::{self, Timing};
use support::{namespace, Server};

const LONG: Duration = Duration::from_secs(600);

async fn multiplexed(server: &Server) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_multiplexed_connection() {
    let server = Server::start();
    let store = RedisStore::new(multiplexed(&server).await);
    conformance::run(&store, &namespace("multiplexed"), Timing::SERVER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_connection_manager() {
    let server = Server::start();
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    conformance::run(
        &RedisStore::new(conn),
        &namespace("manager"),
        Timing::SERVER,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_over_resp3() {
    let server = Server::start();
    let conn = redis::Client::open(format!("{}?protocol=resp3", server.url()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    conformance::run(&RedisStore::new(conn), &namespace("resp3"), Timing::SERVER).await;
}

/// The calls each Redis command has had since the last reset, from
/// `INFO commandstats`, without the `INFO` and `CONFIG` of the test itself.
async fn command_counts(
    conn: &mut redis::aio::MultiplexedConnection,
) -> std::collections::BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            (!matches!(name, "info" | "config|resetstat")).then(|| (name.to_owned(), calls))
        })
        .collect()
}

fn counts(c: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    c.iter().map(|&(name, n)| (name.to_owned(), n)).collect()
}

async fn reset_counts(conn: &mut redis::aio::MultiplexedConnection) {
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_replay_is_one_get_and_a_first_claim_two_commands() {
    let server = Server::start();
    let mut admin = multiplexed(&server).await;
    let store = RedisStore::new(multiplexed(&server).await);
    let key = StoreKey {
        namespace: "counts",
        key: "k",
    };
    // Load the scripts, so that counts show the steady state.
    let warm = StoreKey {
        namespace: "counts",
        key: "warm",
    };
    let Claimed::Leased(lease) = store
        .claim(warm, None, Owner::random(), LONG)
        .await
        .unwrap()
    else {
        panic!("a free key")
    };
    store.complete(warm, &lease, b"v", LONG).await.unwrap();

    reset_counts(&mut admin).await;
    let Claimed::Leased(lease) = store.claim(key, None, Owner::random(), LONG).await.unwrap()
    else {
        panic!("a free key")
    };
    // Two round trips: the record's GET, then the claim script (GET of the
    // record, the lease and the fencing key, TIME, SET of the lease and the
    // fencing key). `INFO commandstats` counts a script's commands too.
    assert_eq!(
        command_counts(&mut admin).await,
        counts(&[("evalsha", 1), ("get", 4), ("set", 2), ("time", 1)]),
        "a first claim"
    );

    reset_counts(&mut admin).await;
    store.complete(key, &lease, b"v", LONG).await.unwrap();
    // One round trip: GET of the lease, SET of the record, DEL of the
    // lease, SET of the fencing key.
    assert_eq!(
        command_counts(&mut admin).await,
        counts(&[("del", 1), ("evalsha", 1), ("get", 1), ("set", 2)]),
        "a completion"
    );

    reset_counts(&mut admin).await;
    let replay = store.claim(key, None, Owner::random(), LONG).await.unwrap();
    assert!(matches!(replay, Claimed::Completed(r) if r.payload == b"v"));
    assert_eq!(
        command_counts(&mut admin).await,
        counts(&[("get", 1)]),
        "a replay is one GET"
    );
}

#[tokio::test]
async fn prefixes_keep_stores_apart() {
    let server = Server::start();
    let conn = multiplexed(&server).await;
    let a = RedisStore::new(conn.clone()).prefix("app-a");
    let b = RedisStore::new(conn.clone()).prefix("app-b");
    let key = StoreKey {
        namespace: "ns",
        key: "k",
    };
    assert!(matches!(
        a.claim(key, None, Owner::random(), LONG).await.unwrap(),
        Claimed::Leased(_)
    ));
    assert!(matches!(
        b.claim(key, None, Owner::random(), LONG).await.unwrap(),
        Claimed::Leased(_)
    ));
    let mut admin = conn;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(a.lease_key(key))
        .arg(b.lease_key(key))
        .arg("app-a:{ns:k}:l")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(exists, 3);
}

#[tokio::test]
async fn waiting_for_a_missing_replica_is_an_error_after_the_timeout() {
    let server = Server::start();
    let store =
        RedisStore::new(multiplexed(&server).await).wait_for_replicas(1, Duration::from_millis(50));
    let key = StoreKey {
        namespace: "wait",
        key: "k",
    };
    let owner = Owner::random();
    let err = store.claim(key, None, owner, LONG).await.unwrap_err();
    let StoreError::Unavailable(e) = err else {
        panic!("expected unavailable, got {err:?}")
    };
    assert_eq!(
        e.downcast_ref::<NotReplicated>(),
        Some(&NotReplicated {
            acked: 0,
            wanted: 1
        })
    );
    // The claim itself happened on the primary: a retry by the same owner
    // finds it (and waits again).
    let plain = RedisStore::new(multiplexed(&server).await);
    let Claimed::Leased(lease) = plain.claim(key, None, owner, LONG).await.unwrap() else {
        panic!("the owner's own lease")
    };
    assert!(store.complete(key, &lease, b"v", LONG).await.is_err());
    assert!(matches!(
        plain.claim(key, None, Owner::random(), LONG).await.unwrap(),
        Claimed::Completed(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_replica_that_acknowledges() {
    let primary = Server::start();
    let replica = Server::start_with(&["--replicaof", "127.0.0.1", &primary.port().to_string()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !replica
        .cli(&["info", "replication"])
        .contains("master_link_status:up")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never synced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store =
        RedisStore::new(multiplexed(&primary).await).wait_for_replicas(1, Duration::from_secs(5));
    let key = StoreKey {
        namespace: "wait",
        key: "replicated",
    };
    let Claimed::Leased(lease) = store.claim(key, None, Owner::random(), LONG).await.unwrap()
    else {
        panic!("a free key")
    };
    store.complete(key, &lease, b"v", LONG).await.unwrap();
    // Acknowledged means on the replica, now.
    let on_replica = RedisStore::new(multiplexed(&replica).await);
    let c = on_replica
        .claim(key, None, Owner::random(), LONG)
        .await
        .unwrap();
    assert!(matches!(c, Claimed::Completed(r) if r.fence == lease.fence && r.payload == b"v"));
}

#[tokio::test]
async fn fencing_tokens_are_microseconds_of_the_server_clock() {
    let server = Server::start();
    let mut conn = multiplexed(&server).await;
    let store = RedisStore::new(conn.clone());
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let before = secs * 1_000_000 + micros;
    let key = StoreKey {
        namespace: "time",
        key: "k",
    };
    let Claimed::Leased(lease) = store.claim(key, None, Owner::random(), LONG).await.unwrap()
    else {
        panic!("a free key")
    };
    assert!(
        lease.fence >= before && lease.fence < before + 60_000_000,
        "{} vs TIME {before}",
        lease.fence
    );
    // Released and claimed at once, many times: strictly growing, even
    // within one microsecond of the server's clock.
    let mut last = lease.fence;
    store.release(key, &lease).await.unwrap();
    for _ in 0..50 {
        let Claimed::Leased(l) = store.claim(key, None, Owner::random(), LONG).await.unwrap()
        else {
            panic!("a released key")
        };
        assert!(l.fence > last);
        last = l.fence;
        store.release(key, &l).await.unwrap();
    }
}

#[tokio::test]
async fn the_fencing_key_outlives_the_lease_and_the_record() {
    let server = Server::start();
    let mut conn = multiplexed(&server).await;
    let store = RedisStore::new(conn.clone());
    let key = StoreKey {
        namespace: "ttl",
        key: "k",
    };
    let lease_len = Duration::from_secs(30);
    let retain = Duration::from_secs(3_600);
    let Claimed::Leased(lease) = store
        .claim(key, None, Owner::random(), lease_len)
        .await
        .unwrap()
    else {
        panic!("a free key")
    };
    let pttl = |k: String| redis::cmd("PTTL").arg(k).to_owned();
    let lease_ttl: i64 = pttl(store.lease_key(key))
        .query_async(&mut conn)
        .await
        .unwrap();
    let fence_ttl: i64 = pttl(store.fence_key(key))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(lease_ttl > 29_000 && lease_ttl <= 30_000, "{lease_ttl}");
    assert!(fence_ttl >= lease_ttl + 29_000, "{fence_ttl}");

    store.complete(key, &lease, b"v", retain).await.unwrap();
    let record_ttl: i64 = pttl(store.record_key(key))
        .query_async(&mut conn)
        .await
        .unwrap();
    let fence_ttl: i64 = pttl(store.fence_key(key))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        record_ttl > 3_599_000 && record_ttl <= 3_600_000,
        "{record_ttl}"
    );
    assert!(fence_ttl >= record_ttl + 29_000, "{fence_ttl}");
    let fence: String = redis::cmd("GET")
        .arg(store.fence_key(key))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(fence, lease.fence.to_string());
}

#[tokio::test]
async fn a_fencing_key_ahead_of_the_clock_is_followed() {
    // What a server clock stepped back looks like: the last token issued
    // is ahead of TIME. The next token still grows, by one.
    let server = Server::start();
    let mut conn = multiplexed(&server).await;
    let store = RedisStore::new(conn.clone());
    let key = StoreKey {
        namespace: "clock",
        key: "k",
    };
    let ahead: u64 = 4_000_000_000_000_000; // the year 2096, in microseconds
    let () = redis::cmd("SET")
        .arg(store.fence_key(key))
        .arg(ahead)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let Claimed::Leased(lease) = store.claim(key, None, Owner::random(), LONG).await.unwrap()
    else {
        panic!("a free key")
    };
    assert_eq!(lease.fence, ahead + 1);
    store.release(key, &lease).await.unwrap();
    let Claimed::Leased(next) = store.claim(key, None, Owner::random(), LONG).await.unwrap() else {
        panic!("a released key")
    };
    assert_eq!(next.fence, ahead + 2);
}
