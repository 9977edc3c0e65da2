//! A store wrapper that shows a test what its claims answered.

use std::future::Future;
use std::time::Duration;

use idem::store::{Claimed, Lease, Owner, Store, StoreError, StoreKey};
use idem::Fingerprint;

/// `S`, with `on_claim` called on the answer of every claim: to count the
/// claims that reached the store, or to learn, without a sleep, that a
/// waiter found its key running.
pub struct Observed<S, F> {
    inner: S,
    on_claim: F,
}

impl<S: std::fmt::Debug, F> std::fmt::Debug for Observed<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, F> Observed<S, F>
where
    F: Fn(&Result<Claimed, StoreError>) + Send + Sync + 'static,
{
    /// `inner`, observed.
    pub fn new(inner: S, on_claim: F) -> Self {
        Self { inner, on_claim }
    }
}

impl<S, F> Store for Observed<S, F>
where
    S: Store,
    F: Fn(&Result<Claimed, StoreError>) + Send + Sync + 'static,
{
    async fn claim(
        &self,
        key: StoreKey<'_>,
        fp: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        let answer = self.inner.claim(key, fp, owner, lease).await;
        (self.on_claim)(&answer);
        answer
    }

    fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.renew(key, lease, ttl)
    }

    fn complete(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        payload: &[u8],
        retain: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.complete(key, lease, payload, retain)
    }

    fn release(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.release(key, lease)
    }
}
