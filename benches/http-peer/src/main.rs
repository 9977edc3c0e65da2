//! Issue 9's load-test server, the peer: the payments service behind the
//! `idempotent` crate's axum layer on its memory store, with the same
//! handler, routes and flags as idem's `http_server` (`--variant` is
//! ignored). The crate has no wait mode: a duplicate of a running request
//! gets `409`, on the storm route too.
//!
//! ```sh
//! cargo build --release --ignore-rust-version --manifest-path benches/http-peer/Cargo.toml --target-dir target/http-peer
//! target/http-peer/release/http_server_idempotent --port 8080
//! ```

#![allow(dead_code)]

#[path = "../../src/http/app.rs"]
mod app;

use std::time::Duration;

use axum::Router;
use idempotent::memory::MemoryStore;
use idempotent::middleware::IdempotencyLayer;

use app::{flag, Ledger, User};

/// The crate's layer with the settings of idem's: keys required, scoped by
/// user, kept a day.
fn protect(store: MemoryStore) -> impl FnOnce(Router) -> Router {
    let layer = IdempotencyLayer::new(store)
        .scope(|req| req.extensions.get::<User>().map(|u| u.0.clone()))
        .require_key(true)
        .completed_ttl(Duration::from_secs(24 * 3600));
    move |r: Router| r.layer(layer)
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = flag(&args, "--port", 0);
    let workers: usize = flag(&args, "--workers", 0);
    let ledger = Ledger::new(
        Duration::from_millis(flag(&args, "--work-ms", 5)),
        Duration::from_millis(flag(&args, "--storm-ms", 2000)),
    );
    app::runtime(workers).block_on(async move {
        let router = app::router(
            ledger,
            protect(MemoryStore::builder().try_build()?),
            protect(MemoryStore::builder().try_build()?),
        );
        app::serve(router, port).await?;
        Ok(())
    })
}
