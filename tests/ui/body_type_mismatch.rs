use idem::idempotent;

#[idempotent(key = id)]
async fn lookup(id: u64) -> Result<u64, String> {
    if id == 0 {
        return Ok("zero");
    }
    Ok(id)
}

fn main() {}
