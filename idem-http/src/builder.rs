//! [`IdempotencyLayerBuilder`]: every setting of the layer, checked once.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::request::Parts;
use http::Method;
use idem::durable::{Durable, DurableBuildError, OnRunning, OnUnavailable};
use idem::store::Store;

use crate::fingerprint::FingerprintRules;
use crate::inflight::InFlight;
use crate::layer::{Config, Records, Scope};
use crate::record::{never_replayed, RecordPolicy, Replayed, ResponseCodec};
use crate::IdempotencyLayer;

/// The state of an [`IdempotencyLayerBuilder`] before a scope is chosen:
/// [`scope`](IdempotencyLayerBuilder::scope) or
/// [`unscoped`](IdempotencyLayerBuilder::unscoped) must be called before
/// `build`, which a builder in this state does not have.
#[derive(Debug, Clone, Copy)]
pub struct NoScope;

/// The state of an [`IdempotencyLayerBuilder`] once a scope is chosen.
#[derive(Debug, Clone, Copy)]
pub struct ScopeChosen;

/// What a concurrent duplicate of a running request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Concurrent {
    /// `409 Conflict` with `Retry-After` (the time left on the running
    /// request's lease, or one second for one running in this process).
    Reject,
    /// The same response as the running request, once it is done: a
    /// duplicate in this process joins it; one in another process polls
    /// the store, at most `timeout`, then gets a `409`.
    Wait {
        /// The longest a duplicate waits.
        timeout: Duration,
    },
}

/// An invalid [`IdempotencyLayerBuilder`] setting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A store setting is invalid (a zero lease or retention, `max_run`
    /// below the lease, an empty namespace).
    Store(DurableBuildError),
    /// A header that may never be replayed was put in the allow-list
    /// (`Set-Cookie`, `Date`, hop-by-hop headers, `Content-Length`).
    NeverReplayed(HeaderName),
    /// No method is covered.
    NoMethods,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Store(e) => fmt::Display::fmt(e, f),
            BuildError::NeverReplayed(h) => write!(
                f,
                "`{h}` cannot be replayed: it belongs to one response (a session, the time, the connection)"
            ),
            BuildError::NoMethods => f.write_str("the layer covers no method: give at least one to `.methods(..)`"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Configures an [`IdempotencyLayer`]; from [`IdempotencyLayer::builder`].
///
/// A scope must be chosen before [`build`](Self::build): either
/// [`scope`](Self::scope), which keeps each principal's keys apart, or an
/// explicit [`unscoped`](Self::unscoped). Forgetting it does not compile:
///
/// ```compile_fail
/// use idem::store::MemoryStore;
/// use idem_http::IdempotencyLayer;
///
/// // error[E0599]: no method named `build` found for `IdempotencyLayerBuilder<MemoryStore, NoScope>`
/// let layer = IdempotencyLayer::builder(MemoryStore::new()).build();
/// ```
#[must_use = "a builder does nothing until `.build()` is called"]
pub struct IdempotencyLayerBuilder<S, Sc = NoScope> {
    store: S,
    scope: Option<Scope>,
    namespace: String,
    methods: Vec<Method>,
    header: HeaderName,
    require_key: bool,
    retain: Duration,
    lease: Duration,
    max_run: Duration,
    concurrent: Concurrent,
    record_server_errors: bool,
    max_request_body: usize,
    max_response_body: usize,
    fingerprint_headers: Vec<HeaderName>,
    canonical_json: bool,
    replayed_headers: Vec<HeaderName>,
    replayed_marker: Option<HeaderName>,
    fail_open: bool,
    problem_base: String,
    retention_header: Option<HeaderName>,
    _scope: PhantomData<Sc>,
}

impl<S, Sc> fmt::Debug for IdempotencyLayerBuilder<S, Sc> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayerBuilder")
            .field("namespace", &self.namespace)
            .field("methods", &self.methods)
            .field("require_key", &self.require_key)
            .field("retain", &self.retain)
            .field("concurrent", &self.concurrent)
            .finish_non_exhaustive()
    }
}

/// The default `type` base of the layer's problem responses: where they
/// are documented.
pub(crate) const PROBLEM_BASE: &str =
    "https://docs.rs/idem-http/latest/idem_http/problems/index.html";

