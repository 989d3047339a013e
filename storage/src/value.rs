// #[PerformanceCriticalPath]
//! Binary value encodings. Every value starts with a format byte so the
//! layout can evolve; integers are fixed-width big-endian or LEB128 varints.
//!
//! ```text
//! Version      0x01 kind(0=live,1=tombstone) [live: payload]
//! payload      flags(bit0 caveat, bit1 expiration)
//!              [caveat: var(len) name var(len) context-json] [expiration: be64 i64]
//! ChangeChunk  0x01 schema(0 | 1 be64 version) var(count)
//!              count × ( kind(0 create,1 touch,2 delete) var(len) fwd-body payload )
//! Schema       0x01 be64 version var(len) text var(len) comment
//! RevisionInfo 0x01 be64 unix-seconds status(0 applied,1 rejected,2 empty) var(len) tenant
//! ```
//!
//! The caveat context is the one JSON fragment stored: it is user-supplied
//! JSON and is kept verbatim (serialized once on write, parsed once on read).

use crate::batch::{Change, ChangeKind, SchemaVersionRecord};
use crate::error::{Result, StorageError};
use crate::keys;
use crate::revision::Timestamp;
use crate::tuple::{ObjectRef, SubjectRef, Tuple, TupleCaveat};

const FORMAT_V1: u8 = 0x01;

fn corrupt(what: &'static str) -> StorageError {
    StorageError::Corrupt { what }
}

fn push_var(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn push_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    push_var(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// A cursor over value bytes; every read checks bounds.
pub(crate) struct ValueReader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> ValueReader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        ValueReader { buf, what }
    }

    fn u8(&mut self) -> Result<u8> {
        let (&b, rest) = self.buf.split_first().ok_or(corrupt(self.what))?;
        self.buf = rest;
        Ok(b)
    }

    fn be64(&mut self) -> Result<u64> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<8>()
            .ok_or(corrupt(self.what))?;
        self.buf = rest;
        Ok(u64::from_be_bytes(*head))
    }

    fn var(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt(self.what))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = usize::try_from(self.var()?).map_err(|_| corrupt(self.what))?;
        if len > self.buf.len() {
            return Err(corrupt(self.what));
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt(self.what))
    }

    fn format(&mut self) -> Result<()> {
        if self.u8()? == FORMAT_V1 {
            Ok(())
        } else {
            Err(corrupt(self.what))
        }
    }

    fn finish(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(corrupt(self.what))
        }
    }
}

/// Appends the payload (caveat and expiration) of a tuple.
fn push_payload(buf: &mut Vec<u8>, t: &Tuple) {
    let flags = u8::from(t.caveat.is_some()) | (u8::from(t.expiration.is_some()) << 1);
    buf.push(flags);
    if let Some(c) = &t.caveat {
        push_bytes(buf, c.name.as_bytes());
        if c.context.is_empty() {
            push_var(buf, 0);
        } else {
            let json = serde_json::Value::Object(c.context.clone()).to_string();
            push_bytes(buf, json.as_bytes());
        }
    }
    if let Some(e) = t.expiration {
        buf.extend_from_slice(&e.0.to_be_bytes());
    }
}

/// Reads a payload into `t`.
fn read_payload(r: &mut ValueReader<'_>, t: &mut Tuple) -> Result<()> {
    let flags = r.u8()?;
    if flags & !0b11 != 0 {
        return Err(corrupt(r.what));
    }
    if flags & 1 != 0 {
        let name = r.string()?;
        let json = r.bytes()?;
        let context = if json.is_empty() {
            serde_json::Map::new()
        } else {
            match serde_json::from_slice::<serde_json::Value>(json) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => return Err(corrupt(r.what)),
            }
        };
        t.caveat = Some(TupleCaveat { name, context });
    }
    if flags & 2 != 0 {
        t.expiration = Some(Timestamp(r.be64()? as i64));
    }
    Ok(())
}

