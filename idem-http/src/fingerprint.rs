//! A request's fingerprint: what it asks for, so that a key reused for
//! another request is caught (`422`).

use http::header::{HeaderName, CONTENT_TYPE};
use http::request::Parts;
use idem::Fingerprint;
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
        let headers: Vec<(&str, Vec<&[u8]>)> = self
            .headers
            .iter()
            .map(|name| {
                let values = parts.headers.get_all(name).iter().map(|v| v.as_bytes());
                (name.as_str(), values.collect())
            })
            .collect();
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
            headers,
            body,
        ))
    }
}

fn is_json(parts: &Parts) -> bool {
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

/// `body` re-written with object keys sorted and no whitespace; `None` if
/// it is not JSON (then its bytes are compared as they are).
pub(crate) fn canonical_json(body: &[u8]) -> Option<Vec<u8>> {
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
    use http::Request;

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
}
