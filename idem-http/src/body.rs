//! The bodies the layer passes on: the request's to the inner service, the
//! response's to the client.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a request as the inner service gets it: the buffered
    /// bytes of a request with an `Idempotency-Key` (read whole, to
    /// fingerprint it), or the client's body, untouched, for every other
    /// request.
    pub struct RequestBody<B>
    where
        B: Body,
    {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    /// The body of a response from the layer: a recorded, replayed or
    /// problem response's bytes, or the inner service's body, untouched
    /// or after the first bytes the layer read from it.
    pub struct ResponseBody<B>
    where
        B: Body,
    {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B>
    where
        B: Body,
    {
        Bytes { data: Option<Bytes> },
        Stream { prefix: Option<Bytes>, #[pin] rest: B },
        // A body the layer started to read: its first bytes, then the rest.
        Boxed { prefix: Option<Bytes>, rest: Pin<Box<B>> },
        // A body that failed while the layer read it: its first bytes, then
        // its error.
        Failed { prefix: Option<Bytes>, error: Option<B::Error> },
    }
}

impl<B: Body> Kind<B> {
    fn bytes(data: Bytes) -> Self {
        Kind::Bytes {
            data: (!data.is_empty()).then_some(data),
        }
    }

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>>
    where
        B: Body<Data = Bytes>,
    {
        match self.project() {
            KindProj::Bytes { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Stream { prefix, rest } => {
                if let Some(p) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                rest.poll_frame(cx)
            }
            KindProj::Boxed { prefix, rest } => {
                if let Some(p) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                rest.as_mut().poll_frame(cx)
            }
            KindProj::Failed { prefix, error } => {
                if let Some(p) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                Poll::Ready(error.take().map(Err))
            }
        }
    }

    fn is_end_stream(&self) -> bool
    where
        B: Body<Data = Bytes>,
    {
        match self {
            Kind::Bytes { data } => data.is_none(),
            Kind::Stream { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
            Kind::Boxed { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
            Kind::Failed { prefix, error } => prefix.is_none() && error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint
    where
        B: Body<Data = Bytes>,
    {
        match self {
            Kind::Bytes { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Failed { .. } => SizeHint::new(),
            Kind::Stream { prefix, rest } => with_prefix(prefix, rest.size_hint()),
            Kind::Boxed { prefix, rest } => with_prefix(prefix, rest.size_hint()),
        }
    }
}

/// The size of a body after `prefix`.
fn with_prefix(prefix: &Option<Bytes>, inner: SizeHint) -> SizeHint {
    let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
    let mut hint = SizeHint::new();
    hint.set_lower(inner.lower() + extra);
    if let Some(upper) = inner.upper() {
        hint.set_upper(upper + extra);
    }
    hint
}

impl<B: Body> RequestBody<B> {
    pub(crate) fn buffered(data: Bytes) -> Self {
        Self {
            kind: Kind::bytes(data),
        }
    }

    pub(crate) fn streaming(body: B) -> Self {
        Self {
            kind: Kind::Stream {
                prefix: None,
                rest: body,
            },
        }
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn bytes(data: Bytes) -> Self {
        Self {
            kind: Kind::bytes(data),
        }
    }

    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Stream {
                prefix: None,
                rest: body,
            },
        }
    }

    /// `prefix`, then the rest of `body`.
    pub(crate) fn prefixed(prefix: Bytes, body: Pin<Box<B>>) -> Self {
        Self {
            kind: Kind::Boxed {
                prefix: (!prefix.is_empty()).then_some(prefix),
                rest: body,
            },
        }
    }

    /// `prefix`, then `error`.
    pub(crate) fn failed(prefix: Bytes, error: B::Error) -> Self {
        Self {
            kind: Kind::Failed {
                prefix: (!prefix.is_empty()).then_some(prefix),
                error: Some(error),
            },
        }
    }
}

impl<B: Body<Data = Bytes>> Body for RequestBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().kind.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.kind.size_hint()
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().kind.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.kind.size_hint()
    }
}

impl<B: Body> std::fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody").finish_non_exhaustive()
    }
}

impl<B: Body> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}
