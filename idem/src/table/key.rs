//! The key a call brings: owned (`run`) or borrowed (`run_by_ref`).
//!
//! A hit or a join needs only to compare keys; the owned key is built when
//! the call inserts a new flight, and only then: a `String`-keyed hit by
//! `&str` allocates nothing.

use std::borrow::Borrow;
use std::hash::Hash;

/// A call's key, as the table asks for it.
pub(crate) trait KeyArg<K> {
    /// What the table compares and hashes.
    type Query: Hash + Eq + ?Sized;

    /// The key to look up.
    fn query(&self) -> &Self::Query;

    /// The call's fingerprint; 0 for none.
    #[inline]
    fn fingerprint(&self) -> u64 {
        0
    }

    /// Makes the owned key ahead of a claim that may insert it, outside
    /// the shard's lock: `ToOwned` is user code, which must not run (or
    /// panic) under the lock.
    fn prepare(&mut self);

    /// The owned key, for a new flight's entry, once
    /// [`prepare`](Self::prepare)d. Called at most once.
    fn take_owned(&mut self) -> K;
}

/// An owned key, moved into the table by the claim that inserts it.
impl<K: Hash + Eq> KeyArg<K> for Option<K> {
    type Query = K;

    #[inline]
    fn query(&self) -> &K {
        self.as_ref()
            .expect("a key is only taken by the claim that inserts it")
    }

    #[inline]
    fn prepare(&mut self) {}

    #[inline]
    fn take_owned(&mut self) -> K {
        self.take().expect("a key is only taken once")
    }
}

/// A borrowed key, made owned before a claim that may insert it.
#[derive(Debug)]
pub(crate) struct ByRef<'a, Q: ?Sized, K> {
    key: &'a Q,
    owned: Option<K>,
}

impl<'a, Q: ?Sized, K> ByRef<'a, Q, K> {
    pub(crate) fn new(key: &'a Q) -> Self {
        Self { key, owned: None }
    }
}

impl<K, Q> KeyArg<K> for ByRef<'_, Q, K>
where
    K: Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    type Query = Q;

    #[inline]
    fn query(&self) -> &Q {
        self.key
    }

    fn prepare(&mut self) {
        if self.owned.is_none() {
            self.owned = Some(self.key.to_owned());
        }
    }

    #[inline]
    fn take_owned(&mut self) -> K {
        self.owned.take().expect("prepared before the claim")
    }
}

/// A key with the fingerprint of what its call asks for.
#[derive(Debug)]
pub(crate) struct Fingerprinted<A> {
    pub(crate) key: A,
    pub(crate) fingerprint: u64,
}

impl<K, A: KeyArg<K>> KeyArg<K> for Fingerprinted<A> {
    type Query = A::Query;

    #[inline]
    fn query(&self) -> &A::Query {
        self.key.query()
    }

    #[inline]
    fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    fn prepare(&mut self) {
        self.key.prepare();
    }

    fn take_owned(&mut self) -> K {
        self.key.take_owned()
    }
}
