//! OpenFGA's names and ids, mapped losslessly onto Verdict's stricter
//! grammar (storage accepts types and relations `[a-z][a-z0-9_]{1,62}[a-z0-9]`
//! and ids of `[A-Za-z0-9/_|\-=+@.]`; OpenFGA allows `scopeA`, `r`,
//! `asset-category`, ids with any character but `#`, `:` and space).
//!
//! * A name that already fits (and does not start with [`NAME_MARK`]) is
//!   itself; any other becomes `zz_` followed by its bytes, `[a-z0-9]` as
//!   they are and every other byte as `_` and two lowercase hex digits
//!   (`scopeA` → `zz_scope_41`). An encoded name always starts with the
//!   mark and a natural one never does, so the mapping is a bijection.
//! * An id that fits and has no `=` is itself; any other has every byte
//!   outside `[A-Za-z0-9/_|\-+@.]` (including `=`) written `=XX`. Only
//!   encoded ids contain `=`. The wildcard `*` is itself.

use std::fmt::Write as _;

/// The prefix of an encoded name.
pub const NAME_MARK: &str = "zz_";

/// Longest name (type, relation, condition) storage accepts.
const MAX_NAME: usize = 64;
/// Longest object id storage accepts.
const MAX_ID: usize = 1024;

/// A name or id that cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` cannot be used as {what}: {reason}")]
pub struct NameError {
    /// The name as given.
    pub value: String,
    /// What it was meant to be (`a type name`, `an object id`, ...).
    pub what: &'static str,
    /// Why.
    pub reason: &'static str,
}

fn fits_name(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=MAX_NAME).contains(&b.len())
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && b.last() != Some(&b'_')
}

/// Maps an OpenFGA type, relation or condition name to a storage name.
///
/// # Errors
/// An empty name, or one whose encoding exceeds 64 bytes.
pub fn encode_name(s: &str, what: &'static str) -> Result<String, NameError> {
    if s.is_empty() {
        return Err(NameError {
            value: s.to_string(),
            what,
            reason: "it is empty",
        });
    }
    if fits_name(s) && !s.starts_with(NAME_MARK) {
        return Ok(s.to_string());
    }
    let mut out = String::from(NAME_MARK);
    for b in s.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "_{b:02x}");
        }
    }
    if out.len() > MAX_NAME {
        return Err(NameError {
            value: s.to_string(),
            what,
            reason: "its stored form (upper case and punctuation escaped) is longer than 64 bytes",
        });
    }
    Ok(out)
}

/// The OpenFGA name of a storage name (inverse of [`encode_name`]); a name
/// that is not a valid encoding is returned as it is.
pub fn decode_name(s: &str) -> String {
    let Some(rest) = s.strip_prefix(NAME_MARK) else {
        return s.to_string();
    };
    unescape(rest, b'_').unwrap_or_else(|| s.to_string())
}

fn is_plain_id_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"/_|-+@.".contains(&c)
}

/// Maps an OpenFGA object id to a storage id (`*` stays `*`).
///
/// # Errors
/// An empty id, or one whose encoding exceeds 1024 bytes.
pub fn encode_id(s: &str) -> Result<String, NameError> {
    if s.is_empty() {
        return Err(NameError {
            value: s.to_string(),
            what: "an object id",
            reason: "it is empty",
        });
    }
    if s == "*" || s.bytes().all(is_plain_id_byte) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if is_plain_id_byte(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "={b:02X}");
        }
    }
    if out.len() > MAX_ID {
        return Err(NameError {
            value: s.to_string(),
            what: "an object id",
            reason: "its stored form (special characters escaped) is longer than 1024 bytes",
        });
    }
    Ok(out)
}

/// The OpenFGA id of a storage id (inverse of [`encode_id`]).
pub fn decode_id(s: &str) -> String {
    if !s.contains('=') {
        return s.to_string();
    }
    unescape(s, b'=').unwrap_or_else(|| s.to_string())
}

/// Undoes `escape` + two hex digits; `None` when malformed.
fn unescape(s: &str, escape: u8) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == escape {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_fit_are_unchanged_and_others_round_trip() {
        for n in ["user", "can_view", "document", "a1b"] {
            assert_eq!(encode_name(n, "a type").unwrap(), n);
        }
        for n in ["scopeA", "r", "asset-category", "zz_x", "Ünïcode", "x_", "ab"] {
            let e = encode_name(n, "a type").unwrap();
            assert!(fits_name(&e), "{e}");
            assert!(e.starts_with(NAME_MARK));
            assert_eq!(decode_name(&e), n);
        }
        assert_eq!(encode_name("scopeA", "x").unwrap(), "zz_scope_41");
        assert!(encode_name("", "x").is_err());
        assert!(encode_name(&"A".repeat(40), "x").is_err());
    }

    #[test]
    fn ids_round_trip_and_plain_ids_are_unchanged() {
        for id in ["1", "anne", "a/b|c-d+e@f.g", "*"] {
            assert_eq!(encode_id(id).unwrap(), id);
            assert_eq!(decode_id(id), id);
        }
        for id in ["a=b", "x y", "ü", "a!b,c", "=3D"] {
            let e = encode_id(id).unwrap();
            assert!(e.bytes().all(|c| is_plain_id_byte(c) || c == b'='), "{e}");
            assert_eq!(decode_id(&e), id);
        }
        assert_eq!(encode_id("a=b").unwrap(), "a=3Db");
    }
}
