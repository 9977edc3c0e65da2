//! Records shared across processes: the protocol every backend implements.
//!
//! The in-process table coalesces the calls of one process. Services run as
//! several processes and restart, so the record that says "this key ran,
//! here is its result" must live where every process sees it: Redis
//! (`idem-redis`), PostgreSQL, or, for one process and for tests,
//! [`MemoryStore`].
//!
//! A [`Store`] keeps, per key of a namespace, at most one of:
//!
//! * a **lease**: an owner is running the work. It has a *fencing token*,
//!   strictly greater than every token issued before for the key, and ends
//!   at a time of the store's clock unless renewed;
//! * a **record**: the work completed; its encoded result is kept for a
//!   retention period and replayed to later claims.
//!
//! | claim finds                          | answer                                   |
//! |--------------------------------------|------------------------------------------|
//! | nothing, or an expired lease         | [`Claimed::Leased`], a new, greater token |
//! | a live lease of the same owner       | [`Claimed::Leased`], the same lease (a lost reply, retried) |
//! | a live lease of another owner        | [`Claimed::Running`], with the time left  |
//! | a record                             | [`Claimed::Completed`]                    |
//! | either, with another fingerprint     | [`Claimed::Mismatch`]                     |
//!
//! [`renew`](Store::renew), [`complete`](Store::complete) and
//! [`release`](Store::release) are *fenced*: they act only while the lease
//! they name is the key's live lease, and otherwise change nothing and
//! return [`StoreError::Fenced`]. A completion retried after a lost reply
//! finds its own record and succeeds again. All expiry arithmetic uses the
//! store's clock, never the caller's.
//!
//! The conformance suite in the workspace (`tests/src/conformance.rs`)
//! checks these rules against every backend.

mod memory;
mod token;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub use memory::MemoryStore;
pub use token::{Token, TokenStore};

use crate::Fingerprint;

/// A key in a namespace: what a store keeps one lease or record for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoreKey<'a> {
    /// Separates the records of different operations ("payments",
    /// "emails") that may use the same keys.
    pub namespace: &'a str,
    /// The idempotency key.
    pub key: &'a str,
}

impl fmt::Display for StoreKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.key)
    }
}

/// Who holds a lease: unique, one per call that claims (and reused when
/// that call retries its claim), so that a claim whose reply was lost is
/// recognised as the caller's own.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner(u128);

impl Owner {
    /// A fresh owner id, distinct from every other this process or
    /// another makes: 64 random bits from the operating system, drawn once
    /// per process, and a per-process counter passed through a bijection
    /// (so ids look random, and no system call is made per id: a claim
    /// makes one).
    ///
    /// A process that forks keeps its parent's prefix and counter: its
    /// ids can repeat the parent's. Fork before using idem, or not at all.
    ///
    /// # Panics
    ///
    /// If the operating system has no randomness to give (`getrandom`
    /// fails) the first time, as [`Token::generate`].
    pub fn random() -> Self {
        static PROCESS: OnceLock<(u64, u64)> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let (prefix, salt) = *PROCESS.get_or_init(|| {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes)
                .expect("idem: the operating system gave no randomness for owner ids");
            let n = u128::from_le_bytes(bytes);
            ((n >> 64) as u64, n as u64)
        });
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self(u128::from(prefix) << 64 | u128::from(mix(n ^ salt)))
    }

    /// The low 64 bits, scattered: a seed for this owner's backoff jitter.
    #[cfg(feature = "durable")]
    pub(crate) fn seed(self) -> u64 {
        self.0 as u64
    }

    /// The id as 32 lowercase hex digits.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    /// An id from its 32 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        (s.len() == 32)
            .then(|| u128::from_str_radix(s, 16).ok())
            .flatten()
            .map(Self)
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Owner({:032x})", self.0)
    }
}

/// SplitMix64's finaliser: a bijection of `u64` that scatters consecutive
/// inputs over the whole range.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The right to run the work for a key, until the store's clock passes its
/// end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The fencing token: strictly greater than every token issued before
    /// for this key. Pass it to downstream writes (`UPDATE … WHERE fence <
    /// $1`) so that a stalled owner's late writes are refused there too.
    pub fence: u64,
    /// Who holds it.
    pub owner: Owner,
    /// How long it had left when the store answered.
    pub ttl: Duration,
}

/// A completed key's record, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The fencing token of the lease that completed it.
    pub fence: u64,
    /// The encoded result.
    pub payload: Vec<u8>,
}

