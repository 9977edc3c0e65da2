//! The report's own `redis-server`: a free port on 127.0.0.1, no
//! persistence (`--save ""`, `--appendonly no`), a log in a temporary
//! directory, killed when the handle drops (a panic that unwinds
//! included).
//!
//! The same idea as `idem-redis/tests/support/mod.rs`, cut down to one
//! standalone server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer its first `PING`.
const STARTUP: Duration = Duration::from_secs(15);

/// A `redis-server` child process, killed (and its directory removed) on
/// drop.
#[derive(Debug)]
pub struct Server {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl Server {
    /// Starts a server on a free port and waits for its `PONG`.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not on `PATH` (the message says how to
    /// install it), or if it does not answer within 15 s (the message
    /// holds its log).
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "idem-redis-report-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let mut last = String::new();
        // Another process may take the port between our check and the
        // server's bind: then try another.
        for _ in 0..5 {
            let port = free_port();
            match spawn(port, &dir) {
                Ok(child) => return Self { port, child, dir },
                Err(log) if log.contains("Address already in use") => last = log,
                Err(log) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    panic!("redis-server on port {port} did not start:\n{log}")
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("redis-server found no free port:\n{last}");
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's process id (for its CPU time in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `redis-server` on `port` and waits for its `PING`; its log if it
/// exits or stays silent.
fn spawn(port: u16, dir: &std::path::Path) -> Result<Child, String> {
    let log = dir.join(format!("redis-{port}.log"));
    let port_arg = port.to_string();
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port_arg,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            dir.to_str().expect("a UTF-8 temp dir"),
            "--logfile",
            log.to_str().expect("a UTF-8 temp dir"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `redis-server` ({e}): the Redis report starts a server of its own. \
                 Install Redis (e.g. `apt-get install redis-server`) and put `redis-server` on PATH"
            )
        });
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + STARTUP;
    loop {
        if ping(port) {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}; its log:\n{}", read_log()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "no PONG after {STARTUP:?}; its log:\n{}",
                read_log()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
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
