use idem::idempotent;

// A tuple key holding a borrow is reported at the borrowing element, not by
// the borrow checker.
#[idempotent(key = (id, name))]
async fn greet(id: u64, name: &str) -> String {
    format!("{id}: {name}")
}

fn main() {}
