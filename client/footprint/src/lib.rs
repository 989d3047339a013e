//! Footprint keys: the one definition of how Verdict names what a check
//! read, shared by the server's decision cache (which computes a
//! footprint per answer) and the client's local cache (which maps each
//! change on the watch feed to the keys it touches).
//!
//! A key is a 64-bit FNV-1a hash of a fixed byte encoding, so it is the
//! same in every process, on every platform and with every Rust release
//! (the standard library's `DefaultHasher` promises none of that):
//!
//! ```text
//! key   = fnv1a64(tag || field_1 || ... || field_n) | 1      (never 0)
//! field = u32 little-endian byte length || UTF-8 bytes
//! opt   = 0x00                        (absent)
//!       | 0x01 || field               (present)
//! ```
//!
//! | tag | function          | fields                                                      |
//! |-----|-------------------|-------------------------------------------------------------|
//! | 0   | [`storage_key`]   | tenant, type, id, relation                                  |
//! | 1   | [`subject_key`]   | tenant, type, id, relation, subject type, subject id, opt subject relation |
//! | 2   | [`userset_key`]   | tenant, type, id, relation, subject type                    |
//!
//! [`relation_key`] is [`storage_key`] with the id [`RELATION_WIDE_ID`].
//! [`ANY_KEY`] (0) stands for "anything may have changed". The keys one
//! written tuple changes are [`tuple_keys`]; a footprint (sorted keys)
//! is touched by a change when they share a key ([`touches`]).
//!
//! Hash collisions only ever make a cache drop more than it must (two
//! different reads sharing a key), never keep a stale answer.

/// The key meaning "any storage key may have changed".
pub const ANY_KEY: u64 = 0;

/// The id no real object id can be (ids never contain `#`): its
/// [`storage_key`] stands for a whole relation.
pub const RELATION_WIDE_ID: &str = "#relation";

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over a sequence of byte slices, fed in order.
struct Fnv(u64);

impl Fnv {
    fn new(tag: u8) -> Self {
        let mut h = Fnv(FNV_OFFSET);
        h.bytes(&[tag]);
        h
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    fn field(&mut self, s: &str) -> &mut Self {
        // Ids and names are far below 4 GiB; a longer one saturates (still
        // deterministic).
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        self.bytes(&len.to_le_bytes());
        self.bytes(s.as_bytes());
        self
    }

    fn opt(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            None => self.bytes(&[0]),
            Some(s) => {
                self.bytes(&[1]);
                self.field(s);
            }
        }
        self
    }

    fn finish(&self) -> u64 {
        self.0 | 1
    }
}

/// The key of every subject of `type:id#relation`: a read of the whole
/// relation on that object covers it; every write of
/// `type:id#relation@...` changes it.
pub fn storage_key(tenant: &str, object_type: &str, object_id: &str, relation: &str) -> u64 {
    Fnv::new(0)
        .field(tenant)
        .field(object_type)
        .field(object_id)
        .field(relation)
        .finish()
}

/// The key of one tuple `type:id#relation@subject_type:subject_id[#subject_relation]`:
/// a point lookup of it reads it (a wildcard lookup uses the id `*`); a
/// write of that tuple changes it.
pub fn subject_key(tenant: &str, object: ObjectKey<'_>, subject: SubjectKey<'_>) -> u64 {
    Fnv::new(1)
        .field(tenant)
        .field(object.object_type)
        .field(object.object_id)
        .field(object.relation)
        .field(subject.subject_type)
        .field(subject.subject_id)
        .opt(subject.subject_relation)
        .finish()
}

/// The key of the usersets of one subject type under `type:id#relation`:
/// a scan of them reads it; a write of any such userset changes it.
pub fn userset_key(
    tenant: &str,
    object_type: &str,
    object_id: &str,
    relation: &str,
    subject_type: &str,
) -> u64 {
    Fnv::new(2)
        .field(tenant)
        .field(object_type)
        .field(object_id)
        .field(relation)
        .field(subject_type)
        .finish()
}

/// The key of a whole relation `type#relation` (what a group-index answer
/// read); every write to the relation changes it.
pub fn relation_key(tenant: &str, object_type: &str, relation: &str) -> u64 {
    storage_key(tenant, object_type, RELATION_WIDE_ID, relation)
}

/// The resource side of a tuple: `type:id#relation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectKey<'a> {
    /// The resource type.
    pub object_type: &'a str,
    /// The resource id.
    pub object_id: &'a str,
    /// The relation.
    pub relation: &'a str,
}

