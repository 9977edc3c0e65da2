use std::pin::Pin;

use idem::idempotent;

// A `&mut` anywhere in an argument's type is rejected, at the `&mut`: only
// the first of the coalesced callers runs the body, so the others' buffers
// would never be written.

#[idempotent(key = id)]
async fn in_option(id: u64, buf: Option<&mut Vec<u8>>) -> usize {
    buf.map_or(0, |b| b.len()) + id as usize
}

#[idempotent(key = id)]
#[allow(unused_parens)]
async fn in_parens(id: u64, buf: (&mut Vec<u8>)) -> usize {
    buf.len() + id as usize
}

#[idempotent(key = id)]
async fn pinned(id: u64, buf: Pin<&mut Vec<u8>>) -> usize {
    buf.len() + id as usize
}

#[idempotent(key = id)]
async fn in_tuple(id: u64, (buf, _n): (&mut Vec<u8>, u8)) -> usize {
    buf.len() + id as usize
}

#[idempotent(key = id)]
async fn explicit_lifetime<'a>(id: u64, buf: Option<&'a mut Vec<u8>>) -> usize {
    buf.map_or(0, |b| b.len()) + id as usize
}

// Not rejected: a `&mut` in a fn pointer's or an `Fn` trait's arguments is
// no borrow of the caller's.
#[idempotent(key = id)]
async fn callbacks(
    id: u64,
    f: fn(&mut Vec<u8>),
    g: std::sync::Arc<dyn Fn(&mut Vec<u8>) + Send + Sync>,
) -> usize {
    let mut v = Vec::new();
    f(&mut v);
    g(&mut v);
    v.len() + id as usize
}

fn main() {}
