//! The queue consumer of `examples/consumer` on the machine's RabbitMQ and
//! PostgreSQL, in child processes killed with `kill -9` at the two points
//! that matter: after the effect committed and before the
//! acknowledgement (the redelivery must be a no-op, and acknowledged),
//! and inside the effect's transaction (the redelivery must run it, once).
//!
//! The child processes are this test binary itself, run with the test
//! [`consumer_process`] selected and its orders in the environment: they
//! run the example's consumer code (`examples/consumer/shipping.rs`) with
//! this package's dev-dependencies. Run without orders (as `cargo test`
//! does), that test consumes one message in process and checks it was
//! shipped once. Each test declares a queue of
//! its own and deletes it (a failing test included).
//!
//! RabbitMQ: `AMQP_URL`, or `amqp://guest:guest@127.0.0.1:5672/%2f`. An
//! unreachable broker fails the tests, saying how to provide one.

mod support;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/consumer/shipping.rs"]
mod shipping;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use idem_postgres::{Inbox, PostgresStore};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use shipping::{Crash, SHIPMENTS};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use support::Db;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const DEFAULT_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The longest a child may take to print an expected line (it starts,
/// connects to both servers, and handles one message).
const LINE: Duration = Duration::from_secs(20);

/// The environment that makes [`consumer_process`] a consumer.
const ROLE: &str = "IDEM_TEST_CONSUMER_ROLE";
const QUEUE: &str = "IDEM_TEST_CONSUMER_QUEUE";
const SCHEMA: &str = "IDEM_TEST_CONSUMER_SCHEMA";

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP.to_owned())
}

async fn broker() -> Connection {
    Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach RabbitMQ at {}: {e}\n\
                 The idem-postgres consumer tests need a RabbitMQ broker (AMQP 0.9.1): run one on \
                 127.0.0.1:5672 with the user guest/guest (Debian: `apt-get install rabbitmq-server`, \
                 then `rabbitmq-server -detached`), or point AMQP_URL at one, e.g. \
                 AMQP_URL=amqp://user:password@host:5672/%2f cargo test -p idem-postgres --test consumer",
                amqp_url()
            )
        })
}

/// A queue of one test's, deleted when this drops (a failing test
/// included).
struct TestQueue {
    name: String,
    conn: Option<Connection>,
    channel: Channel,
}

