//! How results are written into a store's records.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Turns values (or errors) of type `T` into a record's bytes and back; a
/// [`Durable`](super::Durable) needs one for its value type and one for
/// its error type.
///
/// [`Json`] is the default, for every `serde` type: readable with
/// `redis-cli` or `psql` and by services in other languages, and tolerant
/// of a type that gains an optional field between deployments. Implement
/// this trait for a compact binary format, or for types that are not
/// `serde` (an HTTP response whose body should be stored as raw bytes).
/// The record around the codec's bytes carries a format version, so bytes
/// a codec cannot read are reported as corrupt, naming the key, never as a
/// panic or a re-execution.
///
/// Measured (BENCHMARKS.md, *Codecs of durable records*): encoding and
/// decoding a receipt of five items takes about 1.2 µs with JSON (325
/// bytes) and 0.4 µs with postcard (105 bytes), against 37–39 µs of CPU
/// for a first execution on Redis; JSON is a poor fit for byte buffers
/// only (a 6.5 kB body: 21.6 kB and about 120 µs, against 6.6 kB and
/// 0.4 µs in a binary format).
///
/// ```
/// use idem::durable::Codec;
///
/// /// Plain UTF-8, for `String` values.
/// struct Utf8;
///
/// impl Codec<String> for Utf8 {
///     fn encode(&self, value: &String) -> Result<Vec<u8>, String> {
///         Ok(value.as_bytes().to_vec())
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<String, String> {
///         String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
///     }
/// }
/// ```
pub trait Codec<T>: Send + Sync + 'static {
    /// Encodes `value`.
    ///
    /// # Errors
    ///
    /// When `value` cannot be represented (the codec's own error).
    fn encode(&self, value: &T) -> Result<Vec<u8>, String>;

    /// Decodes what [`encode`](Self::encode) wrote.
    ///
    /// # Errors
    ///
    /// When `bytes` are not an encoding of a `T`.
    fn decode(&self, bytes: &[u8]) -> Result<T, String>;
}

/// JSON, with `serde_json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<T: Serialize + DeserializeOwned> Codec<T> for Json {
    fn encode(&self, value: &T) -> Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// The record format: a version byte, a kind byte, the codec's bytes.
pub(crate) const VERSION: u8 = 1;
pub(crate) const KIND_VALUE: u8 = b'v';
pub(crate) const KIND_ERROR: u8 = b'e';

/// A record's payload: the work's value, or an error it chose to record.
pub(crate) fn frame(kind: u8, body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&body);
    out
}

/// The kind and body of a payload, or why it cannot be read.
pub(crate) fn unframe(payload: &[u8]) -> Result<(u8, &[u8]), String> {
    match payload {
        [VERSION, kind @ (KIND_VALUE | KIND_ERROR), body @ ..] => Ok((*kind, body)),
        [VERSION, kind, ..] => Err(format!("unknown record kind {kind:#04x}")),
        [version, ..] => Err(format!(
            "record format version {version}, this idem reads {VERSION}"
        )),
        [] => Err("empty record".to_string()),
    }
}
