//! Whether a key expression's value is an owned, hashable key, a borrow,
//! or neither, decided by the type checker; and the clones of keys written
//! as places.
//!
//! The expansion calls `(&&&KeyProbe::of(&key)).__idem_key_kind()` with the
//! levels below in scope, and the first level whose impl applies (see
//! [`autoref`](super::autoref)) returns a marker implementing [`KeyKind`]:
//! [`OwnedKey`], or for a key that cannot be one [`InvalidKey`], after the
//! level's [diagnostic](super::diagnostics) bound has reported it.

use std::fmt;
use std::hash::Hash;

use super::autoref::Fine;
use super::diagnostics::{KeyMustBeHashable, KeyMustOwnItsData};

/// How a key expression's value becomes a table's key.
pub trait KeyKind<K>: CloneKey<K> {
    /// The table's key type.
    type Key: Hash + Eq + Clone + Send + Sync + 'static;
    /// The key, as the table takes it.
    fn into_key(key: K) -> Self::Key;
}

/// Clones a key written as a place; see [`clone_key`]. Implemented for every
/// kind, so that only the classification reports a bad key.
pub trait CloneKey<K> {
    /// A clone of `key`.
    fn clone_key(key: &K) -> K;
}

/// A key that owns its data and is `Hash + Eq + Clone + Send + Sync`.
#[derive(Debug, Clone, Copy)]
pub struct OwnedKey;

/// A key that cannot be one: the error was reported where the kind was
/// picked, and this marker keeps the rest of the expansion from reporting
/// it again.
#[derive(Debug, Clone, Copy)]
pub struct InvalidKey;

impl OwnedKey {
    const NEW: Self = OwnedKey;
}

impl InvalidKey {
    const NEW: Self = InvalidKey;
}

impl<K> KeyKind<K> for OwnedKey
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    type Key = K;
    #[inline]
    fn into_key(key: K) -> K {
        key
    }
}

impl<K: Clone> CloneKey<K> for OwnedKey {
    #[inline]
    fn clone_key(key: &K) -> K {
        key.clone()
    }
}

impl<K> KeyKind<K> for InvalidKey {
    type Key = ();
    fn into_key(_: K) {
        unreachable!("a program with an invalid #[idempotent] key does not compile")
    }
}

impl<K> CloneKey<K> for InvalidKey {
    fn clone_key(_: &K) -> K {
        unreachable!("a program with an invalid #[idempotent] key does not compile")
    }
}

/// Clones the value of a key written as a place (`order.id`, `self.key`),
/// so that the body can still use it. Used with `flight = ...`, where the
/// table's type fixes the key's, and for the parts of any key.
#[inline]
pub fn key_of<K: Clone>(key: &K) -> K {
    key.clone()
}

/// The key, as the table takes it, once [`KeyProbe`] has classified it.
#[inline]
pub fn into_key<C: KeyKind<K>, K>(_kind: C, key: K) -> C::Key {
    C::into_key(key)
}

/// Clones the value of a key written as a place, once [`KeyProbe`] has
/// classified it. Never fails to compile: a key that cannot be cloned is
/// reported once, by the classification.
#[inline]
pub fn clone_key<C: CloneKey<K>, K>(_kind: C, key: &K) -> K {
    C::clone_key(key)
}

/// Classifies a key type `K`; see the [module docs](self).
///
/// It dereferences to the key, so that method lookup on it ends at the
/// key's type: when that type is an error (a typo in the key, `key = idd`),
/// rustc reports the typo and skips the lookup, rather than reporting as
/// well that every level applies to the error type (E0034). The levels are
/// all found before the dereference is reached, and it is never called.
pub struct KeyProbe<'k, K: ?Sized>(&'k K);

impl<'k, K: ?Sized> KeyProbe<'k, K> {
    /// The probe for the type of `key`.
    #[inline]
    pub const fn of(key: &'k K) -> Self {
        Self(key)
    }
}

impl<K: ?Sized> std::ops::Deref for KeyProbe<'_, K> {
    type Target = K;
    #[inline]
    fn deref(&self) -> &K {
        self.0
    }
}

impl<K: ?Sized> fmt::Debug for KeyProbe<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyProbe")
    }
}

level!(
    /// Level 0: a shared reference.
    Borrowed::__idem_key_kind for &&KeyProbe<'_, &'a T> => InvalidKey,
    ['a, T: ?Sized],
    check &'a T: KeyMustOwnItsData
);
level!(
    /// Level 0: an exclusive reference.
    BorrowedMut::__idem_key_kind for &&KeyProbe<'_, &'a mut T> => InvalidKey,
    ['a, T: ?Sized],
    check &'a mut T: KeyMustOwnItsData
);
level!(
    /// Level 1: an owned, hashable key.
    Owned::__idem_key_kind for &KeyProbe<'_, K> => OwnedKey,
    [K] where { K: Hash + Eq + Clone + Send + Sync + 'static },
    check (): Fine
);
level!(
    /// Level 2: anything else.
    Bad::__idem_key_kind for KeyProbe<'_, K> => InvalidKey,
    [K],
    check K: KeyMustBeHashable
);

// The elements of a tuple key, `key = (id, name)`, each checked for a
// borrow: a tuple holding a `&str` is `Hash + Eq + Clone`, so the levels
// above accept it and only the borrow checker would object, with an error
// about lifetimes rather than about the key. The expansion calls
// `(&&&KeyProbe::of(&key.0)).__idem_key_part()` for each.
level!(
    /// Level 0: an element that is a shared reference.
    BorrowedPart::__idem_key_part for &&KeyProbe<'_, &'a T> => InvalidKey,
    ['a, T: ?Sized],
    check &'a T: KeyMustOwnItsData
);
level!(
    /// Level 0: an element that is an exclusive reference.
    BorrowedMutPart::__idem_key_part for &&KeyProbe<'_, &'a mut T> => InvalidKey,
    ['a, T: ?Sized],
    check &'a mut T: KeyMustOwnItsData
);
level!(
    /// Level 1: any other element; the whole key's classification judges
    /// it.
    AnyPart::__idem_key_part for &KeyProbe<'_, K> => OwnedKey,
    [K],
    check (): Fine
);
