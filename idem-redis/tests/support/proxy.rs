//! A TCP proxy between Redis clients and a server, with the network
//! faults the tests inject: a reply lost or held past the client's
//! timeout (one request, armed by the test), every connection cut at
//! once, replies delayed for a while, and a blackhole that lets nothing
//! through until it lifts.
//!
//! It listens on `127.0.0.1:0` and opens one server connection per
//! client connection, to a fixed port: a server killed and started again
//! on that port is reached again by the next client connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// What the proxy does to the reply of the request it was armed for
/// ([`Proxy::arm`]).
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Closes the client's connection (and the server's) instead of
    /// passing the reply on: the command ran, its reply is lost.
    Drop,
    /// Passes the reply on after this long.
    Delay(Duration),
}

#[derive(Debug)]
struct Shared {
    upstream: u16,
    /// The next request whose bytes contain the needle gets the fault.
    armed: Mutex<Option<(&'static [u8], Fault)>>,
    /// How many armed faults were applied.
    fired: AtomicUsize,
    /// Bumped by [`Proxy::cut`]: every connection open then ends.
    cut: watch::Sender<u64>,
    /// How long every reply is held before it is passed on.
    delay: watch::Sender<Duration>,
    /// While `true`, nothing passes either way, and new connections wait
    /// before reaching the server.
    blackhole: watch::Sender<bool>,
    /// Client connections accepted.
    accepted: AtomicUsize,
}

impl Shared {
    /// The armed fault for a request, if it is the one armed (once).
    fn take_for(&self, request: &[u8]) -> Option<Fault> {
        let mut armed = self.armed.lock().unwrap();
        let (needle, fault) = (*armed)?;
        if request.windows(needle.len()).any(|w| w == needle) {
            *armed = None;
            Some(fault)
        } else {
            None
        }
    }
}

/// A TCP proxy to a Redis server, one task per client connection; stopped,
/// with every connection closed, when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy to the server on `127.0.0.1:<upstream>`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            armed: Mutex::new(None),
            fired: AtomicUsize::new(0),
            cut: watch::Sender::new(0),
            delay: watch::Sender::new(Duration::ZERO),
            blackhole: watch::Sender::new(false),
            accepted: AtomicUsize::new(0),
        });
        let accepting = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                accepting.accepted.fetch_add(1, Ordering::Relaxed);
                // Subscribed before the pipe runs: a cut right after the
                // accept ends this connection too.
                let cut = accepting.cut.subscribe();
                conns.spawn(pipe(client, Arc::clone(&accepting), cut));
                // Reap the pipes that ended.
                while conns.try_join_next().is_some() {}
            }
        });
        Self { addr, shared, task }
    }

    /// `redis://<the proxy's address>/`.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Applies `fault` to the reply of the next request containing
    /// `needle`. The reply is recognised by order: Redis answers a
    /// connection's requests in order, so arm it only while the client
    /// sends one request at a time.
    pub fn arm(&self, needle: &'static [u8], fault: Fault) {
        *self.shared.armed.lock().unwrap() = Some((needle, fault));
    }

    /// How many armed faults were applied.
    pub fn fired(&self) -> usize {
        self.shared.fired.load(Ordering::SeqCst)
    }

    /// Closes every connection open now, both ways, whatever it carries:
    /// requests sent and not yet answered may or may not have run.
    pub fn cut(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Holds every reply `delay` before passing it on (latency, not a
    /// slower link: replies keep their order and are not serialised
    /// behind each other's delay). `Duration::ZERO` ends it.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.delay.send_replace(delay);
    }

    /// While on, nothing passes either way on any connection and new
    /// connections wait before reaching the server; the bytes stay in the
    /// sockets and flow again when it is turned off (a partition that
    /// heals), unless a side closed meanwhile.
    pub fn set_blackhole(&self, on: bool) {
        self.shared.blackhole.send_replace(on);
    }

    /// How many client connections the proxy accepted.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Dropping the task drops its `JoinSet`, which aborts the pipes.
        self.task.abort();
    }
}

/// Waits while the blackhole is on; `false` if the connection was cut
/// meanwhile (or the proxy dropped).
async fn through(blackhole: &mut watch::Receiver<bool>, cut: &mut watch::Receiver<u64>) -> bool {
    while *blackhole.borrow_and_update() {
        tokio::select! {
            r = blackhole.changed() => if r.is_err() { return false },
            _ = cut.changed() => return false,
        }
    }
    true
}

/// Copies bytes both ways between `client` and the server, applying the
/// faults. Each reply chunk is queued with the time it may go out (now
/// plus the delay, or the armed delay), and written then.
async fn pipe(client: TcpStream, shared: Arc<Shared>, mut cut: watch::Receiver<u64>) {
    let mut blackhole = shared.blackhole.subscribe();
    if !through(&mut blackhole, &mut cut).await {
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", shared.upstream)).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let mut request = vec![0_u8; 64 * 1024];
    let mut reply = vec![0_u8; 64 * 1024];
    let mut armed: Option<Fault> = None;
    let mut replies: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    loop {
        if !through(&mut blackhole, &mut cut).await {
            return;
        }
        let due = replies.front().map(|(at, _)| *at);
        tokio::select! {
            _ = cut.changed() => return,
            // Turned on: the loop's head waits until it is off.
            _ = blackhole.changed() => {}
            n = from_client.read(&mut request) => {
                let n = match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                // Before forwarding: the reply cannot come first.
                if armed.is_none() {
                    armed = shared.take_for(&request[..n]);
                }
                if to_server.write_all(&request[..n]).await.is_err() {
                    return;
                }
            }
            n = from_server.read(&mut reply) => {
                let n = match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let now = Instant::now();
                let mut at = now + *shared.delay.borrow();
                match armed.take() {
                    Some(Fault::Drop) => {
                        shared.fired.fetch_add(1, Ordering::SeqCst);
                        // The command ran (this is its reply): both
                        // connections close, the reply unsent.
                        return;
                    }
                    Some(Fault::Delay(d)) => {
                        shared.fired.fetch_add(1, Ordering::SeqCst);
                        at = at.max(now + d);
                    }
                    None => {}
                }
                replies.push_back((at, reply[..n].to_vec()));
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                let (_, bytes) = replies.pop_front().expect("a queued reply");
                if to_client.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
    }
}
