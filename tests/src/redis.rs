//! Real Redis servers for tests and benchmarks: each starts its own, on
//! free ports, in a temporary directory, and they are killed and their
//! directories removed when the handle drops (a failing test included).
//! Used by idem-redis's and idem-http's tests and the Redis report.
//!
//! A missing `redis-server` or `redis-cli` fails the caller with how to
//! install it: the tests never skip.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `PING`.
const STARTUP: Duration = Duration::from_secs(15);

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory under the system's temporary one, its name
    /// saying `what` it holds.
    pub fn new(what: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "idem-redis-{what}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Self(dir)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `redis-server` child process, killed on drop.
#[derive(Debug)]
pub struct Server {
    program: &'static str,
    port: u16,
    extra: Vec<String>,
    child: Option<Child>,
    dir: TempDir,
}

impl Server {
    /// A standalone server without persistence.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with more `redis-server` arguments (they override the
    /// defaults: `--appendonly yes`, say).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_on_free_port("redis-server", false, extra)
    }

    /// A standalone server run by `program` instead of `redis-server`.
    pub fn start_program(program: &'static str) -> Self {
        Self::start_on_free_port(program, false, &[])
    }

    fn start_on_free_port(program: &'static str, cluster_bus: bool, extra: &[&str]) -> Self {
        let mut dir = TempDir::new("server");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        // Another process may take the port between our check and the
        // server's bind: then try another.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port(cluster_bus);
            let mut server = Self {
                program,
                port,
                extra: extra.clone(),
                child: None,
                dir,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(log) if log.contains("Address already in use") => {
                    last_log = log;
                    dir = std::mem::replace(&mut server.dir, TempDir::new("unused"));
                }
                Err(log) => panic!("{program} on port {port} did not start:\n{log}"),
            }
        }
        panic!("redis-server found no free port:\n{last_log}");
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The process id of the running server (for its CPU time in
    /// `/proc`).
    ///
    /// # Panics
    ///
    /// If the server was killed and not started again.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// Its working directory (an AOF file goes there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Starts the process and waits for its `PING`; the log on failure.
    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self.dir.path().to_str().expect("a UTF-8 temp dir");
        let log = self.log_path();
        let mut args: Vec<&str> = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            dir,
            "--logfile",
            log.to_str().expect("a UTF-8 temp dir"),
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let child = Command::new(self.program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| missing(self.program, &e));
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        loop {
            if ping(self.port) {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(format!("exited with {status}; its log:\n{}", self.log()));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "no PONG after {STARTUP:?}; its log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the server (`SIGKILL`: no shutdown save), and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts a new one on the same port, with the
    /// same arguments and directory (so an AOF file is read back).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(log) = self.spawn() {
            panic!("redis-server did not restart on port {}:\n{log}", self.port);
        }
    }

    /// Starts the server again after [`kill`](Self::kill).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        if let Err(log) = self.spawn() {
            panic!("redis-server did not restart on port {}:\n{log}", self.port);
        }
    }

    /// Runs `redis-cli -p <port> <args>`, and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(&[&["-p", &self.port.to_string()], args].concat())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three masters in a Redis Cluster, no replicas, slots spread by
/// `redis-cli --cluster create`.
#[derive(Debug)]
pub struct Cluster {
    /// The masters.
    pub nodes: Vec<Server>,
}

impl Cluster {
    /// Starts the three nodes, creates the cluster and waits until every
    /// node says `cluster_state:ok`.
    pub fn start() -> Self {
        let nodes: Vec<Server> = (0..3)
            .map(|_| {
                Server::start_on_free_port(
                    "redis-server",
                    true,
                    &[
                        "--cluster-enabled",
                        "yes",
                        // In the node's own directory (`--dir`).
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        redis_cli(&args);
        let deadline = Instant::now() + STARTUP;
        while !nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(
                Instant::now() < deadline,
                "the cluster is not ok after {STARTUP:?}: {}",
                nodes[0].cli(&["cluster", "info"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { nodes }
    }

    /// Each node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Server::url).collect()
    }
}

/// Runs `redis-cli`, failing the test if it fails; its standard output.
pub fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| missing("redis-cli", &e));
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn missing(program: &str, e: &std::io::Error) -> ! {
    panic!(
        "cannot run `{program}` ({e}): idem's Redis tests and reports start their own Redis servers. \
         Install Redis, e.g. `apt-get install redis-server` (it brings `redis-cli`, \
         package `redis-tools`), and make sure `{program}` is on PATH"
    )
}

/// A port nobody listens on, never handed out twice in this process. For a
/// cluster node, its bus port (`port + 10000`) is free too.
fn free_port(cluster_bus: bool) -> u16 {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = listener.local_addr().expect("a bound address").port();
        if cluster_bus
            && (port > u16::MAX - 10_000
                || TcpListener::bind(("127.0.0.1", port + 10_000)).is_err())
        {
            continue;
        }
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        if taken.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// Whether a server answers `PING` on `port` with `PONG` (not `LOADING`).
fn ping(port: u16) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0_u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}
