//! The keys this process is running, for [`Concurrent::Reject`]: a local
//! duplicate gets its `409` without asking the store.
//!
//! Keys are kept as 64-bit SipHash values under random keys, not copied:
//! two different store keys meet only if their hashes collide, which an
//! attacker cannot arrange without the secret keys, and which otherwise
//! happens with odds of about n/2^64 for n requests running at once. Such a
//! request would get a `409` it can retry, never another request's response
//! (the store, which compares whole keys, decides that).
//!
//! [`Concurrent::Reject`]: crate::Concurrent::Reject

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use idem::RandomState;

#[derive(Debug, Default)]
pub(crate) struct InFlight {
    hasher: RandomState,
    keys: Arc<Mutex<HashSet<u64, Unhashed>>>,
}

/// A key marked running until dropped.
#[derive(Debug)]
pub(crate) struct Entered {
    keys: Arc<Mutex<HashSet<u64, Unhashed>>>,
    hash: u64,
}

impl InFlight {
    /// Marks `key` running, or `None` if it already is.
    pub(crate) fn enter(&self, key: &str) -> Option<Entered> {
        let hash = self.hasher.hash_one(key);
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if !keys.insert(hash) {
            return None;
        }
        Some(Entered {
            keys: Arc::clone(&self.keys),
            hash,
        })
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.remove(&self.hash);
    }
}

/// The set's members are SipHash values already: used as they are.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Unhashed;

impl BuildHasher for Unhashed {
    type Hasher = Identity;

    fn build_hasher(&self) -> Identity {
        Identity(0)
    }
}

#[derive(Debug)]
pub(crate) struct Identity(u64);

impl std::hash::Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used, by `u64`'s `Hash`; anything else still
        // mixes every byte in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_entered_once_until_left() {
        let f = InFlight::default();
        let a = f.enter("k").unwrap();
        assert!(f.enter("k").is_none());
        assert!(f.enter("other").is_some());
        drop(a);
        assert!(f.enter("k").is_some());
    }

    #[test]
    fn many_keys_are_entered_and_left() {
        let f = InFlight::default();
        let held: Vec<_> = (0..1_000)
            .map(|i| f.enter(&format!("k{i}")).expect("distinct keys"))
            .collect();
        assert!((0..1_000).all(|i| f.enter(&format!("k{i}")).is_none()));
        drop(held);
        assert!(f.keys.lock().unwrap().is_empty());
    }
}
