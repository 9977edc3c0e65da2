//! The bytes under a record key: `idem1 <fence> <fingerprint>\n<payload>`.
//!
//! The header is ASCII: the format's name and version, the fencing token
//! of the lease that completed the key, and the fingerprint of the call
//! that took that lease (0 for none), in decimal. The complete script
//! writes it; the claim reads it, on its one-command fast path and from
//! the claim script alike.

use idem::store::Record;

/// The header's first word. A new layout gets a new version, and this
/// version reports the records of a newer one as unreadable instead of
/// misreading them.
pub(crate) const MAGIC: &str = "idem1";

/// The longest header: `idem1 ` + two 20-digit numbers, a space, `\n`.
const MAX_HEADER: usize = MAGIC.len() + 1 + 20 + 1 + 20 + 1;

/// A record read back, with the fingerprint it was stored under.
#[derive(Debug)]
pub(crate) struct Stored {
    /// The fingerprint of the call that completed it; 0 for none.
    pub(crate) fingerprint: u64,
    pub(crate) record: Record,
}

/// Parses the bytes under a record key, or says what is wrong with them.
pub(crate) fn parse(bytes: &[u8]) -> Result<Stored, String> {
    let Some(nl) = bytes.iter().take(MAX_HEADER).position(|&b| b == b'\n') else {
        return Err(not_a_header(bytes));
    };
    let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| not_a_header(bytes))?;
    let mut words = header.split(' ');
    match words.next() {
        Some(MAGIC) => {}
        Some(w) if is_newer_version(w) => {
            return Err(format!(
                "it is a record in format {w:?}, written by a newer version of idem-redis \
                 (this one reads {MAGIC:?})"
            ))
        }
        _ => return Err(not_a_header(bytes)),
    }
    let (Some(fence), Some(fingerprint), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!("its header {header:?} does not have 3 words"));
    };
    let fence = number(fence).filter(|&f| f > 0).ok_or_else(|| {
        format!("its header {header:?} has no valid fencing token (a positive integer)")
    })?;
    let fingerprint = number(fingerprint)
        .ok_or_else(|| format!("its header {header:?} has no valid fingerprint"))?;
    Ok(Stored {
        fingerprint,
        record: Record {
            fence,
            payload: bytes[nl + 1..].to_vec(),
        },
    })
}

/// A decimal `u64` without sign or leading zeros, as the scripts write it.
fn number(s: &str) -> Option<u64> {
    let canonical =
        s == "0" || (!s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()));
    canonical.then(|| s.parse().ok()).flatten()
}

/// `idem2`, `idem10`: a later version of this format.
fn is_newer_version(word: &str) -> bool {
    word.strip_prefix("idem")
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|v| v > 1)
}

fn not_a_header(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(24)];
    format!(
        "it does not start with an {MAGIC:?} header (the first {} of {} bytes: \"{}\")",
        head.len(),
        bytes.len(),
        head.escape_ascii()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_parses() {
        let s = parse(b"idem1 1712345678901234 42\n\x00binary\npayload").unwrap();
        assert_eq!(s.fingerprint, 42);
        assert_eq!(s.record.fence, 1_712_345_678_901_234);
        assert_eq!(s.record.payload, b"\x00binary\npayload");
        let empty = parse(b"idem1 7 0\n").unwrap();
        assert_eq!((empty.fingerprint, empty.record.payload.len()), (0, 0));
    }

    #[test]
    fn the_largest_header_parses() {
        let max = format!("idem1 {} {}\nv", u64::MAX, u64::MAX);
        assert_eq!(parse(max.as_bytes()).unwrap().record.fence, u64::MAX);
    }

    #[test]
    fn foreign_and_damaged_bytes_say_what_is_wrong() {
        for (bytes, says) in [
            (&b""[..], "does not start with"),
            (b"{\"json\": true}", "does not start with"),
            (b"idem1 12 0", "does not start with"),
            (b"idem2 12 0\nv", "newer version"),
            (b"idem1 12\nv", "3 words"),
            (b"idem1 12 0 9\nv", "3 words"),
            (b"idem1 0 0\nv", "fencing token"),
            (b"idem1 012 0\nv", "fencing token"),
            (b"idem1 -1 0\nv", "fencing token"),
            (b"idem1 99999999999999999999 0\nv", "fencing token"),
            (b"idem1 12 x\nv", "fingerprint"),
            (b"idem1 \xff 0\nv", "does not start with"),
        ] {
            let e = parse(bytes).unwrap_err();
            assert!(e.contains(says), "{:?}: {e}", bytes.escape_ascii());
        }
    }
}
