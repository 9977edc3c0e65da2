//! [`IdempotencyLayer`]: the tower layer, and the settings its services
//! share.

use std::fmt;
use std::sync::Arc;

use http::header::HeaderName;
use http::request::Parts;
use http::Method;
use idem::durable::Durable;
use tower_layer::Layer;

use crate::builder::Concurrent;
use crate::fingerprint::FingerprintRules;
use crate::inflight::InFlight;
use crate::record::{Completed, RecordPolicy, Replayed, ResponseCodec, Unrecorded};
use crate::service::Idempotency;

/// A tower [`Layer`] that makes `POST` and `PATCH` requests carrying an
/// `Idempotency-Key` idempotent; see the [crate docs](crate).
///
/// Cloning it is cheap, and the clones share one local table and one
/// store: apply one layer to a router (`Router::layer`, `route_layer`), or
/// clones of it to several.
pub struct IdempotencyLayer<S> {
    pub(crate) config: Arc<Config<S>>,
}

impl<S> Clone for IdempotencyLayer<S> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
        }
    }
}

impl<S> fmt::Debug for IdempotencyLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("methods", &self.config.methods)
            .field("header", &self.config.header)
            .field("require_key", &self.config.require_key)
            .field("concurrent", &self.config.concurrent)
            .finish_non_exhaustive()
    }
}

impl<S, I> Layer<I> for IdempotencyLayer<S> {
    type Service = Idempotency<I, S>;

    fn layer(&self, inner: I) -> Self::Service {
        Idempotency::new(inner, Arc::clone(&self.config))
    }
}

/// The principal of a request, from the user's hook.
pub(crate) type ScopeHook = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// Who is asking: the first part of every stored key.
#[derive(Clone)]
pub(crate) enum Scope {
    Hook(ScopeHook),
    Unscoped,
}

/// Which responses are recorded, and up to what size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Records {
    pub(crate) policy: RecordPolicy,
    pub(crate) max_body: usize,
}

pub(crate) struct Config<S> {
    pub(crate) durable: Durable<S, Completed, Unrecorded, ResponseCodec>,
    pub(crate) scope: Scope,
    pub(crate) methods: Vec<Method>,
    pub(crate) header: HeaderName,
    pub(crate) require_key: bool,
    pub(crate) concurrent: Concurrent,
    pub(crate) inflight: InFlight,
    pub(crate) records: Records,
    pub(crate) max_request_body: usize,
    pub(crate) fingerprint: FingerprintRules,
    pub(crate) replayed: Replayed,
    pub(crate) replayed_marker: Option<HeaderName>,
    pub(crate) problem_base: String,
    pub(crate) retention: Option<(HeaderName, http::HeaderValue)>,
}
