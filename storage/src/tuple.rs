//! Relationship tuples and their SpiceDB-compatible text form.
//!
//! ```text
//! document:readme#viewer@user:alice
//! document:readme#viewer@group:eng#member[only_weekdays:{"tz":"UTC"}][expiration:2300-12-01T00:00:00Z]
//! ```

use std::fmt;
use std::str::FromStr;

use crate::error::{TupleError, TuplePart};
use crate::revision::Timestamp;

/// Longest allowed object id, in bytes.
pub const MAX_OBJECT_ID_LEN: usize = 1024;
/// Longest allowed object type (including `prefix/` segments), in bytes.
pub const MAX_TYPE_LEN: usize = 128;
/// The wildcard subject id (`user:*`).
pub const WILDCARD: &str = "*";

/// An object: `type:id`.
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct ObjectRef {
    /// The object type, e.g. `document` or `tenant1/document`.
    pub object_type: String,
    /// The object id, e.g. `readme`.
    pub object_id: String,
}

impl ObjectRef {
    /// Builds an object reference (not validated; see [`Tuple::validate`]).
    pub fn new(object_type: impl Into<String>, object_id: impl Into<String>) -> Self {
        ObjectRef {
            object_type: object_type.into(),
            object_id: object_id.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object_type, self.object_id)
    }
}

/// A subject: an object, optionally with a relation (`group:eng#member`).
/// `relation: None` is a direct subject (SpiceDB's `...` ellipsis).
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct SubjectRef {
    /// The subject object.
    pub object: ObjectRef,
    /// The subject relation; `None` for a direct subject.
    pub relation: Option<String>,
}

impl SubjectRef {
    /// A direct subject `type:id`.
    pub fn direct(object_type: impl Into<String>, object_id: impl Into<String>) -> Self {
        SubjectRef {
            object: ObjectRef::new(object_type, object_id),
            relation: None,
        }
    }

    /// A userset subject `type:id#relation`.
    pub fn userset(
        object_type: impl Into<String>,
        object_id: impl Into<String>,
        relation: impl Into<String>,
    ) -> Self {
        SubjectRef {
            object: ObjectRef::new(object_type, object_id),
            relation: Some(relation.into()),
        }
    }

    /// Whether this is a wildcard subject (`type:*`).
    pub fn is_wildcard(&self) -> bool {
        self.object.object_id == WILDCARD
    }
}

impl fmt::Display for SubjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.object)?;
        if let Some(rel) = &self.relation {
            write!(f, "#{rel}")?;
        }
        Ok(())
    }
}

/// A caveat attached to a tuple: its name and the (possibly empty) context
/// stored with the tuple.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TupleCaveat {
    /// The caveat name as declared in the schema.
    pub name: String,
    /// Context values bound when the tuple was written.
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// A relationship tuple: `resource#relation@subject`, with an optional caveat
/// and expiration.
///
/// The identity of a tuple (what CREATE/DELETE/TOUCH address) is its
/// resource, relation and subject; caveat and expiration are its payload.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Tuple {
    /// The resource object.
    pub resource: ObjectRef,
    /// The relation on the resource.
    pub relation: String,
    /// The subject.
    pub subject: SubjectRef,
    /// An optional caveat.
    pub caveat: Option<TupleCaveat>,
    /// An optional expiration; storage returns expired tuples as stored and
    /// leaves filtering them by request time to the engine
    /// ([`Tuple::is_expired_at`]).
    pub expiration: Option<Timestamp>,
}

impl Tuple {
    /// A tuple without caveat or expiration (not validated).
    pub fn new(resource: ObjectRef, relation: impl Into<String>, subject: SubjectRef) -> Tuple {
        Tuple {
            resource,
            relation: relation.into(),
            subject,
            caveat: None,
            expiration: None,
        }
    }

    /// Parses the SpiceDB text form.
    ///
    /// # Errors
    /// A [`TupleError`] naming the part that is wrong.
    pub fn parse(s: &str) -> Result<Tuple, TupleError> {
        parse_tuple(s)
    }

