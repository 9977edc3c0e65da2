//! One-time tokens: issued with a form, consumed once with its submission.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use super::StoreError;

/// A one-time token: 128 random bits from the operating system, written
/// as 22 URL-safe characters (base64url, no padding), so it fits a form
/// field, a header or a query string as it is.
///
/// ```
/// let t = idem::store::Token::generate();
/// assert_eq!(t.as_str().len(), 22);
/// assert_eq!(idem::store::Token::parse(t.as_str()), Some(t.clone()));
/// assert_ne!(t, idem::store::Token::generate());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl Token {
    /// A fresh token.
    ///
    /// # Panics
    ///
    /// If the operating system has no randomness to give (`getrandom`
    /// fails): a token that could be guessed must not be issued.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .expect("idem: the operating system gave no randomness for a token");
        let n = u128::from_be_bytes(bytes);
        // 22 digits of 6 bits hold 132 bits; the top 4 are zero.
        let s = (0..22)
            .rev()
            .map(|i| char::from(ALPHABET[((n >> (6 * i)) & 63) as usize]))
            .collect();
        Self(s)
    }

    /// A token as a client sent it back, if it has the shape of one (22
    /// base64url characters); whether it was issued is the store's to say.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == 22 && s.bytes().all(|b| ALPHABET.contains(&b)) && {
            // The first digit carries 2 bits: 128 = 22 × 6 - 4.
            ALPHABET[..4].contains(&s.as_bytes()[0])
        };
        ok.then(|| Self(s.to_owned()))
    }

    /// The 22 characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A live token is a credential: only its first characters.
        write!(f, "Token({}…)", &self.0[..4])
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Issues one-time tokens bound to a scope (a user, a form) and consumes
/// each at most once, atomically, across every process sharing the store:
/// the "fetch a token with the form, submit with it" flow, where a double
/// submission finds its token already spent.
pub trait TokenStore: Send + Sync + 'static {
    /// A fresh token for `scope`, consumable once within `ttl`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`].
    fn issue(
        &self,
        scope: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Token, StoreError>> + Send;

    /// Spends `token`: `true` exactly once, for the scope it was issued
    /// for and within its ttl; `false` if it was spent already, expired,
    /// never issued, or issued for another scope (which leaves it
    /// unspent for its own).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`]: the token may or may not have been
    /// spent; treat the submission as not accepted.
    fn consume(
        &self,
        scope: &str,
        token: &Token,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
