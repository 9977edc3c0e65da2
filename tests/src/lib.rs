//! Helpers shared by idem's integration tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts executions of a piece of work.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one and returns the new count.
    pub fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The current count.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
