//! Keys and values whose `Clone` or `Drop` panics must not leave a key stuck,
//! a waiter asleep, or a shard's bookkeeping half-updated.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use idem::{Error, Outcome, SingleFlight};
use idem_tests::{Gate, Probe};

/// A value whose clone panics once the `clones_left` budget is spent, and
/// whose drop panics once when `drop_armed` is set.
#[derive(Debug)]
struct Bomb {
    id: u32,
    clones_left: Arc<AtomicUsize>,
    drop_armed: Arc<AtomicBool>,
}

impl Bomb {
    fn new(id: u32, clones_left: &Arc<AtomicUsize>, drop_armed: &Arc<AtomicBool>) -> Self {
        Self {
            id,
            clones_left: clones_left.clone(),
            drop_armed: drop_armed.clone(),
        }
    }
}

impl Clone for Bomb {
    fn clone(&self) -> Self {
        if self
            .clones_left
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            // Refill so the panic happens once.
            self.clones_left.store(usize::MAX, SeqCst);
            panic!("clone bomb");
        }
        Self::new(self.id, &self.clones_left, &self.drop_armed)
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.drop_armed.swap(false, SeqCst) {
            panic!("drop bomb");
        }
    }
}

fn budgets() -> (Arc<AtomicUsize>, Arc<AtomicBool>) {
    (
        Arc::new(AtomicUsize::new(usize::MAX)),
        Arc::new(AtomicBool::new(false)),
    )
}

fn panics<T>(f: impl FnOnce() -> T) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err()
}

fn table(max_entries: Option<usize>) -> SingleFlight<u32, Bomb> {
    let b = SingleFlight::builder().ttl(Duration::from_secs(60));
    match max_entries {
        Some(n) => b.max_entries(n).build().unwrap(),
        None => b.build().unwrap(),
    }
}

/// A leader whose work returns a `Bomb`, and two waiters with work of
/// their own, all pending on the leader's gate; `runs` counts executions.
struct Scene {
    flight: SingleFlight<u32, Bomb>,
    clones: Arc<AtomicUsize>,
    drops: Arc<AtomicBool>,
    gate: Gate,
    runs: AtomicUsize,
}

impl Scene {
    fn new() -> Self {
        let (clones, drops) = budgets();
        Self {
            flight: table(None),
            clones,
            drops,
            gate: Gate::new(),
            runs: AtomicUsize::new(0),
        }
    }

    fn call(
        &self,
        id: u32,
    ) -> impl std::future::Future<
        Output = (Result<Bomb, idem::Error<std::convert::Infallible>>, Outcome),
    > + '_ {
        self.flight.run_with_outcome(1, move || async move {
            self.runs.fetch_add(1, SeqCst);
            self.gate.wait().await;
            Ok(Bomb::new(id, &self.clones, &self.drops))
        })
    }
}

#[tokio::test]
async fn a_panicking_clone_for_the_store_costs_the_store_only() {
    let s = Scene::new();
    let mut leader = Probe::new(s.call(1));
    let mut waiters = [Probe::new(s.call(2)), Probe::new(s.call(3))];
    leader.pending();
    waiters.iter_mut().for_each(Probe::pending);
    s.clones.store(0, SeqCst); // the next clone (for the store) panics
    s.gate.open();
    let (v, outcome) = leader.ready();
    assert_eq!((v.unwrap().id, outcome), (1, Outcome::Executed));
    for w in &mut waiters {
        assert!(w.woken(), "the waiters are not left asleep");
        let (v, outcome) = w.ready();
        assert_eq!((v.unwrap().id, outcome), (1, Outcome::Coalesced));
    }
    assert_eq!(
        s.runs.load(SeqCst),
        1,
        "a work that succeeded never runs again"
    );
    assert!(s.flight.get(&1).is_none(), "nothing was stored");
}

#[tokio::test]
async fn a_panicking_clone_for_the_waiters_gives_them_an_error_not_a_second_run() {
    let s = Scene::new();
    let mut leader = Probe::new(s.call(1));
    let mut waiters = [Probe::new(s.call(2)), Probe::new(s.call(3))];
    leader.pending();
    waiters.iter_mut().for_each(Probe::pending);
    s.clones.store(1, SeqCst); // the store's clone works, the one shared with the waiters panics
    s.gate.open();
    let (v, outcome) = leader.ready();
    assert_eq!((v.unwrap().id, outcome), (1, Outcome::Executed));
    for w in &mut waiters {
        assert!(w.woken());
        let (v, outcome) = w.ready();
        let Err(Error::Panicked(p)) = v else {
            panic!("expected a panic, got {v:?}")
        };
        assert!(p.message().contains("cloning its result"), "{p}");
        assert!(p.message().contains("clone bomb"), "{p}");
        assert_eq!(outcome, Outcome::Coalesced);
    }
    assert_eq!(
        s.runs.load(SeqCst),
        1,
        "a work that succeeded never runs again"
    );
    assert_eq!(
        s.flight.get(&1).map(|b| b.id),
        Some(1),
        "the result was stored"
    );
}

