//! The store on a three-master Redis Cluster: every script's keys in one
//! slot, redirections followed by redis-rs's cluster connection.

mod support;

use std::time::Duration;

use idem::store::{Claimed, Owner, Store, StoreKey};
use idem_redis::RedisStore;
use idem_tests::conformance::{self, Timing};
use support::{namespace, slot, Cluster};

async fn connect(cluster: &Cluster) -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(cluster.urls())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_cluster() {
    let cluster = Cluster::start();
    let store = RedisStore::new(connect(&cluster).await);
    conformance::run(&store, &namespace("cluster"), Timing::SERVER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_in_every_slot_claim_complete_and_replay() {
    let cluster = Cluster::start();
    let store = RedisStore::new(connect(&cluster).await);
    let ns = namespace("slots");
    // One key per slot, all 16384 of them.
    let mut keys: Vec<Option<String>> = vec![None; 16_384];
    let mut missing = keys.len();
    for i in 0.. {
        let k = format!("k{i}");
        let s = usize::from(slot(&store.record_key(StoreKey {
            namespace: &ns,
            key: &k,
        })));
        if keys[s].is_none() {
            keys[s] = Some(k);
            missing -= 1;
            if missing == 0 {
                break;
            }
        }
    }
    let keys: Vec<String> = keys.into_iter().map(Option::unwrap).collect();
    let long = Duration::from_secs(600);
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in keys.chunks(keys.len() / 32) {
        let (store, ns, chunk) = (store.clone(), ns.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for k in chunk {
                let key = StoreKey {
                    namespace: &ns,
                    key: &k,
                };
                let c = store.claim(key, None, Owner::random(), long).await;
                let Ok(Claimed::Leased(lease)) = c else {
                    panic!("claim of {k}: {c:?}")
                };
                store.complete(key, &lease, k.as_bytes(), long).await.unwrap();
                let c = store.claim(key, None, Owner::random(), long).await.unwrap();
                assert!(
                    matches!(&c, Claimed::Completed(r) if r.fence == lease.fence && r.payload == k.as_bytes()),
                    "replay of {k}: {c:?}"
                );
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // Every node holds its share: a record and a fencing key per slot.
    let mut total = 0;
    for node in &cluster.nodes {
        let n: u64 = node.cli(&["dbsize"]).trim().parse().unwrap();
        assert!(n > 0, "node {} holds no key", node.port());
        total += n;
    }
    assert_eq!(total, 2 * 16_384);
}
