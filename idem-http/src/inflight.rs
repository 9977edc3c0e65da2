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

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use hashbrown::hash_table::{Entry, HashTable};
use idem::RandomState;

/// The running keys' hashes, each its own hash in the table.
type Hashes = Arc<Mutex<HashTable<u64>>>;

#[derive(Debug, Default)]
pub(crate) struct InFlight {
    hasher: RandomState,
    keys: Hashes,
}

/// A key marked running until dropped.
#[derive(Debug)]
pub(crate) struct Entered {
    keys: Hashes,
    hash: u64,
}

impl InFlight {
    /// Marks `key` running, or `None` if it already is.
    pub(crate) fn enter(&self, key: &str) -> Option<Entered> {
        let hash = self.hasher.hash_one(key);
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match keys.entry(hash, |&h| h == hash, |&h| h) {
            Entry::Occupied(_) => None,
            Entry::Vacant(v) => {
                v.insert(hash);
                Some(Entered {
                    keys: Arc::clone(&self.keys),
                    hash,
                })
            }
        }
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(e) = keys.find_entry(self.hash, |&h| h == self.hash) {
            e.remove();
        }
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