#[tokio::test]
async fn a_panicking_clone_for_one_waiter_costs_that_waiter_only() {
    let s = Scene::new();
    let mut leader = Probe::new(s.call(1));
    let mut waiters = [Probe::new(s.call(2)), Probe::new(s.call(3))];
    leader.pending();
    waiters.iter_mut().for_each(Probe::pending);
    s.clones.store(2, SeqCst); // store and shared copy work; the first waiter's clone panics
    s.gate.open();
    assert_eq!(leader.ready().0.unwrap().id, 1);
    let (first, second) = (waiters[0].ready(), waiters[1].ready());
    assert!(
        matches!(first, (Err(Error::Panicked(_)), Outcome::Coalesced)),
        "{first:?}"
    );
    assert_eq!((second.0.unwrap().id, second.1), (1, Outcome::Coalesced));
    assert_eq!(s.runs.load(SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_drop_of_an_expired_value_does_not_leave_its_key_stuck() {
    let flight = table(None);
    let (clones, drops) = budgets();
    flight
        .run(1, || async { Ok(Bomb::new(1, &clones, &drops)) })
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;
    drops.store(true, SeqCst);
    // The call that replaces the expired value drops it, and panics...
    let mut call = Probe::new(flight.run(1, || async { Ok(Bomb::new(2, &clones, &drops)) }));
    assert!(panics(|| call.poll()));
    // ...but the key is free for the next one.
    let (v, outcome) = flight
        .run_with_outcome(1, || async { Ok(Bomb::new(3, &clones, &drops)) })
        .await;
    assert_eq!((v.unwrap().id, outcome), (3, Outcome::Executed));
}

#[tokio::test]
async fn a_panicking_drop_during_eviction_keeps_the_bound() {
    let flight = table(Some(1));
    let (clones, drops) = budgets();
    flight
        .run(1, || async { Ok(Bomb::new(1, &clones, &drops)) })
        .await
        .unwrap();
    drops.store(true, SeqCst);
    let mut call = Probe::new(flight.run(2, || async { Ok(Bomb::new(2, &clones, &drops)) }));
    assert!(panics(|| call.poll()), "evicting key 1 panics in its drop");
    for k in 3..50 {
        flight
            .run(k, || {
                let (clones, drops) = (&clones, &drops);
                async move { Ok(Bomb::new(k, clones, drops)) }
            })
            .await
            .unwrap();
        assert!(flight.len() <= 1, "the bound was lost");
    }
}

#[tokio::test]
async fn a_panicking_drop_in_forget_reaches_the_caller_and_leaves_the_table_consistent() {
    // One shard: with four shards of capacity one, 20 random keys leave one
    // empty about once in a hundred runs, and the count below is then 3.
    let flight: SingleFlight<u32, Bomb> = SingleFlight::builder()
        .ttl(Duration::from_secs(60))
        .max_entries(4)
        .shards(1)
        .build()
        .unwrap();
    let (clones, drops) = budgets();
    flight
        .run(1, || async { Ok(Bomb::new(1, &clones, &drops)) })
        .await
        .unwrap();
    drops.store(true, SeqCst);
    assert!(panics(|| flight.forget(&1)));
    assert!(flight.is_empty());
    for k in 0..20 {
        flight
            .run(k, || {
                let (clones, drops) = (&clones, &drops);
                async move { Ok(Bomb::new(k, clones, drops)) }
            })
            .await
            .unwrap();
    }
    assert_eq!(flight.len(), 4);
}

/// A key whose `Drop` panics once armed. Equality and hashing look at `id`.
#[derive(Debug, Clone)]
struct KeyBomb {
    id: u32,
    armed: Arc<AtomicBool>,
}

impl PartialEq for KeyBomb {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for KeyBomb {}

impl std::hash::Hash for KeyBomb {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl Drop for KeyBomb {
    fn drop(&mut self) {
        if self.armed.swap(false, SeqCst) {
            panic!("key drop bomb");
        }
    }
}

#[tokio::test]
async fn a_panicking_key_drop_when_a_takeover_ends_still_wakes_the_waiters() {
    let flight: SingleFlight<KeyBomb, u32> = SingleFlight::new();
    let armed = Arc::new(AtomicBool::new(false));
    let key = |armed: &Arc<AtomicBool>| KeyBomb {
        id: 1,
        armed: armed.clone(),
    };
    let unarmed = || key(&Arc::new(AtomicBool::new(false)));
    let mut leader = Probe::new(flight.run(key(&armed), std::future::pending));
    leader.pending();
    let work = || async { Ok(2) };
    let mut waiters = [
        Probe::new(flight.run_with_outcome(unarmed(), work)),
        Probe::new(flight.run_with_outcome(unarmed(), work)),
    ];
    waiters.iter_mut().for_each(Probe::pending);
    // The key the table holds (the leader's) panics when it is dropped:
    // not when the leader is cancelled (the orphan keeps its entry), but
    // when the takeover ends and the entry leaves the table.
    armed.store(true, SeqCst);
    drop(leader);
    assert!(waiters.iter().all(Probe::woken));
    assert!(
        panics(|| waiters[0].poll()),
        "the takeover's end drops the key"
    );
    assert!(waiters[1].woken(), "the other waiter is not left asleep");
    assert_eq!(waiters[1].ready(), (Ok(2), Outcome::Coalesced));
    assert!(flight.is_empty());
}

#[tokio::test]
async fn a_panicking_key_drop_when_a_lone_leader_is_cancelled_leaves_the_key_free() {
    let flight: SingleFlight<KeyBomb, u32> = SingleFlight::new();
    let armed = Arc::new(AtomicBool::new(false));
    let mut leader = Probe::new(flight.run(
        KeyBomb {
            id: 1,
            armed: armed.clone(),
        },
        std::future::pending,
    ));
    leader.pending();
    armed.store(true, SeqCst);
    assert!(panics(move || drop(leader)), "nobody waits: the entry goes");
    assert!(flight.is_empty());
    let key = KeyBomb {
        id: 1,
        armed: Arc::new(AtomicBool::new(false)),
    };
    assert_eq!(
        flight.run_with_outcome(key, || async { Ok(2) }).await,
        (Ok(2), Outcome::Executed)
    );
}

#[tokio::test]
async fn a_panicking_drop_does_not_stop_clear_halfway() {
    let flight: SingleFlight<u32, Bomb> = SingleFlight::builder()
        .ttl(Duration::from_secs(60))
        .shards(64)
        .build()
        .unwrap();
    let (clones, drops) = budgets();
    for k in 0..1_000 {
        let value = Bomb::new(k, &clones, &drops);
        flight.run(k, || async { Ok(value) }).await.unwrap();
    }
    drops.store(true, SeqCst); // the first value dropped panics
    let before = Arc::strong_count(&clones);
    assert!(panics(|| flight.clear()));
    assert_eq!(flight.len(), 0, "every shard was emptied");
    assert_eq!(
        Arc::strong_count(&clones),
        before - 1_000,
        "every value was dropped, none leaked"
    );
}

/// A work future whose `Drop` panics (after it has returned its result).
struct PanicsOnDrop<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for PanicsOnDrop<F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl<F> Drop for PanicsOnDrop<F> {
    fn drop(&mut self) {
        panic!("work drop bomb");
    }
}

#[tokio::test]
async fn a_work_future_whose_drop_panics_is_panicked_work_not_a_takeover() {
    let flight: SingleFlight<u32, u32, ()> = SingleFlight::builder()
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let gate = Gate::new();
    let mut leader = Probe::new(flight.run_with_outcome(1, || {
        PanicsOnDrop(Box::pin(async {
            gate.wait().await;
            Ok(1)
        }))
    }));
    let mut waiter = Probe::new(flight.run_with_outcome(1, || async { Ok(2) }));
    leader.pending();
    waiter.pending();
    gate.open();
    // The work returned `Ok(1)`, then its drop panicked: both callers get
    // the panic, and nothing runs a second time (it used to reach the
    // leader's caller raw and hand the key to the waiter as if abandoned).
    let (r, outcome) = leader.ready();
    assert!(matches!(r, Err(idem::Error::Panicked(_))), "{r:?}");
    assert_eq!(outcome, Outcome::Executed);
    let (r, outcome) = waiter.ready();
    assert!(matches!(r, Err(idem::Error::Panicked(_))), "{r:?}");
    assert_eq!(outcome, Outcome::Coalesced);
    let stats = flight.stats();
    assert_eq!((stats.executions, stats.panics, stats.takeovers), (1, 1, 0));
}

#[tokio::test]
async fn a_panicking_key_drop_when_a_flight_ends_unstored_does_not_rerun_it() {
    // A failure (never stored) and a success in a table that stores
    // nothing both remove the flight's entry, dropping the table's key.
    for store_nothing in [false, true] {
        let flight: SingleFlight<KeyBomb, u32, &'static str> = if store_nothing {
            SingleFlight::new()
        } else {
            SingleFlight::builder()
                .ttl(Duration::from_secs(60))
                .build()
                .unwrap()
        };
        let armed = Arc::new(AtomicBool::new(false));
        let key = || KeyBomb {
            id: 1,
            armed: armed.clone(),
        };
        let gate = Gate::new();
        let mut leader = Probe::new(flight.run_with_outcome(key(), || async {
            gate.wait().await;
            if store_nothing {
                Ok(1)
            } else {
                Err("declined")
            }
        }));
        let mut waiter = Probe::new(flight.run_with_outcome(
            KeyBomb {
                id: 1,
                armed: Arc::new(AtomicBool::new(false)),
            },
            || async { Ok(2) },
        ));
        leader.pending();
        waiter.pending();
        armed.store(true, SeqCst); // the leader's key, held by the table
        gate.open();
        assert!(
            panics(|| leader.poll()),
            "the leader's caller runs the Drop"
        );
        let expected = if store_nothing {
            Ok(1)
        } else {
            Err(idem::Error::Failed("declined"))
        };
        assert_eq!(waiter.ready(), (expected, Outcome::Coalesced));
        assert_eq!(flight.stats().executions, 1, "nothing ran twice");
    }
}

#[tokio::test]
async fn a_hit_whose_clone_panics_is_not_counted() {
    let flight = table(None);
    let (clones, drops) = budgets();
    flight
        .run(1, || async { Ok(Bomb::new(1, &clones, &drops)) })
        .await
        .unwrap();
    clones.store(0, SeqCst);
    let mut hit = Probe::new(flight.run(1, || async { Ok(Bomb::new(2, &clones, &drops)) }));
    assert!(panics(|| hit.poll()));
    assert_eq!(flight.stats().hits, 0);
}

#[tokio::test]
async fn a_lone_caller_of_a_table_that_stores_nothing_clones_nothing() {
    // Nobody else holds the flight, so its result is not cloned for
    // waiters: a value whose clone would panic comes back whole.
    let flight: SingleFlight<u32, Bomb> = SingleFlight::new();
    let (clones, drops) = budgets();
    clones.store(0, SeqCst);
    let v = flight
        .run(1, || async { Ok(Bomb::new(1, &clones, &drops)) })
        .await
        .unwrap();
    assert_eq!(v.id, 1);
}

#[tokio::test]
async fn a_lone_detached_caller_of_a_table_that_stores_nothing_clones_nothing() {
    // The task hands its result to the caller that spawned it: moved, not
    // copied (a response with its headers, in the HTTP layer).
    let flight: SingleFlight<u32, Bomb> = SingleFlight::new();
    let (clones, drops) = budgets();
    clones.store(0, SeqCst);
    let (c, d) = (Arc::clone(&clones), Arc::clone(&drops));
    let v = flight
        .run_detached(1, move || async move { Ok(Bomb::new(1, &c, &d)) })
        .await
        .unwrap();
    assert_eq!(v.id, 1);
}

#[tokio::test]
async fn the_last_waiter_takes_the_shared_copy_instead_of_cloning_it() {
    let flight: SingleFlight<u32, Bomb> = SingleFlight::new();
    let (clones, drops) = budgets();
    let gate = Gate::new();
    let call = |id| {
        flight.run(1, {
            let (c, d, gate) = (&clones, &drops, &gate);
            move || async move {
                gate.wait().await;
                Ok(Bomb::new(id, c, d))
            }
        })
    };
    let mut leader = Probe::new(call(1));
    let mut waiters = [Probe::new(call(2)), Probe::new(call(3))];
    leader.pending();
    waiters.iter_mut().for_each(Probe::pending);
    // One copy for the waiters to share; the first clones it, the last
    // takes it: a second clone would panic.
    clones.store(2, SeqCst);
    gate.open();
    assert_eq!(leader.ready().unwrap().id, 1);
    for w in &mut waiters {
        assert_eq!(w.ready().unwrap().id, 1);
    }
    assert_eq!(
        clones.load(SeqCst),
        0,
        "two clones: the shared copy, the first waiter's"
    );
}
