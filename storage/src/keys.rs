// #[PerformanceCriticalPath]
//! The key codec: every RocksDB key Verdict writes, documented here.
//!
//! All data lives in RocksDB's default column family. Keys are built from
//! these order-preserving, prefix-free pieces:
//!
//! * `esc(s)`: the bytes of `s` with every `0x00` written as `0x00 0xFF`,
//!   followed by the terminator `0x00 0x01`. Byte order of `esc(a)` vs
//!   `esc(b)` equals byte order of `a` vs `b`, and no `esc(a)` is a proper
//!   prefix of another `esc(b)` — so a tenant, type or id containing
//!   separators, `0x00` or `0xFF` can neither collide with another value nor
//!   let a prefix scan run into a neighbour's rows.
//! * `opt(None) = 0x00`, `opt(Some(s)) = 0x01 esc(s)` (direct subjects sort first).
//! * `be64(n)`: 8 bytes big-endian. `inv(r) = be64(u64::MAX - r)`, so newer
//!   revisions of one tuple sort first and "the newest version at or below R"
//!   is one seek.
//!
//! ```text
//! tag   layout                                                        value
//! 0x00  META    0x00 name                                             meta::* (see rocks.rs)
//! 0x01  REVINFO 0x01 be64(rev)                                        RevisionInfo
//! 0x02  TENANT  0x02 esc(tenant) sub ...
//!         sub 0x01 FWD  esc(res_type) esc(res_id) esc(relation)
//!                       esc(subj_type) esc(subj_id) opt(subj_rel) inv(rev)  Version
//!         sub 0x02 REV  esc(subj_type) esc(subj_id) opt(subj_rel)
//!                       esc(res_type) esc(relation) esc(res_id) inv(rev)    Version
//!         sub 0x03 LOG  be64(rev) be32(chunk)                          ChangeChunk
//!         sub 0x04 SCHEMA be64(rev)                                    SchemaVersionRecord
//! 0x03  COUNTER 0x03 esc(tenant) esc(name)                            counter filter bytes
//! ```
//!
//! COUNTER rows (SpiceDB's relationship counters: a name and the filter
//! whose matches it counts) are not versioned; they sit after every TENANT
//! row so the scans of tenant data never meet them.
//!
//! A tuple's *chain key* is its FWD (or REV) key without `inv(rev)`; all
//! versions of one tuple are contiguous, newest first. A version is either
//! live (with caveat/expiration payload) or a tombstone.

use crate::error::{Result, StorageError};
use crate::revision::Revision;
use crate::tenant::Tenant;
use crate::tuple::{ObjectRef, SubjectRef, Tuple};

/// Global metadata (applied revision, GC floor, format version).
pub(crate) const META: u8 = 0x00;
/// Revision → wall-clock time and tenant, for time-based GC.
pub(crate) const REVINFO: u8 = 0x01;
/// Per-tenant data.
pub(crate) const TENANT: u8 = 0x02;
/// Registered relationship counters, per tenant.
pub(crate) const COUNTER: u8 = 0x03;

/// Forward index: resource → subject.
pub(crate) const SUB_FWD: u8 = 0x01;
/// Reverse index: subject → resource.
pub(crate) const SUB_REV: u8 = 0x02;
/// Changelog.
pub(crate) const SUB_LOG: u8 = 0x03;
/// Schema versions.
pub(crate) const SUB_SCHEMA: u8 = 0x04;

/// `0x03 esc(tenant)`: the prefix of a tenant's counters.
pub(crate) fn counter_prefix(tenant: &Tenant) -> Vec<u8> {
    let mut buf = vec![COUNTER];
    push_esc(&mut buf, tenant.as_str().as_bytes());
    buf
}

/// `0x03 esc(tenant) esc(name)`: one counter's key.
pub(crate) fn counter_key(tenant: &Tenant, name: &str) -> Vec<u8> {
    let mut buf = counter_prefix(tenant);
    push_esc(&mut buf, name.as_bytes());
    buf
}

/// Length of the `inv(rev)` suffix of index keys.
pub(crate) const REV_SUFFIX_LEN: usize = 8;

