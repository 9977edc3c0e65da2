//! [`Idempotency`]: the service the layer wraps around a handler.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONNECTION};
use http::{Request, Response, Version};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use idem::durable::{DurableError, DurableOutcome, Fence};
use idem::store::{Store, StoreError};
use idem::Fingerprint;
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::builder::Concurrent;
use crate::future::ResponseFuture;
use crate::key::{self, BadKey};
use crate::layer::{Config, Records, Scope};
use crate::problems::Problem;
use crate::record::{Completed, Handoff, Unrecorded};

/// The service an [`IdempotencyLayer`](crate::IdempotencyLayer) wraps
/// around an inner service (a handler, a router).
///
/// The inner service gets the request with its body as a
/// [`RequestBody`]; the client gets the response with its body as a
/// [`ResponseBody`]. Its errors are passed on to the caller of the request
/// that ran it.
pub struct Idempotency<I, S> {
    inner: I,
    config: Arc<Config<S>>,
}

impl<I, S> Idempotency<I, S> {
    pub(crate) fn new(inner: I, config: Arc<Config<S>>) -> Self {
        Self { inner, config }
    }
}

impl<I: Clone, S> Clone for Idempotency<I, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<I: fmt::Debug, S> fmt::Debug for Idempotency<I, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<I, S, ReqB, ResB> Service<Request<ReqB>> for Idempotency<I, S>
where
    I: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone + Send + 'static,
    I::Future: Send + 'static,
    I::Error: Send + 'static,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError> + Send,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Send + 'static,
    S: Store,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = I::Error;
    type Future = ResponseFuture<Result<Self::Response, I::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), I::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The inner service that was made ready goes with the request; a
        // clone stays for the next one (tower's usual dance).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(handle(Arc::clone(&self.config), inner, req))
    }
}