/// The subject side of a tuple: `type:id[#relation]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectKey<'a> {
    /// The subject type.
    pub subject_type: &'a str,
    /// The subject id (`*` for a wildcard).
    pub subject_id: &'a str,
    /// The subject relation, for a userset.
    pub subject_relation: Option<&'a str>,
}

/// Every key a write (create, touch or delete) of the tuple `object@subject`
/// changes, appended to `out`: its relation on the object, the tuple
/// itself, the usersets of its subject type (for a userset subject) and
/// the whole relation.
pub fn tuple_keys(
    tenant: &str,
    object: ObjectKey<'_>,
    subject: SubjectKey<'_>,
    out: &mut Vec<u64>,
) {
    out.push(storage_key(
        tenant,
        object.object_type,
        object.object_id,
        object.relation,
    ));
    out.push(subject_key(tenant, object, subject));
    if subject.subject_relation.is_some() {
        out.push(userset_key(
            tenant,
            object.object_type,
            object.object_id,
            object.relation,
            subject.subject_type,
        ));
    }
    out.push(relation_key(tenant, object.object_type, object.relation));
}

/// Whether a change to `changed` keys touches a footprint (`footprint`
/// sorted ascending). [`ANY_KEY`] touches everything.
pub fn touches(footprint: &[u64], changed: &[u64]) -> bool {
    changed
        .iter()
        .any(|k| *k == ANY_KEY || footprint.binary_search(k).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: ObjectKey<'static> = ObjectKey {
        object_type: "document",
        object_id: "readme",
        relation: "viewer",
    };
    const ALICE: SubjectKey<'static> = SubjectKey {
        subject_type: "user",
        subject_id: "alice",
        subject_relation: None,
    };

    /// Pinned values: a change to the derivation breaks every client
    /// cache built against an older server, so it must be deliberate.
    #[test]
    fn keys_are_pinned() {
        assert_eq!(
            storage_key("default", "document", "readme", "viewer"),
            PINNED_STORAGE
        );
        assert_eq!(subject_key("default", DOC, ALICE), PINNED_SUBJECT);
        assert_eq!(
            userset_key("default", "document", "readme", "viewer", "group"),
            PINNED_USERSET
        );
        assert_eq!(
            relation_key("default", "document", "viewer"),
            PINNED_RELATION
        );
    }

    // Computed independently (a Python transcription of the derivation
    // in the module docs).
    const PINNED_STORAGE: u64 = 0xc618_97aa_44e8_b015;
    const PINNED_SUBJECT: u64 = 0xd82d_7059_6fe9_4e47;
    const PINNED_USERSET: u64 = 0xa5e6_661f_f15a_3c1f;
    const PINNED_RELATION: u64 = 0x408b_194d_d984_3faf;

    #[test]
    fn fields_are_length_delimited_and_keys_never_any() {
        // Moving a character between fields changes the key.
        assert_ne!(
            storage_key("t", "ab", "c", "r"),
            storage_key("t", "a", "bc", "r")
        );
        // Absent and empty subject relations differ.
        let empty = SubjectKey {
            subject_relation: Some(""),
            ..ALICE
        };
        assert_ne!(subject_key("t", DOC, ALICE), subject_key("t", DOC, empty));
        // Tenants separate keys.
        assert_ne!(
            storage_key("a", "d", "1", "v"),
            storage_key("b", "d", "1", "v")
        );
        for k in [
            storage_key("", "", "", ""),
            subject_key("", DOC, ALICE),
            userset_key("", "", "", "", ""),
        ] {
            assert_ne!(k, ANY_KEY);
        }
    }

    #[test]
    fn a_tuple_write_touches_what_reads_of_it_used() {
        let mut keys = Vec::new();
        tuple_keys("t", DOC, ALICE, &mut keys);
        let read_point = subject_key("t", DOC, ALICE);
        let read_all = storage_key("t", "document", "readme", "viewer");
        let read_index = relation_key("t", "document", "viewer");
        for read in [read_point, read_all, read_index] {
            assert!(touches(&[read], &keys));
        }
        // Another subject's point lookup is untouched.
        let bob = SubjectKey {
            subject_id: "bob",
            ..ALICE
        };
        assert!(!touches(&[subject_key("t", DOC, bob)], &keys));
        // A userset subject also touches the userset scan of its type.
        let group = SubjectKey {
            subject_type: "group",
            subject_id: "eng",
            subject_relation: Some("member"),
        };
        keys.clear();
        tuple_keys("t", DOC, group, &mut keys);
        assert!(touches(
            &[userset_key("t", "document", "readme", "viewer", "group")],
            &keys
        ));
        assert!(touches(&[1, 5], &[ANY_KEY]));
    }
}
