use idem::idempotent;

#[idempotent(key = id, max_entries = 100)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
