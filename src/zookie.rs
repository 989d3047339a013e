//! Zookies: opaque, versioned consistency tokens.
//!
//! Layout (then base64url without padding):
//! ```text
//! [version u8 = 1][cluster id u64 BE][revision u64 BE][checksum u32 BE]
//! ```
//! The cluster id rejects tokens minted by another cluster; the checksum
//! (FNV-1a over the preceding bytes) rejects corrupted ones.

use base64::Engine as _;
use verdict_storage::Revision;

const VERSION: u8 = 1;
const LEN: usize = 1 + 8 + 8 + 4;

/// Why a zookie was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZookieError {
    /// Not base64url, or the wrong length.
    #[error("zookie is malformed")]
    Malformed,
    /// A token format this server does not know.
    #[error("zookie version {0} is not supported")]
    UnsupportedVersion(u8),
    /// The checksum does not match.
    #[error("zookie is corrupt (checksum mismatch)")]
    Corrupt,
    /// Minted by another cluster.
    #[error("zookie belongs to another cluster")]
    ForeignCluster,
}

/// Mints and checks zookies for one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZookieCodec {
    cluster_id: u64,
}

fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

impl ZookieCodec {
    /// A codec for the cluster `cluster_id`.
    pub fn new(cluster_id: u64) -> Self {
        ZookieCodec { cluster_id }
    }

    /// The token for `revision`.
    pub fn encode(&self, revision: Revision) -> String {
        let mut bytes = Vec::with_capacity(LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.cluster_id.to_be_bytes());
        bytes.extend_from_slice(&revision.0.to_be_bytes());
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum.to_be_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The revision a token names.
    ///
    /// # Errors
    /// See [`ZookieError`].
    pub fn decode(&self, token: &str) -> Result<Revision, ZookieError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| ZookieError::Malformed)?;
        let Some(&version) = bytes.first() else {
            return Err(ZookieError::Malformed);
        };
        if version != VERSION {
            return Err(ZookieError::UnsupportedVersion(version));
        }
        if bytes.len() != LEN {
            return Err(ZookieError::Malformed);
        }
        // version (1) | cluster id (8) | revision (8) | checksum (4); the
        // length check above makes every split succeed.
        let (body, sum) = bytes
            .split_last_chunk::<4>()
            .ok_or(ZookieError::Malformed)?;
        if checksum(body) != u32::from_be_bytes(*sum) {
            return Err(ZookieError::Corrupt);
        }
        let (id, rev) = body
            .get(1..)
            .and_then(<[u8]>::split_first_chunk::<8>)
            .ok_or(ZookieError::Malformed)?;
        if u64::from_be_bytes(*id) != self.cluster_id {
            return Err(ZookieError::ForeignCluster);
        }
        let rev = rev.first_chunk::<8>().ok_or(ZookieError::Malformed)?;
        Ok(Revision(u64::from_be_bytes(*rev)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(cluster in any::<u64>(), rev in any::<u64>()) {
            let codec = ZookieCodec::new(cluster);
            prop_assert_eq!(codec.decode(&codec.encode(Revision(rev))), Ok(Revision(rev)));
        }

        #[test]
        fn garbage_never_panics(s in ".{0,64}") {
            let _ = ZookieCodec::new(1).decode(&s);
        }
    }

    #[test]
    fn rejects_foreign_corrupt_and_malformed_tokens() {
        let a = ZookieCodec::new(1);
        let b = ZookieCodec::new(2);
        let token = a.encode(Revision(42));
        assert_eq!(b.decode(&token), Err(ZookieError::ForeignCluster));
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&token)
            .unwrap();
        bytes[12] ^= 1;
        let corrupt = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(a.decode(&corrupt), Err(ZookieError::Corrupt));
        assert_eq!(a.decode("not a token!"), Err(ZookieError::Malformed));
        assert_eq!(a.decode(""), Err(ZookieError::Malformed));
        bytes[0] = 9;
        let future = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(a.decode(&future), Err(ZookieError::UnsupportedVersion(9)));
    }
}
