//! The keys this process is running, for [`Concurrent::Reject`]: a local
//! duplicate gets its `409` without asking the store.
//!
//! [`Concurrent::Reject`]: crate::Concurrent::Reject

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub(crate) struct InFlight {
    keys: Arc<Mutex<HashSet<String>>>,
}

/// A key marked running until dropped.
#[derive(Debug)]
pub(crate) struct Entered {
    keys: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl InFlight {
    /// Marks `key` running, or `None` if it already is.
    pub(crate) fn enter(&self, key: &str) -> Option<Entered> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if !keys.insert(key.to_owned()) {
            return None;
        }
        Some(Entered {
            keys: Arc::clone(&self.keys),
            key: key.to_owned(),
        })
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.remove(&self.key);
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
}
