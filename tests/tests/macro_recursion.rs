//! `#[idempotent]` functions that call themselves: with another key, no
//! deadlock; with the same key, a panic that says why, never a hang.

use std::time::Duration;

use idem::idempotent;

#[idempotent(key = n, ttl = "1m")]
async fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    Box::pin(fib(n - 1)).await + Box::pin(fib(n - 2)).await
}

#[tokio::test(start_paused = true)]
async fn recursion_with_other_keys_does_not_deadlock() {
    let n = tokio::time::timeout(Duration::from_secs(5), fib(30))
        .await
        .expect("no deadlock");
    assert_eq!(n, 832_040);
}

#[idempotent(key = n)]
async fn same_key(n: u64) -> u64 {
    Box::pin(same_key(n)).await
}

#[tokio::test(start_paused = true)]
async fn recursion_with_the_same_key_panics_instead_of_hanging() {
    let task = tokio::spawn(tokio::time::timeout(Duration::from_secs(5), same_key(1)));
    let err = task.await.expect_err("a panic");
    let payload = err.into_panic();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("re-entrant"), "{message}");
}
