//! [`ResponseFuture`]: what [`Idempotency`](crate::Idempotency) returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The response future of an [`Idempotency`](crate::Idempotency)
/// service.
///
/// # Cancel safety
///
/// Dropping it (the client went away) does not stop a handler the layer
/// started for a keyed request: the handler runs to the end on a task of
/// its own and its response is recorded, so the client's retry gets it.
pub struct ResponseFuture<T> {
    inner: Boxed<T>,
}

impl<T> ResponseFuture<T> {
    pub(crate) fn new(f: impl Future<Output = T> + Send + 'static) -> Self {
        Self { inner: Box::pin(f) }
    }
}

impl<T> Future for ResponseFuture<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for ResponseFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
