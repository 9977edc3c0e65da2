//! Human durations for `ttl = "..."`, parsed at compile time.
//!
//! A duration is one or more `<integer><unit>` parts, optionally separated
//! by spaces, added up: `"30s"`, `"500ms"`, `"1h30m"`, `"1h 30m"`,
//! `"2d"`. Units: `ns`, `us` (or `µs`), `ms`, `s`, `m` (or `min`), `h`, `d`.

use std::time::Duration;

const UNITS: &str = "`ns`, `us`, `ms`, `s`, `m`, `h`, `d`";

/// Parses a human duration; the error says what is wrong, for a message
/// spanned at the literal.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!(
            "expected a duration such as \"30s\" or \"1h30m\" (units: {UNITS})"
        ));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == '_')
                .len();
        if digits == 0 {
            return Err(format!(
                "expected a number at `{rest}`; write e.g. \"30s\" or \"1h30m\" (units: {UNITS})"
            ));
        }
        let number = rest[..digits].replace('_', "");
        if number.is_empty() {
            return Err(format!(
                "expected a number at `{rest}`; write e.g. \"30s\" or \"1h30m\" (units: {UNITS})"
            ));
        }
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{}` is too large", &rest[..digits]))?;
        rest = &rest[digits..];
        if rest.starts_with('.') {
            return Err(
                "fractions are not supported: write \"1500ms\" rather than \"1.5s\"".into(),
            );
        }
        rest = rest.trim_start();
        let unit_len = rest.len() - rest.trim_start_matches(|c: char| c.is_alphabetic()).len();
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let part = match unit {
            "ns" => Some(Duration::from_nanos(n)),
            "us" | "µs" => Some(Duration::from_micros(n)),
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" | "min" => n.checked_mul(60).map(Duration::from_secs),
            "h" => n.checked_mul(3_600).map(Duration::from_secs),
            "d" => n.checked_mul(86_400).map(Duration::from_secs),
            "" => {
                return Err(format!(
                    "`{number}` needs a unit, as in \"{number}s\" (units: {UNITS})"
                ))
            }
            other => return Err(format!("unknown unit `{other}` (units: {UNITS})")),
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| format!("`{s}` is too long a duration"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_underscore_is_not_a_number() {
        let e = parse("_s").unwrap_err();
        assert!(e.starts_with("expected a number at `_s`"), "{e}");
        assert_eq!(parse("1_000ms"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn parses_single_and_combined_parts() {
        let secs = Duration::from_secs;
        assert_eq!(parse("30s"), Ok(secs(30)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("5m"), Ok(secs(300)));
        assert_eq!(parse("5min"), Ok(secs(300)));
        assert_eq!(parse("2h"), Ok(secs(7_200)));
        assert_eq!(parse("1d"), Ok(secs(86_400)));
        assert_eq!(parse("1h30m"), Ok(secs(5_400)));
        assert_eq!(parse(" 1h 30m 15s "), Ok(secs(5_415)));
        assert_eq!(parse("1_000ms"), Ok(secs(1)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("30 s"), Ok(secs(30)));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in [
            "",
            "   ",
            "s",
            "30",
            "30x",
            "1.5s",
            "h1",
            "30s!",
            "99999999999999999999s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(parse("30").unwrap_err().contains("needs a unit"));
        assert!(parse("30parsecs")
            .unwrap_err()
            .contains("unknown unit `parsecs`"));
        assert!(parse("18446744073709551615d")
            .unwrap_err()
            .contains("too long"));
    }
}
