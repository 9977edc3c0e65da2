//! Issue 8: the durable executor on `MemoryStore`, on tokio's paused clock.
//! Two executors sharing one store stand for two processes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use idem::durable::{
    Codec, Durable, DurableError, DurableOutcome, Fence, OnRunning, OnUnavailable,
};
use idem::store::{Claimed, Lease, MemoryStore, Owner, Store, StoreError, StoreKey};
use idem::Fingerprint;
use idem_tests::{Counter, Gate, Observed, Probe};

const LEASE: Duration = Duration::from_secs(3);

/// Polls `call` every virtual millisecond until it is ready, for at most
/// `limit` of the paused clock.
async fn finish<F: std::future::Future>(call: &mut Probe<F>, limit: Duration) -> F::Output {
    let end = tokio::time::Instant::now() + limit;
    loop {
        if let std::task::Poll::Ready(v) = call.poll() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "not done within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn process<S: Store>(store: S, on_running: OnRunning) -> Durable<S, String, String> {
    Durable::builder(store)
        .namespace("payments")
        .lease(LEASE)
        .max_run(LEASE * 10)
        .on_running(on_running)
        .record_errors(|e: &String| e.starts_with("declined"))
        .build()
        .unwrap()
}

const WAIT: OnRunning = OnRunning::Wait {
    timeout: Duration::from_secs(60),
};

#[tokio::test(start_paused = true)]
async fn a_local_storm_makes_one_claim_and_one_execution() {
    let claims = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&claims);
    let store = Observed::new(MemoryStore::new(), move |_: &_| {
        counted.fetch_add(1, SeqCst);
    });
    let p = process(store, WAIT);
    let runs = Counter::new();
    let gate = Gate::new();
    let work = |_: Fence| async {
        runs.hit();
        gate.wait().await;
        Ok::<_, String>("receipt".to_string())
    };
    let mut calls: Vec<_> = (0..100)
        .map(|_| Probe::new(p.run("order-1", work)))
        .collect();
    for c in &mut calls {
        c.pending();
    }
    gate.open();
    let mut outcomes = Vec::new();
    for c in &mut calls {
        let (r, how) = c.ready();
        assert_eq!(r.as_deref(), Ok("receipt"));
        outcomes.push(how);
    }
    assert_eq!(runs.get(), 1);
    assert_eq!(claims.load(SeqCst), 1, "one claim for 100 local duplicates");
    assert_eq!(
        outcomes
            .iter()
            .filter(|h| **h == DurableOutcome::Executed)
            .count(),
        1
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|h| **h == DurableOutcome::Coalesced)
            .count(),
        99
    );
}