/// A tuple version: live with payload, or a tombstone.
pub(crate) fn encode_version(buf: &mut Vec<u8>, live: Option<&Tuple>) {
    buf.push(FORMAT_V1);
    match live {
        Some(t) => {
            buf.push(0);
            push_payload(buf, t);
        }
        None => buf.push(1),
    }
}

/// Whether the encoded version is live (cheap: no payload decode).
pub(crate) fn version_is_live(v: &[u8]) -> Result<bool> {
    match v {
        [FORMAT_V1, 0, ..] => Ok(true),
        [FORMAT_V1, 1] => Ok(false),
        _ => Err(corrupt("tuple version")),
    }
}

/// Decodes a live version's payload into `t` (which carries the key part).
pub(crate) fn decode_version_payload(v: &[u8], t: &mut Tuple) -> Result<()> {
    let mut r = ValueReader::new(v, "tuple version");
    r.format()?;
    if r.u8()? != 0 {
        return Err(corrupt("tuple version"));
    }
    read_payload(&mut r, t)?;
    r.finish()
}

/// The expiration of an encoded version: `None` for a tombstone,
/// `Some(expiration)` for a live version.
pub(crate) fn version_expiration(v: &[u8]) -> Result<Option<Option<Timestamp>>> {
    if !version_is_live(v)? {
        return Ok(None);
    }
    let mut scratch = Tuple::new(ObjectRef::new("", ""), "", SubjectRef::direct("", ""));
    decode_version_payload(v, &mut scratch)?;
    Ok(Some(scratch.expiration))
}

/// One chunk of a revision's changelog.
pub(crate) fn encode_change_chunk(schema_version: Option<u64>, changes: &[Change]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + changes.len() * 64);
    buf.push(FORMAT_V1);
    match schema_version {
        None => buf.push(0),
        Some(v) => {
            buf.push(1);
            buf.extend_from_slice(&v.to_be_bytes());
        }
    }
    push_var(&mut buf, changes.len() as u64);
    let mut body = Vec::with_capacity(64);
    for c in changes {
        buf.push(match c.kind {
            ChangeKind::Create => 0,
            ChangeKind::Touch => 1,
            ChangeKind::Delete => 2,
        });
        body.clear();
        keys::push_fwd_body(&mut body, &c.tuple);
        push_bytes(&mut buf, &body);
        push_payload(&mut buf, &c.tuple);
    }
    buf
}

/// Decodes a changelog chunk, appending its changes to `out`.
pub(crate) fn decode_change_chunk(v: &[u8], out: &mut Vec<Change>) -> Result<Option<u64>> {
    let mut r = ValueReader::new(v, "changelog entry");
    r.format()?;
    let schema = match r.u8()? {
        0 => None,
        1 => Some(r.be64()?),
        _ => return Err(corrupt("changelog entry")),
    };
    let count = r.var()?;
    for _ in 0..count {
        let kind = match r.u8()? {
            0 => ChangeKind::Create,
            1 => ChangeKind::Touch,
            2 => ChangeKind::Delete,
            _ => return Err(corrupt("changelog entry")),
        };
        let mut tuple = keys::decode_fwd_body(r.bytes()?)?;
        read_payload(&mut r, &mut tuple)?;
        out.push(Change { kind, tuple });
    }
    r.finish()?;
    Ok(schema)
}

/// A schema version record.
pub(crate) fn encode_schema(s: &SchemaVersionRecord) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32 + s.text.len());
    buf.push(FORMAT_V1);
    buf.extend_from_slice(&s.version.to_be_bytes());
    push_bytes(&mut buf, s.text.as_bytes());
    push_bytes(&mut buf, s.comment.as_bytes());
    push_bytes(&mut buf, s.author.as_bytes());
    buf
}

