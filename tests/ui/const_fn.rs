use idem::idempotent;

#[idempotent(key = id)]
const fn lookup(id: u64) -> u64 {
    id
}

fn main() {
    let _ = lookup(1);
}
