//! Issue 8's claims across real OS processes: worker processes
//! (`src/bin/idem-redis-worker.rs`, each a `Durable` on a `RedisStore`)
//! against a `redis-server` each test starts, killed (`kill -9`), paused
//! (`SIGSTOP`) and resumed mid-work.
//!
//! Executions are counted from the workers' `EXEC` lines, outside the
//! store. Every worker is killed when its handle drops, a failing test
//! included, and every test runs under a deadline.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use idem::store::StoreKey;
use idem_redis::RedisStore;
use support::{namespace, Server};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

const WORKER: &str = env!("CARGO_BIN_EXE_idem-redis-worker");

/// The longest a test may take; each takes a few seconds.
const DEADLINE: Duration = Duration::from_secs(45);

/// The longest a worker may take to print an expected line.
const LINE: Duration = Duration::from_secs(15);

/// One test at a time: they measure times against leases of a few hundred
/// milliseconds, and on two cores the four workers of one test could delay
/// another test's renewals past its lease.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Fails the test if `f` takes longer than [`DEADLINE`]: nothing may hang.
async fn bounded<T>(test: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{test} did not finish within {DEADLINE:?}"))
}

/// A line of a worker, and when the test read it.
type Line = (Instant, String);

/// A worker process, killed (`SIGKILL`) when this handle drops.
struct Worker {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<Line>,
    seen: Vec<Line>,
}

impl Worker {
    /// Starts `idem-redis-worker <server> <ns> <args>`.
    fn spawn(name: &'static str, server: &Server, ns: &str, args: &[&str]) -> Self {
        let mut child = Command::new(WORKER)
            .arg(server.url())
            .arg(ns)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {WORKER}: {e}"));
        let stdout = child.stdout.take().expect("a piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Self {
            name,
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("a running worker")
    }

    /// The next line starting with `prefix`, and when it came.
    async fn expect(&mut self, prefix: &str) -> Line {
        let found = tokio::time::timeout(LINE, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if line.1.starts_with(prefix) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            Ok(None) => panic!(
                "{} ended without a line {prefix:?}; it wrote {:#?}",
                self.name, self.seen
            ),
            Err(_) => panic!(
                "{} wrote no line {prefix:?} within {LINE:?}; it wrote {:#?}",
                self.name, self.seen
            ),
        }
    }

    /// Waits for `READY`.
    async fn ready(&mut self) {
        self.expect("READY").await;
    }

    /// Lets a worker started with `--barrier` begin its calls.
    async fn go(&mut self) {
        let mut stdin = self.stdin.take().expect("not started yet");
        stdin
            .write_all(b"go\n")
            .await
            .expect("writing the start line");
    }

    /// Every line of the worker, once it exited with status 0.
    async fn finish(&mut self) -> Vec<Line> {
        self.expect("END").await;
        let status = tokio::time::timeout(LINE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit after END", self.name))
            .expect("waiting for a worker");
        assert!(status.success(), "{} exited with {status}", self.name);
        std::mem::take(&mut self.seen)
    }

    /// Sends `signal` (`STOP`, `CONT`) with kill(1).
    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} {}: {status}", self.name);
    }

    /// `kill -9`, and waits for the process to be gone.
    async fn kill9(&mut self) {
        self.child.kill().await.expect("SIGKILL");
        let status = self.child.wait().await.expect("waiting for a worker");
        assert_eq!(status.signal(), Some(9), "{}: {status}", self.name);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Also a stopped one: SIGKILL needs no SIGCONT.
        let _ = self.child.start_kill();
    }
}

/// The fields of a worker's line.
fn fields(line: &str) -> Vec<&str> {
    line.split(' ').collect()
}

/// The `(when, key, fence)` of every `EXEC` line.
fn execs(lines: &[Line]) -> Vec<(Instant, String, u64)> {
    lines
        .iter()
        .filter_map(|(at, l)| match fields(l)[..] {
            ["EXEC", key, fence] => Some((*at, key.to_owned(), fence.parse().unwrap())),
            _ => None,
        })
        .collect()
}

/// The `DONE` lines' `(key, outcome, result)`, result being `ok <value>`
/// or `err <error>`.
fn dones(lines: &[Line]) -> Vec<(String, String, String)> {
    lines
        .iter()
        .filter_map(|(_, l)| {
            let rest = l.strip_prefix("DONE ")?;
            let mut f = rest.splitn(3, ' ');
            let (key, how, result) = (f.next()?, f.next()?, f.next()?);
            Some((key.to_owned(), how.to_owned(), result.to_owned()))
        })
        .collect()
}

