//! The hasher a table uses unless it is given another.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// The default [`BuildHasher`] of a [`SingleFlight`](crate::SingleFlight):
/// SipHash-1-3 with random keys drawn once per table, as `std`'s
/// `HashMap` uses.
///
/// Keys often come from the network (an `Idempotency-Key` header, a
/// message id): an attacker who chooses keys must not be able to make them
/// collide and turn every lookup into a scan of one shard. SipHash with
/// secret keys resists that (hash flooding). Faster hashers that do not
/// claim to (foldhash, FxHash) can be chosen with
/// [`Builder::hasher`](crate::Builder::hasher) for keys you control; see
/// `BENCHMARKS.md` for what each costs here.
///
/// The algorithm is not part of the API: it may change in a minor release,
/// to a faster one with the same resistance.
///
/// ```
/// use std::hash::BuildHasher;
///
/// let s = idem::RandomState::new();
/// assert_eq!(s.hash_one("key"), s.clone().hash_one("key"));
/// assert_ne!(s.hash_one("key"), idem::RandomState::new().hash_one("key"));
/// ```
#[derive(Clone, Default)]
pub struct RandomState(std::collections::hash_map::RandomState);

impl RandomState {
    /// A hasher with fresh random keys.
    pub fn new() -> Self {
        Self::default()
    }
}

impl fmt::Debug for RandomState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys are secret.
        f.debug_struct("RandomState").finish_non_exhaustive()
    }
}

impl BuildHasher for RandomState {
    type Hasher = DefaultHasher;

    #[inline]
    fn build_hasher(&self) -> DefaultHasher {
        DefaultHasher(self.0.build_hasher())
    }
}

/// The [`Hasher`] of [`RandomState`].
#[derive(Clone, Debug)]
pub struct DefaultHasher(std::collections::hash_map::DefaultHasher);

impl Hasher for DefaultHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0.finish()
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0.write_u32(i);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0.write_u64(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.0.write_usize(i);
    }
}