impl<S: Store> IdempotencyLayer<S> {
    /// Configures a layer on `store` (an `idem::store::MemoryStore` for one
    /// process, `idem_redis::RedisStore` to share it between instances).
    ///
    /// Defaults, after the draft where it speaks: `POST` and `PATCH`; the
    /// header `Idempotency-Key`, optional (a request without it passes
    /// through); records kept 24 h; a lease of 30 s renewed while the
    /// handler runs, for at most 10 minutes; concurrent duplicates
    /// rejected with `409`; `5xx` not recorded; bodies up to 1 MiB each
    /// way; fingerprints over the method, path, query, `Content-Type` and
    /// body, with JSON compared by value; replays marked
    /// `Idempotent-Replayed: true`; fail closed when the store is down.
    pub fn builder(store: S) -> IdempotencyLayerBuilder<S, NoScope> {
        IdempotencyLayerBuilder {
            store,
            scope: None,
            namespace: "http".to_string(),
            methods: vec![Method::POST, Method::PATCH],
            header: HeaderName::from_static("idempotency-key"),
            require_key: false,
            retain: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(30),
            max_run: Duration::from_secs(600),
            concurrent: Concurrent::Reject,
            record_server_errors: false,
            max_request_body: 1 << 20,
            max_response_body: 1 << 20,
            fingerprint_headers: vec![http::header::CONTENT_TYPE],
            canonical_json: true,
            replayed_headers: Replayed::default_allowed(),
            replayed_marker: Some(HeaderName::from_static("idempotent-replayed")),
            fail_open: false,
            problem_base: PROBLEM_BASE.to_string(),
            retention_header: None,
            _scope: PhantomData,
        }
    }
}

impl<S> IdempotencyLayerBuilder<S, NoScope> {
    /// Keeps each principal's keys apart: `scope` gets the request (its
    /// headers, its extensions, where an authentication layer put the
    /// user or tenant) and returns who is asking. Two principals sending
    /// the same key get two executions, and neither can read the other's
    /// response, by guessing a key or by reusing one.
    ///
    /// `None` (no principal on the request) is answered `500`
    /// (`#scope-missing`): put the authentication layer before this one.
    pub fn scope<F>(self, scope: F) -> IdempotencyLayerBuilder<S, ScopeChosen>
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.chosen(Scope::Hook(Arc::new(scope)))
    }

    /// Shares keys between every client: a client that sends another's
    /// key gets that client's response. Only for services whose clients
    /// are one trusted party (a single internal caller), or whose keys are
    /// unguessable and never leave the client that made them; the layer
    /// logs a warning when built.
    pub fn unscoped(self) -> IdempotencyLayerBuilder<S, ScopeChosen> {
        self.chosen(Scope::Unscoped)
    }

    fn chosen(self, scope: Scope) -> IdempotencyLayerBuilder<S, ScopeChosen> {
        IdempotencyLayerBuilder {
            store: self.store,
            scope: Some(scope),
            namespace: self.namespace,
            methods: self.methods,
            header: self.header,
            require_key: self.require_key,
            retain: self.retain,
            lease: self.lease,
            max_run: self.max_run,
            concurrent: self.concurrent,
            record_server_errors: self.record_server_errors,
            max_request_body: self.max_request_body,
            max_response_body: self.max_response_body,
            fingerprint_headers: self.fingerprint_headers,
            canonical_json: self.canonical_json,
            replayed_headers: self.replayed_headers,
            replayed_marker: self.replayed_marker,
            fail_open: self.fail_open,
            problem_base: self.problem_base,
            retention_header: self.retention_header,
            _scope: PhantomData,
        }
    }
}

