use idem::{idempotent, Mismatch};

#[idempotent(key = id, fingerprint = price)]
async fn quote(id: u64, price: f64) -> Result<u64, Mismatch> {
    let _ = price;
    Ok(id)
}

struct Money {
    cents: u64,
}

// A tuple's places are borrowed: `&Money` is reported, as the tuple's part.
#[idempotent(key = id, fingerprint = (id, money))]
async fn pay(id: u64, money: Money) -> Result<u64, Mismatch> {
    Ok(id + money.cents)
}

fn main() {}
