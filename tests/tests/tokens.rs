//! Issue 8, one-time tokens on `MemoryStore`: consumed exactly once, in
//! their own scope, within their ttl.

use std::sync::Arc;
use std::time::Duration;

use idem::store::{MemoryStore, Token, TokenStore};

const TTL: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_consumes_spend_a_token_once() {
    let store = Arc::new(MemoryStore::new());
    let token = store.issue("form:alice", TTL).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(1_000));
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let (store, token, barrier) = (Arc::clone(&store), token.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                store.consume("form:alice", &token).await.unwrap()
            })
        })
        .collect();
    let mut spent = 0;
    for t in tasks {
        spent += usize::from(t.await.unwrap());
    }
    assert_eq!(spent, 1);
}

#[tokio::test]
async fn another_scope_cannot_spend_it_nor_spoil_it() {
    let store = MemoryStore::new();
    let token = store.issue("form:alice", TTL).await.unwrap();
    assert!(!store.consume("form:mallory", &token).await.unwrap());
    assert!(store.consume("form:alice", &token).await.unwrap());
    assert!(!store.consume("form:alice", &token).await.unwrap(), "spent");
    let forged = Token::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
    assert!(
        !store.consume("form:alice", &forged).await.unwrap(),
        "never issued"
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_token_is_not_accepted() {
    let store = MemoryStore::new();
    let token = store.issue("s", Duration::from_secs(60)).await.unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(!store.consume("s", &token).await.unwrap());
}

#[test]
fn tokens_are_url_safe_distinct_and_parsed_strictly() {
    let tokens: std::collections::HashSet<_> = (0..10_000).map(|_| Token::generate()).collect();
    assert_eq!(tokens.len(), 10_000);
    for t in &tokens {
        assert!(t
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Token::parse(t.as_str()).as_ref(), Some(t));
    }
    for bad in [
        "",
        "short",
        "AAAAAAAAAAAAAAAAAAAAA=",
        "AAAAAAAAAAAAAAAAAAAAAAA",
        "zAAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAA/",
    ] {
        assert_eq!(Token::parse(bad), None, "{bad:?}");
    }
    let t = Token::generate();
    assert!(
        !format!("{t:?}").contains(&t.as_str()[4..]),
        "Debug does not print a credential"
    );
}
