use idem::idempotent;

#[idempotent(key = id, detached = true)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
