//! The names of the store's objects, quoted as SQL identifiers.

use std::fmt;

/// The longest identifier PostgreSQL keeps (`NAMEDATALEN - 1`); longer
/// ones are silently truncated, so two long names could become one.
const MAX_IDENTIFIER: usize = 63;

/// The longest suffix appended to the table's name (the names of the
/// sequence, the index and the migrations table derive from it).
const LONGEST_SUFFIX: &str = "_migrations";

/// A table, schema or column name that cannot be used, from
/// [`Builder::build`](crate::Builder::build) or the helpers of
/// [`patterns`](crate::patterns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName {
    name: String,
    reason: &'static str,
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} cannot name a table, schema or column for idem-postgres: {}",
            self.name, self.reason
        )
    }
}

impl std::error::Error for InvalidName {}

/// The store's objects: every field is a quoted identifier, qualified by
/// the schema when there is one, ready to paste into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// The records table.
    pub(crate) table: String,
    /// The sequence fencing tokens are drawn from.
    pub(crate) fence: String,
    /// The index on `expires_at` (unqualified: an index lives in its
    /// table's schema).
    pub(crate) expiry_index: String,
    /// The table of applied migrations.
    pub(crate) migrations: String,
    /// The fence sequence as a string literal, for `nextval('…')`.
    pub(crate) fence_literal: String,
}

impl Names {
    /// The names of the store on table `table`, in `schema` if given
    /// (else the first schema of the connection's `search_path`).
    pub(crate) fn new(schema: Option<&str>, table: &str) -> Result<Self, InvalidName> {
        if let Some(schema) = schema {
            check(schema, 0)?;
        }
        check(table, LONGEST_SUFFIX.len())?;
        let qualify = |name: &str| match schema {
            Some(s) => format!("{}.{}", quote(s), quote(name)),
            None => quote(name),
        };
        let fence = qualify(&format!("{table}_fence"));
        Ok(Self {
            table: qualify(table),
            fence_literal: literal(&fence),
            fence,
            expiry_index: quote(&format!("{table}_expires_at")),
            migrations: qualify(&format!("{table}_migrations")),
        })
    }
}

/// Refuses what PostgreSQL would not keep as written: the empty name, a
/// NUL (which no identifier may contain), and names it would truncate
/// (with `suffix` bytes appended). Anything else is quoted, so a name may
/// hold spaces, quotes, capitals or semicolons and stays one identifier.
fn check(name: &str, suffix: usize) -> Result<(), InvalidName> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.contains('\0') {
        "it contains a NUL character"
    } else if name.len() + suffix > MAX_IDENTIFIER {
        "it is too long (PostgreSQL truncates identifiers to 63 bytes, and idem-postgres appends up to 11 to a table's name)"
    } else {
        return Ok(());
    };
    Err(InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// `name` as a quoted identifier, after [`check`]: for the tables and
/// columns of [`patterns`](crate::patterns).
pub(crate) fn identifier(name: &str) -> Result<String, InvalidName> {
    check(name, 0)?;
    Ok(quote(name))
}

/// `name` as a quoted identifier: in double quotes, each one doubled.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a string literal: in single quotes, each one doubled
/// (`standard_conforming_strings` is on since PostgreSQL 9.1, so a
/// backslash is an ordinary character).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_and_qualified() {
        let n = Names::new(None, "idem_records").unwrap();
        assert_eq!(n.table, r#""idem_records""#);
        assert_eq!(n.fence, r#""idem_records_fence""#);
        assert_eq!(n.fence_literal, r#"'"idem_records_fence"'"#);
        assert_eq!(n.expiry_index, r#""idem_records_expires_at""#);
        let n = Names::new(Some("App"), "records").unwrap();
        assert_eq!(n.table, r#""App"."records""#);
        assert_eq!(n.migrations, r#""App"."records_migrations""#);
    }

    #[test]
    fn quotes_in_a_name_are_doubled() {
        let n = Names::new(Some("a'b"), r#"x"; DROP TABLE y; --"#).unwrap();
        assert_eq!(n.table, r#""a'b"."x""; DROP TABLE y; --""#);
        assert_eq!(n.fence_literal, r#"'"a''b"."x""; DROP TABLE y; --_fence"'"#);
    }

    #[test]
    fn empty_nul_and_truncated_names_are_refused() {
        assert!(Names::new(None, "").is_err());
        assert!(Names::new(Some(""), "t").is_err());
        assert!(Names::new(None, "a\0b").is_err());
        assert!(Names::new(None, &"t".repeat(52)).is_ok());
        let e = Names::new(None, &"t".repeat(53)).unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
        assert!(Names::new(Some(&"s".repeat(63)), "t").is_ok());
        assert!(Names::new(Some(&"s".repeat(64)), "t").is_err());
    }
}
