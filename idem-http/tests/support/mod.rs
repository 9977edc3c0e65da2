//! A real axum server on a loopback port, with the layer under test, and a
//! real HTTP client (hyper's, on one connection, HTTP/1.1 or HTTP/2).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use idem_tests::Gate;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The handler's side: how often it ran, and a gate that holds it.
#[derive(Clone)]
pub struct App {
    pub calls: Arc<AtomicUsize>,
    pub gate: Gate,
    pub started: Arc<Notify>,
}

impl App {
    /// An app whose handlers run at once.
    pub fn open() -> Self {
        let app = Self::held();
        app.gate.open();
        app
    }

    /// An app whose handlers wait for `gate.open()`.
    pub fn held() -> Self {
        Self {
            calls: Arc::new(AtomicUsize::new(0)),
            gate: Gate::new(),
            started: Arc::new(Notify::new()),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }

    /// The routes, behind `layer`.
    pub fn router<L>(&self, layer: L) -> Router
    where
        L: tower_layer::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower_service::Service<Request<Body>, Error = std::convert::Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower_service::Service<Request<Body>>>::Response: IntoResponse + 'static,
        <L::Service as tower_service::Service<Request<Body>>>::Future: Send + 'static,
    {
        Router::new()
            .route("/payments", routing::post(pay).get(list))
            .route("/fail", routing::post(fail))
            .route("/big", routing::post(big))
            .route("/panic", routing::post(panics))
            .route("/status/{code}", routing::post(status))
            .with_state(self.clone())
            .layer(layer)
    }

    async fn enter(&self) -> usize {
        let n = self.calls.fetch_add(1, SeqCst) + 1;
        self.started.notify_one();
        self.gate.wait().await;
        n
    }
}

/// The `Date` the payments handler sets: a replay must not carry it.
pub const RECORDED_DATE: &str = "Thu, 01 Jan 2026 00:00:00 GMT";

/// `201` with a `Location`, a cookie, a `Date`, and the body it got.
async fn pay(State(app): State<App>, body: Bytes) -> Response {
    let n = app.enter().await;
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/payments/{n}")),
            (header::SET_COOKIE, format!("session={n}")),
            (header::DATE, RECORDED_DATE.to_string()),
            (header::CONTENT_TYPE, "application/json".to_string()),
        ],
        format!(
            "{{\"payment\":{n},\"request\":{:?}}}",
            String::from_utf8_lossy(&body)
        ),
    )
        .into_response()
}

async fn list(State(app): State<App>) -> Response {
    app.calls.fetch_add(1, SeqCst);
    "[]".into_response()
}

async fn fail(State(app): State<App>) -> Response {
    let n = app.enter().await;
    (StatusCode::SERVICE_UNAVAILABLE, format!("failure {n}")).into_response()
}

async fn panics(State(app): State<App>) -> Response {
    let n = app.enter().await;
    if n == 1 {
        panic!("the first call panics");
    }
    format!("run {n}").into_response()
}

/// A body of 100 kB.
async fn big(State(app): State<App>) -> Response {
    app.enter().await;
    vec![b'x'; 100_000].into_response()
}

async fn status(
    State(app): State<App>,
    axum::extract::Path(code): axum::extract::Path<u16>,
) -> Response {
    let n = app.enter().await;
    (StatusCode::from_u16(code).unwrap(), format!("run {n}")).into_response()
}

/// A server on a loopback port, stopped when dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(router: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { addr, task }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http1,
    Http2,
}

/// One client connection.
pub enum Conn {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }
}

impl Conn {
    pub async fn open(addr: SocketAddr, proto: Proto) -> Self {
        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        match proto {
            Proto::Http1 => {
                let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(conn);
                Conn::Http1(send)
            }
            Proto::Http2 => {
                let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                Conn::Http2(send)
            }
        }
    }

    /// Sends `req` on this connection; panics if the connection is gone
    /// (the server closed it).
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Reply {
        let response = match self {
            Conn::Http1(s) => {
                s.ready().await.expect("the connection is still open");
                s.send_request(req).await
            }
            Conn::Http2(s) => {
                s.ready().await.expect("the connection is still open");
                s.send_request(req).await
            }
        }
        .expect("a response on this connection");
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }
}

/// A `POST` with a key (`None` for none), a user (the scope) and a body.
pub fn post(path: &str, key: Option<&[u8]>, user: &str, body: &str) -> Request<Full<Bytes>> {
    let mut b = Request::post(path)
        .header(header::HOST, "test")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-user", user);
    if let Some(key) = key {
        b = b.header(
            "idempotency-key",
            axum::http::HeaderValue::from_bytes(key).unwrap(),
        );
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

/// The scope of the tests: the `x-user` header (an authentication layer
/// would put the principal in an extension).
pub fn user(parts: &axum::http::request::Parts) -> Option<String> {
    parts
        .headers
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