impl<S, Sc> IdempotencyLayerBuilder<S, Sc> {
    /// Keeps these records apart from other layers' and operations' in a
    /// shared store (default `http`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The methods the layer covers (default `POST`, `PATCH`); requests
    /// with other methods pass through untouched.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// The key's header (default `Idempotency-Key`).
    pub fn header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }

    /// Whether a covered request without a key is refused (`400`,
    /// `#key-missing`) rather than passed through. Give a route its own
    /// layer (axum's `route_layer`) to require keys on some routes only.
    pub fn require_key(mut self, require: bool) -> Self {
        self.require_key = require;
        self
    }

    /// How long a response is replayed (default 24 h): the expiry policy
    /// the draft asks services to publish.
    pub fn retain(mut self, retain: Duration) -> Self {
        self.retain = retain;
        self
    }

    /// How long a crashed instance's request blocks its key before another
    /// instance may run it (default 30 s); renewed every third of it while
    /// the handler runs.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The longest a handler is kept alive by lease renewal (default 10
    /// minutes).
    pub fn max_run(mut self, max_run: Duration) -> Self {
        self.max_run = max_run;
        self
    }

    /// What a duplicate of a running request gets (default
    /// [`Concurrent::Reject`]).
    pub fn concurrent(mut self, concurrent: Concurrent) -> Self {
        self.concurrent = concurrent;
        self
    }

    /// Whether `5xx` responses are recorded and replayed (default: not;
    /// the key is released, so the retry runs the handler again).
    pub fn record_server_errors(mut self, record: bool) -> Self {
        self.record_server_errors = record;
        self
    }

    /// The largest request body read (default 1 MiB): a keyed request
    /// with a larger one gets `413` before anything is claimed.
    pub fn max_request_body(mut self, bytes: usize) -> Self {
        self.max_request_body = bytes;
        self
    }

    /// The largest response body recorded (default 1 MiB): a larger one is
    /// passed to the client and not recorded (the key is released), with
    /// a warning event.
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// The request headers that are part of the fingerprint, besides the
    /// method, path, query and body (default `Content-Type`).
    pub fn fingerprint_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.fingerprint_headers = headers.into_iter().collect();
        self
    }

    /// Whether JSON bodies (`application/json`, `application/*+json`) are
    /// compared by value, ignoring key order and whitespace (default
    /// true); otherwise byte for byte.
    pub fn canonical_json(mut self, canonical: bool) -> Self {
        self.canonical_json = canonical;
        self
    }

    /// The response headers a replay carries (default `Content-Type`,
    /// `Content-Language`, `Content-Location`, `Content-Disposition`,
    /// `Location`, `ETag`, `Last-Modified`, `Link`, `Vary`). `Set-Cookie`,
    /// `Date`, `Content-Length` and hop-by-hop headers are refused by
    /// [`build`](Self::build).
    pub fn replayed_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.replayed_headers = headers.into_iter().collect();
        self
    }

    /// The header that marks a response the handler did not produce for
    /// this request (`Idempotent-Replayed: true` by default; `None` for
    /// none).
    pub fn replayed_marker(mut self, header: Option<HeaderName>) -> Self {
        self.replayed_marker = header;
        self
    }

    /// Whether a request whose key cannot be claimed because the store is
    /// down runs anyway, unprotected and unrecorded (default: no, `503`
    /// with `Retry-After`, and the handler does not run).
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// Publishes the expiry policy on every response to a keyed request:
    /// `header: <retain in seconds>` (none by default; the draft asks for
    /// the policy to be published, and documentation is the usual place).
    pub fn retention_header(mut self, header: Option<HeaderName>) -> Self {
        self.retention_header = header;
        self
    }

    /// The base of the `type` URI of the layer's problem responses (the
    /// layer's documentation by default): `<base>#key-reused`, …
    pub fn problem_base(mut self, base: impl Into<String>) -> Self {
        self.problem_base = base.into();
        self
    }
}

impl<S: Store> IdempotencyLayerBuilder<S, ScopeChosen> {
    /// The layer.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the first invalid setting.
    pub fn build(self) -> Result<IdempotencyLayer<S>, BuildError> {
        if self.methods.is_empty() {
            return Err(BuildError::NoMethods);
        }
        if let Some(h) = self.replayed_headers.iter().find(|h| never_replayed(h)) {
            return Err(BuildError::NeverReplayed(h.clone()));
        }
        let replayed = Replayed {
            allowed: self.replayed_headers.into(),
        };
        let retention = self
            .retention_header
            .map(|h| (h, http::HeaderValue::from(self.retain.as_secs())));
        let on_running = match self.concurrent {
            Concurrent::Reject => OnRunning::Reject,
            Concurrent::Wait { timeout } => OnRunning::Wait { timeout },
        };
        let durable = Durable::builder(self.store)
            .namespace(self.namespace)
            .retain(self.retain)
            .lease(self.lease)
            .max_run(self.max_run)
            .on_running(on_running)
            .on_unavailable(if self.fail_open {
                OnUnavailable::FailOpen
            } else {
                OnUnavailable::FailClosed
            })
            .codec(ResponseCodec {
                replayed: replayed.clone(),
            })
            .build()
            .map_err(BuildError::Store)?;
        let scope = self.scope.expect("a ScopeChosen builder has a scope");
        if matches!(scope, Scope::Unscoped) {
            tracing::warn!(
                "idem-http: an unscoped Idempotency-Key layer shares responses between all clients: a client that sends another's key gets its response"
            );
        }
        Ok(IdempotencyLayer {
            config: Arc::new(Config {
                durable,
                scope,
                methods: self.methods,
                header: self.header,
                require_key: self.require_key,
                concurrent: self.concurrent,
                inflight: InFlight::default(),
                records: Records {
                    policy: RecordPolicy {
                        server_errors: self.record_server_errors,
                    },
                    max_body: self.max_response_body,
                },
                max_request_body: self.max_request_body,
                fingerprint: FingerprintRules {
                    headers: self.fingerprint_headers,
                    canonical_json: self.canonical_json,
                },
                replayed,
                replayed_marker: self.replayed_marker,
                problem_base: self.problem_base,
                retention,
            }),
        })
    }
}