    /// Checks every part against the naming rules (the parser does this too).
    ///
    /// # Errors
    /// A [`TupleError`] naming the first part that is wrong.
    pub fn validate(&self) -> Result<(), TupleError> {
        validate_type(TuplePart::ResourceType, &self.resource.object_type)?;
        validate_id(TuplePart::ResourceId, &self.resource.object_id, false)?;
        validate_name(TuplePart::Relation, &self.relation)?;
        validate_type(TuplePart::SubjectType, &self.subject.object.object_type)?;
        validate_id(TuplePart::SubjectId, &self.subject.object.object_id, true)?;
        if let Some(rel) = &self.subject.relation {
            validate_name(TuplePart::SubjectRelation, rel)?;
            if self.subject.is_wildcard() {
                return Err(TupleError::new(
                    TuplePart::SubjectRelation,
                    rel,
                    "a wildcard subject cannot have a relation",
                ));
            }
        }
        if let Some(c) = &self.caveat {
            validate_type(TuplePart::CaveatName, &c.name)?;
        }
        if let Some(e) = self.expiration {
            if !e.is_representable() {
                return Err(TupleError::new(
                    TuplePart::Expiration,
                    &e.0.to_string(),
                    "must be within years 0000-9999",
                ));
            }
        }
        Ok(())
    }

    /// Whether the tuple has expired at `now` (expiration at or before `now`).
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }

    /// True when both tuples address the same relationship (ignores payload).
    pub fn same_key(&self, other: &Tuple) -> bool {
        self.resource == other.resource
            && self.relation == other.relation
            && self.subject == other.subject
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.resource, self.relation, self.subject)?;
        if let Some(c) = &self.caveat {
            if c.context.is_empty() {
                write!(f, "[{}]", c.name)?;
            } else {
                let json = serde_json::Value::Object(c.context.clone());
                write!(f, "[{}:{}]", c.name, json)?;
            }
        }
        if let Some(e) = self.expiration {
            write!(f, "[expiration:{e}]")?;
        }
        Ok(())
    }
}

impl FromStr for Tuple {
    type Err = TupleError;
    fn from_str(s: &str) -> Result<Tuple, TupleError> {
        parse_tuple(s)
    }
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'
}

/// `[a-z][a-z0-9_]{1,62}[a-z0-9]`
fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=64).contains(&b.len())
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.iter().all(|&c| is_name_char(c))
        && b.last() != Some(&b'_')
}

/// Checks a relation name: `[a-z][a-z0-9_]{1,62}[a-z0-9]`.
pub(crate) fn validate_name(part: TuplePart, s: &str) -> Result<(), TupleError> {
    if is_name(s) {
        Ok(())
    } else {
        Err(TupleError::new(
            part,
            s,
            "must match [a-z][a-z0-9_]{1,62}[a-z0-9]",
        ))
    }
}

/// Checks an object type (or caveat name): name segments joined by `/`.
pub(crate) fn validate_type(part: TuplePart, s: &str) -> Result<(), TupleError> {
    if s.len() <= MAX_TYPE_LEN && s.split('/').all(is_name) {
        Ok(())
    } else {
        Err(TupleError::new(
            part,
            s,
            "must match ([a-z][a-z0-9_]{1,62}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]",
        ))
    }
}

/// Whether `c` may appear in an object id.
pub(crate) fn is_id_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"/_|-=+@.".contains(&c)
}

/// Checks an object id: 1–1024 bytes of `[A-Za-z0-9/_|\-=+@.]`, or `*` for
/// subjects when `allow_wildcard`.
pub(crate) fn validate_id(
    part: TuplePart,
    s: &str,
    allow_wildcard: bool,
) -> Result<(), TupleError> {
    if s == WILDCARD {
        return if allow_wildcard {
            Ok(())
        } else {
            Err(TupleError::new(
                part,
                s,
                "the wildcard `*` is only allowed as a subject id",
            ))
        };
    }
    if s.is_empty() || s.len() > MAX_OBJECT_ID_LEN {
        return Err(TupleError::new(part, s, "must be 1 to 1024 bytes long"));
    }
    if !s.bytes().all(is_id_char) {
        return Err(TupleError::new(
            part,
            s,
            "may only contain [A-Za-z0-9/_|-=+@.]",
        ));
    }
    Ok(())
}