/// The lines of `lines` starting with `prefix`, without their time.
fn starting<'a>(lines: &'a [Line], prefix: &str) -> Vec<&'a str> {
    lines
        .iter()
        .map(|(_, l)| l.as_str())
        .filter(|l| l.starts_with(prefix))
        .collect()
}

/// The process id a worker gave in its `READY` line.
fn pid_of(lines: &[Line]) -> u32 {
    fields(starting(lines, "READY")[0])[1].parse().unwrap()
}

/// The fence of an `EXEC <key> <fence>` line.
fn fence_of(exec: &str) -> u64 {
    fields(exec)[2].parse().unwrap()
}

/// The raw record of `key` in `ns`, as Redis holds it.
async fn raw_record(server: &Server, ns: &str, key: &str) -> Option<Vec<u8>> {
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let redis_key = RedisStore::new(conn.clone()).record_key(StoreKey { namespace: ns, key });
    redis::cmd("GET")
        .arg(redis_key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Issue 8, test 1: 4 processes × 50 concurrent duplicates × 100 keys,
/// started together: one execution per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_processes_execute_each_key_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start();
    let ns = namespace("many");
    let (processes, keys, dups) = (4, 100, 50);
    bounded("many_processes", async {
        let mut workers: Vec<Worker> = ["w0", "w1", "w2", "w3"][..processes]
            .iter()
            .map(|name| {
                Worker::spawn(
                    name,
                    &server,
                    &ns,
                    &[
                        "--keys",
                        &keys.to_string(),
                        "--dups",
                        &dups.to_string(),
                        "--lease-ms",
                        "2000",
                        "--work-ms",
                        "200",
                        "--barrier",
                    ],
                )
            })
            .collect();
        for w in &mut workers {
            w.ready().await;
        }
        let started = Instant::now();
        for w in &mut workers {
            w.go().await;
        }
        let mut outputs = Vec::new();
        for w in &mut workers {
            outputs.push(w.finish().await);
        }
        let took = started.elapsed();

        // Who ran each key, counted from the work bodies' own lines.
        let mut ran: BTreeMap<String, Vec<(u32, u64)>> = BTreeMap::new();
        let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        for (w, lines) in workers.iter().zip(&outputs) {
            let pid = pid_of(lines);
            for (_, key, fence) in execs(lines) {
                ran.entry(key).or_default().push((pid, fence));
            }
            let done = dones(lines);
            assert_eq!(done.len(), keys * dups, "{}: one DONE per call", w.name);
            for (key, how, result) in done {
                let value = result
                    .strip_prefix("ok ")
                    .unwrap_or_else(|| panic!("{}: {key} {how} {result}", w.name));
                values.entry(key).or_default().insert(value.to_owned());
                *outcomes.entry(how).or_default() += 1;
            }
        }
        assert_eq!(ran.len(), keys, "every key ran");
        for (key, who) in &ran {
            assert_eq!(who.len(), 1, "{key} ran {} times: {who:?}", who.len());
            let (pid, fence) = who[0];
            assert_eq!(
                values[key],
                BTreeSet::from([format!("{pid}:{fence}")]),
                "every call of {key}, in every process, got the one execution's value"
            );
        }
        assert_eq!(outcomes.get("Executed"), Some(&keys));
        assert_eq!(
            outcomes.get("Coalesced"),
            Some(&(processes * keys * (dups - 1))),
            "{outcomes:?}: one call per key and process reaches the store"
        );
        let by_process: BTreeMap<u32, usize> = ran.values().fold(BTreeMap::new(), |mut m, who| {
            *m.entry(who[0].0).or_default() += 1;
            m
        });
        eprintln!(
            "many processes: {} calls in {took:?}; executions per key: 1 ({} keys); \
             executions per process {by_process:?}; outcomes {outcomes:?}",
            processes * keys * dups,
            ran.len()
        );
    })
    .await;
}

/// Issue 8, test 2: the owner is `kill -9`ed mid-work; duplicates see the
/// key running until its lease ends, then exactly one of them runs it,
/// under a greater fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_killed_mid_work_is_replaced_once_its_lease_ends() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start();
    let ns = namespace("killed");
    const LEASE_MS: u64 = 400;
    let lease = Duration::from_millis(LEASE_MS);
    let lease_ms = LEASE_MS.to_string();
    bounded("owner_killed", async {
        let mut owner = Worker::spawn(
            "owner",
            &server,
            &ns,
            &["--key", "k", "--lease-ms", &lease_ms, "--work-ms", "60000"],
        );
        let (_, exec) = owner.expect("EXEC k ").await;
        let old_fence = fence_of(&exec);
        // Duplicates in two processes, and one that asks without waiting,
        // connected and held at the start line.
        let waiter_args = [
            "--key",
            "k",
            "--dups",
            "10",
            "--lease-ms",
            &lease_ms,
            "--work-ms",
            "50",
            "--barrier",
        ];
        let mut waiters = [
            Worker::spawn("waiter-1", &server, &ns, &waiter_args),
            Worker::spawn("waiter-2", &server, &ns, &waiter_args),
        ];
        let mut probe = Worker::spawn("probe", &server, &ns, &["--key", "k", "--reject", "--barrier"]);
        for w in waiters.iter_mut().chain([&mut probe]) {
            w.ready().await;
        }

        owner.kill9().await;
        let killed = Instant::now();
        probe.go().await;
        for w in &mut waiters {
            w.go().await;
        }

        // Running, for at most a lease more.
        let probed = probe.finish().await;
        assert!(execs(&probed).is_empty(), "{probed:?}");
        let [(_, _, result)] = &dones(&probed)[..] else {
            panic!("{probed:?}")
        };
        let retry_after: u64 = result
            .strip_prefix("err Running ")
            .unwrap_or_else(|| panic!("the killed owner's key is running: {result}"))
            .parse()
            .unwrap();
        assert!(
            retry_after > 0 && retry_after <= LEASE_MS,
            "retry after {retry_after} ms"
        );

        // Then one execution among the duplicates of both processes.
        let outputs = [waiters[0].finish().await, waiters[1].finish().await];
        let ran: Vec<_> = outputs.iter().flat_map(|o| execs(o)).collect();
        let [(at, _, new_fence)] = ran[..] else {
            panic!("one execution after the kill, not {ran:?}")
        };
        assert!(new_fence > old_fence, "{new_fence} > {old_fence}");
        let after = at.duration_since(killed);
        assert!(
            after >= lease / 3 && after <= lease + Duration::from_secs(1),
            "taken over {after:?} after the kill, with a {lease:?} lease renewed every third"
        );
        let mut how: BTreeMap<String, usize> = BTreeMap::new();
        let mut values = BTreeSet::new();
        for (_, h, result) in outputs.iter().flat_map(|o| dones(o)) {
            *how.entry(h).or_default() += 1;
            values.insert(result);
        }
        assert_eq!(values.len(), 1, "one value for all: {values:?}");
        assert!(
            values.first().unwrap().ends_with(&format!(":{new_fence}")),
            "{values:?}"
        );
        assert_eq!(
            how,
            BTreeMap::from([
                ("Executed".to_owned(), 1),
                ("Waited".to_owned(), 1),
                ("Coalesced".to_owned(), 18),
            ])
        );
        eprintln!(
            "owner killed: fence {old_fence} -> {new_fence}; the probe was told to retry after \
             {retry_after} ms; taken over {after:?} after the kill ({lease:?} lease); outcomes {how:?}"
        );
    })
    .await;
}

