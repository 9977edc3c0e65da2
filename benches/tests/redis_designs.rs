//! The Redis report's designs and counters, on a server of the test's own:
//! what the report's verdicts rest on. Every design runs a key's work once
//! per first execution and never on a replay or in a storm; idem's
//! executor answers a replay with one `GET` and a storm in one process
//! with one claim; the counting connection sees every request.
//!
//! Needs `redis-server` on PATH (the test says how to install it).

use std::sync::Arc;
use std::time::Duration;

use idem_benches::redis::idem_designs::{IdemDurable, IdemStore, OneTripClaim};
use idem_benches::redis::naive::Naive;
use idem_benches::redis::peer::Peer;
use idem_benches::redis::server::Server;
use idem_benches::redis::stats;
use idem_benches::redis::workload::{self, race, Work};
use idem_benches::redis::{multiplexed, Design, Settings, Tally};
use idem_redis::RedisStore;

const SETTINGS: Settings = Settings {
    lease: Duration::from_secs(30),
    retain: Duration::from_secs(3600),
    wait: Duration::from_secs(30),
};

/// What one design did in each workload: (executions, server commands,
/// requests counted by the client, calls answered by a replay) for unique
/// keys, replays, and a storm.
async fn exercise<D: Design>(url: &str) -> [(u64, u64, u64, u64); 3] {
    let mut admin = multiplexed(url).await;
    // The designs share key names (the store's raw records are not the
    // executor's JSON ones): each starts on an empty server.
    stats::flush(&mut admin).await;
    let tally = Arc::new(Tally::default());
    let processes = vec![Arc::new(
        D::connect(url, SETTINGS, Arc::clone(&tally)).await,
    )];
    // The scripts loaded (a first EVALSHA answers NOSCRIPT), out of the counts.
    let warm = race(&processes, workload::unique("warm", 4, 4), Work::Ready).await;
    assert_eq!(warm.errors, 0, "{}: {:?}", D::name(), warm.first_error);
    let mut out = [(0, 0, 0, 0); 3];
    let plans = [
        workload::unique("k", 40, 4),
        workload::cycling("k", 40, 80, 4),
        workload::storm("storm", 300, 1),
    ];
    for (i, plan) in plans.into_iter().enumerate() {
        let work = if i == 2 {
            Work::Sleep(Duration::from_millis(20))
        } else {
            Work::Ready
        };
        tally.reset();
        stats::reset(&mut admin).await;
        let run = race(&processes, plan, work).await;
        assert_eq!(run.errors, 0, "{}: {:?}", D::name(), run.first_error);
        let commands = stats::commands(&mut admin).await;
        out[i] = (
            run.executions,
            commands.total(),
            tally.read()[0],
            run.hows[1],
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_design_runs_each_key_once_and_idem_answers_replays_and_storms_cheaply() {
    let server = Server::start();
    let url = server.url();
    let naive = exercise::<Naive>(&url).await;
    let peer = exercise::<Peer>(&url).await;
    let store = exercise::<IdemStore<RedisStore<idem_benches::redis::Conn>>>(&url).await;
    let durable = exercise::<IdemDurable<RedisStore<idem_benches::redis::Conn>>>(&url).await;
    let one_trip = exercise::<IdemDurable<OneTripClaim>>(&url).await;
    for (name, d) in [
        ("naive", naive),
        ("peer", peer),
        ("store", store),
        ("durable", durable),
        ("one trip", one_trip),
    ] {
        // 40 fresh keys: 40 executions; their 80 replays and the storm's
        // 300 callers: none more but the storm's one.
        assert_eq!((d[0].0, d[1].0, d[2].0), (40, 0, 1), "{name}");
    }
    // Round trips per first execution: 2 for naive, 3 for idem's store
    // (GET, claim, complete), 2 with the claim script alone.
    assert_eq!(naive[0].2, 80);
    assert_eq!(durable[0].2, 120);
    assert_eq!(one_trip[0].2, 80);
    // A replay: one GET, one round trip, one command.
    assert_eq!((durable[1].1, durable[1].2), (80, 80));
    assert_eq!((store[1].1, store[1].2), (80, 80));
    // A storm of 300 callers in one process: one GET, one claim script
    // (6 commands inside) and one complete script (4 inside); a caller
    // that starts after the work ended (on a slow machine) is a replay,
    // one GET.
    let late = durable[2].3;
    assert_eq!((durable[2].1, durable[2].2), (13 + late, 3 + late));
    assert!(naive[2].1 >= 300 && peer[2].1 >= 300, "{naive:?} {peer:?}");
}
