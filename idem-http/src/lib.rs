//! An `Idempotency-Key` layer for tower services (axum, hyper): a client's
//! retry of a `POST` gets the recorded response instead of a second
//! execution, and concurrent duplicates share one, in one process or across
//! every instance that shares a store.
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::post, Router};
//! use idem::store::MemoryStore;
//! use idem_http::{Concurrent, IdempotencyLayer};
//!
//! # fn user_id(_: &http::request::Parts) -> Option<String> { Some("alice".into()) }
//! let idempotency = IdempotencyLayer::builder(MemoryStore::new())
//!     // Whose key is it: the authenticated principal (from an extension
//!     // your authentication layer sets), so clients never share responses.
//!     .scope(|req| user_id(req))
//!     .retain(Duration::from_secs(24 * 3600))
//!     .concurrent(Concurrent::Reject) // 409 while the first request runs
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/payments", post(|| async { "charged" }))
//!     .layer(idempotency);
//! ```
//!
//! # What it does
//!
//! It follows the IETF draft "The Idempotency-Key HTTP Header Field"
//! (draft-ietf-httpapi-idempotency-key-header-06) and Stripe's practice.
//! For a request whose method it covers (`POST`, `PATCH`) and that carries
//! an `Idempotency-Key` (a structured-field string `"…"` or a bare value;
//! 1 to 255 visible ASCII characters, else `400`):
//!
//! 1. the body is read, up to a cap (`413` over it, before anything is
//!    claimed), and the request's **fingerprint** is taken: method, path,
//!    query, `Content-Type` (and the headers you choose) and body, JSON
//!    compared by value;
//! 2. the key is **claimed** under the scope (who asks), method and path,
//!    through [`idem::durable`]: a local table first (a storm of
//!    duplicates in one process makes one claim), then the store;
//! 3. a key already **recorded** gets the recorded response: its status,
//!    body and an allow-list of headers (`Content-Type`, `Location`, …;
//!    never `Set-Cookie` or `Date`), marked `Idempotent-Replayed: true`.
//!    The handler does not run;
//! 4. a key recorded or running **for another fingerprint** gets `422`;
//! 5. a key **running** gets `409` with `Retry-After`, or, in
//!    [`Concurrent::Wait`] mode, the running request's response when it is
//!    done;
//! 6. otherwise the handler runs, on a task of its own: a client that
//!    disconnects does not cancel it, and its retry gets the response.
//!    The response is recorded if it is `2xx`, `3xx` or a `4xx` other than
//!    `408`, `409`, `425` and `429`, not marked `Cache-Control: no-store`,
//!    and its body is within the cap; `5xx` are recorded only if you ask.
//!    Anything not recorded releases the key: the retry runs again.
//!
//! Requests with other methods, and requests without a key when the key
//! is optional, pass through untouched.
//!
//! The layer's own errors are `application/problem+json` (RFC 9457); see
//! [`problems`] for each one. When the store cannot be reached the
//! handler does not run and the client gets `503` with `Retry-After` (fail
//! closed; [`fail_open`](IdempotencyLayerBuilder::fail_open) runs it
//! unprotected instead).
//!
//! # Keys
//!
//! A request's record is stored under its scope, its method, its path and
//! the client's key together: the same key sent by two principals, or to
//! `POST /payments` and `POST /refunds`, names two requests. The path is
//! the request's own (`/orders/7`, not the route's pattern), and the query
//! is left to the fingerprint, so a key reused with another query gets
//! `422`.
//!
//! Events (the `tracing` crate, target `idem_http`) name a key by a hash,
//! never by its value: keys can be secrets. Each keyed request logs its
//! outcome (`Executed`, `Coalesced`, `Replayed`, `Waited`, `FailedOpen`)
//! and the time the layer took, store included; refusals, store failures
//! and responses too large to record have events of their own.
//!
//! # Expiry policy
//!
//! The draft asks a service to publish how long keys are kept. Here:
//! a response is replayed for [`retain`](IdempotencyLayerBuilder::retain)
//! (24 h by default) after it was recorded; a key whose request failed
//! (not recorded) is free again at once; a key whose instance crashed
//! mid-request is free again when its lease ends (30 s by default).
//!
//! # Scope
//!
//! Keys are chosen by clients, so two clients can send the same key, by
//! accident or to read another's response. The builder requires a choice:
//! [`scope`](IdempotencyLayerBuilder::scope), a function of the request
//! that names its principal, or an explicit
//! [`unscoped`](IdempotencyLayerBuilder::unscoped), which logs a warning.
//!
//! # Across instances
//!
//! Build the layer on `idem_redis::RedisStore` (or any
//! [`Store`](idem::store::Store)) and every instance sharing it runs a key
//! once: an instance that crashed mid-request is replaced when its lease
//! ends, and its late writes are fenced.

mod body;
mod builder;
mod fingerprint;
mod future;
mod inflight;
mod key;
mod layer;
pub mod problems;
mod record;
mod service;

pub use body::{RequestBody, ResponseBody};
pub use builder::{BuildError, Concurrent, IdempotencyLayerBuilder, NoScope, ScopeChosen};
pub use future::ResponseFuture;
pub use layer::IdempotencyLayer;
pub use service::Idempotency;

/// The canonical form of a JSON body the fingerprint hashes (keys sorted,
/// no whitespace), for the benchmarks that time that step
/// (`benches/src/http`): not part of the API.
#[doc(hidden)]
pub fn __canonical_json(body: &[u8]) -> Option<Vec<u8>> {
    fingerprint::canonical_json(body)
}