fn parse_object(
    s: &str,
    type_part: TuplePart,
    id_part: TuplePart,
    subject: bool,
) -> Result<ObjectRef, TupleError> {
    let Some((ty, id)) = s.split_once(':') else {
        return Err(TupleError::new(type_part, s, "expected `type:id`"));
    };
    validate_type(type_part, ty)?;
    validate_id(id_part, id, subject)?;
    Ok(ObjectRef::new(ty, id))
}

fn parse_tuple(s: &str) -> Result<Tuple, TupleError> {
    let (head, mut rest) = match s.find('[') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let Some((resource, after)) = head.split_once('#') else {
        return Err(TupleError::new(
            TuplePart::Syntax,
            s,
            "expected `resource#relation@subject`",
        ));
    };
    let Some((relation, subject)) = after.split_once('@') else {
        return Err(TupleError::new(
            TuplePart::Syntax,
            s,
            "expected `resource#relation@subject`",
        ));
    };
    let resource = parse_object(
        resource,
        TuplePart::ResourceType,
        TuplePart::ResourceId,
        false,
    )?;
    validate_name(TuplePart::Relation, relation)?;
    let (subject_obj, subject_rel) = match subject.split_once('#') {
        Some((o, r)) => (o, Some(r)),
        None => (subject, None),
    };
    let object = parse_object(
        subject_obj,
        TuplePart::SubjectType,
        TuplePart::SubjectId,
        true,
    )?;
    let subject_relation = match subject_rel {
        None | Some("...") => None,
        Some(r) => {
            validate_name(TuplePart::SubjectRelation, r)?;
            if object.object_id == WILDCARD {
                return Err(TupleError::new(
                    TuplePart::SubjectRelation,
                    r,
                    "a wildcard subject cannot have a relation",
                ));
            }
            Some(r.to_owned())
        }
    };
    let mut tuple = Tuple::new(
        resource,
        relation,
        SubjectRef {
            object,
            relation: subject_relation,
        },
    );

    // Optional `[caveat]` / `[caveat:{json}]`, then optional `[expiration:RFC3339]`.
    while !rest.is_empty() {
        let Some(body) = rest.strip_prefix('[') else {
            return Err(TupleError::new(
                TuplePart::Syntax,
                rest,
                "unexpected text after the subject",
            ));
        };
        if let Some(ts) = body
            .strip_prefix("expiration:")
            .filter(|t| !t.starts_with('{'))
        {
            if tuple.expiration.is_some() {
                return Err(TupleError::new(TuplePart::Expiration, rest, "given twice"));
            }
            let Some(end) = ts.find(']') else {
                return Err(TupleError::new(TuplePart::Expiration, ts, "missing `]`"));
            };
            let t = Timestamp::parse_rfc3339(&ts[..end]).ok_or_else(|| {
                TupleError::new(
                    TuplePart::Expiration,
                    &ts[..end],
                    "must be an RFC 3339 timestamp",
                )
            })?;
            tuple.expiration = Some(t);
            rest = &ts[end + 1..];
            continue;
        }
        if tuple.caveat.is_some() || tuple.expiration.is_some() {
            return Err(TupleError::new(
                TuplePart::CaveatName,
                rest,
                "only one caveat is allowed, before the expiration",
            ));
        }
        let name_end = body.find([':', ']']).unwrap_or(body.len());
        let name = &body[..name_end];
        validate_type(TuplePart::CaveatName, name)?;
        let after_name = &body[name_end..];
        let (context, after) = if let Some(json) = after_name.strip_prefix(':') {
            let mut stream =
                serde_json::Deserializer::from_str(json).into_iter::<serde_json::Value>();
            let value = match stream.next() {
                Some(Ok(v)) => v,
                _ => {
                    return Err(TupleError::new(
                        TuplePart::CaveatContext,
                        json,
                        "must be a JSON object",
                    ))
                }
            };
            let serde_json::Value::Object(map) = value else {
                return Err(TupleError::new(
                    TuplePart::CaveatContext,
                    json,
                    "must be a JSON object",
                ));
            };
            (map, &json[stream.byte_offset()..])
        } else {
            (serde_json::Map::new(), after_name)
        };
        let Some(after) = after.strip_prefix(']') else {
            return Err(TupleError::new(TuplePart::CaveatName, body, "missing `]`"));
        };
        tuple.caveat = Some(TupleCaveat {
            name: name.to_owned(),
            context,
        });
        rest = after;
    }
    Ok(tuple)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Found by `fuzz/tuple_text`: large integers in a caveat context are
    /// doubles, and the default JSON parser could land one ulp away, so the
    /// printed tuple parsed to a different context.
    #[test]
    fn caveat_context_numbers_survive_print_and_parse() {
        let text = r#"doc:1#view@user:bob[cav:{"a":[11111111111111110000011111111111111111,1111000001111111111111,1111111111111111111111,111111111111111110000011111111111111111,11110000011111111111111111,11111,2,{"b":null}]}][expiration:2030-11-01T00:00:00Z]"#;
        let t: Tuple = text.parse().unwrap();
        let again: Tuple = t.to_string().parse().unwrap();
        assert_eq!(again, t);
    }

    #[test]
    fn parses_spicedb_forms() {
        let t: Tuple = "document:readme#viewer@user:alice".parse().unwrap();
        assert_eq!(t.resource, ObjectRef::new("document", "readme"));
        assert_eq!(t.subject, SubjectRef::direct("user", "alice"));

        let t: Tuple = "document:readme#viewer@group:eng#...".parse().unwrap();
        assert_eq!(t.subject.relation, None);
        assert_eq!(t.to_string(), "document:readme#viewer@group:eng");

        let t: Tuple = "org/document:a@b.c#viewer@group:eng#member"
            .parse()
            .unwrap();
        assert_eq!(t.resource.object_type, "org/document");
        assert_eq!(t.resource.object_id, "a@b.c");
        assert_eq!(t.subject.relation.as_deref(), Some("member"));

        let t: Tuple = "doc:x#viewer@user:*".parse().unwrap();
        assert!(t.subject.is_wildcard());

        let s = r#"doc:x#viewer@user:bob[only_ips:{"cidr":"10.0.0.0/8","x":"a]b"}][expiration:2300-12-01T00:00:00Z]"#;
        let t: Tuple = s.parse().unwrap();
        let c = t.caveat.as_ref().unwrap();
        assert_eq!(c.name, "only_ips");
        assert_eq!(c.context["x"], "a]b");
        assert_eq!(t.expiration.unwrap().to_string(), "2300-12-01T00:00:00Z");
        assert_eq!(t.to_string(), s);

        let t: Tuple = "doc:x#viewer@user:bob[weekday]".parse().unwrap();
        assert!(t.caveat.as_ref().unwrap().context.is_empty());
        let t: Tuple = "doc:x#viewer@user:bob[expiration:2030-01-01T00:00:00Z]"
            .parse()
            .unwrap();
        assert!(t.caveat.is_none() && t.expiration.is_some());
    }

    #[test]
    fn bad_input_names_the_part() {
        let cases = [
            ("", TuplePart::Syntax),
            ("document:readme", TuplePart::Syntax),
            ("document:readme#viewer", TuplePart::Syntax),
            ("Document:readme#viewer@user:alice", TuplePart::ResourceType),
            ("do:readme#viewer@user:alice", TuplePart::ResourceType),
            ("document#viewer@user:alice", TuplePart::ResourceType),
            ("document:#viewer@user:alice", TuplePart::ResourceId),
            ("document:read me#viewer@user:alice", TuplePart::ResourceId),
            ("document:*#viewer@user:alice", TuplePart::ResourceId),
            ("document:readme#Viewer@user:alice", TuplePart::Relation),
            ("document:readme#viewer_@user:alice", TuplePart::Relation),
            ("document:readme#viewer@user", TuplePart::SubjectType),
            ("document:readme#viewer@user:", TuplePart::SubjectId),
            ("document:readme#viewer@user:al ice", TuplePart::SubjectId),
            (
                "document:readme#viewer@user:*#member",
                TuplePart::SubjectRelation,
            ),
            (
                "document:readme#viewer@group:eng#",
                TuplePart::SubjectRelation,
            ),
            (
                "document:readme#viewer@user:alice[Bad]",
                TuplePart::CaveatName,
            ),
            (
                "document:readme#viewer@user:alice[cav:[1]]",
                TuplePart::CaveatContext,
            ),
            (
                "document:readme#viewer@user:alice[cav:{\"a\":1}",
                TuplePart::CaveatName,
            ),
            (
                "document:readme#viewer@user:alice[expiration:tomorrow]",
                TuplePart::Expiration,
            ),
            (
                "document:readme#viewer@user:alice[expiration:2030-01-01T00:00:00Z][cav]",
                TuplePart::CaveatName,
            ),
            ("document:readme#viewer@user:alice[cav]x", TuplePart::Syntax),
        ];
        for (input, part) in cases {
            let err = Tuple::parse(input).unwrap_err();
            assert_eq!(err.part, part, "{input}: {err}");
        }
        let long = format!("document:{}#viewer@user:alice", "a".repeat(1025));
        assert_eq!(Tuple::parse(&long).unwrap_err().part, TuplePart::ResourceId);
        let err = Tuple::parse("document:readme#Viewer@user:alice").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid relation `Viewer`: must match [a-z][a-z0-9_]{1,62}[a-z0-9]"
        );
    }

    /// Strategy for valid tuples (shared with other tests in the crate).
    pub(crate) fn arb_tuple() -> impl Strategy<Value = Tuple> {
        let name = "[a-z][a-z0-9_]{1,6}[a-z0-9]";
        let ty = prop_oneof![
            3 => name.prop_map(String::from),
            1 => (name, name).prop_map(|(a, b)| format!("{a}/{b}")),
        ];
        let id = "[A-Za-z0-9/_|=+@.-]{1,12}";
        let sub_id = prop_oneof![4 => id.prop_map(String::from), 1 => Just("*".to_owned())];
        let ctx = proptest::collection::btree_map("[a-z]{1,4}", any::<i32>(), 0..3).prop_map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, serde_json::Value::from(v)))
                .collect::<serde_json::Map<_, _>>()
        });
        let caveat = proptest::option::of((name, ctx).prop_map(|(name, context)| TupleCaveat {
            name: name.to_owned(),
            context,
        }));
        (
            ty.clone(),
            id,
            name,
            ty,
            sub_id,
            proptest::option::of(name),
            caveat,
            proptest::option::of(-62_167_219_200i64..253_402_300_799),
        )
            .prop_map(|(rt, rid, rel, st, sid, srel, caveat, exp)| {
                let srel = if sid == WILDCARD { None } else { srel };
                Tuple {
                    resource: ObjectRef::new(rt, rid),
                    relation: rel,
                    subject: SubjectRef {
                        object: ObjectRef::new(st, sid),
                        relation: srel,
                    },
                    caveat,
                    expiration: exp.map(Timestamp),
                }
            })
    }

    proptest! {
        #[test]
        fn text_round_trip(t in arb_tuple()) {
            prop_assert!(t.validate().is_ok());
            let text = t.to_string();
            let back: Tuple = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(back, t);
        }

        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = Tuple::parse(&s);
        }
    }
}