/// What a [`Store::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claimed {
    /// The caller holds the key's lease and runs the work.
    Leased(Lease),
    /// Another owner's lease is live; it ends in `retry_after` unless
    /// renewed.
    Running {
        /// The time left on the other owner's lease.
        retry_after: Duration,
    },
    /// The work completed; its record is replayed.
    Completed(Record),
    /// The key is leased or completed for a call with another
    /// fingerprint.
    Mismatch,
}

/// Why a store operation did not happen, or may not have.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The lease named is not the key's live lease (it expired and maybe
    /// another owner took over): nothing was changed.
    Fenced,
    /// The store could not be reached, or the connection failed after the
    /// command was sent: the operation may or may not have happened.
    /// Retrying a claim, renewal, completion or release under the same
    /// lease is safe.
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// What the store holds under `key` is not a record this version can
    /// read (written by another program, or corrupted).
    Corrupt {
        /// The key, as `namespace/key`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Fenced => f.write_str(
                "the lease is no longer the key's live lease (it expired and may have been taken over): nothing was changed",
            ),
            StoreError::Unavailable(e) => write!(f, "the store is unavailable: {e}"),
            StoreError::Corrupt { key, reason } => {
                write!(f, "the store's entry for {key} is not a record idem can read: {reason}")
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Unavailable(e) => Some(&**e),
            _ => None,
        }
    }
}

/// The protocol every backend implements; see the [module docs](self) for
/// the rules, and the conformance suite for their tests.
///
/// Every method is safe to retry with the same arguments after an
/// [`StoreError::Unavailable`]: a claim by the same owner finds its own
/// lease, a completion finds its own record, a release finds the key no
/// longer leased to it.
pub trait Store: Send + Sync + 'static {
    /// Claims `key` for `owner` for `lease`, or reports what holds it.
    ///
    /// `fingerprint` is what the call asks for; `None` matches anything.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn claim(
        &self,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> impl Future<Output = Result<Claimed, StoreError>> + Send;

    /// What a claim would find *without* claiming, if the store can say
    /// it cheaply: [`Claimed::Completed`] for a record,
    /// [`Claimed::Mismatch`] for a lease or record of another
    /// fingerprint, `None` for anything else (nothing, a lease, or "not
    /// looked").
    ///
    /// A read-only first step for replays: the executor calls it before it
    /// sets up a claim (an owner id, a task for a detached call), and a
    /// record found here is replayed without them. Implement it only where
    /// a read costs much less than a claim, as in memory: the default
    /// answers `None` at once, and a store reached over the network, where
    /// a read costs a round trip as a claim does, keeps it (its claim
    /// replays records all the same).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`]; the executor
    /// then claims as if `None` had been answered.
    fn lookup(
        &self,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
    ) -> impl Future<Output = Result<Option<Claimed>, StoreError>> + Send {
        let _ = (key, fingerprint);
        std::future::ready(Ok(None))
    }

    /// Extends `lease` to end `ttl` from now, by the store's clock.
    ///
    /// # Errors
    ///
    /// [`StoreError::Fenced`] if `lease` is not the key's live lease;
    /// [`StoreError::Unavailable`].
    fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces `lease` with a record of `payload`, kept for `retain`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Fenced`] if `lease` is not the key's live lease (and
    /// the key holds no record of it: a retried completion succeeds);
    /// [`StoreError::Unavailable`].
    fn complete(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        payload: &[u8],
        retain: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives up `lease`: the next claim of the key runs the work.
    ///
    /// # Errors
    ///
    /// [`StoreError::Fenced`] if `lease` is not the key's live lease (a
    /// retried release whose first attempt went through gets this too:
    /// either way the key is no longer leased to its owner);
    /// [`StoreError::Unavailable`].
    fn release(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A store shared by several executors (one per "process" in a test, or
/// several tables of one service).
impl<S: Store> Store for std::sync::Arc<S> {
    fn claim(
        &self,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
        owner: Owner,
        lease: Duration,
    ) -> impl Future<Output = Result<Claimed, StoreError>> + Send {
        (**self).claim(key, fingerprint, owner, lease)
    }

    fn lookup(
        &self,
        key: StoreKey<'_>,
        fingerprint: Option<Fingerprint>,
    ) -> impl Future<Output = Result<Option<Claimed>, StoreError>> + Send {
        (**self).lookup(key, fingerprint)
    }

    fn renew(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).renew(key, lease, ttl)
    }

    fn complete(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
        payload: &[u8],
        retain: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).complete(key, lease, payload, retain)
    }

    fn release(
        &self,
        key: StoreKey<'_>,
        lease: &Lease,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(key, lease)
    }
}