/// The end of the `esc(..)` field starting at `pos` (after its terminator).
fn skip_esc(key: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let zero = pos + key.get(pos..)?.iter().position(|&b| b == 0)?;
        match key.get(zero + 1)? {
            0x01 => return Some(zero + 2),
            0xFF => pos = zero + 2,
            _ => return None,
        }
    }
}

/// The length of a FWD key's *relation prefix* `0x02 esc(tenant) 0x01
/// esc(res_type) esc(res_id) esc(relation)`, if `key` starts with one.
///
/// This is RocksDB's prefix extractor ([`relation_prefix`]): bloom filters
/// then hold every stored relation prefix, so a point lookup or a scan of
/// one resource's relation skips the files that have none of it.
pub(crate) fn relation_prefix_len(key: &[u8]) -> Option<usize> {
    if key.first() != Some(&TENANT) {
        return None;
    }
    let pos = skip_esc(key, 1)?;
    if key.get(pos) != Some(&SUB_FWD) {
        return None;
    }
    let pos = skip_esc(key, pos + 1)?;
    let pos = skip_esc(key, pos)?;
    skip_esc(key, pos)
}

/// RocksDB prefix extractor: a FWD key's relation prefix (see
/// [`relation_prefix_len`]); other keys are outside its domain. Must never
/// panic (called from RocksDB through FFI).
pub(crate) fn relation_prefix(key: &[u8]) -> &[u8] {
    relation_prefix_len(key)
        .and_then(|len| key.get(..len))
        .unwrap_or(key)
}

/// Whether `key` has a relation prefix (RocksDB's `InDomain`).
pub(crate) fn has_relation_prefix(key: &[u8]) -> bool {
    relation_prefix_len(key).is_some()
}

/// Appends `esc(s)`.
pub(crate) fn push_esc(buf: &mut Vec<u8>, s: &[u8]) {
    // Fast path: most values contain no 0x00.
    if !s.contains(&0) {
        buf.extend_from_slice(s);
    } else {
        for &b in s {
            buf.push(b);
            if b == 0 {
                buf.push(0xFF);
            }
        }
    }
    buf.extend_from_slice(&[0x00, 0x01]);
}

/// Appends `esc(s)` without the terminator: a prefix of every `esc(t)` with
/// `t` starting with `s`.
pub(crate) fn push_esc_prefix(buf: &mut Vec<u8>, s: &[u8]) {
    let before = buf.len();
    push_esc(buf, s);
    buf.truncate(buf.len() - 2);
    debug_assert!(buf.len() >= before);
}

/// Appends `opt(s)`.
pub(crate) fn push_opt(buf: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        None => buf.push(0x00),
        Some(s) => {
            buf.push(0x01);
            push_esc(buf, s);
        }
    }
}

/// Appends `inv(rev)`.
pub(crate) fn push_inv_rev(buf: &mut Vec<u8>, rev: Revision) {
    buf.extend_from_slice(&(u64::MAX - rev.0).to_be_bytes());
}

/// A cursor over encoded key bytes.
pub(crate) struct KeyReader<'a> {
    buf: &'a [u8],
}

const CORRUPT_KEY: StorageError = StorageError::Corrupt { what: "key" };

