//! The consumer of `examples/consumer`, shared with `tests/consumer.rs`
//! (which runs it in child processes and kills them): each message asks
//! to ship an order; its effect is a row in `shipments`, written in the
//! same transaction as the message's inbox record, and the message is
//! acknowledged after the commit.

use futures_util::StreamExt;
use idem_postgres::{Handled, Inbox};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::Channel;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The effect table: no unique constraint, so a second effect of one
/// message would be a second row.
pub(crate) const SHIPMENTS: &str =
    "CREATE TABLE shipments (message_id text NOT NULL, order_id text NOT NULL)";

/// Where the consumer stops short, to show (and test) what a crash there
/// does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crash {
    /// After the first message's effect and record committed, before its
    /// acknowledgement: [`consume`] returns without acknowledging (the
    /// caller closes the connection, or hangs until killed).
    AfterCommit,
    /// Inside the first message's transaction, after its effect was
    /// written and before the commit: hangs there until killed.
    BeforeCommit,
}

/// Consumes `queue` on `channel` until `max` messages were handled (or a
/// [`Crash`]), shipping each order once; prints a line per step.
pub(crate) async fn consume(
    channel: &Channel,
    queue: &str,
    inbox: &Inbox,
    max: usize,
    crash: Option<Crash>,
) -> Result<(), BoxError> {
    // One unacknowledged message at a time.
    channel.basic_qos(1, BasicQosOptions::default()).await?;
    let mut deliveries = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for _ in 0..max {
        let Some(delivery) = deliveries.next().await else {
            return Err("the broker closed the consumer".into());
        };
        let delivery = delivery?;
        let id = match delivery.properties.message_id() {
            Some(id) => id.to_string(),
            None => return Err("a message without a message id".into()),
        };
        let order = String::from_utf8(delivery.data.clone())?;
        println!("delivered {id} redelivered={}", delivery.redelivered);
        let message_id = id.clone();
        let handled = inbox
            .handle(&id, |conn| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO shipments (message_id, order_id) VALUES ($1, $2)")
                        .bind(&message_id)
                        .bind(&order)
                        .execute(&mut *conn)
                        .await?;
                    if crash == Some(Crash::BeforeCommit) {
                        println!("written {message_id}");
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, sqlx::Error>(order)
                })
            })
            .await?;
        match &handled {
            Handled::Processed(order) => println!("processed {id} shipped={order}"),
            Handled::Duplicate => println!("duplicate {id}"),
            Handled::Mismatch => println!("mismatch {id}"),
            Handled::InProgress => println!("in-progress {id}"),
        }
        if crash == Some(Crash::AfterCommit) {
            println!("committed {id}");
            return Ok(());
        }
        if handled.ack() {
            delivery.ack(BasicAckOptions::default()).await?;
            println!("acked {id}");
        } else {
            let requeue = matches!(handled, Handled::InProgress);
            delivery
                .nack(BasicNackOptions {
                    requeue,
                    ..BasicNackOptions::default()
                })
                .await?;
            println!("nacked {id} requeue={requeue}");
        }
    }
    Ok(())
}
