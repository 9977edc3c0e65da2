//! [`DurableBuilder`]: a [`Durable`]'s settings, checked.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::{Codec, Durable, Json, OnRunning, OnUnavailable, RecordError, Shared};
use crate::store::Store;
use crate::SingleFlight;

/// Configures a [`Durable`]; from [`Durable::builder`].
#[must_use = "a builder does nothing until `.build()` is called"]
pub struct DurableBuilder<S, V, E, C = Json> {
    store: S,
    codec: C,
    namespace: Option<String>,
    retain: Duration,
    lease: Duration,
    max_run: Option<Duration>,
    on_running: OnRunning,
    on_unavailable: OnUnavailable,
    record_error: Option<RecordError<E>>,
    _types: PhantomData<fn() -> V>,
}

impl<S, V, E, C> fmt::Debug for DurableBuilder<S, V, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableBuilder")
            .field("namespace", &self.namespace)
            .field("retain", &self.retain)
            .field("lease", &self.lease)
            .field("max_run", &self.max_run)
            .field("on_running", &self.on_running)
            .field("on_unavailable", &self.on_unavailable)
            .finish_non_exhaustive()
    }
}

/// An invalid [`DurableBuilder`] setting.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurableBuildError {
    /// No `namespace`, or an empty one.
    NoNamespace,
    /// A zero `lease` or `retain`.
    Zero(&'static str),
    /// `max_run` shorter than `lease`.
    MaxRunBelowLease,
}

impl fmt::Display for DurableBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurableBuildError::NoNamespace => f.write_str(
                "a Durable needs a non-empty namespace (.namespace(\"payments\")): it keeps its records apart from other operations'",
            ),
            DurableBuildError::Zero(what) => write!(f, "`{what}` must be longer than zero"),
            DurableBuildError::MaxRunBelowLease => {
                f.write_str("`max_run` must be at least `lease`")
            }
        }
    }
}

impl std::error::Error for DurableBuildError {}

impl<S, V, E> Durable<S, V, E> {
    /// Configures a durable executor on `store`.
    ///
    /// Defaults: `retain` 24 h, `lease` 30 s, `max_run` 10 minutes,
    /// [`OnRunning::Wait`] up to the lease, [`OnUnavailable::FailClosed`],
    /// errors released, [`Json`].
    pub fn builder(store: S) -> DurableBuilder<S, V, E> {
        DurableBuilder {
            store,
            codec: Json,
            namespace: None,
            retain: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(30),
            max_run: None,
            on_running: OnRunning::Wait {
                timeout: Duration::from_secs(30),
            },
            on_unavailable: OnUnavailable::FailClosed,
            record_error: None,
            _types: PhantomData,
        }
    }
}

impl<S, V, E, C> DurableBuilder<S, V, E, C> {
    /// Keeps these records apart from other operations' (required).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// How long a completed record is replayed.
    pub fn retain(mut self, retain: Duration) -> Self {
        self.retain = retain;
        self
    }

    /// How long a claim holds the key without renewal: how long a crashed
    /// owner blocks its key before another process takes over.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The longest a work is kept alive by renewal; past it the lease is
    /// left to expire: the work's [`Fence`](super::Fence) then reports it lost, and a
    /// work that ends after its lease did is refused its completion
    /// ([`DurableError::LeaseLost`](super::DurableError::LeaseLost)), whether or not another owner took
    /// the key over meanwhile.
    pub fn max_run(mut self, max_run: Duration) -> Self {
        self.max_run = Some(max_run);
        self
    }

    /// What a call does when another process holds the key.
    pub fn on_running(mut self, on_running: OnRunning) -> Self {
        self.on_running = on_running;
        self
    }

    /// What a call does when the store cannot be reached to claim the key
    /// (after two quick retries): fail ([`OnUnavailable::FailClosed`], the
    /// default) or run the work unrecorded ([`OnUnavailable::FailOpen`]).
    pub fn on_unavailable(mut self, on_unavailable: OnUnavailable) -> Self {
        self.on_unavailable = on_unavailable;
        self
    }

    /// Which errors of the work are recorded and replayed like values (the
    /// operation happened, and failed for good: "card declined"); the
    /// others release the key, so the next call runs again (the default
    /// for every error).
    pub fn record_errors(mut self, record: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.record_error = Some(Arc::new(record));
        self
    }

    /// How values and errors are encoded in records ([`Json`] by default).
    pub fn codec<C2>(self, codec: C2) -> DurableBuilder<S, V, E, C2>
    where
        C2: Codec<V> + Codec<E>,
    {
        DurableBuilder {
            store: self.store,
            codec,
            namespace: self.namespace,
            retain: self.retain,
            lease: self.lease,
            max_run: self.max_run,
            on_running: self.on_running,
            on_unavailable: self.on_unavailable,
            record_error: self.record_error,
            _types: PhantomData,
        }
    }

    /// The executor.
    ///
    /// # Errors
    ///
    /// A [`DurableBuildError`] naming the first invalid setting.
    pub fn build(self) -> Result<Durable<S, V, E, C>, DurableBuildError>
    where
        S: Store,
        V: Clone + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
        C: Codec<V> + Codec<E>,
    {
        let namespace = self
            .namespace
            .filter(|n| !n.is_empty())
            .ok_or(DurableBuildError::NoNamespace)?;
        if self.lease.is_zero() {
            return Err(DurableBuildError::Zero("lease"));
        }
        if self.retain.is_zero() {
            return Err(DurableBuildError::Zero("retain"));
        }
        let max_run = self.max_run.unwrap_or(Duration::from_secs(600));
        if max_run < self.lease {
            return Err(DurableBuildError::MaxRunBelowLease);
        }
        Ok(Durable {
            shared: Arc::new(Shared {
                store: self.store,
                codec: self.codec,
                namespace,
                retain: self.retain,
                lease: self.lease,
                max_run,
                on_running: self.on_running,
                on_unavailable: self.on_unavailable,
                record_error: self.record_error,
            }),
            local: SingleFlight::new(),
        })
    }
}