impl<'a> KeyReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        KeyReader { buf }
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Reads one `esc(s)`, copying whole runs between escapes (most values
    /// have none: one allocation of the exact size).
    pub(crate) fn esc(&mut self) -> Result<Vec<u8>> {
        let mut out: Vec<u8> = Vec::new();
        let mut rest = self.buf;
        loop {
            let zero = rest.iter().position(|&b| b == 0).ok_or(CORRUPT_KEY)?;
            // `run` up to the zero byte, `escape` from it.
            let (run, escape) = rest.split_at_checked(zero).ok_or(CORRUPT_KEY)?;
            match escape {
                [0, 0x01, after @ ..] => {
                    if out.is_empty() {
                        out = run.to_vec();
                    } else {
                        out.extend_from_slice(run);
                    }
                    self.buf = after;
                    return Ok(out);
                }
                [0, 0xFF, after @ ..] => {
                    out.extend_from_slice(run);
                    out.push(0);
                    rest = after;
                }
                _ => return Err(CORRUPT_KEY),
            }
        }
    }

    /// Reads one `esc(s)` as UTF-8.
    pub(crate) fn esc_str(&mut self) -> Result<String> {
        String::from_utf8(self.esc()?).map_err(|_| CORRUPT_KEY)
    }

    /// Reads one `opt(s)` as UTF-8.
    pub(crate) fn opt_str(&mut self) -> Result<Option<String>> {
        let (&tag, rest) = self.buf.split_first().ok_or(CORRUPT_KEY)?;
        self.buf = rest;
        match tag {
            0 => Ok(None),
            1 => self.esc_str().map(Some),
            _ => Err(CORRUPT_KEY),
        }
    }

    /// Reads one `be64`.
    pub(crate) fn be64(&mut self) -> Result<u64> {
        let (head, rest) = self.buf.split_first_chunk::<8>().ok_or(CORRUPT_KEY)?;
        self.buf = rest;
        Ok(u64::from_be_bytes(*head))
    }

    /// Reads one `inv(rev)`.
    pub(crate) fn inv_rev(&mut self) -> Result<Revision> {
        self.be64().map(|v| Revision(u64::MAX - v))
    }

    /// Errors unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CORRUPT_KEY)
        }
    }
}

/// `0x02 esc(tenant) sub`.
pub(crate) fn tenant_sub_prefix(buf: &mut Vec<u8>, tenant: &Tenant, sub: u8) {
    buf.push(TENANT);
    push_esc(buf, tenant.as_str().as_bytes());
    buf.push(sub);
}

/// The forward chain key of a tuple (without `inv(rev)`).
pub(crate) fn fwd_chain_key(buf: &mut Vec<u8>, tenant: &Tenant, t: &Tuple) {
    tenant_sub_prefix(buf, tenant, SUB_FWD);
    push_fwd_body(buf, t);
}

/// The forward chain key body (after `0x02 esc(tenant) 0x01`).
pub(crate) fn push_fwd_body(buf: &mut Vec<u8>, t: &Tuple) {
    push_esc(buf, t.resource.object_type.as_bytes());
    push_esc(buf, t.resource.object_id.as_bytes());
    push_esc(buf, t.relation.as_bytes());
    push_esc(buf, t.subject.object.object_type.as_bytes());
    push_esc(buf, t.subject.object.object_id.as_bytes());
    push_opt(buf, t.subject.relation.as_deref().map(str::as_bytes));
}

/// The reverse chain key of a tuple (without `inv(rev)`).
pub(crate) fn rev_chain_key(buf: &mut Vec<u8>, tenant: &Tenant, t: &Tuple) {
    tenant_sub_prefix(buf, tenant, SUB_REV);
    push_rev_body(buf, t);
}

/// The reverse chain key body (after `0x02 esc(tenant) 0x02`).
pub(crate) fn push_rev_body(buf: &mut Vec<u8>, t: &Tuple) {
    push_esc(buf, t.subject.object.object_type.as_bytes());
    push_esc(buf, t.subject.object.object_id.as_bytes());
    push_opt(buf, t.subject.relation.as_deref().map(str::as_bytes));
    push_esc(buf, t.resource.object_type.as_bytes());
    push_esc(buf, t.relation.as_bytes());
    push_esc(buf, t.resource.object_id.as_bytes());
}

/// Decodes a forward chain body (after the tenant/sub prefix, without the
/// revision suffix) into a payload-less tuple.
pub(crate) fn decode_fwd_body(body: &[u8]) -> Result<Tuple> {
    let mut r = KeyReader::new(body);
    let rt = r.esc_str()?;
    let rid = r.esc_str()?;
    let rel = r.esc_str()?;
    let st = r.esc_str()?;
    let sid = r.esc_str()?;
    let srel = r.opt_str()?;
    r.finish()?;
    Ok(Tuple::new(
        ObjectRef::new(rt, rid),
        rel,
        SubjectRef {
            object: ObjectRef::new(st, sid),
            relation: srel,
        },
    ))
}

