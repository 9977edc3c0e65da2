use idem::idempotent;

#[idempotent(key = id, max_in_flight = limit)]
async fn pay(id: u64, limit: usize) -> Result<u64, idem::Refused> {
    Ok(id + limit as u64)
}

fn main() {}
