//! Helpers shared by idem's integration tests.

pub mod conformance;
mod observed;
pub mod redis;

pub use observed::Observed;

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

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll, Wake, Waker};

/// A future polled by hand, with a waker that counts its wake-ups: the test
/// decides exactly when each caller runs, so interleavings are deterministic.
pub struct Probe<F: Future> {
    fut: Option<Pin<Box<F>>>,
    wakes: Arc<WakeCount>,
}

#[derive(Default)]
struct WakeCount(AtomicU64);

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl<F: Future> std::fmt::Debug for Probe<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("done", &self.fut.is_none())
            .field("wakes", &self.wakes())
            .finish()
    }
}

impl<F: Future> Probe<F> {
    /// Wraps a future without polling it.
    pub fn new(fut: F) -> Self {
        Self {
            fut: Some(Box::pin(fut)),
            wakes: Arc::default(),
        }
    }

    /// Polls once. Panics if the future already completed.
    pub fn poll(&mut self) -> Poll<F::Output> {
        let waker = Waker::from(Arc::clone(&self.wakes));
        let mut cx = Context::from_waker(&waker);
        let fut = self.fut.as_mut().expect("polled after completion");
        let res = fut.as_mut().poll(&mut cx);
        if res.is_ready() {
            self.fut = None;
        }
        res
    }

    /// Polls once and expects `Pending`.
    #[track_caller]
    pub fn pending(&mut self) {
        assert!(
            self.poll().is_pending(),
            "expected the future to be pending"
        );
    }

    /// Polls once and expects a value.
    #[track_caller]
    pub fn ready(&mut self) -> F::Output {
        match self.poll() {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("expected the future to be ready"),
        }
    }

    /// How many times the future's waker was woken.
    pub fn wakes(&self) -> u64 {
        self.wakes.0.load(Ordering::SeqCst)
    }

    /// Whether the future was woken since it was created.
    pub fn woken(&self) -> bool {
        self.wakes() > 0
    }
}

/// A gate that work can wait on, opened by the test.
#[derive(Debug, Clone)]
pub struct Gate(Arc<tokio::sync::Semaphore>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(0)))
    }

    /// Waits until the gate is open.
    pub async fn wait(&self) {
        let _permit = self.0.acquire().await.expect("gate is never closed");
    }

    /// Opens the gate for every current and future waiter (each waiter
    /// borrows a permit and gives it back).
    pub fn open(&self) {
        self.0.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}