async fn handle<I, S, ReqB, ResB>(
    config: Arc<Config<S>>,
    inner: I,
    req: Request<ReqB>,
) -> Result<Response<ResponseBody<ResB>>, I::Error>
where
    I: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Send + 'static,
    I::Future: Send + 'static,
    I::Error: Send + 'static,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError> + Send,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Send + 'static,
    S: Store,
{
    let c = &*config;
    if !c.methods.contains(req.method()) {
        return passthrough(inner, req).await;
    }
    let key = match key::parse(req.headers(), &c.header) {
        Ok(Some(key)) => key,
        Ok(None) if !c.require_key => return passthrough(inner, req).await,
        Ok(None) => {
            return Ok(refuse(c, req, Problem::KeyMissing, &BadKey::Missing.to_string()).await)
        }
        Err(bad) => return Ok(refuse(c, req, Problem::KeyInvalid, &bad.to_string()).await),
    };
    let (parts, body) = req.into_parts();
    let scope = match &c.scope {
        Scope::Hook(hook) => match hook(&parts) {
            Some(scope) => scope,
            None => {
                let detail = "the layer's scope hook found no principal on this request: the authentication layer must run before the Idempotency-Key layer";
                let _ = read(body, c.max_request_body).await;
                return Ok(problem(c, Problem::ScopeMissing, detail, None));
            }
        },
        Scope::Unscoped => String::new(),
    };
    let bytes = match read(body, c.max_request_body).await {
        Read::Whole(bytes) => bytes,
        Read::TooLarge => {
            let detail = format!(
                "the request body is over {} bytes, the most this operation accepts; nothing was processed",
                c.max_request_body
            );
            let mut r = problem(c, Problem::TooLarge, &detail, None);
            close_if_http1(&mut r, parts.version);
            return Ok(r);
        }
        Read::Failed => {
            let detail = "the request body could not be read; nothing was processed, and the request can be retried with the same key";
            return Ok(problem(c, Problem::BodyUnreadable, detail, None));
        }
    };
    let fingerprint = c.fingerprint.of(&parts, &bytes);
    let store_key = store_key(&scope, &parts, &key);
    // Events name the key by a hash (keys can be secrets), computed only
    // when they are recorded.
    let debug = tracing::enabled!(tracing::Level::DEBUG);
    let hashed = if debug {
        Fingerprint::of(&store_key).get()
    } else {
        0
    };

    // In reject mode a duplicate running in this process is refused here,
    // before the store; the mark lives as long as the handler does.
    let entered = match c.concurrent {
        Concurrent::Reject => match c.inflight.enter(&store_key) {
            Some(entered) => Some(entered),
            None => {
                tracing::debug!(key = %format_args!("{hashed:016x}"), outcome = "rejected", "a duplicate of a request running here");
                let detail = "a request with this Idempotency-Key is being processed; retry after the time in Retry-After to get its response";
                return Ok(problem(
                    c,
                    Problem::InProgress,
                    detail,
                    Some(Duration::from_secs(1)),
                ));
            }
        },
        Concurrent::Wait { .. } => None,
    };
    let records = c.records;
    let req = Request::from_parts(parts, RequestBody::buffered(bytes));
    let work = move |_: Fence| async move {
        let _entered = entered;
        run::<I, ReqB, ResB>(inner, req, records).await
    };
    let started = debug.then(Instant::now);
    let (r, how) = c
        .durable
        .call(&store_key)
        .fingerprint(fingerprint)
        .run_detached(work)
        .await;
    if let Some(started) = started {
        tracing::debug!(
            key = %format_args!("{hashed:016x}"),
            outcome = ?how,
            elapsed_us = started.elapsed().as_micros() as u64,
            "idempotency-key request"
        );
    }
    let mut response = respond::<ResB, I::Error, S>(c, r, how)?;
    if let Some((name, value)) = &c.retention {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(response)
}

/// Runs the handler, and reads its response to record it.
async fn run<I, ReqB, ResB>(
    mut inner: I,
    req: Request<RequestBody<ReqB>>,
    records: Records,
) -> Result<Completed, Unrecorded>
where
    I: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    I::Error: Send + 'static,
    ReqB: Body,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Send + 'static,
{
    let response = match inner.call(req).await {
        Ok(r) => r,
        Err(e) => return Err(Unrecorded::handoff(Handoff::<ResB, I::Error>::Error(e))),
    };
    let (parts, body) = response.into_parts();
    match collect(body, records.max_body).await {
        Collected::Whole(body) => {
            let done = Completed {
                status: parts.status,
                headers: parts.headers,
                body,
            };
            if records.policy.records(done.status, &done.headers) {
                Ok(done)
            } else {
                Err(Unrecorded::Response(done))
            }
        }
        Collected::TooLarge(prefix, rest) => {
            tracing::warn!(
                max = records.max_body,
                "a response body over the layer's cap: passed on, not recorded, the key released"
            );
            let h = Handoff::<ResB, I::Error>::TooLarge(parts, prefix, rest);
            Err(Unrecorded::handoff(h))
        }
        Collected::Failed(prefix, e) => {
            let h = Handoff::<ResB, I::Error>::Failed(parts, prefix, e);
            Err(Unrecorded::handoff(h))
        }
    }
}

/// The response to the client from what the executor answered.
fn respond<B, E, S>(
    c: &Config<S>,
    r: Result<Completed, DurableError<Unrecorded>>,
    how: DurableOutcome,
) -> Result<Response<ResponseBody<B>>, E>
where
    B: Body + 'static,
    E: 'static,
{
    let replay = !matches!(how, DurableOutcome::Executed | DurableOutcome::FailedOpen);
    Ok(match r {
        Ok(done) | Err(DurableError::Failed(Unrecorded::Response(done))) => {
            completed(c, done, replay)
        }
        Err(DurableError::Failed(Unrecorded::Handoff(slot))) => match Unrecorded::take::<B, E>(&slot) {
            Some(Handoff::TooLarge(parts, prefix, rest)) => {
                Response::from_parts(parts, ResponseBody::prefixed(prefix, rest))
            }
            Some(Handoff::Failed(parts, prefix, e)) => {
                Response::from_parts(parts, ResponseBody::failed(prefix, e))
            }
            Some(Handoff::Error(e)) => return Err(e),
            None => problem(
                c,
                Problem::NotShared,
                "a concurrent request with this Idempotency-Key got the response, which was not recorded; retry to run it again",
                Some(Duration::from_secs(1)),
            ),
        },
        Err(DurableError::Running { retry_after }) => problem(
            c,
            Problem::InProgress,
            "a request with this Idempotency-Key is being processed; retry after the time in Retry-After to get its response",
            Some(retry_after),
        ),
        Err(DurableError::Mismatch) => problem(
            c,
            Problem::KeyReused,
            "this Idempotency-Key was used for a different request (method, path, query, body or headers); use a new key for a new request",
            None,
        ),
        Err(DurableError::Panicked(_)) => problem(
            c,
            Problem::Panicked,
            "the request failed and nothing was recorded; it can be retried with the same key",
            None,
        ),
        Err(DurableError::LeaseLost) => problem(
            c,
            Problem::NotRecorded,
            "the request was processed, but its response could not be recorded; a retry with the same key may process it again",
            Some(Duration::from_secs(1)),
        ),
        Err(DurableError::Store(e)) => match &*e {
            StoreError::Corrupt { .. } => {
                tracing::error!(error = %e, "an unreadable idempotency record");
                problem(
                    c,
                    Problem::Unreadable,
                    "the response recorded for this Idempotency-Key cannot be read; nothing was processed",
                    None,
                )
            }
            _ => {
                tracing::warn!(error = %e, "the idempotency store failed");
                problem(
                    c,
                    Problem::StoreUnavailable,
                    "the request was not processed: its Idempotency-Key could not be recorded; retry after the time in Retry-After",
                    Some(Duration::from_secs(1)),
                )
            }
        },
        Err(_) => problem(
            c,
            Problem::StoreUnavailable,
            "the server is shutting down; the request can be retried with the same key",
            Some(Duration::from_secs(1)),
        ),
    })
}

/// A handler's response, as produced, or as a replay: only the replayed
/// headers, and the marker.
fn completed<B: Body, S>(
    c: &Config<S>,
    done: Completed,
    replay: bool,
) -> Response<ResponseBody<B>> {
    if replay {
        done.into_replay(&c.replayed, c.replayed_marker.as_ref())
    } else {
        done.into_response()
    }
}

async fn passthrough<I, ReqB, ResB>(
    mut inner: I,
    req: Request<ReqB>,
) -> Result<Response<ResponseBody<ResB>>, I::Error>
where
    I: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    ReqB: Body,
    ResB: Body,
{
    let response = inner.call(req.map(RequestBody::streaming)).await?;
    Ok(response.map(ResponseBody::inner))
}

/// A refusal made before the body was read: the body is read (up to the
/// cap) and dropped, so that the connection can carry the next request.
async fn refuse<ReqB, ResB, S>(
    c: &Config<S>,
    req: Request<ReqB>,
    p: Problem,
    detail: &str,
) -> Response<ResponseBody<ResB>>
where
    ReqB: Body<Data = Bytes>,
    ReqB::Error: Into<BoxError> + Send,
    ResB: Body,
{
    let version = req.version();
    let drained = read(req.into_body(), c.max_request_body).await;
    let mut r = problem(c, p, detail, None);
    if matches!(drained, Read::TooLarge) {
        close_if_http1(&mut r, version);
    }
    r
}

fn problem<B: Body, S>(
    c: &Config<S>,
    p: Problem,
    detail: &str,
    retry_after: Option<Duration>,
) -> Response<ResponseBody<B>> {
    tracing::debug!(
        status = p.status().as_u16(),
        detail,
        "idempotency-key problem"
    );
    p.response(&c.problem_base, detail, retry_after)
        .map(ResponseBody::bytes)
}

/// A body left unread: on HTTP/1 the connection cannot carry another
/// request, so say it will close.
fn close_if_http1<B>(r: &mut Response<B>, version: Version) {
    if version <= Version::HTTP_11 {
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
}

/// The key in the store: who asks, how, where, and the client's key, each
/// part length-prefixed so that no two requests compose the same string.
fn store_key(scope: &str, parts: &http::request::Parts, key: &str) -> String {
    use std::fmt::Write;
    let method = parts.method.as_str();
    let path = parts.uri.path();
    // Three lengths of at most 20 digits and their colons, then the parts.
    let mut s = String::with_capacity(63 + scope.len() + method.len() + path.len() + key.len());
    let _ = write!(
        s,
        "{}:{scope}{}:{method}{}:{path}{key}",
        scope.len(),
        method.len(),
        path.len()
    );
    s
}

enum Read {
    Whole(Bytes),
    TooLarge,
    Failed,
}

async fn read<B>(body: B, cap: usize) -> Read
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, cap).collect().await {
        Ok(collected) => Read::Whole(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Read::TooLarge,
        Err(_) => Read::Failed,
    }
}

enum Collected<B: Body> {
    Whole(Bytes),
    TooLarge(Bytes, std::pin::Pin<Box<B>>),
    Failed(Bytes, B::Error),
}

/// Reads a response body whole, up to `cap` bytes; trailers are dropped.
async fn collect<B: Body<Data = Bytes>>(body: B, cap: usize) -> Collected<B> {
    let mut body = Box::pin(body);
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Collected::Whole(buf.freeze()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() > cap {
                        return Collected::TooLarge(buf.freeze(), body);
                    }
                }
            }
            Some(Err(e)) => return Collected::Failed(buf.freeze(), e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_do_not_collide_across_parts() {
        let parts = |m: &str, uri: &str| {
            Request::builder()
                .method(m)
                .uri(uri)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let a = store_key("ab", &parts("POST", "/c"), "k");
        let b = store_key("a", &parts("POST", "/c"), "bk");
        let c = store_key("ab", &parts("POST", "/ck"), "");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, "2:ab4:POST2:/ck");
    }
}
