//! A request's fingerprint: what it asks for, so that a key reused for
//! another request is caught (`422`).
//!
//! Fingerprints are stored beside records (a day, by default, in a shared
//! store), so what is hashed must never change: the same request must give
//! the same fingerprint in every version of this crate. The tests pin it.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};

use http::header::{HeaderMap, HeaderName, CONTENT_TYPE};
use http::request::Parts;
use idem::Fingerprint;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// What goes into a fingerprint besides the method, path and query.
#[derive(Debug, Clone)]
pub(crate) struct FingerprintRules {
    /// Headers that change what the request means (`Content-Type`, an
    /// `Accept-Language` that picks the invoice's language…).
    pub(crate) headers: Vec<HeaderName>,
    /// Whether JSON bodies are compared by value: key order and whitespace
    /// ignored.
    pub(crate) canonical_json: bool,
}

impl FingerprintRules {
    /// The fingerprint of a request whose body is `body`.
    pub(crate) fn of(&self, parts: &Parts, body: &[u8]) -> Fingerprint {
        let canonical = if self.canonical_json && is_json(parts) {
            canonical_json(body)
        } else {
            None
        };
        let body = canonical.as_deref().unwrap_or(body);
        Fingerprint::of(&(
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query(),
            Chosen {
                names: &self.headers,
                headers: &parts.headers,
            },
            body,
        ))
    }
}

/// The chosen headers' values, hashed where they are: the hasher gets what
/// the `Vec<(&str, Vec<&[u8]>)>` of earlier versions fed it (each name,
/// then its values, each list after its length), without building it.
struct Chosen<'a> {
    names: &'a [HeaderName],
    headers: &'a HeaderMap,
}

impl Hash for Chosen<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        length_prefix(self.names.len(), state);
        for name in self.names {
            name.as_str().hash(state);
            let values = self.headers.get_all(name);
            length_prefix(values.iter().count(), state);
            for value in values {
                value.as_bytes().hash(state);
            }
        }
    }
}

/// What a slice of `n` items hashes before its items: a slice of `n` units
/// hashes that and nothing else (a unit hashes to nothing), and a `Vec` of
/// units allocates nothing.
fn length_prefix<H: Hasher>(n: usize, state: &mut H) {
    vec![(); n].hash(state);
}

fn is_json(parts: &Parts) -> bool {
    let Some(ct) = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or("").trim().as_bytes();
    mime.eq_ignore_ascii_case(b"application/json")
        || (starts_with_ignore_case(mime, b"application/") && ends_with_ignore_case(mime, b"+json"))
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn ends_with_ignore_case(s: &[u8], suffix: &[u8]) -> bool {
    s.len()
        .checked_sub(suffix.len())
        .is_some_and(|at| s[at..].eq_ignore_ascii_case(suffix))
}

/// `body` re-written with object keys sorted and no whitespace; `None` if
/// it is not JSON (then its bytes are compared as they are).
///
/// Written as `serde_json` parses, into one buffer: no tree. A repeated
/// key keeps its last value, numbers and strings are spelled as
/// `serde_json` writes them, exactly as [`canonical_json_via_value`] does.
pub(crate) fn canonical_json(body: &[u8]) -> Option<Vec<u8>> {
    let mut w = Writer {
        out: Vec::with_capacity(body.len()),
        members: Vec::new(),
        scratch: Vec::new(),
        marker: false,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    match Json(&mut w).deserialize(&mut de).and_then(|()| de.end()) {
        Ok(()) => Some(w.out),
        Err(_) if w.marker => canonical_json_via_value(body),
        Err(_) => None,
    }
}

/// What `serde_json` keys its private types with (`arbitrary_precision`'s
/// numbers, `raw_value`'s raw values): a `Value` parses a map whose first
/// key is one of them as that type, when the feature is on (in the
/// application, perhaps). [`canonical_json`] leaves such a document to
/// [`canonical_json_via_value`], whatever the features.
const MARKER: &str = "$serde_json::private::";

/// The writer's state.
struct Writer<'de> {
    out: Vec<u8>,
    /// The members of the objects being written, the innermost object's
    /// last: each member's key and where its `"key":value` is in `out`.
    members: Vec<Member<'de>>,
    /// Where an object whose keys came out of order is re-assembled.
    scratch: Vec<u8>,
    /// A key that looks like `serde_json`'s [`MARKER`] was met.
    marker: bool,
}

struct Member<'de> {
    key: Cow<'de, str>,
    start: usize,
    end: usize,
}

