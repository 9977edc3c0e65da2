//! The load test's service, called in process: what `http_load.sh`'s
//! tables rest on. The handler's calls are counted per route (`GET
//! /stats`); bare runs it for every request; idem's layer runs it once per
//! key and marks replays; its storm route (wait mode) gives every
//! concurrent duplicate the one execution's response.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use idem::store::MemoryStore;
use idem_benches::http::app::{self, Ledger};
use idem_benches::http::inproc::{exchange, request, request_to, send};
use idem_benches::http::layers::{protect, WAIT};
use idem_http::Concurrent;

fn router(layered: bool) -> Router {
    let ledger = Ledger::new(Duration::from_millis(5), Duration::from_secs(2));
    if layered {
        app::router(
            ledger,
            protect(MemoryStore::new(), "payments", Concurrent::Reject),
            protect(MemoryStore::new(), "storm", WAIT),
        )
    } else {
        app::router(ledger, |r| r, |r| r)
    }
}

async fn stats(r: &mut Router) -> String {
    let req = Request::get("/stats").body(Body::empty()).unwrap();
    String::from_utf8(send(r, req).await.to_vec()).unwrap()
}

#[tokio::test]
async fn bare_runs_the_handler_for_every_request() {
    let mut r = router(false);
    let first = send(&mut r, request("k")).await;
    let (status, headers, second) = exchange(&mut r, request("k")).await;
    assert_eq!(status, 201);
    assert!(headers.get("idempotent-replayed").is_none());
    assert_ne!(first, second, "two payments, two ids");
    assert_eq!(stats(&mut r).await, r#"{"fast":2,"slow":0,"storm":0}"#);
}

#[tokio::test]
async fn the_layer_runs_a_key_once_and_marks_replays() {
    let mut r = router(true);
    let (status, headers, first) = exchange(&mut r, request("k")).await;
    assert_eq!(status, 201);
    assert_eq!(headers["location"], "/payments/1");
    assert!(headers.get("idempotent-replayed").is_none());
    let (status, headers, again) = exchange(&mut r, request("k")).await;
    assert_eq!(status, 201);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(headers["location"], "/payments/1");
    assert_eq!(first, again);
    send(&mut r, request("other")).await;
    assert_eq!(stats(&mut r).await, r#"{"fast":2,"slow":0,"storm":0}"#);
}

/// The storm case in small: 100 duplicates while the handler sleeps (a
/// paused clock: it advances only once every request waits).
#[tokio::test(start_paused = true)]
async fn a_storm_in_wait_mode_runs_the_handler_once() {
    let r = router(true);
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let mut r = r.clone();
            tokio::spawn(async move { exchange(&mut r, request_to("/payments/storm", "s")).await })
        })
        .collect();
    let mut bodies = std::collections::HashSet::new();
    for call in calls {
        let (status, _, body) = call.await.unwrap();
        assert_eq!(status, 201);
        bodies.insert(body);
    }
    assert_eq!(bodies.len(), 1, "every duplicate got the one payment");
    assert_eq!(
        stats(&mut r.clone()).await,
        r#"{"fast":0,"slow":0,"storm":1}"#
    );
}
