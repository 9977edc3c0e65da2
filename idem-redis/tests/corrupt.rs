//! Bytes under a key that the store did not write: a clear error naming
//! the key, never a panic, never a silent re-execution.

mod support;

use std::time::Duration;

use idem::store::{Claimed, Owner, Store, StoreError, StoreKey};
use idem_redis::RedisStore;
use support::Server;

const LONG: Duration = Duration::from_secs(600);

struct Fixture {
    _server: Server,
    conn: redis::aio::MultiplexedConnection,
    store: RedisStore<redis::aio::MultiplexedConnection>,
}

async fn fixture() -> Fixture {
    let server = Server::start();
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    Fixture {
        _server: server,
        store: RedisStore::new(conn.clone()),
        conn,
    }
}

impl Fixture {
    async fn set(&self, redis_key: String, bytes: &[u8]) {
        let () = redis::cmd("SET")
            .arg(redis_key)
            .arg(bytes)
            .query_async(&mut self.conn.clone())
            .await
            .unwrap();
    }

    async fn claim(&self, key: StoreKey<'_>) -> Result<Claimed, StoreError> {
        self.store.claim(key, None, Owner::random(), LONG).await
    }
}

#[track_caller]
fn corrupt(r: Result<Claimed, StoreError>, key: &str, says: &[&str]) {
    let e = match r {
        Err(e @ StoreError::Corrupt { .. }) => e,
        other => panic!("expected corrupt, got {other:?}"),
    };
    let shown = e.to_string();
    let StoreError::Corrupt { key: k, reason } = e else {
        unreachable!()
    };
    assert_eq!(k, key);
    assert!(shown.contains(key), "{shown}");
    for s in says {
        assert!(reason.contains(s), "{s:?} not in {reason:?}");
    }
}

#[tokio::test]
async fn foreign_bytes_under_a_record_key_are_corrupt_naming_the_key() {
    let f = fixture().await;
    let key = StoreKey {
        namespace: "orders",
        key: "order-7",
    };
    let redis_key = f.store.record_key(key);
    for (bytes, says) in [
        (
            &b"{\"status\":\"done\"}"[..],
            "does not start with an \"idem1\" header",
        ),
        (b"idem1 12 0", "does not start"),
        (b"idem1 x 0\npayload", "fencing token"),
        (b"idem2 12 0\npayload", "newer version"),
        (b"\xff\xfe\x00", "does not start"),
    ] {
        f.set(redis_key.clone(), bytes).await;
        corrupt(f.claim(key).await, "orders/order-7", &[&redis_key, says]);
    }
    // Nothing was leased: the work does not run again behind the error.
    let leased: i64 = redis::cmd("EXISTS")
        .arg(f.store.lease_key(key))
        .query_async(&mut f.conn.clone())
        .await
        .unwrap();
    assert_eq!(leased, 0);
    // Bytes the store writes are read back, of course.
    f.set(redis_key, b"idem1 12 0\npayload").await;
    assert!(
        matches!(f.claim(key).await, Ok(Claimed::Completed(r)) if r.fence == 12 && r.payload == b"payload")
    );
}

#[tokio::test]
async fn a_record_key_of_another_type_is_corrupt() {
    let f = fixture().await;
    let key = StoreKey {
        namespace: "orders",
        key: "a-hash",
    };
    let redis_key = f.store.record_key(key);
    let _: i64 = redis::cmd("HSET")
        .arg(&redis_key)
        .arg("field")
        .arg("value")
        .query_async(&mut f.conn.clone())
        .await
        .unwrap();
    corrupt(
        f.claim(key).await,
        "orders/a-hash",
        &[&redis_key, "another Redis type"],
    );

    // Inside the claim script too.
    let key = StoreKey {
        namespace: "orders",
        key: "a-list",
    };
    let _: i64 = redis::cmd("RPUSH")
        .arg(f.store.lease_key(key))
        .arg("value")
        .query_async(&mut f.conn.clone())
        .await
        .unwrap();
    corrupt(f.claim(key).await, "orders/a-list", &["another Redis type"]);
}

#[tokio::test]
async fn foreign_lease_and_fencing_keys_are_corrupt() {
    let f = fixture().await;
    let key = StoreKey {
        namespace: "orders",
        key: "lease",
    };
    f.set(f.store.lease_key(key), b"locked-by-someone").await;
    corrupt(
        f.claim(key).await,
        "orders/lease",
        &[&f.store.lease_key(key), "lease", "locked-by-someone"],
    );

    let key = StoreKey {
        namespace: "orders",
        key: "fence",
    };
    for bytes in [&b"not-a-number"[..], b"99999999999999999999", b"-5"] {
        f.set(f.store.fence_key(key), bytes).await;
        corrupt(
            f.claim(key).await,
            "orders/fence",
            &[&f.store.fence_key(key), "fencing token"],
        );
    }
}