/// Decodes a reverse chain body (after the tenant/sub prefix, without the
/// revision suffix) into a payload-less tuple.
pub(crate) fn decode_rev_body(body: &[u8]) -> Result<Tuple> {
    let mut r = KeyReader::new(body);
    let st = r.esc_str()?;
    let sid = r.esc_str()?;
    let srel = r.opt_str()?;
    let rt = r.esc_str()?;
    let rel = r.esc_str()?;
    let rid = r.esc_str()?;
    r.finish()?;
    Ok(Tuple::new(
        ObjectRef::new(rt, rid),
        rel,
        SubjectRef {
            object: ObjectRef::new(st, sid),
            relation: srel,
        },
    ))
}

/// Splits an index key into (chain key, revision).
pub(crate) fn split_version(key: &[u8]) -> Result<(&[u8], Revision)> {
    if key.len() < REV_SUFFIX_LEN {
        return Err(CORRUPT_KEY);
    }
    let (chain, suffix) = key.split_at(key.len() - REV_SUFFIX_LEN);
    let mut r = KeyReader::new(suffix);
    Ok((chain, r.inv_rev()?))
}

/// `0x02 esc(tenant) sub be64(rev)`: changelog and schema keys.
pub(crate) fn tenant_rev_key(buf: &mut Vec<u8>, tenant: &Tenant, sub: u8, rev: Revision) {
    tenant_sub_prefix(buf, tenant, sub);
    buf.extend_from_slice(&rev.0.to_be_bytes());
}

/// `0x01 be64(rev)`.
pub(crate) fn revinfo_key(rev: Revision) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = REVINFO;
    k[1..].copy_from_slice(&rev.0.to_be_bytes());
    k
}

/// `0x00 name`.
pub(crate) fn meta_key(name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(META);
    k.extend_from_slice(name);
    k
}

