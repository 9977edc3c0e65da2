//! Issue 9: two server instances sharing one real Redis run a key once, and
//! a store that is down answers `503` without calling the handler.

mod support;

use std::time::Duration;

use axum::http::{header, StatusCode};
use idem_http::{Concurrent, IdempotencyLayer};
use idem_redis::RedisStore;
use idem_tests::redis::Server as Redis;
use support::{post, user, App, Conn, Proto, Server};

async fn store(redis: &Redis) -> RedisStore<redis::aio::ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(1);
    let conn = redis::Client::open(format!("{}?protocol=resp3", redis.url()))
        .unwrap()
        .get_connection_manager_with_config(config)
        .await
        .unwrap();
    RedisStore::new(conn).prefix("idem-http-test")
}

async fn instance(redis: &Redis, app: &App) -> Server {
    instance_failing_open(redis, app, false).await
}

async fn instance_failing_open(redis: &Redis, app: &App, fail_open: bool) -> Server {
    let layer = IdempotencyLayer::builder(store(redis).await)
        .scope(user)
        .fail_open(fail_open)
        .concurrent(Concurrent::Wait {
            timeout: Duration::from_secs(30),
        })
        .build()
        .unwrap();
    Server::start(app.router(layer)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_run_a_key_once() {
    let redis = Redis::start();
    // One handler count for both instances: the service's one database.
    let app = App::held();
    let a = instance(&redis, &app).await;
    let b = instance(&redis, &app).await;
    let mut calls = Vec::new();
    for i in 0..100 {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        calls.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr, Proto::Http1).await;
            conn.send(post("/payments", Some(b"shared"), "alice", "{}"))
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
    assert_eq!(bodies.len(), 1);
    assert_eq!(app.calls(), 1, "one execution across two instances");
    // A later retry on either instance is a replay.
    let mut conn = Conn::open(b.addr, Proto::Http2).await;
    let r = conn
        .send(post("/payments", Some(b"shared"), "alice", "{}"))
        .await;
    assert!(r.replayed());
    assert_eq!(r.headers[header::LOCATION], "/payments/1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_answers_503_and_the_handler_does_not_run() {
    let mut redis = Redis::start();
    let app = App::open();
    let server = instance(&redis, &app).await;
    redis.kill();
    let mut conn = Conn::open(server.addr, Proto::Http1).await;
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        conn.send(post("/payments", Some(b"down"), "alice", "{}")),
    )
    .await
    .expect("no hang while the store is down");
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    let problem: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(problem["type"]
        .as_str()
        .unwrap()
        .ends_with("#store-unavailable"));
    assert_eq!(app.calls(), 0, "fail closed");
    // The connection still works.
    let get = axum::http::Request::get("/payments")
        .header(header::HOST, "test")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(conn.send(get).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_open_the_handler_runs_unrecorded_while_the_store_is_down() {
    let mut redis = Redis::start();
    let app = App::open();
    let server = instance_failing_open(&redis, &app, true).await;
    redis.kill();
    let mut conn = Conn::open(server.addr, Proto::Http1).await;
    for run in 1..=2 {
        let r = conn
            .send(post("/payments", Some(b"open"), "alice", "{}"))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert!(!r.replayed());
        assert_eq!(app.calls(), run, "unprotected while the store is down");
    }
}
