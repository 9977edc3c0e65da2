use idem::idempotent;

// A `detached` body runs on its own task: a generic argument it uses must
// be `'static`.
#[idempotent(key = id, detached)]
async fn show<T: std::fmt::Display + Send + Sync>(id: u64, label: T) -> String {
    format!("{label}{id}")
}

fn main() {}
