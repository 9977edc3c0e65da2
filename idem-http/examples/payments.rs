//! A payments API with the `Idempotency-Key` layer.
//!
//! ```sh
//! cargo run -p idem-http --example payments                 # serves on 127.0.0.1:3000, prints curl lines
//! cargo run -p idem-http --example payments -- --demo       # sends them itself, prints what came back
//! cargo run -p idem-http --example payments -- --redis redis://127.0.0.1:6379/ --port 3001
//! ```
//!
//! With `--redis`, several instances (other ports) share their keys: a
//! retry sent to another instance gets the first one's response.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use idem::store::{MemoryStore, Store};
use idem_http::{Concurrent, IdempotencyLayer};
use serde::{Deserialize, Serialize};

/// Who is calling: set by the authentication middleware, read by the
/// layer's scope.
#[derive(Clone)]
struct User(String);

#[derive(Deserialize)]
struct Charge {
    amount_cents: u64,
    currency: String,
}

#[derive(Serialize)]
struct Payment {
    id: u64,
    amount_cents: u64,
    currency: String,
}

#[derive(Clone, Default)]
struct Ledger {
    next: Arc<AtomicU64>,
}

async fn charge(State(ledger): State<Ledger>, Json(c): Json<Charge>) -> Response {
    // The card network takes its time: long enough for a double click.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = ledger.next.fetch_add(1, Ordering::SeqCst) + 1;
    println!(
        "[server] charged {} {} (payment {id})",
        c.amount_cents, c.currency
    );
    let location = format!("/payments/{id}");
    let payment = Payment {
        id,
        amount_cents: c.amount_cents,
        currency: c.currency,
    };
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(payment),
    )
        .into_response()
}

/// A stand-in for real authentication: `Authorization: Bearer <user>`.
async fn authenticate(mut req: Request, next: Next) -> Response {
    let user = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    match user {
        Some(user) => {
            req.extensions_mut().insert(User(user));
            next.run(req).await
        }
        None => (
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer <user>\n",
        )
            .into_response(),
    }
}

fn app<S: Store>(store: S) -> Router {
    let idempotency = IdempotencyLayer::builder(store)
        .namespace("payments-example")
        .scope(|req| req.extensions.get::<User>().map(|u| u.0.clone()))
        .require_key(true)
        .retain(Duration::from_secs(24 * 3600))
        .concurrent(Concurrent::Reject)
        .build()
        .expect("valid settings");
    Router::new()
        .route("/payments", post(charge))
        .with_state(Ledger::default())
        // Layers run outside in: authentication first, then idempotency.
        .layer(idempotency)
        .layer(middleware::from_fn(authenticate))
}

struct Args {
    redis: Option<String>,
    port: u16,
    demo: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        redis: None,
        port: 3000,
        demo: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--redis" => args.redis = Some(it.next().ok_or("--redis needs a URL")?),
            "--port" => {
                let p = it.next().ok_or("--port needs a number")?;
                args.port = p.parse().map_err(|e| format!("--port {p}: {e}"))?;
            }
            "--demo" => args.demo = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (try --demo, --port N, --redis URL)"
                ))
            }
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = args()?;
    let router = match &args.redis {
        Some(url) => {
            let conn = redis::Client::open(url.as_str())?
                .get_connection_manager()
                .await
                .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
            app(idem_redis::RedisStore::new(conn))
        }
        None => app(MemoryStore::new()),
    };
    let port = if args.demo { 0 } else { args.port };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    if args.demo {
        demo(addr).await?;
        return Ok(());
    }
    let url = format!("http://{addr}/payments");
    let key = format!("order-{}", std::process::id());
    println!("serving on http://{addr}; try:\n");
    let curl = |body: &str| {
        format!("curl -si {url} -H 'Authorization: Bearer alice' -H 'Idempotency-Key: {key}' -H 'Content-Type: application/json' -d '{body}'")
    };
    let body = r#"{"amount_cents":1250,"currency":"EUR"}"#;
    println!("# a first call: 201, charged once\n{}\n", curl(body));
    println!(
        "# the same again: the recorded 201, Idempotent-Replayed: true, no second charge\n{}\n",
        curl(body)
    );
    println!(
        "# the same key, another amount: 422\n{}\n",
        curl(r#"{"amount_cents":9999,"currency":"EUR"}"#)
    );
    println!(
        "# a double click with a new key: one 201, one 409 with Retry-After\n({} &) ; {}\n",
        curl(body).replace(&key, "double-click"),
        curl(body).replace(&key, "double-click")
    );
    server.await??;
    Ok(())
}

/// Sends the four requests of the curl lines, and prints what came back.
async fn demo(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let send = |key: &'static str, cents: u64| async move {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let body = format!(r#"{{"amount_cents":{cents},"currency":"EUR"}}"#);
        let req = hyper::Request::post("/payments")
            .header(header::HOST, "localhost")
            .header(header::AUTHORIZATION, "Bearer alice")
            .header("idempotency-key", key)
            .header(header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        let r = send.send_request(req).await?;
        let status = r.status();
        let replayed = r.headers().contains_key("idempotent-replayed");
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await?
            .to_bytes();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(format!(
            "{status}{} {}",
            if replayed { " (replayed)" } else { "" },
            String::from_utf8_lossy(&body)
        ))
    };
    println!("first call:       {}", send("order-1", 1250).await?);
    println!("retry:            {}", send("order-1", 1250).await?);
    println!("other amount:     {}", send("order-1", 9999).await?);
    let (a, b) = tokio::join!(send("double-click", 500), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send("double-click", 500).await
    });
    println!("double click:     {}\n                  {}", a?, b?);
    Ok(())
}
