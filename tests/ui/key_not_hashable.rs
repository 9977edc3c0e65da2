use idem::idempotent;

#[idempotent(key = price)]
async fn quote(price: f64) -> String {
    format!("{price:.2}")
}

fn main() {}
