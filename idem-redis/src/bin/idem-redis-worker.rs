//! A worker process for idem-redis's cross-process tests
//! (`tests/processes.rs`): a [`Durable`] on a [`RedisStore`], running
//! duplicate calls of some keys, reporting on stdout.
//!
//! ```text
//! idem-redis-worker <redis-url> <namespace> [options]
//!   --key K          a key to call (repeatable)
//!   --keys N         the keys key-0 … key-<N-1>
//!   --dups N         concurrent calls per key in this process (1)
//!   --lease-ms N     the lease (30000)
//!   --max-run-ms N   max_run (the executor's default)
//!   --work-ms N      how long the work sleeps (0)
//!   --wait-ms N      OnRunning::Wait up to N ms (30000)
//!   --reject         OnRunning::Reject instead
//!   --barrier        after READY, start when a line arrives on stdin
//!   --consume S T    instead of calls: `--dups` concurrent consumes of the
//!                    one-time token T in scope S
//! ```
//!
//! Lines, each written whole:
//!
//! ```text
//! READY <pid>                          connected
//! EXEC <key> <fence>                   the work began
//! WORKEND <key> <fence> held|lost      the work ended; Fence::is_lost
//! DONE <key> <outcome> ok <value>      a call returned a value
//! DONE <key> <outcome> err <error>     or an error: LeaseLost, Running <ms>, …
//! CONSUMED true|false                  a consume returned
//! END                                  every call returned
//! ```
//!
//! A work's value is `<pid>:<fence>`: who ran it, under which lease. Exits
//! 0 once every call returned, whatever they returned.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use idem::durable::{Durable, DurableError, Fence, OnRunning};
use idem_redis::RedisStore;

#[derive(Debug)]
struct Args {
    url: String,
    namespace: String,
    keys: Vec<String>,
    dups: usize,
    lease: Duration,
    max_run: Option<Duration>,
    work: Duration,
    on_running: OnRunning,
    barrier: bool,
    consume: Option<(String, String)>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let url = args.next().ok_or("missing <redis-url>")?;
    let namespace = args.next().ok_or("missing <namespace>")?;
    let mut a = Args {
        url,
        namespace,
        keys: Vec::new(),
        dups: 1,
        lease: Duration::from_secs(30),
        max_run: None,
        work: Duration::ZERO,
        on_running: OnRunning::Wait {
            timeout: Duration::from_secs(30),
        },
        barrier: false,
        consume: None,
    };
    while let Some(flag) = args.next() {
        let mut value = |what: &str| -> Result<u64, String> {
            let v = args.next().ok_or_else(|| format!("{flag} needs {what}"))?;
            v.parse().map_err(|e| format!("{flag} {v}: {e}"))
        };
        let ms = Duration::from_millis;
        match flag.as_str() {
            "--key" => a.keys.push(args.next().ok_or("--key needs a key")?),
            "--keys" => a
                .keys
                .extend((0..value("a count")?).map(|i| format!("key-{i}"))),
            "--dups" => a.dups = usize::try_from(value("a count")?).map_err(|e| e.to_string())?,
            "--lease-ms" => a.lease = ms(value("milliseconds")?),
            "--max-run-ms" => a.max_run = Some(ms(value("milliseconds")?)),
            "--work-ms" => a.work = ms(value("milliseconds")?),
            "--wait-ms" => {
                a.on_running = OnRunning::Wait {
                    timeout: ms(value("milliseconds")?),
                }
            }
            "--reject" => a.on_running = OnRunning::Reject,
            "--barrier" => a.barrier = true,
            "--consume" => {
                let scope = args.next().ok_or("--consume needs a scope")?;
                let token = args.next().ok_or("--consume needs a token")?;
                a.consume = Some((scope, token));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("idem-redis-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let conn = match rt.block_on(connect(&args.url)) {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("idem-redis-worker: connecting to {}: {e}", args.url);
            return ExitCode::FAILURE;
        }
    };
    if let Some((scope, token)) = &args.consume {
        let Some(token) = idem::store::Token::parse(token) else {
            eprintln!("idem-redis-worker: not a token: {token:?}");
            return ExitCode::from(2);
        };
        let store = Arc::new(RedisStore::new(conn));
        println!("READY {}", std::process::id());
        if args.barrier && !wait_for_start() {
            return ExitCode::FAILURE;
        }
        rt.block_on(consumes(store, scope, &token, args.dups));
        println!("END");
        return ExitCode::SUCCESS;
    }
    let mut builder = Durable::<_, String, String>::builder(RedisStore::new(conn))
        .namespace(args.namespace.as_str())
        .lease(args.lease)
        .on_running(args.on_running);
    if let Some(max_run) = args.max_run {
        builder = builder.max_run(max_run);
    }
    let durable = match builder.build() {
        Ok(d) => Arc::new(d),
        Err(e) => {
            eprintln!("idem-redis-worker: {e}");
            return ExitCode::from(2);
        }
    };
    println!("READY {}", std::process::id());
    if args.barrier && !wait_for_start() {
        return ExitCode::FAILURE;
    }
    rt.block_on(calls(durable, &args));
    println!("END");
    ExitCode::SUCCESS
}

/// Waits for the start line on stdin; `false` if stdin closed first.
fn wait_for_start() -> bool {
    let mut go = String::new();
    if std::io::stdin().lock().read_line(&mut go).is_err() || go.is_empty() {
        eprintln!("idem-redis-worker: stdin closed before the start line");
        return false;
    }
    true
}

/// `n` concurrent consumes of `token`, each reported.
async fn consumes(
    store: Arc<RedisStore<redis::aio::MultiplexedConnection>>,
    scope: &str,
    token: &idem::store::Token,
    n: usize,
) {
    use idem::store::TokenStore;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (store, scope, token) = (Arc::clone(&store), scope.to_owned(), token.clone());
        tasks.spawn(async move {
            let spent = store.consume(&scope, &token).await;
            match spent {
                Ok(spent) => println!("CONSUMED {spent}"),
                Err(e) => println!("CONSUMED error {e}"),
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a consume task panicked");
    }
}

async fn connect(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

/// `dups` concurrent calls of every key, each reported when it returns.
async fn calls(
    durable: Arc<Durable<RedisStore<redis::aio::MultiplexedConnection>, String, String>>,
    args: &Args,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for key in &args.keys {
        for _ in 0..args.dups {
            let (durable, key, work) = (Arc::clone(&durable), key.clone(), args.work);
            tasks.spawn(async move {
                let k = key.clone();
                let (r, how) = durable
                    .run(&key, |fence: Fence| async move {
                        println!("EXEC {k} {}", fence.token());
                        tokio::time::sleep(work).await;
                        let held = if fence.is_lost() { "lost" } else { "held" };
                        println!("WORKEND {k} {} {held}", fence.token());
                        Ok(format!("{}:{}", std::process::id(), fence.token()))
                    })
                    .await;
                let r = match r {
                    Ok(v) => format!("ok {v}"),
                    Err(DurableError::Running { retry_after }) => {
                        format!("err Running {}", retry_after.as_millis())
                    }
                    Err(DurableError::LeaseLost) => "err LeaseLost".to_owned(),
                    Err(e) => format!("err {e:?}"),
                };
                println!("DONE {key} {how:?} {r}");
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a call task panicked");
    }
}
