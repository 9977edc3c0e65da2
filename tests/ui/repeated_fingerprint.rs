use idem::{idempotent, Mismatch};

#[idempotent(key = id, fingerprint = amount, fingerprint = id)]
async fn pay(id: u64, amount: u64) -> Result<u64, Mismatch> {
    Ok(id + amount)
}

fn main() {}
