use idem::idempotent;

#[idempotent(key = id)]
async fn render(id: u64) -> impl std::fmt::Display {
    id
}

fn main() {}