impl Writer<'_> {
    fn scalar<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        // Writing into a `Vec` cannot fail, nor can these types (a float
        // that is not finite is written `null`, as a `Value` holds it).
        let _ = serde_json::to_writer(&mut self.out, v);
    }

    /// The object whose members from `first` on were written after `open`
    /// in the order they came: re-written sorted by key, the last of a
    /// repeated key kept (as a `Value`'s map keeps it).
    fn sort_object(&mut self, open: usize, first: usize) {
        let Writer {
            out,
            members,
            scratch,
            ..
        } = self;
        let members = &mut members[first..];
        // Unstable, but the members' places break ties: no allocation.
        members.sort_unstable_by(|a, b| a.key.cmp(&b.key).then(a.start.cmp(&b.start)));
        scratch.clear();
        for (i, m) in members.iter().enumerate() {
            if members.get(i + 1).is_some_and(|next| next.key == m.key) {
                continue;
            }
            if !scratch.is_empty() {
                scratch.push(b',');
            }
            scratch.extend_from_slice(&out[m.start..m.end]);
        }
        out.truncate(open);
        out.extend_from_slice(scratch);
    }
}

/// A JSON value, to be written canonically by the writer it holds.
struct Json<'w, 'de>(&'w mut Writer<'de>);

impl<'de> DeserializeSeed<'de> for Json<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Json<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.scalar(&v);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.scalar(&v);
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.scalar(&v);
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.scalar(&v);
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.scalar(v);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let w = self.0;
        w.out.push(b'[');
        let mut first = true;
        loop {
            let before = w.out.len();
            if !first {
                w.out.push(b',');
            }
            if seq.next_element_seed(Json(&mut *w))?.is_none() {
                w.out.truncate(before);
                break;
            }
            first = false;
        }
        w.out.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let w = self.0;
        w.out.push(b'{');
        let open = w.out.len();
        let first = w.members.len();
        let mut sorted = true;
        while let Some(key) = map.next_key_seed(Key)? {
            if key.starts_with(MARKER) {
                w.marker = true;
                return Err(de::Error::custom("a serde_json marker key"));
            }
            if let Some(last) = w.members[first..].last() {
                sorted &= last.key < key;
                w.out.push(b',');
            }
            let start = w.out.len();
            w.scalar(&*key);
            w.out.push(b':');
            map.next_value_seed(Json(&mut *w))?;
            let end = w.out.len();
            w.members.push(Member { key, start, end });
        }
        if !sorted {
            w.sort_object(open, first);
        }
        w.members.truncate(first);
        w.out.push(b'}');
        Ok(())
    }
}

/// An object's key, borrowed from the body unless it has escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// [`canonical_json`] through a `serde_json::Value`, as versions before it
/// wrote it (kept as it was): for documents with a key spelled like
/// [`MARKER`], and the reference the tests compare with.
pub(crate) fn canonical_json_via_value(body: &[u8]) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut out = Vec::with_capacity(body.len());
    write(&value, &mut out);
    Some(out)
}

