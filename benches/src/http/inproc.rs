//! The load test's service called in process (no sockets, no HTTP
//! parsing), and idem-http's steps one at a time, reproduced with idem's
//! public API: what the bench `http_layer` times and the binary
//! `http_allocs` counts allocations of.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use bytes::Bytes;
use idem::durable::{Codec, Durable, DurableError, DurableOutcome};
use idem::store::{Claimed, MemoryStore, Owner, Store, StoreKey};
use idem::Fingerprint;
use idem_http::Concurrent;

use super::{app, layers};

/// The request body of every call: the example's charge.
pub const BODY: &str = r#"{"amount_cents":1250,"currency":"EUR"}"#;

/// How many keys replays cycle over.
pub const REPLAY_KEYS: u64 = 1_000;

/// `POST /payments` as alice, with `key`.
pub fn request(key: &str) -> Request<Body> {
    request_to("/payments", key)
}

/// `POST path` as alice, with `key`.
pub fn request_to(path: &str, key: &str) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, "Bearer alice")
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(BODY))
        .expect("a valid request")
}

/// One request through `router`, its response body read whole.
///
/// # Panics
///
/// If the response is not a `2xx`.
pub async fn send(router: &mut Router, req: Request<Body>) -> Bytes {
    let (status, _, body) = exchange(router, req).await;
    assert!(status.is_success(), "{status}");
    body
}

/// One request through `router`: the response's status, headers and whole
/// body.
pub async fn exchange(
    router: &mut Router,
    req: Request<Body>,
) -> (axum::http::StatusCode, axum::http::HeaderMap, Bytes) {
    use tower_service::Service;
    std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(router, cx))
        .await
        .expect("a router is always ready");
    let (parts, body) = router.call(req).await.expect("infallible").into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("a whole body");
    (parts.status, parts.headers, body)
}

/// The service, bare and behind idem's layer on a `MemoryStore` (the
/// server's `bare` and `idem-memory`), handlers answering at once.
pub fn routers() -> [(&'static str, Router); 2] {
    let ledger = || app::Ledger::new(Duration::ZERO, Duration::ZERO);
    [
        ("bare", app::router(ledger(), |r| r, |r| r)),
        (
            "idem-memory",
            app::router(
                ledger(),
                layers::protect(MemoryStore::new(), "payments", Concurrent::Reject),
                layers::protect(MemoryStore::new(), "storm", layers::WAIT),
            ),
        ),
    ]
}

/// A response as the layer records it, reduced to a status and a body.
#[derive(Debug, Clone)]
pub struct Recorded {
    status: u16,
    body: Bytes,
}

/// The handler's response of the example, as a [`Recorded`].
pub fn recorded() -> Recorded {
    Recorded {
        status: 201,
        body: Bytes::from_static(br#"{"id":1,"amount_cents":1250,"currency":"EUR"}"#),
    }
}

/// Raw bytes, as idem-http's codec (no JSON).
#[derive(Debug, Clone, Copy)]
pub struct Raw;

impl Codec<Recorded> for Raw {
    fn encode(&self, r: &Recorded) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(2 + r.body.len());
        out.extend_from_slice(&r.status.to_be_bytes());
        out.extend_from_slice(&r.body);
        Ok(out)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Recorded, String> {
        match bytes {
            [a, b, body @ ..] => Ok(Recorded {
                status: u16::from_be_bytes([*a, *b]),
                body: Bytes::copy_from_slice(body),
            }),
            _ => Err("a truncated record".to_string()),
        }
    }
}

impl Codec<String> for Raw {
    fn encode(&self, e: &String) -> Result<Vec<u8>, String> {
        Ok(e.as_bytes().to_vec())
    }

    fn decode(&self, bytes: &[u8]) -> Result<String, String> {
        String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
    }
}

/// The executor the layer is built on, with the layer's settings: a
/// `MemoryStore`, a day's retention.
pub fn durable() -> Durable<MemoryStore, Recorded, String, Raw> {
    Durable::builder(MemoryStore::new())
        .namespace("payments")
        .retain(Duration::from_secs(24 * 3600))
        .codec(Raw)
        .build()
        .expect("valid settings")
}

/// The result of one durable call.
pub type Answer = (Result<Recorded, DurableError<String>>, DurableOutcome);

/// One call as the layer makes it: `run_detached`, the work on a task of
/// its own.
pub async fn durable_detached(
    d: &Durable<MemoryStore, Recorded, String, Raw>,
    key: &str,
    fp: Fingerprint,
) -> Answer {
    d.call(key)
        .fingerprint(fp)
        .run_detached(|_| async { Ok(recorded()) })
        .await
}

/// One call with `run`: the work on the caller's task.
pub async fn durable_inline(
    d: &Durable<MemoryStore, Recorded, String, Raw>,
    key: &str,
    fp: Fingerprint,
) -> Answer {
    d.call(key)
        .fingerprint(fp)
        .run(|_| async { Ok(recorded()) })
        .await
}

/// A claim and a completion of a fresh key on `store`.
///
/// # Panics
///
/// If the key was not fresh.
pub async fn claim_complete(store: &MemoryStore, key: &str, fp: Fingerprint, payload: &[u8]) {
    let sk = StoreKey {
        namespace: "payments",
        key,
    };
    let lease = match store
        .claim(sk, Some(fp), Owner::random(), Duration::from_secs(30))
        .await
    {
        Ok(Claimed::Leased(lease)) => lease,
        other => panic!("a fresh key: {other:?}"),
    };
    store
        .complete(sk, &lease, payload, Duration::from_secs(3600))
        .await
        .expect("completes");
}

/// A claim of a completed key on `store`: its record.
pub async fn claim_replay(store: &MemoryStore, key: &str, fp: Fingerprint) -> Claimed {
    let sk = StoreKey {
        namespace: "payments",
        key,
    };
    store
        .claim(sk, Some(fp), Owner::random(), Duration::from_secs(30))
        .await
        .expect("a memory store is always available")
}

/// The layer's fingerprint of the example's request with body `body`:
/// method, path, query, `Content-Type` and body (idem-http's
/// `fingerprint.rs`, reproduced).
pub fn fingerprint(body: &[u8]) -> Fingerprint {
    let headers: Vec<(&str, Vec<&[u8]>)> = vec![("content-type", vec![b"application/json"])];
    Fingerprint::of(&("POST", "/payments", None::<&str>, headers, body))
}

/// [`fingerprint`] of the body made canonical first, as the layer does
/// for JSON: parsed, then written with sorted keys and no whitespace.
pub fn canonical_fingerprint(body: &[u8]) -> Fingerprint {
    fingerprint(&idem_http::__canonical_json(body).expect("JSON"))
}
