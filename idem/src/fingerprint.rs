//! What a call asks for, so that a reused key with another request is
//! caught instead of answered with someone else's result.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;

/// A 64-bit digest of what a call asks for (the request's payload), checked
/// against the flight or stored result its key finds.
///
/// A key says which calls are *the same*; a fingerprint says what the call
/// *asked for*. Two calls with one key and different fingerprints are a bug
/// in the caller (a reused idempotency key, an order id sent with another
/// amount): the second gets [`Error::Mismatch`](crate::Error::Mismatch)
/// instead of the first one's result, and nothing runs, as the IETF
/// `Idempotency-Key` draft and Stripe answer `422`. A call without a
/// fingerprint is not checked, and a flight started without one matches
/// any call.
///
/// [`Fingerprint::of`] hashes with SipHash-2-4 under fixed keys: the same
/// value gives the same fingerprint in every process and every build of a
/// given `Hash` implementation, so it can be stored beside a result.
///
/// ```
/// use idem::Fingerprint;
///
/// let a = Fingerprint::of(&(1_250_u64, "EUR"));
/// assert_eq!(a, Fingerprint::of(&(1_250_u64, "EUR")));
/// assert_ne!(a, Fingerprint::of(&(1_250_u64, "USD")));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(NonZeroU64);

/// SipHash keys: arbitrary, fixed forever (changing them would make every
/// stored fingerprint a mismatch).
const K0: u64 = 0x6964_656d_2d66_7031; // "idem-fp1"
const K1: u64 = 0x7265_7175_6573_7473; // "requests"

impl Fingerprint {
    /// The fingerprint of `value`.
    pub fn of<T: Hash + ?Sized>(value: &T) -> Self {
        #[allow(deprecated, reason = "SipHasher is SipHash-2-4, and stays so")]
        let mut h = std::hash::SipHasher::new_with_keys(K0, K1);
        value.hash(&mut h);
        Self::from_u64(h.finish())
    }

    /// A fingerprint computed elsewhere (a digest of the request body, say).
    /// Zero is taken as one: a fingerprint is never zero.
    pub const fn from_u64(n: u64) -> Self {
        match NonZeroU64::new(n) {
            Some(n) => Self(n),
            None => Self(NonZeroU64::MIN),
        }
    }

    /// The 64 bits.
    pub const fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({:#018x})", self.0)
    }
}

/// A call's fingerprint as the table keeps it: 0 for none.
#[inline]
pub(crate) fn raw(fingerprint: Option<Fingerprint>) -> u64 {
    fingerprint.map_or(0, Fingerprint::get)
}

/// Whether a call with fingerprint `call` may be answered by an entry with
/// fingerprint `entry` (0 for none, on either side).
#[inline]
pub(crate) fn matches(entry: u64, call: u64) -> bool {
    entry == call || entry == 0 || call == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_across_processes() {
        // Pinned: a change here makes every stored fingerprint a mismatch.
        assert_eq!(
            Fingerprint::of(&42_u64).get(),
            Fingerprint::of(&42_u64).get()
        );
        assert_eq!(
            format!("{:?}", Fingerprint::from_u64(0)),
            "Fingerprint(0x0000000000000001)"
        );
        let pinned = Fingerprint::of("order-7").get();
        assert_eq!(pinned, PINNED, "{pinned:#x}");
    }

    const PINNED: u64 = 0xcafa_67cd_55e4_8a3b;
}
