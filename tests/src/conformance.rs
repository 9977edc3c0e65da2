//! The store conformance suite: the rules of `idem::store` (see its module
//! docs), checked against any backend. Every store's tests call [`run`]:
//! the memory store on tokio's paused clock, Redis standalone and Cluster
//! and PostgreSQL on their own clocks, for real.
//!
//! Each check uses keys of its own under a namespace unique to the run, so
//! a shared server needs no cleaning between runs.

use std::time::Duration;

use idem::store::{Claimed, Lease, Owner, Record, Store, StoreError, StoreKey};
use idem::Fingerprint;

/// How long the suite's leases last, and how far past an expiry it waits
/// before it counts on it: a store's clock is its own, and a real server
/// needs slack for round trips.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A lease the suite lets expire.
    pub lease: Duration,
    /// Time past an expiry after which the suite expects it to have passed.
    pub slack: Duration,
}

impl Timing {
    /// For a store whose clock is tokio's, paused.
    pub const PAUSED: Timing = Timing {
        lease: Duration::from_secs(10),
        slack: Duration::from_millis(1),
    };

    /// For a server on loopback.
    pub const SERVER: Timing = Timing {
        lease: Duration::from_millis(400),
        slack: Duration::from_millis(250),
    };
}

/// A lease long enough never to expire during a check.
const LONG: Duration = Duration::from_secs(600);

/// Runs every check against `store`, under namespace `ns`.
pub async fn run<S: Store>(store: &S, ns: &str, timing: Timing) {
    let suite = Suite { store, ns, timing };
    suite.a_vacant_key_is_leased_with_a_positive_fence().await;
    suite.a_leased_key_is_running_for_others().await;
    suite.the_owner_reclaiming_gets_its_own_lease_back().await;
    suite.a_completed_key_replays_its_record().await;
    suite
        .a_retried_completion_succeeds_and_changes_nothing()
        .await;
    suite.fingerprints_must_match_on_leases_and_records().await;
    suite
        .a_released_key_is_leased_again_with_a_greater_fence()
        .await;
    suite
        .an_expired_lease_is_taken_over_and_the_stale_owner_fenced()
        .await;
    suite.a_renewed_lease_outlives_its_first_end().await;
    suite
        .a_record_expires_after_its_retention_and_fences_keep_growing()
        .await;
    suite.concurrent_claims_lease_the_key_once().await;
    suite.a_lookup_never_contradicts_a_claim().await;
}

struct Suite<'a, S> {
    store: &'a S,
    ns: &'a str,
    timing: Timing,
}

fn fp(n: u64) -> Option<Fingerprint> {
    Some(Fingerprint::from_u64(n))
}

fn leased(c: Claimed, what: &str) -> Lease {
    match c {
        Claimed::Leased(lease) => lease,
        other => panic!("{what}: expected a lease, got {other:?}"),
    }
}

