//! A RabbitMQ consumer that ships each order once, however often its
//! message is delivered: the shipment row and the message's inbox record
//! commit in one transaction ([`idem_postgres::Inbox`]), and the message is
//! acknowledged after the commit.
//!
//! ```sh
//! # RabbitMQ on 127.0.0.1:5672 (guest/guest) or AMQP_URL,
//! # PostgreSQL on 127.0.0.1:5432 or DATABASE_URL
//! cargo run -p idem-postgres --example consumer
//! ```
//!
//! It publishes four messages (one of them twice, as a producer retrying
//! after a lost confirm would), then runs a first consumer that "crashes"
//! after its first commit and before the acknowledgement (it closes its
//! connection: RabbitMQ requeues the message), then a second consumer that
//! gets the redelivery, finds it processed, and acknowledges it without
//! shipping anything. It works in a queue and a schema of its own,
//! `idem_consumer_example`, and deletes both at the end.

mod shipping;

use std::str::FromStr;

use idem_postgres::{Inbox, PostgresStore};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use shipping::{consume, BoxError, Crash, SHIPMENTS};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const NAME: &str = "idem_consumer_example";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let database = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let amqp = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());

    // The database: a schema, the inbox's table, the shipments.
    let options = PgConnectOptions::from_str(&database)?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    sqlx::raw_sql(
        "DROP SCHEMA IF EXISTS idem_consumer_example CASCADE; CREATE SCHEMA idem_consumer_example",
    )
    .execute(&admin)
    .await?;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.options([("search_path", NAME)]))
        .await?;
    let store = PostgresStore::builder(pool.clone()).schema(NAME).build()?;
    store.migrate().await?;
    sqlx::query(SHIPMENTS).execute(&pool).await?;
    let inbox = Inbox::new(store, "shipping");

    // The queue, and the messages: m-2 published twice.
    let publisher = Connection::connect(&amqp, ConnectionProperties::default()).await?;
    let channel = publisher.create_channel().await?;
    channel
        .queue_declare(
            NAME.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for (id, order) in [
        ("m-1", "order-1"),
        ("m-2", "order-2"),
        ("m-2", "order-2"),
        ("m-3", "order-3"),
    ] {
        channel
            .basic_publish(
                "".into(),
                NAME.into(),
                BasicPublishOptions::default(),
                order.as_bytes(),
                BasicProperties::default().with_message_id(id.into()),
            )
            .await?
            .await?;
    }

    println!("-- consumer 1: crashes after its first commit, before the ack");
    {
        let conn = Connection::connect(&amqp, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        consume(&channel, NAME, &inbox, 4, Some(Crash::AfterCommit)).await?;
        // The crash: the connection goes without an ack, and RabbitMQ
        // requeues the message.
        conn.close(320, "crashed".into()).await?;
    }
    println!("-- consumer 2: gets the redelivery, and the rest");
    {
        let conn = Connection::connect(&amqp, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        consume(&channel, NAME, &inbox, 4, None).await?;
        conn.close(200, "done".into()).await?;
    }

    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT order_id, count(*) FROM shipments GROUP BY order_id ORDER BY order_id",
    )
    .fetch_all(&pool)
    .await?;
    println!("-- shipments: {rows:?} (5 deliveries, one shipment per order)");

    channel
        .queue_delete(NAME.into(), QueueDeleteOptions::default())
        .await?;
    publisher.close(200, "done".into()).await?;
    pool.close().await;
    sqlx::raw_sql("DROP SCHEMA idem_consumer_example CASCADE")
        .execute(&admin)
        .await?;
    Ok(())
}
