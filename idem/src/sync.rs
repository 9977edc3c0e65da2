//! The synchronization primitives the table is built from, swapped for
//! loom's when the crate is model-checked (`RUSTFLAGS="--cfg idem_loom"`,
//! see `idem/tests/loom.rs`). A custom cfg rather than `loom`, because tokio
//! reads `cfg(loom)` too.

#[cfg(not(idem_loom))]
pub(crate) use parking_lot::{Mutex, RwLock};
#[cfg(not(idem_loom))]
pub(crate) use std::sync::{atomic::AtomicUsize, Arc};

#[cfg(idem_loom)]
pub(crate) use loom::sync::Arc;
// The bounds' counters stay std's under loom: with loom's atomics, its
// 0.7.3 runtime trips over its own assertions on them (atomic.rs "TODO:
// this sometimes fails", then rwlock.rs "expected to be able to acquire
// read lock"). The counters are only read-modify-written, so the model
// still checks every interleaving of the locks around them.
#[cfg(idem_loom)]
pub(crate) use shim::{Mutex, RwLock};
#[cfg(idem_loom)]
pub(crate) use std::sync::atomic::AtomicUsize;

/// parking_lot's API over loom's locks.
#[cfg(idem_loom)]
mod shim {
    use loom::sync::{MutexGuard, RwLockReadGuard, RwLockWriteGuard};

    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(t: T) -> Self {
            Self(loom::sync::Mutex::new(t))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    #[derive(Debug)]
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(t: T) -> Self {
            Self(loom::sync::RwLock::new(t))
        }

        pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(|e| e.into_inner())
        }
    }
}