impl<S: Store> Suite<'_, S> {
    fn key<'k>(&'k self, key: &'k str) -> StoreKey<'k> {
        StoreKey {
            namespace: self.ns,
            key,
        }
    }

    async fn claim(
        &self,
        key: &str,
        fp: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> Claimed {
        self.store
            .claim(self.key(key), fp, owner, lease)
            .await
            .unwrap_or_else(|e| panic!("claim of {key}: {e}"))
    }

    async fn lease(&self, key: &str, lease: Duration) -> Lease {
        leased(self.claim(key, None, Owner::random(), lease).await, key)
    }

    async fn wait_past(&self, d: Duration) {
        tokio::time::sleep(d + self.timing.slack).await;
    }

    async fn a_vacant_key_is_leased_with_a_positive_fence(&self) {
        let owner = Owner::random();
        let lease = leased(self.claim("vacant", None, owner, LONG).await, "vacant");
        assert!(lease.fence > 0);
        assert_eq!(lease.owner, owner);
        assert!(lease.ttl <= LONG && lease.ttl > LONG / 2, "{:?}", lease.ttl);
    }

    async fn a_leased_key_is_running_for_others(&self) {
        self.lease("running", LONG).await;
        match self.claim("running", None, Owner::random(), LONG).await {
            Claimed::Running { retry_after } => {
                assert!(
                    retry_after <= LONG && retry_after > LONG / 2,
                    "{retry_after:?}"
                );
            }
            other => panic!("expected running, got {other:?}"),
        }
    }

    async fn the_owner_reclaiming_gets_its_own_lease_back(&self) {
        // A claim whose reply was lost, retried by the same caller.
        let owner = Owner::random();
        let first = leased(self.claim("reclaim", None, owner, LONG).await, "first");
        let again = leased(self.claim("reclaim", None, owner, LONG).await, "retry");
        assert_eq!((again.fence, again.owner), (first.fence, owner));
    }

    async fn a_completed_key_replays_its_record(&self) {
        let lease = self.lease("completed", LONG).await;
        let key = self.key("completed");
        self.store
            .complete(key, &lease, b"receipt", LONG)
            .await
            .unwrap();
        for _ in 0..2 {
            assert_eq!(
                self.claim("completed", None, Owner::random(), LONG).await,
                Claimed::Completed(Record {
                    fence: lease.fence,
                    payload: b"receipt".to_vec()
                })
            );
        }
        // The lease is gone with the completion.
        assert!(matches!(
            self.store.release(key, &lease).await,
            Err(StoreError::Fenced)
        ));
        assert!(matches!(
            self.store.renew(key, &lease, LONG).await,
            Err(StoreError::Fenced)
        ));
    }

    async fn a_retried_completion_succeeds_and_changes_nothing(&self) {
        let lease = self.lease("complete-twice", LONG).await;
        let key = self.key("complete-twice");
        self.store
            .complete(key, &lease, b"one", LONG)
            .await
            .unwrap();
        self.store
            .complete(key, &lease, b"one", LONG)
            .await
            .expect("a retried completion (its first reply lost) succeeds");
        let c = self
            .claim("complete-twice", None, Owner::random(), LONG)
            .await;
        assert!(matches!(c, Claimed::Completed(r) if r.payload == b"one"));
    }

    async fn fingerprints_must_match_on_leases_and_records(&self) {
        let lease = leased(self.claim("fp", fp(1), Owner::random(), LONG).await, "fp");
        assert_eq!(
            self.claim("fp", fp(2), Owner::random(), LONG).await,
            Claimed::Mismatch
        );
        assert!(matches!(
            self.claim("fp", None, Owner::random(), LONG).await,
            Claimed::Running { .. }
        ));
        assert!(matches!(
            self.claim("fp", fp(1), Owner::random(), LONG).await,
            Claimed::Running { .. }
        ));
        self.store
            .complete(self.key("fp"), &lease, b"v", LONG)
            .await
            .unwrap();
        assert_eq!(
            self.claim("fp", fp(2), Owner::random(), LONG).await,
            Claimed::Mismatch
        );
        assert!(matches!(
            self.claim("fp", fp(1), Owner::random(), LONG).await,
            Claimed::Completed(_)
        ));
        assert!(matches!(
            self.claim("fp", None, Owner::random(), LONG).await,
            Claimed::Completed(_)
        ));
        // A lease taken without a fingerprint matches any call.
        self.lease("no-fp", LONG).await;
        assert!(matches!(
            self.claim("no-fp", fp(3), Owner::random(), LONG).await,
            Claimed::Running { .. }
        ));
    }

    async fn a_released_key_is_leased_again_with_a_greater_fence(&self) {
        let mut last = 0;
        for round in 0..5 {
            let lease = self.lease("release", LONG).await;
            assert!(
                lease.fence > last,
                "round {round}: {} after {last}",
                lease.fence
            );
            last = lease.fence;
            self.store
                .release(self.key("release"), &lease)
                .await
                .unwrap();
            assert!(
                matches!(
                    self.store.release(self.key("release"), &lease).await,
                    Err(StoreError::Fenced)
                ),
                "a second release finds the key no longer leased to its owner"
            );
        }
    }

    async fn an_expired_lease_is_taken_over_and_the_stale_owner_fenced(&self) {
        let t = self.timing;
        let stale = self.lease("takeover", t.lease).await;
        self.wait_past(t.lease).await;
        let newer = self.lease("takeover", LONG).await;
        assert!(newer.fence > stale.fence);
        let key = self.key("takeover");
        for (what, r) in [
            ("renew", self.store.renew(key, &stale, LONG).await),
            (
                "complete",
                self.store.complete(key, &stale, b"stale", LONG).await,
            ),
            ("release", self.store.release(key, &stale).await),
        ] {
            assert!(
                matches!(r, Err(StoreError::Fenced)),
                "the stale owner's {what}: {r:?}"
            );
        }
        // The newer lease stands, and completes.
        assert!(matches!(
            self.claim("takeover", None, Owner::random(), LONG).await,
            Claimed::Running { .. }
        ));
        self.store
            .complete(key, &newer, b"newer", LONG)
            .await
            .unwrap();
        assert!(matches!(
            self.store.complete(key, &stale, b"stale", LONG).await,
            Err(StoreError::Fenced)
        ));
        let c = self.claim("takeover", None, Owner::random(), LONG).await;
        assert!(
            matches!(c, Claimed::Completed(r) if r.payload == b"newer" && r.fence == newer.fence)
        );
    }

    async fn a_renewed_lease_outlives_its_first_end(&self) {
        let t = self.timing;
        let lease = self.lease("renew", t.lease).await;
        let key = self.key("renew");
        self.store.renew(key, &lease, LONG).await.unwrap();
        self.wait_past(t.lease).await;
        assert!(matches!(
            self.claim("renew", None, Owner::random(), LONG).await,
            Claimed::Running { .. }
        ));
        self.store
            .complete(key, &lease, b"late", LONG)
            .await
            .unwrap();
    }

    async fn a_record_expires_after_its_retention_and_fences_keep_growing(&self) {
        let t = self.timing;
        let first = self.lease("retain", LONG).await;
        let key = self.key("retain");
        self.store
            .complete(key, &first, b"v", t.lease)
            .await
            .unwrap();
        self.wait_past(t.lease).await;
        let second = self.lease("retain", LONG).await;
        assert!(
            second.fence > first.fence,
            "{} after {}",
            second.fence,
            first.fence
        );
    }

    /// A store need not look (`None` is always allowed), but what it
    /// shows must be what a claim would answer, and it claims nothing.
    async fn a_lookup_never_contradicts_a_claim(&self) {
        let look = |key: &'static str, fp: Option<Fingerprint>| async move {
            self.store
                .lookup(self.key(key), fp)
                .await
                .unwrap_or_else(|e| panic!("lookup of {key}: {e}"))
        };
        assert_eq!(look("lookup", fp(1)).await, None, "a vacant key");
        // A lookup of a vacant key leaves it vacant.
        let lease = leased(
            self.claim("lookup", fp(1), Owner::random(), LONG).await,
            "lookup",
        );
        for f in [fp(1), None] {
            assert_eq!(look("lookup", f).await, None, "a leased key: {f:?}");
        }
        assert!(matches!(
            look("lookup", fp(2)).await,
            None | Some(Claimed::Mismatch)
        ));
        self.store
            .complete(self.key("lookup"), &lease, b"looked", LONG)
            .await
            .unwrap();
        let record = Record {
            fence: lease.fence,
            payload: b"looked".to_vec(),
        };
        for f in [fp(1), None] {
            let found = look("lookup", f).await;
            assert!(
                found.is_none() || found == Some(Claimed::Completed(record.clone())),
                "a record, {f:?}: {found:?}"
            );
        }
        assert!(matches!(
            look("lookup", fp(2)).await,
            None | Some(Claimed::Mismatch)
        ));
    }

    async fn concurrent_claims_lease_the_key_once(&self) {
        let claims = (0..32).map(|_| {
            self.store
                .claim(self.key("storm"), None, Owner::random(), LONG)
        });
        let results = futures_join_all(claims).await;
        let leases = results
            .into_iter()
            .map(|r| r.unwrap())
            .filter(|c| matches!(c, Claimed::Leased(_)))
            .count();
        assert_eq!(leases, 1);
    }
}

/// Runs futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set: Vec<_> = futs.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, slot) in set.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        out[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future finished"))
        .collect()
}
