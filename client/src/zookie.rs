//! Zookies: the server's consistency tokens, and the revision they name.
//!
//! A token is opaque to callers, but the client orders tokens (a session
//! keeps the newest it wrote; the cache compares a check's revision with
//! the watch position), so it reads the revision out of the token layout
//! (version 1): URL-safe base64 without padding of
//! `version (1) | cluster id (8) | revision (8, big-endian) | checksum (4)`.

use base64::Engine as _;

use crate::pb;

const VERSION: u8 = 1;
const LEN: usize = 21;

/// A consistency token and the revision it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zookie {
    token: String,
    revision: u64,
}

impl Zookie {
    /// Parses a token; `None` when it is not a version-1 token.
    pub fn parse(token: &str) -> Option<Zookie> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .ok()?;
        if bytes.len() != LEN || bytes.first() != Some(&VERSION) {
            return None;
        }
        let revision: [u8; 8] = bytes.get(9..17)?.try_into().ok()?;
        Some(Zookie {
            token: token.to_string(),
            revision: u64::from_be_bytes(revision),
        })
    }

    /// The token as the server sent it.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The revision it names.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub(crate) fn from_pb(z: Option<&pb::Zookie>) -> Option<Zookie> {
        z.and_then(|z| Zookie::parse(&z.token))
    }

    pub(crate) fn to_pb(&self) -> pb::Zookie {
        pb::Zookie {
            token: self.token.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(revision: u64) -> String {
        let mut bytes = vec![VERSION];
        bytes.extend_from_slice(&7u64.to_be_bytes());
        bytes.extend_from_slice(&revision.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn reads_the_revision_and_refuses_other_layouts() {
        let z = Zookie::parse(&token(42)).unwrap();
        assert_eq!(z.revision(), 42);
        assert_eq!(z.token(), token(42));
        assert!(Zookie::parse("garbage!").is_none());
        assert!(Zookie::parse("AAAA").is_none());
    }
}
