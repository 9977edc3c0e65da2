//! Twenty concurrent duplicates of one payment, in the transactional mode:
//! one payment row, nineteen replays of its receipt.
//!
//! ```sh
//! cargo run -p idem-postgres --example transactional # PostgreSQL on 127.0.0.1:5432, or DATABASE_URL
//! ```
//!
//! It works in a schema of its own, `idem_example`, and drops it at the end.

use std::str::FromStr;

use idem::store::StoreKey;
use idem::Fingerprint;
use idem_postgres::{PostgresStore, TxClaim};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

const SCHEMA: &str = "idem_example";

#[derive(Debug)]
enum Paid {
    Executed,
    Replayed(String),
    Mismatch,
    InProgress,
}

/// The payment and its idempotency record, in one transaction.
async fn pay(
    store: &PostgresStore,
    pool: &PgPool,
    order: &str,
    cents: i64,
) -> Result<Paid, Box<dyn std::error::Error + Send + Sync>> {
    let mut tx = pool.begin().await?;
    let key = StoreKey {
        namespace: "payments",
        key: order,
    };
    Ok(
        match store
            .claim_in(&mut tx, key, Some(Fingerprint::of(&cents)))
            .await?
        {
            TxClaim::Claimed(claim) => {
                sqlx::query("INSERT INTO payments (order_id, cents, fence) VALUES ($1, $2, $3)")
                    .bind(order)
                    .bind(cents)
                    .bind(claim.fence() as i64)
                    .execute(&mut *tx)
                    .await?;
                let receipt = format!("receipt: {cents} cents for {order}");
                claim.complete(&mut tx, receipt.as_bytes()).await?;
                tx.commit().await?;
                Paid::Executed
            }
            TxClaim::Completed(record) => Paid::Replayed(String::from_utf8(record.payload)?),
            TxClaim::Mismatch => Paid::Mismatch,
            TxClaim::InProgress { .. } => Paid::InProgress,
        },
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let options = PgConnectOptions::from_str(&url)?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    sqlx::raw_sql("DROP SCHEMA IF EXISTS idem_example CASCADE; CREATE SCHEMA idem_example")
        .execute(&admin)
        .await?;
    let pool = PgPoolOptions::new()
        .max_connections(21)
        .connect_with(options.options([("search_path", SCHEMA)]))
        .await?;

    let store = PostgresStore::builder(pool.clone())
        .schema(SCHEMA)
        .build()?;
    store.migrate().await?;
    sqlx::query("CREATE TABLE payments (order_id text NOT NULL, cents bigint NOT NULL, fence bigint NOT NULL)")
        .execute(&pool)
        .await?;

    let calls: Vec<_> = (0..20)
        .map(|_| {
            let (store, pool) = (store.clone(), pool.clone());
            tokio::spawn(async move { pay(&store, &pool, "order-7", 1_250).await })
        })
        .collect();
    let (mut executed, mut replayed) = (0, Vec::new());
    for call in calls {
        match call.await?? {
            Paid::Executed => executed += 1,
            Paid::Replayed(receipt) => replayed.push(receipt),
            other => println!("unexpected: {other:?}"),
        }
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&pool)
        .await?;
    println!(
        "20 concurrent calls: executed {executed}, replayed {}",
        replayed.len()
    );
    println!("replayed receipt: {:?}", replayed.first());
    println!("payment rows: {rows}");
    println!(
        "the same order id with another amount: {:?}",
        pay(&store, &pool, "order-7", 999).await?
    );

    pool.close().await;
    sqlx::raw_sql("DROP SCHEMA idem_example CASCADE")
        .execute(&admin)
        .await?;
    Ok(())
}