impl TestQueue {
    async fn new(test: &str) -> Self {
        let name = format!("idem-test-{}", support::namespace(test));
        let conn = broker().await;
        let channel = conn.create_channel().await.unwrap();
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            name,
            conn: Some(conn),
            channel,
        }
    }

    async fn publish(&self, message_id: &str, body: &str) {
        self.channel
            .basic_publish(
                "".into(),
                self.name.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default().with_message_id(message_id.into()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Waits until no consumer is left on the queue (the broker requeues a
    /// consumer's unacknowledged messages when it removes it), and returns
    /// the messages ready then.
    async fn ready_once_consumers_left(&self) -> u32 {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let start = tokio::time::Instant::now();
        loop {
            let q = self
                .channel
                .queue_declare(self.name.as_str().into(), passive, FieldTable::default())
                .await
                .unwrap();
            if q.consumer_count() == 0 {
                return q.message_count();
            }
            assert!(
                start.elapsed() < LINE,
                "{} consumers still on the queue",
                q.consumer_count()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let (channel, conn, name) = (self.channel.clone(), self.conn.take(), self.name.clone());
        // Drop cannot await: a thread with a runtime of its own does it.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let _ = channel
                        .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                        .await;
                    if let Some(conn) = conn {
                        let _ = conn.close(200, "done".into()).await;
                    }
                });
        })
        .join();
    }
}

/// A consumer process, killed (`SIGKILL`) when this handle drops.
struct Consumer {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Consumer {
    /// Starts this binary as a consumer of `queue` on `db`'s schema, in
    /// `role`: `consume` (one message, then exits), `after-commit` or
    /// `before-commit` (hangs there).
    fn spawn(role: &str, queue: &TestQueue, db: &Db) -> Self {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "consumer_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, role)
            .env(QUEUE, &queue.name)
            .env(SCHEMA, &db.schema)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().expect("a piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the line `expected`, skipping others.
    async fn expect(&mut self, expected: &str) {
        let found = tokio::time::timeout(LINE, async {
            while let Some(line) = self.lines.recv().await {
                let done = line == expected;
                self.seen.push(line);
                if done {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            found == Ok(true),
            "the consumer did not print {expected:?} within {LINE:?}; it printed {:#?}",
            self.seen
        );
    }

    /// `kill -9`, and waits for the process to end.
    async fn kill9(mut self) {
        self.child.start_kill().unwrap();
        let status = self.child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }

    /// Waits for the process to exit by itself, successfully.
    async fn exits(mut self) {
        let status = tokio::time::timeout(LINE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the consumer did not exit; it printed {:#?}", self.seen))
            .unwrap();
        assert!(status.success(), "{status:?}; it printed {:#?}", self.seen);
    }
}

async fn shipments(pool: &PgPool, message_id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM shipments WHERE message_id = $1")
        .bind(message_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn setup(test: &str) -> (Db, TestQueue) {
    let db = Db::new(test, 2).await;
    let _store = db.store().await;
    sqlx::query(SHIPMENTS).execute(&db.pool).await.unwrap();
    let queue = TestQueue::new(test).await;
    queue.publish("m-1", "order-1").await;
    (db, queue)
}

/// Killed after the commit, before the ack: the shipment is there, the
/// broker redelivers the message to the next consumer, which ships
/// nothing and acknowledges it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_between_its_commit_and_its_ack_gets_a_redelivery_that_is_a_no_op() {
    let (db, queue) = setup("killed_before_ack").await;
    let mut first = Consumer::spawn("after-commit", &queue, &db);
    first.expect("delivered m-1 redelivered=false").await;
    first.expect("processed m-1 shipped=order-1").await;
    first.expect("committed m-1").await;
    assert_eq!(shipments(&db.pool, "m-1").await, 1);
    first.kill9().await;

    let mut second = Consumer::spawn("consume", &queue, &db);
    second.expect("delivered m-1 redelivered=true").await;
    second.expect("duplicate m-1").await;
    second.expect("acked m-1").await;
    second.exits().await;
    assert_eq!(shipments(&db.pool, "m-1").await, 1);
    assert_eq!(
        queue.ready_once_consumers_left().await,
        0,
        "the redelivery was acknowledged: nothing came back to the queue"
    );
}

/// Killed inside the effect's transaction: nothing committed, and the
/// redelivery ships the order, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_before_its_commit_leaves_nothing_and_the_redelivery_runs_once() {
    let (db, queue) = setup("killed_before_commit").await;
    let mut first = Consumer::spawn("before-commit", &queue, &db);
    first.expect("written m-1").await;
    assert_eq!(shipments(&db.pool, "m-1").await, 0, "not committed");
    first.kill9().await;

    let mut second = Consumer::spawn("consume", &queue, &db);
    second.expect("delivered m-1 redelivered=true").await;
    second.expect("processed m-1 shipped=order-1").await;
    second.expect("acked m-1").await;
    second.exits().await;
    assert_eq!(shipments(&db.pool, "m-1").await, 1);
    assert_eq!(queue.ready_once_consumers_left().await, 0);
}

/// The consumer process of the tests above, when its orders are in the
/// environment (the tests select it by name); otherwise, as a test of its
/// own, one message consumed in this process and shipped once.
#[test]
fn consumer_process() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let Ok(role) = std::env::var(ROLE) else {
        runtime.block_on(async {
            let (db, queue) = setup("in_process").await;
            consume(&db.schema, &queue.name, None).await;
            assert_eq!(shipments(&db.pool, "m-1").await, 1);
            assert_eq!(queue.ready_once_consumers_left().await, 0, "acknowledged");
        });
        return;
    };
    let queue = std::env::var(QUEUE).unwrap();
    let schema = std::env::var(SCHEMA).unwrap();
    // libtest printed "test consumer_process ... " without a newline.
    println!();
    let crash = match role.as_str() {
        "consume" => None,
        "after-commit" => Some(Crash::AfterCommit),
        "before-commit" => Some(Crash::BeforeCommit),
        other => panic!("unknown role {other:?}"),
    };
    runtime.block_on(consume(&schema, &queue, crash));
}

/// Consumes one message of `queue` into `schema`'s tables, as the example
/// does; with a `crash`, hangs at that point, unacknowledged, until killed.
async fn consume(schema: &str, queue: &str, crash: Option<Crash>) {
    let options = PgConnectOptions::from_str(&support::url())
        .unwrap()
        .options([("search_path", schema)])
        .application_name(schema);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let store = PostgresStore::builder(pool).schema(schema).build().unwrap();
    let inbox = Inbox::new(store, "shipping");
    let conn = broker().await;
    let channel = conn.create_channel().await.unwrap();
    shipping::consume(&channel, queue, &inbox, 1, crash)
        .await
        .unwrap();
    if crash.is_some() {
        std::future::pending::<()>().await;
    }
    conn.close(200, "done".into()).await.unwrap();
}
