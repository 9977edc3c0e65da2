use std::rc::Rc;

use idem::idempotent;

#[idempotent(key = id, detached)]
async fn charge(id: u64) -> u64 {
    let local = Rc::new(id);
    tokio::task::yield_now().await;
    *local
}

fn main() {}