#[tokio::test(start_paused = true)]
async fn another_process_replays_the_record() {
    let store = Arc::new(MemoryStore::new());
    let (a, b) = (process(Arc::clone(&store), WAIT), process(store, WAIT));
    let runs = Counter::new();
    let work = |fence: Fence| {
        runs.hit();
        async move { Ok::<_, String>(format!("fence {}", fence.token())) }
    };
    let (first, how) = a.run("order-2", work).await;
    assert_eq!(how, DurableOutcome::Executed);
    assert_eq!(
        b.run("order-2", work).await,
        (first, DurableOutcome::Replayed)
    );
    assert_eq!(runs.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_in_another_process_waits_or_is_rejected() {
    let store = Arc::new(MemoryStore::new());
    let a = process(Arc::clone(&store), WAIT);
    let waits = process(Arc::clone(&store), WAIT);
    let rejects = process(store, OnRunning::Reject);
    let gate = Gate::new();
    let mut owner = Probe::new(a.run("order-3", |_| async {
        gate.wait().await;
        Ok::<_, String>("done".to_string())
    }));
    owner.pending();
    let (r, _) = rejects
        .run("order-3", |_| async { Ok("twice".to_string()) })
        .await;
    match r {
        Err(DurableError::Running { retry_after }) => assert!(retry_after <= LEASE),
        other => panic!("expected Running, got {other:?}"),
    }
    let mut waiter = Probe::new(waits.run("order-3", |_| async { Ok("twice".to_string()) }));
    waiter.pending();
    gate.open();
    assert_eq!(owner.ready().0.as_deref(), Ok("done"));
    // The waiter polls with backoff on the paused clock.
    let (r, how) = finish(&mut waiter, Duration::from_secs(5)).await;
    assert_eq!((r.as_deref(), how), (Ok("done"), DurableOutcome::Waited));
}

#[tokio::test(start_paused = true)]
async fn errors_are_released_unless_recorded() {
    let p = process(MemoryStore::new(), WAIT);
    let runs = Counter::new();
    let fail = |msg: &'static str| {
        let runs = &runs;
        move |_: Fence| async move {
            runs.hit();
            Err::<String, _>(msg.to_string())
        }
    };
    // A transient error: released, the next call runs again.
    assert_eq!(
        p.run("k", fail("timeout")).await.0,
        Err(DurableError::Failed("timeout".into()))
    );
    assert_eq!(
        p.run("k", fail("timeout")).await.0,
        Err(DurableError::Failed("timeout".into()))
    );
    assert_eq!(runs.get(), 2);
    // A final one: recorded, and replayed as the same error.
    assert_eq!(
        p.run("d", fail("declined: card")).await.0,
        Err(DurableError::Failed("declined: card".into()))
    );
    let (r, how) = p.run("d", fail("declined: other")).await;
    assert_eq!(
        (r, how),
        (
            Err(DurableError::Failed("declined: card".into())),
            DurableOutcome::Replayed
        )
    );
    assert_eq!(runs.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_panic_releases_the_key() {
    let p = process(MemoryStore::new(), OnRunning::Reject);
    let (r, _) = p.run("k", |_| async { panic!("boom") }).await;
    assert!(
        matches!(r, Err(DurableError::Panicked(ref m)) if m.message() == "boom"),
        "{r:?}"
    );
    let (r, how) = p.run("k", |_| async { Ok("ok".to_string()) }).await;
    assert_eq!((r.as_deref(), how), (Ok("ok"), DurableOutcome::Executed));
}

#[tokio::test(start_paused = true)]
async fn a_long_work_keeps_its_lease_and_max_run_ends_it() {
    let store = Arc::new(MemoryStore::new());
    let a = Arc::new(process(Arc::clone(&store), WAIT));
    let b = process(Arc::clone(&store), OnRunning::Reject);
    // Five leases long: renewed (the caller's task drives the watchdog),
    // never taken over.
    let long = tokio::spawn({
        let a = Arc::clone(&a);
        async move {
            a.run("long", |_| async {
                tokio::time::sleep(LEASE * 5).await;
                Ok::<_, String>("long".to_string())
            })
            .await
        }
    });
    for _ in 0..5 {
        tokio::time::sleep(LEASE).await;
        let (r, _) = b.run("long", |_| async { Ok("twice".to_string()) }).await;
        assert!(matches!(r, Err(DurableError::Running { .. })), "{r:?}");
    }
    let (r, how) = long.await.unwrap();
    assert_eq!((r.as_deref(), how), (Ok("long"), DurableOutcome::Executed));

    // Past max_run (10 leases) the lease ends, and the work is told so;
    // another process takes over, and the first one's completion is
    // refused.
    let told_lost = Arc::new(AtomicBool::new(false));
    let runaway = tokio::spawn({
        let (a, told_lost) = (Arc::clone(&a), Arc::clone(&told_lost));
        async move {
            a.run("runaway", |fence: Fence| async move {
                tokio::time::sleep(LEASE * 13).await;
                told_lost.store(fence.is_lost(), SeqCst);
                Ok::<_, String>("late".to_string())
            })
            .await
        }
    });
    tokio::time::sleep(LEASE * 11 + Duration::from_millis(10)).await;
    let (r, how) = b
        .run("runaway", |_| async { Ok("taken over".to_string()) })
        .await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("taken over"), DurableOutcome::Executed)
    );
    let (r, _) = runaway.await.unwrap();
    assert_eq!(r, Err(DurableError::LeaseLost));
    assert!(told_lost.load(SeqCst), "the Fence reports the lease lost");
    let (r, how) = b
        .run("runaway", |_| async { Ok("third".to_string()) })
        .await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("taken over"), DurableOutcome::Replayed)
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_leader_releases_its_claim() {
    let store = Arc::new(MemoryStore::new());
    let a = process(Arc::clone(&store), OnRunning::Reject);
    let b = process(store, OnRunning::Reject);
    let mut call = Probe::new(a.run("dropped", |_| std::future::pending()));
    call.pending();
    drop(call);
    // The release runs on a task of its own.
    tokio::task::yield_now().await;
    let (r, how) = b.run("dropped", |_| async { Ok("b".to_string()) }).await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("b"), DurableOutcome::Executed),
        "not blocked for a lease"
    );
}

