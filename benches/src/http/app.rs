//! The service under load: the handler and the authentication of
//! `idem-http/examples/payments.rs` (JSON in; `201`, `Location` and JSON
//! out), on three routes that differ only in how long the handler works,
//! and a count of the handler's calls per route.
//!
//! Shared, by `#[path]`, with the `idempotent` crate's server
//! (`benches/http-peer`), so that every variant serves the same handler:
//! it uses nothing of this crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Who is calling: set by the authentication middleware from
/// `Authorization: Bearer <user>`, read by a layer's scope hook.
#[derive(Debug, Clone)]
pub struct User(
    /// The user's name.
    pub String,
);

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

/// How long each route's handler works (a `tokio` sleep: a call to the
/// card network), and how often it ran.
#[derive(Debug, Clone)]
pub struct Ledger {
    next: Arc<AtomicU64>,
    calls: Arc<[AtomicU64; 3]>,
    work: Duration,
    storm_work: Duration,
}

const FAST: usize = 0;
const SLOW: usize = 1;
const STORM: usize = 2;

impl Ledger {
    /// A ledger whose slow route's handler works `work`, and the storm
    /// route's `storm_work`.
    pub fn new(work: Duration, storm_work: Duration) -> Self {
        Self {
            next: Arc::default(),
            calls: Arc::default(),
            work,
            storm_work,
        }
    }

    async fn charge(&self, route: usize, pause: Duration, c: Charge) -> Response {
        self.calls[route].fetch_add(1, Ordering::Relaxed);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
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
}

async fn charge(State(l): State<Ledger>, Json(c): Json<Charge>) -> Response {
    l.charge(FAST, Duration::ZERO, c).await
}

async fn charge_slow(State(l): State<Ledger>, Json(c): Json<Charge>) -> Response {
    let pause = l.work;
    l.charge(SLOW, pause, c).await
}

async fn charge_storm(State(l): State<Ledger>, Json(c): Json<Charge>) -> Response {
    let pause = l.storm_work;
    l.charge(STORM, pause, c).await
}

/// `{"fast":N,"slow":N,"storm":N}`: the handler's calls per route.
async fn stats(State(l): State<Ledger>) -> String {
    let [fast, slow, storm] = &*l.calls;
    format!(
        r#"{{"fast":{},"slow":{},"storm":{}}}"#,
        fast.load(Ordering::Relaxed),
        slow.load(Ordering::Relaxed),
        storm.load(Ordering::Relaxed)
    )
}

/// The example's stand-in for authentication: `Authorization: Bearer <user>`.
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

/// The routes: `POST /payments` (the handler at once) and
/// `/payments/slow` (after `work`) behind `protect`, `POST /payments/storm`
/// (after `storm_work`) behind `protect_storm`, authentication in front of
/// both (as in the example: authentication first, then idempotency), and
/// `GET /stats`, unprotected.
pub fn router(
    ledger: Ledger,
    protect: impl FnOnce(Router) -> Router,
    protect_storm: impl FnOnce(Router) -> Router,
) -> Router {
    let payments = Router::new()
        .route("/payments", post(charge))
        .route("/payments/slow", post(charge_slow))
        .with_state(ledger.clone());
    let storm = Router::new()
        .route("/payments/storm", post(charge_storm))
        .with_state(ledger.clone());
    protect(payments)
        .merge(protect_storm(storm))
        .layer(middleware::from_fn(authenticate))
        .merge(Router::new().route("/stats", get(stats)).with_state(ledger))
}

/// Serves `router` on 127.0.0.1:`port` (0: any free port) with a listen
/// backlog for a 10,000-connection storm and `TCP_NODELAY`, and prints
/// `listening on ADDR` once it accepts.
pub async fn serve(router: Router, port: u16) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(([127, 0, 0, 1], port).into())?;
    let listener = socket.listen(16_384)?;
    println!("listening on {}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await
}

/// The value of `--name` in `args`, parsed, or `default`.
pub fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T
where
    T::Err: std::fmt::Display,
{
    match args.iter().position(|a| a == name) {
        None => default,
        Some(i) => {
            let v = args
                .get(i + 1)
                .unwrap_or_else(|| panic!("{name} needs a value"));
            v.parse().unwrap_or_else(|e| panic!("{name} {v}: {e}"))
        }
    }
}

/// A multi-thread runtime with `workers` workers (0: one per CPU).
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        b.worker_threads(workers);
    }
    b.enable_all().build().expect("a tokio runtime")
}