/// Issue 8, test 3: the owner is paused (`SIGSTOP`) past its lease,
/// another process takes over and completes, the owner resumes
/// (`SIGCONT`): its renewal and its completion are refused and reported
/// to it, and the newer record stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owner_resumed_after_its_lease_is_fenced() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start();
    let ns = namespace("stale");
    bounded("stale_owner", async {
        let args = |work: &'static str| ["--key", "k", "--lease-ms", "300", "--work-ms", work];
        let mut stale = Worker::spawn("stale", &server, &ns, &args("3000"));
        let (_, exec) = stale.expect("EXEC k ").await;
        let old_fence = fence_of(&exec);
        stale.signal("STOP");
        let stopped = Instant::now();

        let mut newer = Worker::spawn("newer", &server, &ns, &args("50"));
        let newer_lines = newer.finish().await;
        let [(took_over, _, new_fence)] = execs(&newer_lines)[..] else {
            panic!("{newer_lines:?}")
        };
        assert!(new_fence > old_fence, "{new_fence} > {old_fence}");
        let newer_value = format!("{}:{new_fence}", pid_of(&newer_lines));
        assert_eq!(
            dones(&newer_lines),
            [(
                "k".to_owned(),
                "Executed".to_owned(),
                format!("ok {newer_value}")
            )]
        );
        let paused = stopped.elapsed();
        stale.signal("CONT");

        let stale_lines = stale.finish().await;
        assert_eq!(
            starting(&stale_lines, "WORKEND"),
            [format!("WORKEND k {old_fence} lost")],
            "the refused renewal reached the work"
        );
        assert_eq!(
            dones(&stale_lines),
            [(
                "k".to_owned(),
                "Executed".to_owned(),
                "err LeaseLost".to_owned()
            )]
        );
        assert_eq!(
            starting(&stale_lines, "EXEC"),
            [format!("EXEC k {old_fence}")],
            "ran once, before the pause"
        );

        // The newer record stands: in Redis, and replayed to a new call.
        let raw = raw_record(&server, &ns, "k").await.expect("a record");
        let header = format!("idem1 {new_fence} ");
        assert!(
            raw.starts_with(header.as_bytes()),
            "{:?}",
            String::from_utf8_lossy(&raw)
        );
        let mut reader = Worker::spawn("reader", &server, &ns, &["--key", "k"]);
        let read = reader.finish().await;
        assert!(execs(&read).is_empty(), "{read:?}");
        assert_eq!(
            dones(&read),
            [(
                "k".to_owned(),
                "Replayed".to_owned(),
                format!("ok {newer_value}")
            )]
        );
        eprintln!(
            "stale owner: paused {paused:?} (300 ms lease); taken over {:?} after the pause \
             with fence {new_fence} > {old_fence}; the stale completion: LeaseLost; record fence {new_fence}",
            took_over.duration_since(stopped)
        );
    })
    .await;
}

