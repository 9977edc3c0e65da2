//! Instructions per hit, for `valgrind --tool=callgrind`: `hit_loop <run|get> <n>`
//! does `n` hits on one stored `u64` key, polling each `run` future once
//! with a no-op waker (no executor in the count).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("run", String::as_str).to_string();
    let n: u64 = args.get(1).map_or(1_000_000, |s| s.parse().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let flight: idem::SingleFlight<u64, Arc<[u8; 64]>> = idem::SingleFlight::builder()
        .ttl(Duration::from_secs(3600))
        .build()
        .unwrap();
    let v = Arc::new([1u8; 64]);
    rt.block_on(flight.run(7, || async { Ok(Arc::clone(&v)) }))
        .unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..n {
        let k = black_box(7u64);
        if mode == "get" {
            black_box(flight.get(&k));
        } else {
            let fut = pin!(flight.run(k, || async { Ok(Arc::new([0u8; 64])) }));
            match fut.poll(&mut cx) {
                Poll::Ready(r) => {
                    black_box(r.unwrap());
                }
                Poll::Pending => unreachable!(),
            }
        }
    }
}
