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
//! `--storm-ms N` (the storm route's handler, 2000), `--count-outcomes`
//! (count the layer's outcomes from its `tracing` events, served at `GET
//! /outcomes`; off by default, since it costs every request an event).
//!
//! Routes: `POST /payments` (the handler answers at once), `POST
//! /payments/slow` (after `--work-ms`), `POST /payments/storm` (after
//! `--storm-ms`), `GET /stats` (the handler's calls per route, JSON).
//! With a layer, the first two are behind the example's layer (keys
//! required, scoped by user, concurrent duplicates rejected with `409`)
//! and the storm route behind one in wait mode (duplicates get the
//! running request's response). Prints `listening on ADDR` when ready.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use idem::store::MemoryStore;
use idem_benches::http::app::{self, flag, Ledger};
use idem_benches::http::layers::{protect, WAIT};
use idem_http::Concurrent;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

/// Counts the `outcome` field of idem-http's events (`Executed`,
/// `Coalesced`, `Replayed`, `Waited`, `rejected`, …); ignores the rest.
#[derive(Clone, Default)]
struct Outcomes(Arc<Mutex<BTreeMap<String, u64>>>);

impl Outcomes {
    /// `Executed:1,Coalesced:9999,…`
    fn summary(&self) -> String {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}:{n}")).collect();
        parts.join(",")
    }
}

struct OutcomeField(Option<String>);

impl Visit for OutcomeField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "outcome" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "outcome" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl Subscriber for Outcomes {
    fn register_callsite(&self, m: &'static Metadata<'static>) -> Interest {
        if self.enabled(m) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.is_event() && m.target().starts_with("idem_http") && m.fields().field("outcome").is_some()
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut outcome = OutcomeField(None);
        event.record(&mut outcome);
        if let Some(o) = outcome.0 {
            *self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(o)
                .or_default() += 1;
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let variant: String = flag(&args, "--variant", "bare".to_string());
    let port: u16 = flag(&args, "--port", 0);
    let workers: usize = flag(&args, "--workers", 0);
    let outcomes = Outcomes::default();
    if args.iter().any(|a| a == "--count-outcomes") {
        tracing::subscriber::set_global_default(outcomes.clone())?;
    }
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
        let router = router.merge(
            Router::new().route("/outcomes", get(move || async move { outcomes.summary() })),
        );
        app::serve(router, port).await?;
        Ok(())
    })
}