#[tokio::test(start_paused = true)]
async fn fingerprints_and_corrupt_records() {
    let store = Arc::new(MemoryStore::new());
    let p = process(Arc::clone(&store), WAIT);
    let fp = |n: u64| Fingerprint::from_u64(n);
    let ok = |_: Fence| async { Ok::<_, String>("v".to_string()) };
    assert!(p.run_with_fingerprint("f", fp(1), ok).await.0.is_ok());
    assert_eq!(
        p.run_with_fingerprint("f", fp(2), ok).await.0,
        Err(DurableError::Mismatch)
    );
    // Bytes that are not a record: a clear error naming the key.
    let key = StoreKey {
        namespace: "payments",
        key: "junk",
    };
    let Claimed::Leased(lease) = store
        .claim(key, None, Owner::random(), LEASE)
        .await
        .unwrap()
    else {
        panic!("vacant")
    };
    store
        .complete(key, &lease, b"\x07garbage", LEASE)
        .await
        .unwrap();
    let (r, _) = p.run("junk", ok).await;
    let Err(DurableError::Store(e)) = r else {
        panic!("{r:?}")
    };
    assert!(e.to_string().contains("payments/junk"), "{e}");
}

/// `S`, with completions and releases failing as unavailable (before they
/// reach `S`) while `outage` is above zero, one attempt each; claims too
/// when `claims_fail`.
struct Flaky<S> {
    inner: S,
    outage: Arc<AtomicUsize>,
    attempts: Arc<AtomicUsize>,
    claims_fail: bool,
}

impl<S> Flaky<S> {
    fn attempt(&self) -> Result<(), StoreError> {
        self.attempts.fetch_add(1, SeqCst);
        let down = self
            .outage
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if down {
            Err(StoreError::Unavailable("connection reset".into()))
        } else {
            Ok(())
        }
    }
}

impl<S: Store> Store for Flaky<S> {
    async fn claim(
        &self,
        key: StoreKey<'_>,
        fp: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        if self.claims_fail {
            self.attempt()?;
        }
        self.inner.claim(key, fp, owner, lease).await
    }

    async fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.inner.renew(key, lease, ttl).await
    }

    async fn complete(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        payload: &[u8],
        retain: Duration,
    ) -> Result<(), StoreError> {
        self.attempt()?;
        self.inner.complete(key, lease, payload, retain).await
    }

    async fn release(&self, key: StoreKey<'_>, lease: &Lease) -> Result<(), StoreError> {
        self.attempt()?;
        self.inner.release(key, lease).await
    }
}

type FlakyProcess = Durable<Flaky<Arc<MemoryStore>>, String, String>;

/// A process whose completions and releases fail `outage` times, and its
/// count of their attempts.
fn flaky(store: &Arc<MemoryStore>, outage: usize) -> (FlakyProcess, Arc<AtomicUsize>) {
    let attempts = Arc::new(AtomicUsize::new(0));
    let flaky = Flaky {
        inner: Arc::clone(store),
        outage: Arc::new(AtomicUsize::new(outage)),
        attempts: Arc::clone(&attempts),
        claims_fail: false,
    };
    (process(flaky, OnRunning::Reject), attempts)
}