/// Decodes a schema version record.
pub(crate) fn decode_schema(v: &[u8]) -> Result<SchemaVersionRecord> {
    let mut r = ValueReader::new(v, "schema version");
    r.format()?;
    let version = r.be64()?;
    let text = r.string()?;
    let comment = r.string()?;
    // Records written before authors were recorded end here.
    let author = if r.buf.is_empty() {
        String::new()
    } else {
        r.string()?
    };
    r.finish()?;
    Ok(SchemaVersionRecord {
        version,
        text,
        comment,
        author,
    })
}

/// What happened at a revision (kept for time-based GC and diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RevisionStatus {
    /// A batch was applied.
    Applied,
    /// A batch was rejected; the revision consumed nothing else.
    Rejected,
    /// No batch (e.g. a Raft membership entry) — `mark_applied`.
    Empty,
}

/// A revision-info record.
pub(crate) fn encode_revinfo(at: Timestamp, status: RevisionStatus, tenant: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + tenant.len());
    buf.push(FORMAT_V1);
    buf.extend_from_slice(&at.0.to_be_bytes());
    buf.push(match status {
        RevisionStatus::Applied => 0,
        RevisionStatus::Rejected => 1,
        RevisionStatus::Empty => 2,
    });
    push_bytes(&mut buf, tenant.as_bytes());
    buf
}

/// Decodes the timestamp of a revision-info record.
pub(crate) fn decode_revinfo_time(v: &[u8]) -> Result<Timestamp> {
    let mut r = ValueReader::new(v, "revision info");
    r.format()?;
    Ok(Timestamp(r.be64()? as i64))
}

/// A big-endian u64 meta value.
pub(crate) fn decode_u64(v: &[u8], what: &'static str) -> Result<u64> {
    let mut r = ValueReader::new(v, what);
    let n = r.be64()?;
    r.finish()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn version_round_trip(t in crate::tuple::tests::arb_tuple()) {
            let mut v = Vec::new();
            encode_version(&mut v, Some(&t));
            prop_assert!(version_is_live(&v)?);
            let mut back = Tuple::new(t.resource.clone(), t.relation.clone(), t.subject.clone());
            decode_version_payload(&v, &mut back)?;
            prop_assert_eq!(back, t);
        }

        #[test]
        fn change_chunk_round_trip(ts in proptest::collection::vec(crate::tuple::tests::arb_tuple(), 0..5), sv in proptest::option::of(any::<u64>())) {
            let changes: Vec<Change> = ts.into_iter().enumerate().map(|(i, tuple)| Change {
                kind: [ChangeKind::Create, ChangeKind::Touch, ChangeKind::Delete][i % 3], tuple,
            }).collect();
            let v = encode_change_chunk(sv, &changes);
            let mut out = Vec::new();
            prop_assert_eq!(decode_change_chunk(&v, &mut out)?, sv);
            prop_assert_eq!(out, changes);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut t = Tuple::parse("a_a:b#c_c@d_d:e").map_err(|e| TestCaseError::fail(e.to_string()))?;
            let _ = decode_version_payload(&bytes, &mut t);
            let _ = decode_change_chunk(&bytes, &mut Vec::new());
            let _ = decode_schema(&bytes);
            let _ = decode_revinfo_time(&bytes);
        }
    }

    #[test]
    fn tombstone_and_schema() {
        let mut v = Vec::new();
        encode_version(&mut v, None);
        assert!(!version_is_live(&v).unwrap());
        let s = SchemaVersionRecord {
            version: 7,
            text: "definition user {}".into(),
            comment: "c".into(),
            author: "key-1".into(),
        };
        assert_eq!(decode_schema(&encode_schema(&s)).unwrap(), s);
        // A record stored before authors were recorded still decodes.
        let mut old = vec![FORMAT_V1];
        old.extend_from_slice(&7u64.to_be_bytes());
        push_bytes(&mut old, b"definition user {}");
        push_bytes(&mut old, b"c");
        let decoded = decode_schema(&old).unwrap();
        assert_eq!(decoded.author, "");
        assert_eq!(decoded.comment, "c");
        assert!(decode_schema(&[2, 0]).is_err());
    }
}
