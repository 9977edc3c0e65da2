//! What a table tells `tracing`, with the `tracing` feature; nothing, and
//! no code at all, without it.
//!
//! * A span `idem.execution` around each execution of a work (the
//!   caller's future for `run`, the task for `run_detached`), with the
//!   table's name, `key_hash` and, once the work ends, `outcome` (`ok`,
//!   `failed` or `panicked`). `key_hash` is the table's own hash of the key:
//!   keys may hold personal data, so the key itself is never recorded. The
//!   hash is keyed per table (see [`RandomState`](crate::RandomState)), so
//!   it correlates events of one process, not across processes.
//! * Events: `takeover` (a waiter drives a flight whose driver was
//!   dropped), `panicked` (warn, with the message), `refused` (with the
//!   reason), `mismatch`, and `evicted` (how many fresh results a store
//!   evicted).
//!
//! Everything here is on slow paths: a hit records nothing.

#[cfg(feature = "tracing")]
mod imp {
    use std::future::Future;

    use tracing::{field, Instrument};

    use crate::builder::Settings;
    use crate::error::Panicked;

    fn name(settings: &Settings) -> &'static str {
        settings.name.unwrap_or("unnamed")
    }

    /// Runs `work` (a flight's execution) inside an `idem.execution` span.
    pub(crate) async fn execution<F, V, E>(
        settings: &Settings,
        hash: u64,
        work: F,
    ) -> Result<Result<V, E>, Panicked>
    where
        F: Future<Output = Result<Result<V, E>, Panicked>>,
    {
        let span = tracing::info_span!(
            "idem.execution",
            table = name(settings),
            key_hash = hash,
            outcome = field::Empty,
        );
        let r = work.instrument(span.clone()).await;
        let outcome = match &r {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "failed",
            Err(_) => "panicked",
        };
        span.record("outcome", outcome);
        r
    }

    pub(crate) fn takeover(settings: &Settings, hash: u64) {
        tracing::info!(
            table = name(settings),
            key_hash = hash,
            "idem: takeover of a flight whose driver was dropped"
        );
    }

    pub(crate) fn panicked(settings: &Settings, hash: u64, p: &Panicked) {
        tracing::warn!(
            table = name(settings),
            key_hash = hash,
            message = p.message(),
            "idem: work panicked"
        );
    }

    pub(crate) fn refused(settings: &Settings, hash: u64, reason: &'static str) {
        tracing::debug!(
            table = name(settings),
            key_hash = hash,
            reason,
            "idem: call refused"
        );
    }

    pub(crate) fn mismatch(settings: &Settings, hash: u64) {
        tracing::debug!(
            table = name(settings),
            key_hash = hash,
            "idem: fingerprint mismatch"
        );
    }

    pub(crate) fn evicted(settings: &Settings, evicted: u64) {
        tracing::debug!(
            table = name(settings),
            evicted,
            "idem: fresh results evicted"
        );
    }
}

#[cfg(not(feature = "tracing"))]
mod imp {
    use crate::builder::Settings;
    use crate::error::Panicked;

    #[inline(always)]
    pub(crate) fn execution<F>(_: &Settings, _: u64, work: F) -> F {
        work
    }

    #[inline(always)]
    pub(crate) fn takeover(_: &Settings, _: u64) {}

    #[inline(always)]
    pub(crate) fn panicked(_: &Settings, _: u64, _: &Panicked) {}

    #[inline(always)]
    pub(crate) fn refused(_: &Settings, _: u64, _: &'static str) {}

    #[inline(always)]
    pub(crate) fn mismatch(_: &Settings, _: u64) {}

    #[inline(always)]
    pub(crate) fn evicted(_: &Settings, _: u64) {}
}

pub(crate) use imp::*;
