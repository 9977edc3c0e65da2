use idem::idempotent;

#[idempotent(key = id)]
async fn fill(id: u64, buf: &mut Vec<u8>) -> usize {
    buf.push(1);
    id as usize
}

fn main() {}
