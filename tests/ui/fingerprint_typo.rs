use idem::{idempotent, Mismatch};

// A typo in the fingerprint is reported once, by rustc, at the typo.

#[idempotent(key = id, fingerprint = amout)]
async fn pay(id: u64, amount: u64) -> Result<u64, Mismatch> {
    Ok(id + amount)
}

#[idempotent(key = id, fingerprint = (id, amount.nope()))]
async fn refund(id: u64, amount: u64) -> Result<u64, Mismatch> {
    Ok(id + amount)
}

fn main() {}
