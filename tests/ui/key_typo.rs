use idem::idempotent;

// A typo in the key is reported once, by rustc, at the typo.

#[idempotent(key = idd)]
async fn unknown_name(id: u64) -> u64 {
    id
}

#[idempotent(key = id.nope())]
async fn unknown_method(id: u64) -> u64 {
    id
}

#[idempotent(key = (id, idd))]
async fn unknown_name_in_a_tuple(id: u64) -> u64 {
    id
}

#[idempotent(key = Some(idd))]
async fn unknown_name_in_a_call(id: u64) -> u64 {
    id
}

fn main() {}