#[tokio::test(start_paused = true)]
async fn a_completion_outlasts_an_outage_shorter_than_the_lease() {
    // A connection re-established after a server restart: the completion
    // is retried (10 ms doubling to 500 ms; 1.63 s for 8 failures) while
    // the lease lasts, and the result is recorded, not lost.
    let store = Arc::new(MemoryStore::new());
    let (a, attempts) = flaky(&store, 8);
    let runs = Counter::new();
    let started = tokio::time::Instant::now();
    let (r, how) = a
        .run("outage", |_| async {
            runs.hit();
            Ok::<_, String>("kept".to_string())
        })
        .await;
    assert_eq!((r.as_deref(), how), (Ok("kept"), DurableOutcome::Executed));
    assert_eq!(attempts.load(SeqCst), 9);
    assert!(started.elapsed() < LEASE, "{:?}", started.elapsed());
    let b = process(Arc::clone(&store), OnRunning::Reject);
    let (r, how) = b.run("outage", |_| async { Ok("twice".to_string()) }).await;
    assert_eq!((r.as_deref(), how), (Ok("kept"), DurableOutcome::Replayed));
    assert_eq!(runs.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_completion_gives_up_when_its_lease_ends() {
    let store = Arc::new(MemoryStore::new());
    let (a, _) = flaky(&store, usize::MAX);
    let started = tokio::time::Instant::now();
    let (r, _) = a
        .run("down", |_| async { Ok::<_, String>("lost".to_string()) })
        .await;
    let Err(DurableError::Store(e)) = r else {
        panic!("{r:?}")
    };
    assert!(matches!(*e, StoreError::Unavailable(_)), "{e}");
    // Not before the lease could have ended, not much after.
    let took = started.elapsed();
    assert!(
        took >= LEASE - Duration::from_millis(500) && took <= LEASE,
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_release_in_an_outage_answers_at_once_and_retries_in_the_background() {
    let store = Arc::new(MemoryStore::new());
    let (a, attempts) = flaky(&store, 6);
    let started = tokio::time::Instant::now();
    let (r, _) = a
        .run("failing", |_| async {
            Err::<String, _>("timeout".to_string())
        })
        .await;
    assert_eq!(r, Err(DurableError::Failed("timeout".to_string())));
    // Three attempts in the call (10 and 100 ms apart), then the caller
    // has its error.
    assert_eq!(started.elapsed(), Duration::from_millis(110));
    assert_eq!(attempts.load(SeqCst), 3);
    // The key is free again long before its lease would have ended.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(attempts.load(SeqCst), 7);
    let b = process(Arc::clone(&store), OnRunning::Reject);
    let (r, how) = b.run("failing", |_| async { Ok("b".to_string()) }).await;
    assert_eq!((r.as_deref(), how), (Ok("b"), DurableOutcome::Executed));
}

#[tokio::test(start_paused = true)]
async fn a_local_duplicate_of_a_fingerprinted_call_is_coalesced() {
    let p = process(MemoryStore::new(), WAIT);
    let gate = Gate::new();
    let fp = Fingerprint::from_u64(1);
    let work = |_: Fence| async {
        gate.wait().await;
        Ok::<_, String>("v".to_string())
    };
    let mut first = Probe::new(p.run_with_fingerprint("fp", fp, work));
    let mut second = Probe::new(p.run_with_fingerprint("fp", fp, work));
    first.pending();
    second.pending();
    gate.open();
    assert_eq!(first.ready().1, DurableOutcome::Executed);
    assert_eq!(second.ready().1, DurableOutcome::Coalesced);
}

#[tokio::test(start_paused = true)]
async fn a_call_can_reject_where_the_executor_waits() {
    let store = Arc::new(MemoryStore::new());
    let a = process(Arc::clone(&store), WAIT);
    let b = process(store, WAIT);
    let gate = Gate::new();
    let mut owner = Probe::new(a.run("per-call", |_| async {
        gate.wait().await;
        Ok::<_, String>("done".to_string())
    }));
    owner.pending();
    let (r, _) = b
        .call("per-call")
        .on_running(OnRunning::Reject)
        .run(|_| async { Ok("twice".to_string()) })
        .await;
    assert!(matches!(r, Err(DurableError::Running { .. })), "{r:?}");
    gate.open();
    assert_eq!(owner.ready().0.as_deref(), Ok("done"));
}

#[tokio::test(start_paused = true)]
async fn a_detached_call_finishes_and_records_when_its_caller_leaves() {
    let store = Arc::new(MemoryStore::new());
    let a = process(Arc::clone(&store), WAIT);
    let runs = Counter::new();
    let gate = Gate::new();
    let mut call = Probe::new(a.call("detached").run_detached({
        let (runs, gate) = (runs.clone(), gate.clone());
        move |_| async move {
            runs.hit();
            gate.wait().await;
            Ok::<_, String>("charged once".to_string())
        }
    }));
    call.pending();
    // The client disconnects: its call is dropped mid-work.
    drop(call);
    gate.open();
    tokio::task::yield_now().await;
    // Its retry, in another process, gets the recorded result.
    let b = process(store, WAIT);
    let (r, how) = b
        .run("detached", |_| async { Ok("charged twice".to_string()) })
        .await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("charged once"), DurableOutcome::Replayed)
    );
    assert_eq!(runs.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_store_fails_closed_unless_told_to_fail_open() {
    let flaky = |claims_fail| Flaky {
        inner: MemoryStore::new(),
        outage: Arc::new(AtomicUsize::new(usize::MAX)),
        attempts: Arc::new(AtomicUsize::new(0)),
        claims_fail,
    };
    let runs = Counter::new();
    let work = |fence: Fence| {
        runs.hit();
        async move { Ok::<_, String>(format!("fence {} lost {}", fence.token(), fence.is_lost())) }
    };
    let closed = process(flaky(true), WAIT);
    let (r, _) = closed.run("down", work).await;
    let Err(DurableError::Store(e)) = r else {
        panic!("{r:?}")
    };
    assert!(matches!(*e, StoreError::Unavailable(_)), "{e}");
    assert_eq!(runs.get(), 0, "fail closed: the work does not run");

    let open: Durable<_, String, String> = Durable::builder(flaky(true))
        .namespace("payments")
        .on_unavailable(OnUnavailable::FailOpen)
        .build()
        .unwrap();
    let (r, how) = open.run("down", work).await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("fence 0 lost true"), DurableOutcome::FailedOpen)
    );
    assert_eq!(runs.get(), 1);
}

/// Strings (values and errors) stored as their bytes.
struct Plain;

impl Codec<String> for Plain {
    fn encode(&self, value: &String) -> Result<Vec<u8>, String> {
        Ok(value.as_bytes().to_vec())
    }
    fn decode(&self, bytes: &[u8]) -> Result<String, String> {
        String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
    }
}

#[tokio::test(start_paused = true)]
async fn a_codec_of_ones_own_writes_the_records() {
    let store = Arc::new(MemoryStore::new());
    let p: Durable<_, String, String, Plain> = Durable::builder(Arc::clone(&store))
        .namespace("payments")
        .codec(Plain)
        .build()
        .unwrap();
    let (r, _) = p
        .run("plain", |_| async { Ok("receipt".to_string()) })
        .await;
    assert_eq!(r.as_deref(), Ok("receipt"));
    let key = StoreKey {
        namespace: "payments",
        key: "plain",
    };
    let Ok(Claimed::Completed(record)) = store.claim(key, None, Owner::random(), LEASE).await
    else {
        panic!("recorded")
    };
    // The record frame (version 1, kind 'v'), then the codec's bytes.
    assert_eq!(record.payload, b"\x01vreceipt");
    let (r, how) = p.run("plain", |_| async { Ok("twice".to_string()) }).await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("receipt"), DurableOutcome::Replayed)
    );
}