/// Issue 8, test 4: a work five leases long keeps its key by renewal (a
/// duplicate in another process waits for its value); past `max_run` its
/// lease ends, another process takes over, and its completion is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_holds_a_long_work_and_max_run_ends_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start();
    let ns = namespace("renewal");
    bounded("renewal", async {
        let lease = Duration::from_millis(300);
        let work = lease * 5;
        let long = |keys: &[&'static str], max_run: Option<&'static str>| {
            let mut args = vec!["--lease-ms", "300", "--work-ms", "1500"];
            for k in keys {
                args.extend(["--key", k]);
            }
            if let Some(ms) = max_run {
                args.extend(["--max-run-ms", ms]);
            }
            args
        };
        // Renewed: the default max_run (10 minutes).
        let mut renewed = Worker::spawn("renewed", &server, &ns, &long(&["held"], None));
        // Renewed up to 900 ms only: three leases. The last renewal is
        // the one before 600 ms, so the lease ends near 800 ms.
        let mut capped = Worker::spawn(
            "capped",
            &server,
            &ns,
            &long(&["capped", "alone"], Some("900")),
        );
        let (held_at, exec) = renewed.expect("EXEC held ").await;
        let held_fence = fence_of(&exec);
        let (capped_at, exec) = capped.expect("EXEC capped ").await;
        let capped_fence = fence_of(&exec);

        let mut waiter = Worker::spawn(
            "waiter",
            &server,
            &ns,
            &[
                "--key",
                "held",
                "--dups",
                "5",
                "--lease-ms",
                "300",
                "--wait-ms",
                "10000",
            ],
        );
        let mut taker = Worker::spawn(
            "taker",
            &server,
            &ns,
            &["--key", "capped", "--lease-ms", "300", "--work-ms", "50"],
        );

        // Held: the waiter got the long work's value, ran nothing.
        let waited = waiter.finish().await;
        let renewed_lines = renewed.finish().await;
        assert!(execs(&waited).is_empty(), "no takeover: {waited:?}");
        let value = format!("ok {}:{held_fence}", pid_of(&renewed_lines));
        let mut how: Vec<String> = dones(&waited)
            .into_iter()
            .map(|(_, h, r)| {
                assert_eq!(r, value);
                h
            })
            .collect();
        how.sort();
        assert_eq!(
            how,
            ["Coalesced", "Coalesced", "Coalesced", "Coalesced", "Waited"]
        );
        assert_eq!(
            starting(&renewed_lines, "WORKEND"),
            [format!("WORKEND held {held_fence} held")]
        );
        assert_eq!(
            dones(&renewed_lines),
            [("held".to_owned(), "Executed".to_owned(), value.clone())]
        );
        let held_for = renewed_lines.last().unwrap().0.duration_since(held_at);
        let waited_for = waited.last().unwrap().0.duration_since(held_at);
        // Timed by the test's reading of the lines: near the work's length,
        // give or take a scheduling delay.
        assert!(held_for > lease * 4, "held for {held_for:?}");

        // Capped: taken over after max_run, before the work ended.
        let took = taker.finish().await;
        let [(taken_at, _, new_fence)] = execs(&took)[..] else {
            panic!("{took:?}")
        };
        assert!(new_fence > capped_fence, "{new_fence} > {capped_fence}");
        let after = taken_at.duration_since(capped_at);
        assert!(
            after > lease * 2 && after < work,
            "taken over {after:?} after the start: renewed past two leases, not up to the work's end"
        );
        let capped_lines = capped.finish().await;
        let mut ended = starting(&capped_lines, "WORKEND");
        ended.sort_unstable();
        assert_eq!(ended.len(), 2, "{capped_lines:?}");
        assert!(
            ended.iter().all(|l| l.ends_with(" lost")),
            "the work is told its lease is gone: {ended:?}"
        );
        let mut refused = dones(&capped_lines);
        refused.sort();
        assert_eq!(
            refused,
            [
                (
                    "alone".to_owned(),
                    "Executed".to_owned(),
                    "err LeaseLost".to_owned()
                ),
                (
                    "capped".to_owned(),
                    "Executed".to_owned(),
                    "err LeaseLost".to_owned()
                ),
            ],
            "refused, taken over or not"
        );
        let raw = raw_record(&server, &ns, "capped").await.expect("a record");
        assert!(raw.starts_with(format!("idem1 {new_fence} ").as_bytes()));
        assert_eq!(raw_record(&server, &ns, "alone").await, None);
        eprintln!(
            "renewal: a {work:?} work on a {lease:?} lease held its key {held_for:?}, \
             the waiter waited {waited_for:?} (Waited); with max_run 900 ms another process \
             took over {after:?} after the start, fence {capped_fence} -> {new_fence}, and both \
             completions past max_run were refused (LeaseLost)"
        );
    })
    .await;
}

