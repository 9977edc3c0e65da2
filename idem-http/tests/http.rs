//! Issue 9: the layer in a real axum server, driven by a real client over
//! loopback, on HTTP/1.1 and HTTP/2, with the handler's calls counted.

mod support;

use std::time::Duration;

use axum::http::{header, StatusCode};
use idem::store::MemoryStore;
use idem_http::{Concurrent, IdempotencyLayer};
use support::{post, user, App, Conn, Proto, Server};

const PROTOS: [Proto; 2] = [Proto::Http1, Proto::Http2];

fn layer() -> IdempotencyLayer<MemoryStore> {
    IdempotencyLayer::builder(MemoryStore::new())
        .scope(user)
        .max_request_body(10_000)
        .max_response_body(50_000)
        .build()
        .unwrap()
}

async fn serve(app: &App, layer: IdempotencyLayer<MemoryStore>) -> Server {
    Server::start(app.router(layer)).await
}

#[tokio::test]
async fn a_retry_gets_the_recorded_response_without_its_cookie_or_date() {
    for proto in PROTOS {
        let app = App::open();
        let server = serve(&app, layer()).await;
        let mut conn = Conn::open(server.addr, proto).await;
        let first = conn
            .send(post("/payments", Some(b"k1"), "alice", r#"{"cents":1250}"#))
            .await;
        assert_eq!(first.status, StatusCode::CREATED, "{proto:?}");
        assert!(!first.replayed());
        assert!(
            first.headers.contains_key(header::SET_COOKIE),
            "the first response is the handler's own"
        );
        // The same request again, its JSON written differently: a replay.
        let again = conn
            .send(post(
                "/payments",
                Some(b"k1"),
                "alice",
                "{ \"cents\": 1250 }",
            ))
            .await;
        assert_eq!(app.calls(), 1, "{proto:?}");
        assert_eq!(again.status, StatusCode::CREATED);
        assert_eq!(again.body, first.body);
        assert_eq!(again.headers[header::LOCATION], "/payments/1");
        assert_eq!(again.headers[header::CONTENT_TYPE], "application/json");
        assert!(again.replayed());
        assert!(
            !again.headers.contains_key(header::SET_COOKIE),
            "{:?}",
            again.headers
        );
        assert_eq!(first.headers[header::DATE], support::RECORDED_DATE);
        assert_ne!(
            again.headers[header::DATE],
            support::RECORDED_DATE,
            "hyper's own, fresh"
        );
        // The connection still carries requests (the replay read the body).
        let other = conn
            .send(post("/payments", Some(b"k2"), "alice", "{}"))
            .await;
        assert_eq!(other.status, StatusCode::CREATED);
        assert_eq!(app.calls(), 2);
    }
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused_with_422() {
    for proto in PROTOS {
        let app = App::open();
        let server = serve(&app, layer()).await;
        let mut conn = Conn::open(server.addr, proto).await;
        conn.send(post("/payments", Some(b"k"), "alice", r#"{"cents":1250}"#))
            .await;
        let reused = conn
            .send(post("/payments", Some(b"k"), "alice", r#"{"cents":9999}"#))
            .await;
        assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY, "{proto:?}");
        assert_eq!(
            reused.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let problem: serde_json::Value = serde_json::from_slice(&reused.body).unwrap();
        assert!(
            problem["type"].as_str().unwrap().ends_with("#key-reused"),
            "{problem}"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains("new key"),
            "{problem}"
        );
        // Another path with the same key is another request too.
        let elsewhere = conn
            .send(post(
                "/status/201",
                Some(b"k"),
                "alice",
                r#"{"cents":1250}"#,
            ))
            .await;
        assert_eq!(elsewhere.status, StatusCode::CREATED);
        assert_eq!(app.calls(), 2);
    }
}

#[tokio::test]
async fn keys_are_validated() {
    for proto in PROTOS {
        let app = App::open();
        let server = serve(&app, layer()).await;
        let mut conn = Conn::open(server.addr, proto).await;
        let long = "k".repeat(256);
        let bad: [&[u8]; 5] = [
            b"",
            b"a b",
            "caf\u{e9}".as_bytes(),
            long.as_bytes(),
            b"\"open",
        ];
        for key in bad {
            let r = conn.send(post("/payments", Some(key), "alice", "{}")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{proto:?} {key:?}");
            let problem: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert!(problem["type"].as_str().unwrap().ends_with("#key-invalid"));
        }
        assert_eq!(app.calls(), 0);
        let max = "k".repeat(255);
        let r = conn
            .send(post("/payments", Some(max.as_bytes()), "alice", "{}"))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        // A structured-field string is the same key as the bare value.
        let quoted = format!("\"{max}\"");
        let r = conn
            .send(post("/payments", Some(quoted.as_bytes()), "alice", "{}"))
            .await;
        assert!(r.replayed());
        assert_eq!(app.calls(), 1);
    }
}

#[tokio::test]
async fn missing_keys_pass_through_or_are_required() {
    let app = App::open();
    let optional = serve(&app, layer()).await;
    let mut conn = Conn::open(optional.addr, Proto::Http1).await;
    conn.send(post("/payments", None, "alice", "{}")).await;
    conn.send(post("/payments", None, "alice", "{}")).await;
    assert_eq!(app.calls(), 2, "no key, no protection");

    let required = IdempotencyLayer::builder(MemoryStore::new())
        .scope(user)
        .require_key(true)
        .build()
        .unwrap();
    let app = App::open();
    let server = serve(&app, required).await;
    let mut conn = Conn::open(server.addr, Proto::Http1).await;
    let r = conn.send(post("/payments", None, "alice", "{}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let problem: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(problem["type"].as_str().unwrap().ends_with("#key-missing"));
    // Safe methods pass through untouched, key or not.
    let get = axum::http::Request::get("/payments")
        .header(header::HOST, "test")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(conn.send(get).await.status, StatusCode::OK);
    assert_eq!(app.calls(), 1);
}

#[tokio::test]
async fn the_expiry_policy_can_be_sent_as_a_header() {
    let published = IdempotencyLayer::builder(MemoryStore::new())
        .scope(user)
        .retain(Duration::from_secs(3600))
        .retention_header(Some(header::HeaderName::from_static(
            "idempotency-retention",
        )))
        .build()
        .unwrap();
    let app = App::open();
    let server = serve(&app, published).await;
    let mut conn = Conn::open(server.addr, Proto::Http1).await;
    for _ in 0..2 {
        let r = conn
            .send(post("/payments", Some(b"k"), "alice", "{}"))
            .await;
        assert_eq!(r.headers["idempotency-retention"], "3600");
    }
}

#[tokio::test]
async fn two_principals_with_one_key_get_two_executions() {
    let app = App::open();
    let server = serve(&app, layer()).await;
    let mut conn = Conn::open(server.addr, Proto::Http1).await;
    let a = conn
        .send(post("/payments", Some(b"same"), "alice", "{}"))
        .await;
    let b = conn
        .send(post("/payments", Some(b"same"), "bob", "{}"))
        .await;
    assert_eq!(app.calls(), 2);
    assert_ne!(a.body, b.body);
    assert!(!b.replayed());
}

#[tokio::test]
async fn what_is_recorded_and_what_is_released() {
    let app = App::open();
    let server = serve(&app, layer()).await;
    let mut conn = Conn::open(server.addr, Proto::Http1).await;
    for (code, recorded) in [
        (200, true),
        (404, true),
        (422, true),
        (409, false),
        (429, false),
        (500, false),
    ] {
        let path = format!("/status/{code}");
        let key = format!("status-{code}");
        let before = app.calls();
        let first = conn
            .send(post(&path, Some(key.as_bytes()), "alice", "{}"))
            .await;
        assert_eq!(first.status.as_u16(), code);
        let again = conn
            .send(post(&path, Some(key.as_bytes()), "alice", "{}"))
            .await;
        assert_eq!(again.status.as_u16(), code);
        let runs = app.calls() - before;
        assert_eq!(runs, if recorded { 1 } else { 2 }, "{code}");
        assert_eq!(again.replayed(), recorded, "{code}");
    }
}

#[tokio::test]
async fn a_handler_that_panics_gets_500_and_its_key_is_released() {
    let app = App::open();
    let server = serve(&app, layer()).await;
    let mut conn = Conn::open(server.addr, Proto::Http1).await;
    let r = conn.send(post("/panic", Some(b"p"), "alice", "{}")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let problem: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(problem["type"]
        .as_str()
        .unwrap()
        .ends_with("#handler-panicked"));
    let r = conn.send(post("/panic", Some(b"p"), "alice", "{}")).await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, "run 2".to_string()));
    assert_eq!(app.calls(), 2);
}

#[tokio::test]
async fn bodies_over_the_caps() {
    for proto in PROTOS {
        let app = App::open();
        let server = serve(&app, layer()).await;
        let mut conn = Conn::open(server.addr, proto).await;
        // A request body over 10 kB: 413, nothing claimed, handler not called.
        let big = "x".repeat(20_000);
        let r = conn
            .send(post("/payments", Some(b"big-request"), "alice", &big))
            .await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{proto:?}");
        assert_eq!(app.calls(), 0);
        // A response body over 50 kB: passed on whole, not recorded.
        let mut conn = Conn::open(server.addr, proto).await;
        for run in 1..=2 {
            let r = conn
                .send(post("/big", Some(b"big-response"), "alice", "{}"))
                .await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.body.len(), 100_000);
            assert!(!r.replayed());
            assert_eq!(app.calls(), run);
        }
    }
}

#[tokio::test]
async fn concurrent_duplicates_are_rejected_while_the_first_runs() {
    let app = App::held();
    let server = serve(&app, layer()).await;
    let first = tokio::spawn({
        let addr = server.addr;
        async move {
            let mut conn = Conn::open(addr, Proto::Http1).await;
            conn.send(post("/payments", Some(b"storm"), "alice", "{}"))
                .await
        }
    });
    app.started.notified().await;
    // 999 duplicates on HTTP/2 streams, while the first is held.
    let mut conn = Conn::open(server.addr, Proto::Http2).await;
    let mut calls = Vec::new();
    for _ in 0..999 {
        let Conn::Http2(send) = &mut conn else {
            unreachable!()
        };
        let mut send = send.clone();
        calls.push(tokio::spawn(async move {
            send.ready().await.unwrap();
            let r = send
                .send_request(post("/payments", Some(b"storm"), "alice", "{}"))
                .await
                .unwrap();
            let retry_after = r.headers().get(header::RETRY_AFTER).cloned();
            (r.status(), retry_after)
        }));
    }
    // Bounded: duplicates that joined the held request instead of being
    // refused would wait for the gate forever.
    tokio::time::timeout(Duration::from_secs(60), async {
        for c in calls {
            let (status, retry_after) = c.await.unwrap();
            assert_eq!(status, StatusCode::CONFLICT);
            assert!(retry_after.is_some());
        }
    })
    .await
    .expect("every duplicate refused while the first is held");
    app.gate.open();
    assert_eq!(first.await.unwrap().status, StatusCode::CREATED);
    assert_eq!(app.calls(), 1);
}

#[tokio::test]
async fn in_wait_mode_a_thousand_duplicates_share_one_execution() {
    let wait = IdempotencyLayer::builder(MemoryStore::new())
        .scope(user)
        .concurrent(Concurrent::Wait {
            timeout: Duration::from_secs(30),
        })
        .build()
        .unwrap();
    let app = App::held();
    let server = serve(&app, wait).await;
    let mut calls = Vec::new();
    for _ in 0..1_000 {
        let addr = server.addr;
        calls.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr, Proto::Http1).await;
            conn.send(post("/payments", Some(b"storm"), "alice", "{}"))
                .await
        }));
    }
    app.started.notified().await;
    app.gate.open();
    let mut bodies = std::collections::HashSet::new();
    for c in calls {
        let r = c.await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED);
        bodies.insert(r.body);
    }
    assert_eq!(bodies.len(), 1, "1,000 identical responses");
    assert_eq!(app.calls(), 1);
}

#[tokio::test]
async fn a_client_that_disconnects_does_not_cancel_the_handler() {
    let wait = IdempotencyLayer::builder(MemoryStore::new())
        .scope(user)
        .concurrent(Concurrent::Wait {
            timeout: Duration::from_secs(30),
        })
        .build()
        .unwrap();
    let app = App::held();
    let server = serve(&app, wait).await;
    let client = tokio::spawn({
        let addr = server.addr;
        async move {
            let mut conn = Conn::open(addr, Proto::Http1).await;
            conn.send(post("/payments", Some(b"gone"), "alice", "{}"))
                .await
        }
    });
    app.started.notified().await;
    // The client gives up: its connection closes mid-handler.
    client.abort();
    let _ = client.await;
    app.gate.open();
    let mut conn = Conn::open(server.addr, Proto::Http1).await;
    let retry = conn
        .send(post("/payments", Some(b"gone"), "alice", "{}"))
        .await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert!(retry.replayed());
    assert_eq!(retry.headers[header::LOCATION], "/payments/1");
    assert_eq!(app.calls(), 1, "the handler ran once");
}
