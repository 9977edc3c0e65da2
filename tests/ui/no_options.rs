use idem::idempotent;

#[idempotent]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