/// Writes `v` with its objects' keys in byte order, whatever order
/// `serde_json`'s map keeps (its `preserve_order` feature may be on in
/// the application).
fn write(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // Serializing a string cannot fail.
                out.extend_from_slice(&serde_json::to_vec(k).unwrap_or_default());
                out.push(b':');
                write(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(v, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(&serde_json::to_vec(scalar).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Request};

    fn fp(rules: &FingerprintRules, uri: &str, ct: &str, body: &[u8]) -> Fingerprint {
        let (parts, ()) = Request::post(uri)
            .header(CONTENT_TYPE, ct)
            .header("accept-language", "fr")
            .body(())
            .unwrap()
            .into_parts();
        rules.of(&parts, body)
    }

    fn rules(canonical_json: bool) -> FingerprintRules {
        FingerprintRules {
            headers: vec![HeaderName::from_static("accept-language")],
            canonical_json,
        }
    }

    #[test]
    fn json_bodies_compare_by_value_when_asked() {
        let r = rules(true);
        let a = fp(&r, "/p", "application/json", br#"{"a":1,"b":[1,2]}"#);
        let b = fp(
            &r,
            "/p",
            "application/json; charset=utf-8",
            b"{ \"b\": [1, 2],\n \"a\": 1 }",
        );
        assert_eq!(a, b);
        assert_ne!(a, fp(&r, "/p", "application/json", br#"{"a":2,"b":[1,2]}"#));
        assert_ne!(a, fp(&r, "/p", "application/json", br#"{"a":1,"b":[2,1]}"#));
        let raw = rules(false);
        assert_ne!(
            fp(&raw, "/p", "application/json", br#"{"a":1,"b":2}"#),
            fp(&raw, "/p", "application/json", br#"{"b":2,"a":1}"#)
        );
    }

    #[test]
    fn path_query_and_chosen_headers_count() {
        let r = rules(true);
        let base = fp(&r, "/p?x=1", "text/plain", b"x");
        assert_ne!(base, fp(&r, "/q?x=1", "text/plain", b"x"));
        assert_ne!(base, fp(&r, "/p?x=2", "text/plain", b"x"));
        assert_ne!(base, fp(&r, "/p?x=1", "text/plain", b"y"));
        let (parts, ()) = Request::post("/p?x=1")
            .header(CONTENT_TYPE, "text/plain")
            .header("accept-language", "de")
            .body(())
            .unwrap()
            .into_parts();
        assert_ne!(base, r.of(&parts, b"x"));
    }

    /// Fingerprints are stored: these are the values every version must
    /// give (computed by the implementation before the canonical form was
    /// written without a `Value`, [`old_of`]).
    #[test]
    fn fingerprints_are_pinned() {
        let r = FingerprintRules {
            headers: vec![CONTENT_TYPE, HeaderName::from_static("accept-language")],
            canonical_json: true,
        };
        let (parts, ()) = Request::post("/payments?x=1")
            .header(CONTENT_TYPE, "application/json")
            .header("accept-language", "fr")
            .header("accept-language", "de")
            .body(())
            .unwrap()
            .into_parts();
        let body = br#"{ "currency": "EUR", "amount_cents": 1250 }"#;
        assert_eq!(r.of(&parts, body), old_of(&r, &parts, body));
        assert_eq!(
            r.of(&parts, body).get(),
            PINNED_JSON,
            "{:#x}",
            r.of(&parts, body).get()
        );
        let raw = FingerprintRules {
            headers: vec![],
            canonical_json: false,
        };
        assert_eq!(raw.of(&parts, body), old_of(&raw, &parts, body));
        assert_eq!(
            raw.of(&parts, body).get(),
            PINNED_RAW,
            "{:#x}",
            raw.of(&parts, body).get()
        );
    }

    const PINNED_JSON: u64 = 0x1b7f_ca00_3f93_a769;
    const PINNED_RAW: u64 = 0x8ca0_e2a0_02f1_42cf;

    /// The canonical form, spelled out: keys in byte order (of their
    /// characters, not of their escapes), the last of a repeated key,
    /// numbers and strings as `serde_json` writes them.
    #[test]
    fn canonical_bytes_are_pinned() {
        for (body, canonical) in [
            (&br#" { "b" : [1, 2.50, -0, 1e2, 1E-7, 12345678901234567890123] , "a": 1 } "#[..], &br#"{"a":1,"b":[1,2.5,-0.0,100.0,1e-7,1.2345678901234568e+22]}"#[..]),
            (br#"{"a":1,"a":{"y":true,"x":null},"\u0061":[ ]}"#, br#"{"a":[]}"#),
            (
                r##"{"\"":1,"#":2,"\\":3,"\n":4,"é":5,"e":6}"##.as_bytes(),
                r##"{"\n":4,"\"":1,"#":2,"\\":3,"e":6,"é":5}"##.as_bytes(),
            ),
            (br#""caf\u00e9 \ud83d\ude00 \/ \t""#, "\"café 😀 / \\t\"".as_bytes()),
            (br#"[18446744073709551615, 18446744073709551616, -9223372036854775808, -9223372036854775809]"#, br#"[18446744073709551615,1.8446744073709552e+19,-9223372036854775808,-9.223372036854776e+18]"#),
            (b"{}", b"{}"),
            (b"[[],{},null,false]", b"[[],{},null,false]"),
        ] {
            let got = canonical_json(body);
            assert_eq!(
                got.as_deref().map(String::from_utf8_lossy),
                Some(String::from_utf8_lossy(canonical)),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(got, canonical_json_via_value(body));
        }
        for not_json in [
            &b""[..],
            b"{",
            b"[1,]",
            b"{\"a\":1,}",
            b"01",
            b"1 2",
            b"\"\\ud800\"",
            b"nul",
            b"\xff",
        ] {
            assert_eq!(
                canonical_json(not_json),
                None,
                "{}",
                String::from_utf8_lossy(not_json)
            );
            assert_eq!(canonical_json_via_value(not_json), None);
        }
    }

    #[test]
    fn serde_json_marker_keys_are_left_to_value() {
        for body in [
            &br#"{"$serde_json::private::Number":"1.0e3"}"#[..],
            br#"{"$serde_json::private::RawValue":"[2,1]"}"#,
            br#"{"b":{"$serde_json::private::Number":"x"},"a":1}"#,
            br#"{"$serde_json::private::Numbers":1}"#,
        ] {
            assert_eq!(canonical_json(body), canonical_json_via_value(body));
        }
    }

    #[test]
    fn nesting_is_limited_as_serde_json_limits_it() {
        for depth in [1, 127, 128, 129, 200] {
            let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            for body in [arrays, objects] {
                assert_eq!(
                    canonical_json(body.as_bytes()),
                    canonical_json_via_value(body.as_bytes()),
                    "{depth}"
                );
            }
        }
    }

    /// SplitMix64: a fixed sequence, the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
            items[self.below(items.len())]
        }
    }

    fn blank(r: &mut Rng, out: &mut Vec<u8>) {
        while r.below(3) == 0 {
            out.extend_from_slice(r.pick(&[&b" "[..], b"\n", b"\t", b"\r", b"  "]));
        }
    }

    fn digits(r: &mut Rng, out: &mut Vec<u8>, max: usize) {
        for _ in 0..=r.below(max) {
            out.push(b'0' + r.below(10) as u8);
        }
    }

    fn string(r: &mut Rng, out: &mut Vec<u8>) {
        out.push(b'"');
        for _ in 0..r.below(6) {
            let piece: &[u8] = match r.below(12) {
                0 => r.pick(&[
                    &br#"\""#[..],
                    br"\\",
                    br"\/",
                    br"\b",
                    br"\f",
                    br"\n",
                    br"\r",
                    br"\t",
                ]),
                1 => r.pick(&[
                    &br"\u0000"[..],
                    br"\u001f",
                    br"\u0041",
                    br"\u00e9",
                    br"\u20ac",
                    br"\uFFFF",
                    br"\ud83d\ude00",
                ]),
                2 => r.pick(&["é".as_bytes(), "€".as_bytes(), "😀".as_bytes(), b"\x7f"]),
                // Invalid: a lone surrogate, a raw control, a bad escape.
                3 if r.below(20) == 0 => r.pick(&[&br"\ud800"[..], b"\x01", br"\x"]),
                _ => r.pick(&[&b"a"[..], b"b", b"Z", b"0", b" ", b"#", b"$"]),
            };
            out.extend_from_slice(piece);
        }
        out.push(b'"');
    }

    /// Keys from a small set, so that objects repeat keys, some spelled
    /// with escapes (`\u0061` is `a`), some whose escapes sort otherwise
    /// than their characters.
    fn key(r: &mut Rng, out: &mut Vec<u8>) {
        if r.below(4) == 0 {
            return string(r, out);
        }
        let k: &[u8] = r.pick(&[
            &br#""a""#[..],
            br#""b""#,
            br#""A""#,
            br#""aa""#,
            br#""ab""#,
            br#""""#,
            br#""\u0061""#,
            br#""\"""#,
            br#""\\""#,
            br##""#""##,
            br#""\n""#,
            "\"é\"".as_bytes(),
            br#""\u00e9""#,
            br#""e""#,
            br#""\ud83d\ude00""#,
            "\"\u{ffff}\"".as_bytes(),
        ]);
        out.extend_from_slice(k);
    }

    fn value(r: &mut Rng, depth: usize, out: &mut Vec<u8>) {
        blank(r, out);
        match r.below(if depth >= 4 { 5 } else { 8 }) {
            0 => out.extend_from_slice(r.pick(&[&b"null"[..], b"true", b"false"])),
            1 => {
                if r.below(2) == 0 {
                    out.push(b'-');
                }
                match r.below(4) {
                    0 => out.extend_from_slice(r.pick(&[
                        &b"0"[..],
                        b"18446744073709551615",
                        b"18446744073709551616",
                        b"9223372036854775808",
                        b"9223372036854775809",
                        b"123456789012345678901234567890",
                    ])),
                    _ => digits(r, out, 20),
                }
            }
            2 => {
                digits(r, out, 3);
                if r.below(3) != 0 {
                    out.push(b'.');
                    digits(r, out, 25);
                }
                if r.below(2) == 0 {
                    out.extend_from_slice(r.pick(&[&b"e"[..], b"E", b"e+", b"e-", b"E-"]));
                    digits(r, out, 3);
                }
            }
            3 | 4 => string(r, out),
            5 => {
                out.push(b'[');
                for i in 0..r.below(5) {
                    if i > 0 {
                        out.push(b',');
                    }
                    value(r, depth + 1, out);
                }
                blank(r, out);
                out.push(b']');
            }
            _ => {
                out.push(b'{');
                for i in 0..r.below(7) {
                    if i > 0 {
                        out.push(b',');
                    }
                    blank(r, out);
                    if r.below(200) == 0 {
                        out.extend_from_slice(r.pick(&[
                            &br#""$serde_json::private::Number""#[..],
                            br#""$serde_json::private::RawValue""#,
                        ]));
                    } else {
                        key(r, out);
                    }
                    blank(r, out);
                    out.push(b':');
                    value(r, depth + 1, out);
                }
                blank(r, out);
                out.push(b'}');
            }
        }
        blank(r, out);
    }

    /// A JSON document, or now and then one broken by a cut, a stray
    /// character or a byte that is not UTF-8.
    fn document(r: &mut Rng) -> Vec<u8> {
        let mut doc = Vec::new();
        value(r, 0, &mut doc);
        match r.below(16) {
            0 if !doc.is_empty() => doc.truncate(r.below(doc.len())),
            1 if !doc.is_empty() => {
                let at = r.below(doc.len());
                doc[at] = r.pick(&[&b","[..], b":", b"]", b"}", b"{", b"x", b"\xff"])[0];
            }
            2 => doc.extend_from_slice(r.pick(&[&b","[..], b"x", b"{}", b"\x00"])),
            _ => {}
        }
        doc
    }

    #[test]
    fn canonical_json_is_what_value_made_of_generated_documents() {
        let mut r = Rng(0x1de4_b0d1);
        let (mut json, mut changed) = (0, 0);
        for n in 0..30_000 {
            let doc = document(&mut r);
            let new = canonical_json(&doc);
            let old = canonical_json_via_value(&doc);
            assert_eq!(
                new.as_deref().map(String::from_utf8_lossy),
                old.as_deref().map(String::from_utf8_lossy),
                "document {n}: {}",
                String::from_utf8_lossy(&doc)
            );
            json += usize::from(old.is_some());
            changed += usize::from(old.as_deref().is_some_and(|c| c != doc));
        }
        // The generator makes mostly JSON, and mostly JSON that is not
        // canonical as written.
        assert!(json > 20_000 && changed > 15_000, "{json} {changed}");
    }

    /// [`FingerprintRules::of`] as it was before the canonical form was
    /// written without a `Value` and the headers hashed where they are.
    fn old_of(rules: &FingerprintRules, parts: &Parts, body: &[u8]) -> Fingerprint {
        let headers: Vec<(&str, Vec<&[u8]>)> = rules
            .headers
            .iter()
            .map(|name| {
                let values = parts.headers.get_all(name).iter().map(|v| v.as_bytes());
                (name.as_str(), values.collect())
            })
            .collect();
        let canonical = if rules.canonical_json && old_is_json(parts) {
            canonical_json_via_value(body)
        } else {
            None
        };
        let body = canonical.as_deref().unwrap_or(body);
        Fingerprint::of(&(
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query(),
            headers,
            body,
        ))
    }

    fn old_is_json(parts: &Parts) -> bool {
        let Some(ct) = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
    }

    #[test]
    fn fingerprints_are_what_they_were_for_generated_requests() {
        let mut r = Rng(0xf19e_40f0);
        let names = [
            CONTENT_TYPE,
            HeaderName::from_static("accept-language"),
            HeaderName::from_static("x-tenant"),
        ];
        for n in 0..5_000 {
            let mut req = Request::builder()
                .method(*r.pick(&[&"POST", &"PATCH", &"PUT"]))
                .uri(*r.pick(&[&"/p", &"/p?x=1", &"/q?", &"/orders/7?a=b&c"]));
            if r.below(8) != 0 {
                let ct: &[u8] = r.pick(&[
                    &b"application/json"[..],
                    b"Application/JSON ; charset=utf-8",
                    b"application/json;charset=utf-8",
                    b"  application/json  ",
                    b"application/vnd.api+json",
                    b"APPLICATION/PROBLEM+JSON",
                    b"application/+json",
                    b"application/json+x",
                    b"application/jsonx",
                    b"text/json",
                    b"application\\json",
                    b"text/plain",
                    b"",
                    b"application/json\xff",
                ]);
                req = req.header(CONTENT_TYPE, HeaderValue::from_bytes(ct).unwrap());
                if r.below(10) == 0 {
                    req = req.header(CONTENT_TYPE, "text/plain");
                }
            }
            for _ in 0..r.below(4) {
                let name = r.pick(&[&names[1], &names[2]]);
                let value: &[u8] = r.pick(&[&b"fr"[..], b"de", b"", b"a, b", b"\xe9t\xe9"]);
                req = req.header(name, HeaderValue::from_bytes(value).unwrap());
            }
            let (parts, ()) = req.body(()).unwrap().into_parts();
            let rules = FingerprintRules {
                headers: (0..r.below(4))
                    .map(|_| r.pick(&[&names[0], &names[1], &names[2]]).clone())
                    .collect(),
                canonical_json: r.below(4) != 0,
            };
            let body = document(&mut r);
            assert_eq!(
                rules.of(&parts, &body),
                old_of(&rules, &parts, &body),
                "request {n}: {parts:?} {rules:?} {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
