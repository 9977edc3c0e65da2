use idem::idempotent;

// Keys own their data: a `&'static str` is a reference too.

#[idempotent(key = "token")]
async fn literal(id: u64) -> u64 {
    id
}

#[idempotent(key = (id, kind))]
async fn tagged(id: u64, kind: &'static str) -> u64 {
    id + kind.len() as u64
}

fn main() {}