/// `MemoryStore` with its claims and lookups counted, lookups forwarded.
#[derive(Default)]
struct Looked {
    inner: MemoryStore,
    claims: AtomicUsize,
    lookups: AtomicUsize,
}

impl Store for Looked {
    async fn claim(
        &self,
        key: StoreKey<'_>,
        fp: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        self.claims.fetch_add(1, SeqCst);
        self.inner.claim(key, fp, owner, lease).await
    }

    async fn lookup(
        &self,
        key: StoreKey<'_>,
        fp: Option<Fingerprint>,
    ) -> Result<Option<Claimed>, StoreError> {
        self.lookups.fetch_add(1, SeqCst);
        self.inner.lookup(key, fp).await
    }

    async fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.inner.renew(key, lease, ttl).await
    }

    async fn complete(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        payload: &[u8],
        retain: Duration,
    ) -> Result<(), StoreError> {
        self.inner.complete(key, lease, payload, retain).await
    }

    async fn release(&self, key: StoreKey<'_>, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release(key, lease).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_record_the_store_shows_is_replayed_without_a_claim() {
    let store = Arc::new(Looked::default());
    let p = process(Arc::clone(&store), WAIT);
    let claims = || store.claims.load(SeqCst);
    let runs = Counter::new();
    let work = |_: Fence| async {
        runs.hit();
        Ok::<_, String>("receipt".to_string())
    };
    let one = Fingerprint::from_u64(1);
    let (r, how) = p.call("order-1").fingerprint(one).run(work).await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("receipt"), DurableOutcome::Executed)
    );
    assert_eq!((claims(), store.lookups.load(SeqCst)), (1, 1));

    // Replays, attached and detached, with and without the fingerprint:
    // looked up, not claimed.
    let (r, how) = p.call("order-1").fingerprint(one).run(work).await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("receipt"), DurableOutcome::Replayed)
    );
    let (r, how) = p
        .call("order-1")
        .run_detached(|_| async { Ok::<_, String>("again".to_string()) })
        .await;
    assert_eq!(
        (r.as_deref(), how),
        (Ok("receipt"), DurableOutcome::Replayed)
    );
    assert_eq!((claims(), runs.get()), (1, 1));

    // Another fingerprint is the claim's to answer, as ever.
    let (r, _) = p
        .call("order-1")
        .fingerprint(Fingerprint::from_u64(2))
        .run(work)
        .await;
    assert!(matches!(r, Err(DurableError::Mismatch)), "{r:?}");
    assert_eq!((claims(), runs.get()), (2, 1));

    // A recorded error is replayed as the error it was.
    let declined = |_: Fence| async { Err::<String, _>("declined: card".to_string()) };
    let (r, how) = p.run("order-2", declined).await;
    assert_eq!(
        (r.clone().err(), how),
        (
            Some(DurableError::Failed("declined: card".into())),
            DurableOutcome::Executed
        )
    );
    let (r2, how) = p.run("order-2", work).await;
    assert_eq!((r2.err(), how), (r.err(), DurableOutcome::Replayed));
    assert_eq!((claims(), runs.get()), (3, 1));
}
