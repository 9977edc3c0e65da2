use idem::idempotent;

#[idempotent(ttl = "30s")]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
