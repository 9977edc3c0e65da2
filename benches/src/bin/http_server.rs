//! Issue 9's load-test server: the payments service of
//! `idem-http/examples/payments.rs`, bare or behind idem-http's
//! `Idempotency-Key` layer, for `benches/http_load.sh` (wrk on loopback).
//!
//! ```sh
//! cargo run --release -p idem-benches --bin http_server -- --variant bare
//! cargo run --release -p idem-benches --bin http_server -- --variant idem-memory --port 8080
//! cargo run --release -p idem-benches --bin http_server -- --variant idem-redis --redis redis://127.0.0.1:6379/
//! ```
//!
//! Flags: `--variant bare|idem-memory|idem-redis`, `--port N` (0, the
//! default: a free one), `--redis URL`, `--workers N` (tokio workers; 0,
//! the default: one per CPU), `--work-ms N` (the slow route's handler, 5),
//! `--storm-ms N` (the storm route's handler, 2000).
//!
//! Routes: `POST /payments` (the handler answers at once), `POST
//! /payments/slow` (after `--work-ms`), `POST /payments/storm` (after
//! `--storm-ms`), `GET /stats` (the handler's calls per route, JSON).
//! With a layer, the first two are behind the example's layer (keys
//! required, scoped by user, concurrent duplicates rejected with `409`)
//! and the storm route behind one in wait mode (duplicates get the
//! running request's response). Prints `listening on ADDR` when ready.

use std::time::Duration;

use idem::store::MemoryStore;
use idem_benches::http::app::{self, flag, Ledger};
use idem_benches::http::layers::{protect, WAIT};
use idem_http::Concurrent;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let variant: String = flag(&args, "--variant", "bare".to_string());
    let port: u16 = flag(&args, "--port", 0);
    let workers: usize = flag(&args, "--workers", 0);
    let ledger = Ledger::new(
        Duration::from_millis(flag(&args, "--work-ms", 5)),
        Duration::from_millis(flag(&args, "--storm-ms", 2000)),
    );
    app::runtime(workers).block_on(async move {
        let router = match variant.as_str() {
            "bare" => app::router(ledger, |r| r, |r| r),
            "idem-memory" => app::router(
                ledger,
                protect(MemoryStore::new(), "payments", Concurrent::Reject),
                protect(MemoryStore::new(), "storm", WAIT),
            ),
            "idem-redis" => {
                let url: String = flag(&args, "--redis", "redis://127.0.0.1:6379/".to_string());
                let conn = redis::Client::open(url.as_str())?
                    .get_connection_manager()
                    .await
                    .map_err(|e| format!("cannot reach Redis at {url}: {e}"))?;
                let store = idem_redis::RedisStore::new(conn);
                app::router(
                    ledger,
                    protect(store.clone(), "payments", Concurrent::Reject),
                    protect(store, "storm", WAIT),
                )
            }
            other => {
                return Err(
                    format!("unknown --variant {other:?} (bare, idem-memory, idem-redis)").into(),
                )
            }
        };
        app::serve(router, port).await?;
        Ok(())
    })
}