/// Issue 8, test 10: 1,000 concurrent consumes of one token, from four
/// processes (250 each) released together: exactly one spends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_spent_once_across_processes() {
    use idem::store::TokenStore;
    let _one = ONE_AT_A_TIME.lock().await;
    let server = Server::start();
    let ns = namespace("tokens");
    bounded("tokens", async {
        let conn = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let store = RedisStore::new(conn);
        let token = store
            .issue("form:alice", Duration::from_secs(60))
            .await
            .unwrap();
        let mut workers: Vec<Worker> = ["t0", "t1", "t2", "t3"]
            .iter()
            .map(|name| {
                Worker::spawn(
                    name,
                    &server,
                    &ns,
                    &[
                        "--consume",
                        "form:alice",
                        token.as_str(),
                        "--dups",
                        "250",
                        "--barrier",
                    ],
                )
            })
            .collect();
        for w in &mut workers {
            w.ready().await;
        }
        for w in &mut workers {
            w.go().await;
        }
        let mut spent = 0;
        let mut answers = 0;
        for w in &mut workers {
            let lines = w.finish().await;
            for l in starting(&lines, "CONSUMED") {
                answers += 1;
                assert!(!l.contains("error"), "{l}");
                spent += usize::from(l == "CONSUMED true");
            }
        }
        assert_eq!(answers, 1_000);
        assert_eq!(spent, 1, "one of 1,000 consumes spent the token");
        // Another scope never spends it; a spent token stays spent.
        assert!(!store.consume("form:alice", &token).await.unwrap());
        let other = store
            .issue("form:bob", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(!store.consume("form:mallory", &other).await.unwrap());
        assert!(store.consume("form:bob", &other).await.unwrap());
    })
    .await;
}