/// The smallest key strictly greater than every key starting with `prefix`
/// (`None` when there is none, i.e. the prefix is all `0xFF`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn esc(s: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        push_esc(&mut b, s);
        b
    }

    /// Byte strings biased towards the bytes the codec treats specially.
    fn adversarial_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(0x00u8),
                Just(0x01u8),
                Just(0xFFu8),
                Just(b'#'),
                Just(b':'),
                any::<u8>()
            ],
            0..8,
        )
    }

    #[test]
    fn escapes_special_bytes() {
        assert_eq!(esc(b""), vec![0, 1]);
        assert_eq!(esc(b"a\0b"), vec![b'a', 0, 0xFF, b'b', 0, 1]);
        assert_eq!(esc(&[0xFF]), vec![0xFF, 0, 1]);
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
    }

    #[test]
    fn corrupt_keys_are_errors_not_panics() {
        for bad in [&[][..], &[0][..], &[0, 7][..], &[b'a'][..]] {
            assert!(KeyReader::new(bad).esc().is_err());
        }
        assert!(decode_fwd_body(b"abc").is_err());
        assert!(split_version(b"short").is_err());
    }

    proptest! {
        #[test]
        fn esc_round_trips(a in adversarial_bytes(), tail in adversarial_bytes()) {
            let mut buf = esc(&a);
            buf.extend_from_slice(&tail);
            let mut r = KeyReader::new(&buf);
            prop_assert_eq!(r.esc()?, a);
            prop_assert_eq!(r.rest(), &tail[..]);
        }

        /// The prefix extractor cuts every FWD version key (and every seek
        /// target that starts with a whole relation prefix) exactly after
        /// `esc(res_type) esc(res_id) esc(relation)`, and never panics.
        #[test]
        fn relation_prefix_is_the_resource_relation(
            f in proptest::collection::vec(adversarial_bytes(), 7),
            rev in any::<u64>(),
            junk in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut want = vec![TENANT];
            push_esc(&mut want, &f[0]);
            want.push(SUB_FWD);
            for field in &f[1..4] {
                push_esc(&mut want, field);
            }
            let mut key = want.clone();
            push_esc(&mut key, &f[4]);
            push_esc(&mut key, &f[5]);
            push_opt(&mut key, Some(&f[6]));
            push_inv_rev(&mut key, Revision(rev));
            prop_assert!(has_relation_prefix(&key));
            prop_assert_eq!(relation_prefix(&key), &want[..]);
            prop_assert_eq!(relation_prefix(&want), &want[..]);
            // Any bytes: no panic, and the prefix is a prefix of the key.
            prop_assert!(junk.starts_with(relation_prefix(&junk)));
            let mut rev_key = vec![TENANT];
            push_esc(&mut rev_key, &f[0]);
            rev_key.push(SUB_REV);
            rev_key.extend_from_slice(&key[want.len()..]);
            prop_assert!(!has_relation_prefix(&rev_key));
        }

        #[test]
        fn esc_preserves_order(a in adversarial_bytes(), b in adversarial_bytes()) {
            prop_assert_eq!(a.cmp(&b), esc(&a).cmp(&esc(&b)));
        }

        #[test]
        fn esc_is_prefix_free(a in adversarial_bytes(), b in adversarial_bytes()) {
            prop_assume!(a != b);
            prop_assert!(!esc(&b).starts_with(&esc(&a)));
        }

        #[test]
        fn esc_prefix_matches_exactly_the_extensions(p in adversarial_bytes(), s in adversarial_bytes()) {
            let mut pre = Vec::new();
            push_esc_prefix(&mut pre, &p);
            prop_assert_eq!(esc(&s).starts_with(&pre), s.starts_with(&p));
        }

        /// Composite keys (several fields, as tenants/types/ids) preserve the
        /// lexicographic order of the field tuples and never prefix each other.
        #[test]
        fn composite_keys_preserve_order_and_are_prefix_free(
            a in proptest::collection::vec(adversarial_bytes(), 3),
            b in proptest::collection::vec(adversarial_bytes(), 3),
            ra in any::<u64>(), rb in any::<u64>(),
        ) {
            let enc = |f: &[Vec<u8>], r: u64| {
                let mut k = vec![TENANT];
                for x in f { push_esc(&mut k, x); }
                let chain = k.len();
                push_inv_rev(&mut k, Revision(r));
                (k, chain)
            };
            let (ka, ca) = enc(&a, ra);
            let (kb, cb) = enc(&b, rb);
            prop_assert_eq!(a.cmp(&b).then(rb.cmp(&ra)), ka.cmp(&kb));
            if a != b {
                prop_assert!(!kb[..cb].starts_with(&ka[..ca]));
            }
            let (chain, rev) = split_version(&ka)?;
            prop_assert_eq!(rev, Revision(ra));
            prop_assert_eq!(chain.len(), ca);
        }

        #[test]
        fn tuple_chain_keys_round_trip(t in crate::tuple::tests::arb_tuple()) {
            let tenant = Tenant::default_tenant();
            let mut k = Vec::new();
            fwd_chain_key(&mut k, &tenant, &t);
            let mut pre = Vec::new();
            tenant_sub_prefix(&mut pre, &tenant, SUB_FWD);
            let bare = Tuple::new(t.resource.clone(), t.relation.clone(), t.subject.clone());
            prop_assert_eq!(decode_fwd_body(&k[pre.len()..])?, bare.clone());
            let mut k = Vec::new();
            rev_chain_key(&mut k, &tenant, &t);
            prop_assert_eq!(decode_rev_body(&k[pre.len()..])?, bare);
        }

        #[test]
        fn tenant_prefixes_never_overlap(a in "[a-z0-9][a-z0-9_-]{0,5}", b in "[a-z0-9][a-z0-9_-]{0,5}") {
            prop_assume!(a != b);
            let (ta, tb) = (Tenant::new(&a)?, Tenant::new(&b)?);
            for sub in [SUB_FWD, SUB_REV, SUB_LOG, SUB_SCHEMA] {
                let (mut pa, mut pb) = (Vec::new(), Vec::new());
                tenant_sub_prefix(&mut pa, &ta, sub);
                tenant_sub_prefix(&mut pb, &tb, sub);
                prop_assert!(!pb.starts_with(&pa));
            }
        }
    }
}
