//! A small order service under a storm of duplicate requests.
//!
//! ```text
//! cargo run --example orders
//! ```
//!
//! Customers double-click "pay", clients retry after timeouts, and a queue
//! redelivers messages: each of 24 orders arrives 25 times, 600 requests in
//! all, concurrently on a multi-threaded runtime. `place_order` is
//! `#[idempotent]`: each order is charged once, and every request for it
//! gets that one receipt. A declined payment is not remembered: once the
//! customer fixes their card, the retry is charged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use idem::idempotent;

#[derive(Debug, Clone)]
struct Order {
    id: u64,
    customer: String,
    cents: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Receipt {
    order_id: u64,
    charge_id: u64,
    cents: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum PayError {
    Declined { order_id: u64 },
}

/// Every request that reaches the service.
static CALLS: AtomicUsize = AtomicUsize::new(0);
/// Every time the body runs, i.e. every charge sent to the provider.
static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
static NEXT_CHARGE: AtomicU64 = AtomicU64::new(1);
/// Customers whose card is declined (until they fix it).
static DECLINED: Mutex<Vec<String>> = Mutex::new(Vec::new());

async fn handle(order: Order) -> Result<Receipt, PayError> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    place_order(order).await
}

/// Charges the customer once per order id: concurrent duplicates share one
/// charge, and for 30 s after a success, retries get the stored receipt.
#[idempotent(key = order.id, ttl = "30s")]
async fn place_order(order: Order) -> Result<Receipt, PayError> {
    EXECUTIONS.fetch_add(1, Ordering::SeqCst);
    // The payment provider takes a while.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if DECLINED.lock().unwrap().contains(&order.customer) {
        return Err(PayError::Declined { order_id: order.id });
    }
    Ok(Receipt {
        order_id: order.id,
        charge_id: NEXT_CHARGE.fetch_add(1, Ordering::SeqCst),
        cents: order.cents,
    })
}

/// A small deterministic generator for arrival jitter.
fn jitter(seed: &mut u64) -> Duration {
    *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    Duration::from_micros((*seed >> 33) % 30_000)
}

#[tokio::main]
async fn main() {
    const ORDERS: u64 = 24;
    const COPIES: usize = 25;
    DECLINED.lock().unwrap().push("mallory".to_string());

    let orders: Vec<Order> = (1..=ORDERS)
        .map(|id| Order {
            id,
            customer: if id == 13 {
                "mallory".into()
            } else {
                format!("customer-{id}")
            },
            cents: 1_000 + id * 250,
        })
        .collect();

    // 600 requests, each order 25 times, arriving over 30 ms in a scrambled
    // order, while the first charges (100 ms each) are still in flight.
    let started = Instant::now();
    let mut seed = 42;
    let mut tasks = Vec::new();
    for copy in 0..COPIES {
        for order in &orders {
            let order = order.clone();
            let delay = jitter(&mut seed);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                (copy, handle(order).await)
            }));
        }
    }
    let mut receipts: HashMap<u64, Vec<Receipt>> = HashMap::new();
    let mut declined = 0;
    for task in tasks {
        match task.await.expect("no request panics") {
            (_, Ok(r)) => receipts.entry(r.order_id).or_default().push(r),
            (_, Err(PayError::Declined { .. })) => declined += 1,
        }
    }
    let elapsed = started.elapsed();

    println!("duplicate storm: {ORDERS} orders x {COPIES} copies, in {elapsed:.0?}");
    println!("  calls       {:>4}", CALLS.load(Ordering::SeqCst));
    println!(
        "  executions  {:>4}  (charges sent to the provider)",
        EXECUTIONS.load(Ordering::SeqCst)
    );
    println!("  declined    {declined:>4}  (the copies of order 13)");
    for (id, rs) in &receipts {
        assert!(
            rs.iter().all(|r| r == &rs[0]),
            "order {id}: one receipt for all copies"
        );
    }
    let charged: u64 = receipts.values().map(|rs| rs[0].cents).sum();
    println!(
        "  {} orders charged once each, {:.2} in total; every copy got its order's receipt",
        receipts.len(),
        charged as f64 / 100.0
    );

    // A late retry, within the ttl: the stored receipt, no new charge.
    let before = EXECUTIONS.load(Ordering::SeqCst);
    let again = handle(orders[0].clone()).await.expect("stored");
    println!(
        "late retry of order 1: charge #{} again, executions {} -> {}",
        again.charge_id,
        before,
        EXECUTIONS.load(Ordering::SeqCst)
    );

    // The declined order was not remembered: once mallory fixes her card,
    // the retry is charged.
    let before = EXECUTIONS.load(Ordering::SeqCst);
    DECLINED.lock().unwrap().clear();
    let fixed = handle(orders[12].clone())
        .await
        .expect("the card works now");
    println!(
        "order 13 after the card is fixed: charged (#{}), executions {} -> {}",
        fixed.charge_id,
        before,
        EXECUTIONS.load(Ordering::SeqCst)
    );
    println!(
        "total: {} calls, {} executions",
        CALLS.load(Ordering::SeqCst),
        EXECUTIONS.load(Ordering::SeqCst)
    );
}
