use idem::idempotent;

#[idempotent(key = id, max_in_flight = "100")]
async fn pay(id: u64) -> Result<u64, idem::Refused> {
    Ok(id)
}

fn main() {}
