//! How results are written into a store's records.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Turns values and errors into a record's bytes and back.
///
/// [`Json`] is the default: readable with `redis-cli` or `psql`, and by
/// services in other languages. The record around the codec's bytes carries
/// a format version, so bytes this version cannot read are reported as
/// corrupt, naming the key, never as a panic or a re-execution.
pub trait Codec: Send + Sync + 'static {
    /// Encodes `value`.
    ///
    /// # Errors
    ///
    /// When `value` cannot be represented (the codec's own error).
    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, String>;

    /// Decodes what [`encode`](Self::encode) wrote.
    ///
    /// # Errors
    ///
    /// When `bytes` are not an encoding of a `T`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, String>;
}

/// JSON, with `serde_json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, String> {
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
