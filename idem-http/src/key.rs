//! The `Idempotency-Key` header: read, and checked.

use std::fmt;
use std::ops::Deref;

use http::header::{HeaderMap, HeaderName, HeaderValue};

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

/// A request's key, where the header holds it when it can be: sent bare,
/// or quoted without escapes, it is the header value's own bytes (a
/// `HeaderValue` shares them: nothing is copied); with escapes, a string
/// of its own. Either way a `str` of 1 to [`MAX_LEN`] visible ASCII
/// characters.
#[derive(Debug, Clone)]
pub(crate) struct Key(Repr);

#[derive(Debug, Clone)]
enum Repr {
    /// `value.as_bytes()[start..end]`.
    InHeader {
        value: HeaderValue,
        start: usize,
        end: usize,
    },
    Unescaped(String),
}

impl Key {
    pub(crate) fn as_str(&self) -> &str {
        match &self.0 {
            // The key was checked to be visible ASCII, and all around it are
            // quotes, spaces and tabs: never the default.
            Repr::InHeader { value, start, end } => value
                .to_str()
                .ok()
                .and_then(|v| v.get(*start..*end))
                .unwrap_or_default(),
            Repr::Unescaped(key) => key,
        }
    }
}

impl Deref for Key {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// The request's key, `Ok(None)` when it has none.
///
/// The header is a structured-field string (`"8e03978e-…"`, as the draft
/// specifies) or the bare value many clients send; either way the key is
/// 1 to 255 visible ASCII characters (`!` to `~`: no spaces).
pub(crate) fn parse(headers: &HeaderMap, name: &HeaderName) -> Result<Option<Key>, BadKey> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BadKey::Repeated);
    }
    let raw = value.as_bytes();
    let (mut start, mut end) = trimmed(raw);
    let mut unescaped = None;
    match &raw[start..end] {
        [b'"', inner @ .., b'"'] => {
            if inner.contains(&b'\\') {
                unescaped = Some(unquote(inner)?);
            } else if inner.contains(&b'"') {
                return Err(BadKey::Malformed);
            } else {
                (start, end) = (start + 1, end - 1);
            }
        }
        [b'"', ..] => return Err(BadKey::Malformed),
        _ => {}
    }
    let key = unescaped.as_deref().unwrap_or(&raw[start..end]);
    if key.is_empty() {
        return Err(BadKey::Empty);
    }
    if let Some(i) = key.iter().position(|b| !(0x21..=0x7e).contains(b)) {
        return Err(BadKey::Invalid(i));
    }
    if key.len() > MAX_LEN {
        return Err(BadKey::TooLong(key.len()));
    }
    Ok(Some(Key(match unescaped {
        // Visible ASCII only: valid UTF-8.
        Some(key) => Repr::Unescaped(String::from_utf8(key).map_err(|_| BadKey::Invalid(0))?),
        None => Repr::InHeader {
            value: value.clone(),
            start,
            end,
        },
    })))
}

/// `b`'s bounds without the spaces and tabs around it.
fn trimmed(b: &[u8]) -> (usize, usize) {
    let blank = |c: &u8| matches!(c, b' ' | b'\t');
    let start = b.iter().position(|c| !blank(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !blank(c)).map_or(start, |i| i + 1);
    (start, end)
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

    fn parsed(values: &[&[u8]]) -> Result<Option<Key>, BadKey> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("idempotency-key", HeaderValue::from_bytes(v).unwrap());
        }
        parse(&h, &HeaderName::from_static("idempotency-key"))
    }

    fn key(values: &[&[u8]]) -> Result<Option<String>, BadKey> {
        parsed(values).map(|k| k.map(|k| k.to_string()))
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

    #[test]
    fn a_key_without_escapes_is_not_copied() {
        for v in [&b" abc "[..], b"\"abc\"", b"\t\"a-b\" "] {
            assert!(
                matches!(parsed(&[v]), Ok(Some(Key(Repr::InHeader { .. })))),
                "{v:?}"
            );
        }
        assert!(matches!(
            parsed(&[b"\"a\\\"b\""]),
            Ok(Some(Key(Repr::Unescaped(_))))
        ));
    }

    /// `parse` as it was before keys were borrowed: the reference.
    fn old_parse(headers: &HeaderMap, name: &HeaderName) -> Result<Option<String>, BadKey> {
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(BadKey::Repeated);
        }
        let mut raw = value.as_bytes();
        while let [b' ' | b'\t', rest @ ..] = raw {
            raw = rest;
        }
        while let [rest @ .., b' ' | b'\t'] = raw {
            raw = rest;
        }
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
        Ok(Some(
            String::from_utf8(key).map_err(|_| BadKey::Invalid(0))?,
        ))
    }

    #[test]
    fn the_same_answers_as_the_copying_parser() {
        let name = HeaderName::from_static("idempotency-key");
        let check = |v: &[u8]| {
            let mut h = HeaderMap::new();
            h.append(&name, HeaderValue::from_bytes(v).unwrap());
            assert_eq!(
                parse(&h, &name).map(|k| k.map(|k| k.to_string())),
                old_parse(&h, &name),
                "{v:?}"
            );
        };
        // Every value of up to five characters over the ones that matter.
        let alphabet = [b'a', b'"', b'\\', b' ', b'\t', b'~', 0xe9];
        let mut level = vec![Vec::new()];
        let mut values = level.clone();
        for _ in 0..5 {
            level = level
                .iter()
                .flat_map(|v| {
                    alphabet.iter().map(move |&c| {
                        let mut v = v.clone();
                        v.push(c);
                        v
                    })
                })
                .collect();
            values.extend(level.iter().cloned());
        }
        for v in &values {
            check(v);
        }
        // Around the longest key, bare and quoted, with and without escapes.
        for n in [254, 255, 256] {
            let k = "k".repeat(n);
            check(k.as_bytes());
            check(format!("\"{k}\"").as_bytes());
            check(format!(" \"\\\\{k}\" ").as_bytes());
        }
    }
}
