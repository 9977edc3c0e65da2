//! [`Call`]: one call's options, and the local tier in front of
//! [`lead`](super::Shared::lead).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::lead::Ask;
use super::{Codec, Durable, DurableError, DurableOutcome, Fence, OnRunning};
use crate::store::Store;
use crate::{Error, Fingerprint, Outcome};

/// One call of a [`Durable`], with options of its own; from
/// [`Durable::call`].
///
/// ```
/// use std::time::Duration;
/// use idem::durable::{Durable, DurableError, OnRunning};
/// use idem::store::MemoryStore;
/// use idem::Fingerprint;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let payments: Durable<MemoryStore, String, String> = Durable::builder(MemoryStore::new())
///     .namespace("payments")
///     .build()
///     .unwrap();
/// let (receipt, _) = payments
///     .call("order-7")
///     .fingerprint(Fingerprint::of(&1_250_u64))
///     .on_running(OnRunning::Reject) // an HTTP API answers 409 rather than wait
///     .run(|_fence| async { Ok("receipt".to_string()) })
///     .await;
/// assert_eq!(receipt.as_deref(), Ok("receipt"));
/// # }
/// ```
#[must_use = "a call does nothing until `.run(..)` or `.run_detached(..)` is awaited"]
pub struct Call<'a, S, V, E, C> {
    durable: &'a Durable<S, V, E, C>,
    key: &'a str,
    ask: Ask,
}

impl<S, V, E, C> fmt::Debug for Call<'_, S, V, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("key", &self.key)
            .field("fingerprint", &self.ask.fingerprint)
            .field("on_running", &self.ask.on_running)
            .finish_non_exhaustive()
    }
}

impl<'a, S, V, E, C> Call<'a, S, V, E, C>
where
    S: Store,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
    C: Codec<V> + Codec<E>,
{
    pub(super) fn new(durable: &'a Durable<S, V, E, C>, key: &'a str) -> Self {
        Self {
            durable,
            key,
            ask: Ask {
                fingerprint: None,
                on_running: durable.shared.on_running,
            },
        }
    }

    /// The [`Fingerprint`] of what the call asks for: a key leased or
    /// recorded for another fingerprint answers [`DurableError::Mismatch`],
    /// here and in every process, and nothing runs.
    pub fn fingerprint(mut self, fingerprint: Fingerprint) -> Self {
        self.ask.fingerprint = Some(fingerprint);
        self
    }

    /// What this call does when another process holds the key, instead of
    /// the executor's [`on_running`](super::DurableBuilder::on_running).
    /// A call that joins a call of this process already running the key
    /// shares that call's result, whatever its own setting.
    pub fn on_running(mut self, on_running: OnRunning) -> Self {
        self.ask.on_running = on_running;
        self
    }

    /// Runs `work` for the key at most once across the processes sharing
    /// the store (see the [module docs](super)), and says how the value
    /// came.
    ///
    /// # Errors
    ///
    /// See [`DurableError`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the call of the process's leader drops its work and
    /// releases the key (from a task spawned on the current runtime); the
    /// local waiters take the work over, as with
    /// [`SingleFlight::run`](crate::SingleFlight::run). A waiter that is
    /// dropped disturbs nobody. Use [`run_detached`](Self::run_detached)
    /// for work that must finish once started.
    pub async fn run<F, Fut>(self, work: F) -> (Result<V, DurableError<E>>, DurableOutcome)
    where
        F: FnOnce(Fence) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let Self { durable, key, ask } = self;
        let shared = &durable.shared;
        if let Some(r) = shared.lookup(key, ask.fingerprint).await {
            return (r, DurableOutcome::Replayed);
        }
        let lead = || async move {
            let mut how = DurableOutcome::Executed;
            let r = shared.lead(key, ask, work, &mut how).await;
            r.map(|v| (v, how)).map_err(|e| (e, how))
        };
        let local = &durable.local;
        let answer = match ask.fingerprint {
            Some(fp) => {
                local
                    .run_with_fingerprint_and_outcome(key.to_owned(), fp, lead)
                    .await
            }
            None => local.run_by_ref_with_outcome(key, lead).await,
        };
        from_local(answer)
    }

    /// Like [`run`](Self::run), but the work (the claim, the work, its
    /// completion) runs on a task of its own, so it finishes and its result
    /// is recorded even if every caller goes away: a client that
    /// disconnects, a request timeout. Its retry then gets the recorded
    /// result instead of running the work a second time.
    ///
    /// # Errors
    ///
    /// See [`DurableError`]; [`DurableError::Aborted`] if the task was
    /// dropped before it finished (its runtime shut down).
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime and the key is not running in
    /// this process already.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the call leaves the work running to
    /// completion.
    pub async fn run_detached<F, Fut>(self, work: F) -> (Result<V, DurableError<E>>, DurableOutcome)
    where
        F: FnOnce(Fence) -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let Self { durable, key, ask } = self;
        if let Some(r) = durable.shared.lookup(key, ask.fingerprint).await {
            return (r, DurableOutcome::Replayed);
        }
        let shared = Arc::clone(&durable.shared);
        let owned = key.to_owned();
        let lead = move || async move {
            let mut how = DurableOutcome::Executed;
            let r = shared.lead(&owned, ask, work, &mut how).await;
            r.map(|v| (v, how)).map_err(|e| (e, how))
        };
        let local = &durable.local;
        let answer = match ask.fingerprint {
            Some(fp) => {
                local
                    .run_detached_with_fingerprint_and_outcome(key.to_owned(), fp, lead)
                    .await
            }
            None => local.run_detached_with_outcome(key.to_owned(), lead).await,
        };
        from_local(answer)
    }
}

type Local<V, E> = (
    Result<(V, DurableOutcome), Error<(DurableError<E>, DurableOutcome)>>,
    Outcome,
);

/// A durable call's answer from what the local table answered.
fn from_local<V, E>((r, outcome): Local<V, E>) -> (Result<V, DurableError<E>>, DurableOutcome) {
    let (r, how) = match r {
        Ok((v, how)) => (Ok(v), how),
        Err(Error::Failed((e, how))) => (Err(e), how),
        Err(Error::Panicked(p)) => (Err(DurableError::Panicked(p)), DurableOutcome::Executed),
        Err(Error::Mismatch) => (Err(DurableError::Mismatch), DurableOutcome::Coalesced),
        Err(Error::Aborted) => (Err(DurableError::Aborted), DurableOutcome::Executed),
        Err(_) => unreachable!("a coalesce-only local table refuses nothing"),
    };
    if outcome == Outcome::Coalesced {
        (r, DurableOutcome::Coalesced)
    } else {
        (r, how)
    }
}
