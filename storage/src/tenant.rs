//! The validated tenant name.

use std::fmt;
use std::sync::Arc;

use crate::error::{Result, StorageError};

/// A tenant name matching `[a-z0-9][a-z0-9_-]{0,62}`. Every stored key is
/// prefixed by its tenant, so a read scoped to one tenant cannot see another's.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Tenant(Arc<str>);

impl TryFrom<String> for Tenant {
    type Error = StorageError;
    fn try_from(name: String) -> Result<Tenant> {
        Tenant::new(&name)
    }
}

impl From<Tenant> for String {
    fn from(t: Tenant) -> String {
        t.0.to_string()
    }
}

impl Tenant {
    /// The tenant that always exists.
    pub const DEFAULT_NAME: &'static str = "default";

    /// Validates and wraps a tenant name.
    ///
    /// # Errors
    /// [`StorageError::InvalidTenant`] when `name` does not match
    /// `[a-z0-9][a-z0-9_-]{0,62}`.
    pub fn new(name: &str) -> Result<Tenant> {
        let b = name.as_bytes();
        let ok = b.len() <= 63
            && b.split_first().is_some_and(|(first, rest)| {
                (first.is_ascii_lowercase() || first.is_ascii_digit())
                    && rest.iter().all(|&c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-'
                    })
            });
        if ok {
            Ok(Tenant(Arc::from(name)))
        } else {
            let mut end = name.len().min(64);
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            Err(StorageError::InvalidTenant {
                tenant: name[..end].to_owned(),
            })
        }
    }

    /// The `default` tenant.
    pub fn default_tenant() -> Tenant {
        Tenant(Arc::from(Self::DEFAULT_NAME))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Tenant {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Tenant> {
        Tenant::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in ["default", "a", "0", "acme-corp_1", &"a".repeat(63)] {
            assert!(Tenant::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "Acme",
            "a b",
            "a/b",
            "a\0",
            "a\u{ff}",
            &"a".repeat(64),
        ] {
            let err = Tenant::new(bad).unwrap_err();
            assert_eq!(err.code(), "STORAGE:InvalidTenant", "{bad}");
        }
    }
}
