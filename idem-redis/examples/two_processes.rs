//! Two processes, one execution: this example starts itself twice as child
//! processes, and both ask a `Durable` executor on Redis for the same key.
//! One runs the work; the other waits for its record and replays it.
//!
//! ```sh
//! cargo run -p idem-redis --example two_processes       # Redis on 127.0.0.1:6379
//! REDIS_URL=redis://host:port cargo run -p idem-redis --example two_processes
//! ```

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idem::durable::{Durable, OnRunning};
use idem_redis::RedisStore;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, key] = args.as_slice() {
        return child(role, key).await;
    }
    // A key of this run only, so that the example runs the work each time.
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let key = format!("order-{nanos}");
    let me = std::env::current_exe()?;
    let children: Vec<_> = ["first", "second"]
        .into_iter()
        .map(|role| {
            Command::new(&me)
                .args([role, key.as_str()])
                .stdout(Stdio::inherit())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut child in children {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a child process failed: {status}").into());
        }
    }
    Ok(())
}

async fn child(role: &str, key: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = redis::Client::open(redis_url())?;
    // A connection that reconnects after a server restart.
    let conn = client.get_connection_manager().await.map_err(|e| {
        format!(
            "cannot reach Redis at {} ({e}); start one, or set REDIS_URL",
            redis_url()
        )
    })?;
    let payments: Durable<_, String, String> = Durable::builder(RedisStore::new(conn))
        .namespace("example-payments")
        .lease(Duration::from_secs(5))
        .on_running(OnRunning::Wait {
            timeout: Duration::from_secs(10),
        })
        .build()?;
    let (receipt, how) = payments
        .run(key, |fence| async move {
            println!("[{role}] charging the card (fence {})", fence.token());
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(format!("receipt for {key}"))
        })
        .await;
    println!("[{role}] {how:?}: {receipt:?}");
    Ok(())
}
