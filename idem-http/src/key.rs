//! The `Idempotency-Key` header: read, and checked.

use std::fmt;

use http::header::{HeaderMap, HeaderName};

/// The longest key accepted, in characters.
pub(crate) const MAX_LEN: usize = 255;

/// Why a request's key was refused (a `400`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadKey {
    Missing,
    Repeated,
    Empty,
    TooLong(usize),
    /// A byte that is not visible ASCII (a space, a control, non-ASCII), at
    /// this index of the key.
    Invalid(usize),
    /// A quote opened and not closed, or a stray backslash.
    Malformed,
}

impl fmt::Display for BadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadKey::Missing => f.write_str("this operation requires an Idempotency-Key header: send a unique value (a UUID) with the request, and the same value with its retries"),
            BadKey::Repeated => f.write_str("the request has more than one Idempotency-Key header: send exactly one"),
            BadKey::Empty => f.write_str("the Idempotency-Key header is empty: send a unique value, such as a UUID"),
            BadKey::TooLong(n) => write!(f, "the Idempotency-Key is {n} characters long; at most {MAX_LEN} are accepted"),
            BadKey::Invalid(i) => write!(f, "the Idempotency-Key has a character at position {i} that is not visible ASCII (letters, digits, punctuation; no spaces)"),
            BadKey::Malformed => f.write_str("the Idempotency-Key is neither a token nor a well-formed quoted string (\"...\", with \\\" and \\\\ escapes)"),
        }
    }
}

/// The request's key, `Ok(None)` when it has none.
///
/// The header is a structured-field string (`"8e03978e-…"`, as the draft
/// specifies) or the bare value many clients send; either way the key is
/// 1 to 255 visible ASCII characters (`!` to `~`: no spaces).
pub(crate) fn parse(headers: &HeaderMap, name: &HeaderName) -> Result<Option<String>, BadKey> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BadKey::Repeated);
    }
    let raw = value.as_bytes();
    let raw = trim(raw);
    let key = match raw {
        [b'"', inner @ .., b'"'] => unquote(inner)?,
        [b'"', ..] => return Err(BadKey::Malformed),
        bare => bare.to_vec(),
    };
    if key.is_empty() {
        return Err(BadKey::Empty);
    }
    if let Some(i) = key.iter().position(|b| !(0x21..=0x7e).contains(b)) {
        return Err(BadKey::Invalid(i));
    }
    if key.len() > MAX_LEN {
        return Err(BadKey::TooLong(key.len()));
    }
    // Visible ASCII only: valid UTF-8.
    Ok(Some(
        String::from_utf8(key).map_err(|_| BadKey::Invalid(0))?,
    ))
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// The content of a structured-field string: `\"` and `\\` escapes, no
/// other backslash, no bare quote.
fn unquote(inner: &[u8]) -> Result<Vec<u8>, BadKey> {
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => match bytes.next() {
                Some(&e @ (b'"' | b'\\')) => out.push(e),
                _ => return Err(BadKey::Malformed),
            },
            b'"' => return Err(BadKey::Malformed),
            b => out.push(b),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn key(values: &[&[u8]]) -> Result<Option<String>, BadKey> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("idempotency-key", HeaderValue::from_bytes(v).unwrap());
        }
        parse(&h, &HeaderName::from_static("idempotency-key"))
    }

    #[test]
    fn tokens_and_structured_strings() {
        assert_eq!(key(&[]), Ok(None));
        assert_eq!(key(&[b"abc-123"]), Ok(Some("abc-123".into())));
        assert_eq!(key(&[b"\"abc-123\""]), Ok(Some("abc-123".into())));
        assert_eq!(key(&[b"  \"a\\\"b\\\\c\" "]), Ok(Some("a\"b\\c".into())));
        let max = "k".repeat(255);
        assert_eq!(key(&[max.as_bytes()]), Ok(Some(max.clone())));
    }

    #[test]
    fn what_is_refused() {
        assert_eq!(key(&[b""]), Err(BadKey::Empty));
        assert_eq!(key(&[b"\"\""]), Err(BadKey::Empty));
        assert_eq!(key(&[b"a b"]), Err(BadKey::Invalid(1)));
        assert_eq!(key(&[b"\"a b\""]), Err(BadKey::Invalid(1)));
        assert_eq!(key(&["caf\u{e9}".as_bytes()]), Err(BadKey::Invalid(3)));
        assert_eq!(key(&[b"a\tb"]), Err(BadKey::Invalid(1)));
        assert_eq!(
            key(&["k".repeat(256).as_bytes()]),
            Err(BadKey::TooLong(256))
        );
        assert_eq!(key(&[b"\"abc"]), Err(BadKey::Malformed));
        assert_eq!(key(&[b"\"a\\nb\""]), Err(BadKey::Malformed));
        assert_eq!(key(&[b"\"a\"b\""]), Err(BadKey::Malformed));
        assert_eq!(key(&[b"a", b"b"]), Err(BadKey::Repeated));
    }
}
