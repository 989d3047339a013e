//! OpenFGA's queries over the engine: Check, BatchCheck, Expand,
//! ListObjects and ListUsers, in OpenFGA's own terms (names and ids as
//! OpenFGA writes them, contextual tuples, a CEL context, OpenFGA error
//! codes). The openfga.v1 API and `verdict validate FILE.fga.yaml` call
//! these; names are mapped to storage names by `schema::openfga::names`.
//!
//! Semantics (see `schema::openfga`): a condition missing a parameter is
//! error 2000, never CONDITIONAL; depth over 25 is error 2002; cycles are
//! false; contextual tuples are validated (2027), capped
//! ([`FgaLimits::max_contextual_tuples`]) and overlay the snapshot for one
//! request, which then bypasses the decision cache and the group index.

use serde_json::{Map, Value};
use verdict_storage::{
    ObjectRef, SubjectRef, Timestamp, Tuple, TupleCaveat, TupleReader, WILDCARD,
};

use super::check::model_allows;
use super::error::EngineError;
use super::overlay::OverlayReader;
use super::{CheckRequest, Engine, ExpandNode, Outcome};
use crate::schema::ir::Schema;
use crate::schema::openfga::names::{decode_id, decode_name, encode_id, encode_name};

/// OpenFGA's resolution depth bound (`resolveNodeLimit`).
pub const MAX_DEPTH: u32 = 25;

/// OpenFGA's default cap on contextual tuples per request.
pub const DEFAULT_MAX_CONTEXTUAL_TUPLES: usize = 100;

/// Request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FgaLimits {
    /// Most contextual tuples a request may carry (default 100).
    pub max_contextual_tuples: usize,
    /// Most results ListObjects / ListUsers return (0 = all).
    pub max_results: usize,
}

impl Default for FgaLimits {
    fn default() -> Self {
        FgaLimits {
            max_contextual_tuples: DEFAULT_MAX_CONTEXTUAL_TUPLES,
            max_results: 0,
        }
    }
}

/// OpenFGA's error codes this module produces (`openfga.v1.ErrorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FgaCode {
    /// 2000 `validation_error`.
    Validation = 2000,
    /// 2002 `authorization_model_resolution_too_complex`.
    ResolutionTooComplex = 2002,
    /// 2021 `type_not_found`.
    TypeNotFound = 2021,
    /// 2022 `relation_not_found`.
    RelationNotFound = 2022,
    /// 2027 `invalid_tuple`.
    InvalidTuple = 2027,
    /// 4000 `internal_error`.
    Internal = 4000,
}

impl FgaCode {
    /// The numeric code.
    pub fn number(self) -> u32 {
        self as u32
    }

    /// The enum name OpenFGA's HTTP errors carry.
    pub fn name(self) -> &'static str {
        match self {
            FgaCode::Validation => "validation_error",
            FgaCode::ResolutionTooComplex => "authorization_model_resolution_too_complex",
            FgaCode::TypeNotFound => "type_not_found",
            FgaCode::RelationNotFound => "relation_not_found",
            FgaCode::InvalidTuple => "invalid_tuple",
            FgaCode::Internal => "internal_error",
        }
    }
}

/// A failed OpenFGA query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (OpenFGA error {})", code.number())]
pub struct FgaError {
    /// The OpenFGA code.
    pub code: FgaCode,
    /// What went wrong, naming the field.
    pub message: String,
}

impl FgaError {
    fn new(code: FgaCode, message: impl Into<String>) -> FgaError {
        FgaError {
            code,
            message: message.into(),
        }
    }
}

fn engine_error(e: EngineError) -> FgaError {
    match e {
        EngineError::DepthExceeded { .. } => FgaError::new(
            FgaCode::ResolutionTooComplex,
            "authorization model resolution required too many rewrite rules to be resolved",
        ),
        EngineError::Caveat(c) => FgaError::new(FgaCode::Validation, c.to_string()),
        EngineError::UnknownType(_) | EngineError::UnknownRelation { .. } => {
            FgaError::new(FgaCode::Validation, e.to_string())
        }
        other => FgaError::new(FgaCode::Internal, other.to_string()),
    }
}

/// A condition on a tuple: its name and context.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FgaCondition {
    /// The condition's name.
    pub name: String,
    /// Its context.
    pub context: Map<String, Value>,
}

/// A tuple as OpenFGA writes it: `user` (`type:id`, `type:id#relation` or
/// `type:*`), `relation`, `object` (`type:id`), optional condition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FgaTupleKey {
    /// The user.
    pub user: String,
    /// The relation.
    pub relation: String,
    /// The object.
    pub object: String,
    /// The condition.
    pub condition: Option<FgaCondition>,
}

impl FgaTupleKey {
    /// A key without condition.
    pub fn new(
        user: impl Into<String>,
        relation: impl Into<String>,
        object: impl Into<String>,
    ) -> FgaTupleKey {
        FgaTupleKey {
            user: user.into(),
            relation: relation.into(),
            object: object.into(),
            condition: None,
        }
    }
}

/// A user found by ListUsers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FgaUser {
    /// `type:id`.
    Object {
        /// The type.
        object_type: String,
        /// The id.
        id: String,
    },
    /// `type:id#relation`.
    Userset {
        /// The type.
        object_type: String,
        /// The id.
        id: String,
        /// The relation.
        relation: String,
    },
    /// `type:*`.
    Wildcard {
        /// The type.
        object_type: String,
    },
}

impl std::fmt::Display for FgaUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FgaUser::Object { object_type, id } => write!(f, "{object_type}:{id}"),
            FgaUser::Userset {
                object_type,
                id,
                relation,
            } => write!(f, "{object_type}:{id}#{relation}"),
            FgaUser::Wildcard { object_type } => write!(f, "{object_type}:*"),
        }
    }
}

/// One item of a batch check.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FgaCheck {
    /// The question (its condition is ignored).
    pub tuple_key: FgaTupleKey,
    /// Contextual tuples of this item.
    pub contextual_tuples: Vec<FgaTupleKey>,
    /// CEL context of this item.
    pub context: Map<String, Value>,
}

/// A ListObjects question.
#[derive(Debug, Clone, Copy)]
pub struct FgaListObjects<'a> {
    /// The object type listed.
    pub object_type: &'a str,
    /// The relation.
    pub relation: &'a str,
    /// The user (`type:id`, `type:id#relation` or `type:*`).
    pub user: &'a str,
    /// Contextual tuples.
    pub contextual_tuples: &'a [FgaTupleKey],
    /// CEL context.
    pub context: &'a Map<String, Value>,
}

/// Why a ListObjects stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListEnd {
    /// Every object was listed.
    Complete,
    /// The result cap was reached (more may exist).
    MaxResults,
    /// The deadline passed (more may exist).
    Deadline,
    /// The receiver stopped it.
    Stopped,
}

/// What a name failed on.
enum Bad {
    Syntax(String),
    Type(String),
    Relation(String),
}

impl Bad {
    /// As OpenFGA's Check reports it: every invalid input is 2000.
    fn validation(self) -> FgaError {
        match self {
            Bad::Syntax(m) | Bad::Type(m) | Bad::Relation(m) => {
                FgaError::new(FgaCode::Validation, m)
            }
        }
    }

    /// As ListObjects / ListUsers report a bad target: 2021 / 2022.
    fn target(self) -> FgaError {
        match self {
            Bad::Syntax(m) => FgaError::new(FgaCode::Validation, m),
            Bad::Type(m) => FgaError::new(FgaCode::TypeNotFound, m),
            Bad::Relation(m) => FgaError::new(FgaCode::RelationNotFound, m),
        }
    }
}

fn enc_name(s: &str, what: &'static str) -> Result<String, Bad> {
    encode_name(s, what).map_err(|e| Bad::Syntax(e.to_string()))
}

fn enc_id(s: &str) -> Result<String, Bad> {
    encode_id(s).map_err(|e| Bad::Syntax(e.to_string()))
}

/// The storage type name of OpenFGA type `t`, which the model must define.
fn type_name(schema: &Schema, t: &str) -> Result<String, Bad> {
    let n = enc_name(t, "a type name")?;
    if schema.type_id(&n).is_none() {
        return Err(Bad::Type(format!("type '{t}' not found")));
    }
    Ok(n)
}

/// The storage relation name of OpenFGA relation `r` on (storage) type `t`.
fn relation_name(schema: &Schema, t: &str, r: &str) -> Result<String, Bad> {
    let n = enc_name(r, "a relation name")?;
    if schema.relation(t, &n).is_none() {
        return Err(Bad::Relation(format!(
            "relation '{}#{r}' not found",
            decode_name(t)
        )));
    }
    Ok(n)
}

/// `type:id` → storage object.
fn object(schema: &Schema, s: &str) -> Result<ObjectRef, Bad> {
    let (t, id) = s
        .split_once(':')
        .filter(|(t, id)| !t.is_empty() && !id.is_empty())
        .ok_or_else(|| Bad::Syntax(format!("invalid 'object' field format: `{s}`")))?;
    Ok(ObjectRef::new(type_name(schema, t)?, enc_id(id)?))
}

/// `type:id`, `type:id#relation` or `type:*` → storage subject.
fn user(schema: &Schema, s: &str) -> Result<SubjectRef, Bad> {
    let (t, rest) = s
        .split_once(':')
        .filter(|(t, rest)| !t.is_empty() && !rest.is_empty())
        .ok_or_else(|| Bad::Syntax(format!("invalid 'user' field format: `{s}`")))?;
    let t = type_name(schema, t)?;
    match rest.split_once('#') {
        Some((id, rel)) if !id.is_empty() && !rel.is_empty() => {
            let rel = relation_name(schema, &t, rel)?;
            Ok(SubjectRef::userset(t, enc_id(id)?, rel))
        }
        Some(_) => Err(Bad::Syntax(format!("invalid 'user' field format: `{s}`"))),
        None if rest == WILDCARD => Ok(SubjectRef::direct(t, WILDCARD)),
        None => Ok(SubjectRef::direct(t, enc_id(rest)?)),
    }
}

/// An OpenFGA tuple key as a storage tuple (names mapped), checked only
/// for its shape and that its types and relations exist.
///
/// # Errors
/// 2000 for a malformed or unknown name.
pub fn to_tuple(schema: &Schema, key: &FgaTupleKey) -> Result<Tuple, FgaError> {
    let resource = object(schema, &key.object).map_err(Bad::validation)?;
    let relation = enc_name(&key.relation, "a relation name").map_err(Bad::validation)?;
    let subject = user(schema, &key.user).map_err(Bad::validation)?;
    let mut tuple = Tuple::new(resource, relation, subject);
    if let Some(c) = &key.condition {
        tuple.caveat = Some(TupleCaveat {
            name: encode_name(&c.name, "a condition name")
                .map_err(|e| FgaError::new(FgaCode::Validation, e.to_string()))?,
            context: c.context.clone(),
        });
    }
    Ok(tuple)
}

/// A storage tuple as OpenFGA writes it (inverse of [`to_tuple`]).
pub fn from_tuple(tuple: &Tuple) -> FgaTupleKey {
    let s = &tuple.subject;
    let mut user = format!(
        "{}:{}",
        decode_name(&s.object.object_type),
        decode_id(&s.object.object_id)
    );
    if let Some(r) = &s.relation {
        user.push('#');
        user.push_str(&decode_name(r));
    }
    FgaTupleKey {
        user,
        relation: decode_name(&tuple.relation),
        object: format!(
            "{}:{}",
            decode_name(&tuple.resource.object_type),
            decode_id(&tuple.resource.object_id)
        ),
        condition: tuple.caveat.as_ref().map(|c| FgaCondition {
            name: decode_name(&c.name),
            context: c.context.clone(),
        }),
    }
}

/// Why the model does not allow `tuple` to be stored (or sent as a
/// contextual tuple), if it does not: unknown type or relation, a
/// relation that stores nothing, a user type, userset, wildcard or
/// condition its type restrictions do not list.
pub fn model_rejects(schema: &Schema, tuple: &Tuple) -> Option<String> {
    let key = from_tuple(tuple);
    // `group:1#member@group:1#member` holds by definition: OpenFGA refuses
    // to store it (found by tests/integration/openfga_differential.rs).
    if tuple.subject.object == tuple.resource
        && tuple.subject.relation.as_deref() == Some(tuple.relation.as_str())
    {
        return Some("cannot write a tuple that is implicit".to_string());
    }
    let Some(def) = schema.definition_named(&tuple.resource.object_type) else {
        return Some(format!(
            "type '{}' not found",
            decode_name(&tuple.resource.object_type)
        ));
    };
    let Some(relation) = def.stored_relation(&tuple.relation) else {
        return Some(if def.relation_named(&tuple.relation).is_some() {
            format!(
                "relation '{}#{}' does not allow direct relationships",
                key.object, key.relation
            )
        } else {
            format!(
                "relation '{}#{}' not found",
                decode_name(&def.name),
                key.relation
            )
        });
    };
    if let Some(c) = &tuple.caveat {
        if schema.caveat_id(&c.name).is_none() {
            return Some(format!("condition '{}' is undefined", decode_name(&c.name)));
        }
    }
    if model_allows(schema, relation.allowed(), tuple) {
        None
    } else {
        Some(format!(
            "type '{}' is not an allowed type restriction for '{}#{}'",
            key.user,
            decode_name(&def.name),
            key.relation
        ))
    }
}

/// Validates a question (and its contextual tuples) as OpenFGA validates a
/// Check's input, without evaluating it: what WriteAssertions checks
/// before it stores an assertion.
///
/// # Errors
/// 2000 for a malformed or unknown object, relation or user; 2027 for an
/// invalid contextual tuple or too many of them.
pub fn validate_question(
    schema: &Schema,
    key: &FgaTupleKey,
    contextual_tuples: &[FgaTupleKey],
    limits: &FgaLimits,
) -> Result<(), FgaError> {
    let resource = object(schema, &key.object).map_err(Bad::validation)?;
    relation_name(schema, &resource.object_type, &key.relation).map_err(Bad::validation)?;
    user(schema, &key.user).map_err(Bad::validation)?;
    contextual(schema, contextual_tuples, limits).map(|_| ())
}

/// The validated contextual tuples, as storage tuples.
fn contextual(
    schema: &Schema,
    keys: &[FgaTupleKey],
    limits: &FgaLimits,
) -> Result<Vec<Tuple>, FgaError> {
    if keys.len() > limits.max_contextual_tuples {
        return Err(FgaError::new(
            FgaCode::Validation,
            format!(
                "invalid 'contextual_tuples': {} tuples, at most {} allowed",
                keys.len(),
                limits.max_contextual_tuples
            ),
        ));
    }
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let invalid = |reason: String| {
            FgaError::new(
                FgaCode::InvalidTuple,
                format!(
                    "Invalid tuple '{}#{}@{}'. Reason: {reason}",
                    k.object, k.relation, k.user
                ),
            )
        };
        let t = to_tuple(schema, k).map_err(|e| invalid(e.message))?;
        if let Some(reason) = model_rejects(schema, &t) {
            return Err(invalid(reason));
        }
        out.push(t);
    }
    Ok(out)
}

/// A three-valued outcome as OpenFGA's two-valued answer: CONDITIONAL
/// (a condition missing parameters) is error 2000.
fn two_valued(outcome: &Outcome) -> Result<bool, FgaError> {
    match outcome {
        Outcome::Allowed => Ok(true),
        Outcome::Denied => Ok(false),
        Outcome::Conditional { missing } => Err(FgaError::new(
            FgaCode::Validation,
            format!(
                "failed to evaluate relationship condition: tuple(s) not evaluated: missing context parameters {}",
                missing.iter().map(|m| format!("'{m}'")).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

impl Engine {
    /// Runs `f` with the reader and engine a request with `extra`
    /// contextual tuples must use.
    fn with_overlay<T>(
        &self,
        reader: &dyn TupleReader,
        extra: Vec<Tuple>,
        f: impl FnOnce(&Engine, &dyn TupleReader) -> Result<T, FgaError>,
    ) -> Result<T, FgaError> {
        if extra.is_empty() {
            return f(self, reader);
        }
        let overlay = OverlayReader::new(reader, extra);
        f(&self.isolated(), &overlay)
    }

    /// OpenFGA Check: does `key.user` have `key.relation` on `key.object`?
    ///
    /// # Errors
    /// 2000 for invalid input or a condition missing parameters, 2027 for
    /// an invalid contextual tuple, 2002 when too deep.
    pub fn fga_check(
        &self,
        reader: &dyn TupleReader,
        key: &FgaTupleKey,
        contextual_tuples: &[FgaTupleKey],
        context: &Map<String, Value>,
        limits: &FgaLimits,
    ) -> Result<bool, FgaError> {
        let schema = self.schema.clone();
        let resource = object(&schema, &key.object).map_err(Bad::validation)?;
        let relation = relation_name(&schema, &resource.object_type, &key.relation)
            .map_err(Bad::validation)?;
        let subject = user(&schema, &key.user).map_err(Bad::validation)?;
        let extra = contextual(&schema, contextual_tuples, limits)?;
        let request = CheckRequest {
            resource,
            permission: relation,
            subject,
            context: context.clone(),
            now: Timestamp::now(),
            trace: false,
        };
        self.with_overlay(reader, extra, |engine, reader| {
            let response = engine.check(reader, &request).map_err(engine_error)?;
            two_valued(&response.outcome)
        })
    }

    /// OpenFGA BatchCheck: each item answered as [`Engine::fga_check`].
    pub fn fga_batch_check(
        &self,
        reader: &dyn TupleReader,
        checks: &[FgaCheck],
        limits: &FgaLimits,
    ) -> Vec<Result<bool, FgaError>> {
        checks
            .iter()
            .map(|c| {
                self.fga_check(
                    reader,
                    &c.tuple_key,
                    &c.contextual_tuples,
                    &c.context,
                    limits,
                )
            })
            .collect()
    }

    /// OpenFGA Expand of `object#relation` (names in the tree are storage
    /// names: decode them with `schema::openfga::names`).
    ///
    /// # Errors
    /// As [`Engine::fga_check`].
    pub fn fga_expand(
        &self,
        reader: &dyn TupleReader,
        object_text: &str,
        relation: &str,
        contextual_tuples: &[FgaTupleKey],
        limits: &FgaLimits,
    ) -> Result<ExpandNode, FgaError> {
        let schema = self.schema.clone();
        let resource = object(&schema, object_text).map_err(Bad::validation)?;
        let relation =
            relation_name(&schema, &resource.object_type, relation).map_err(Bad::validation)?;
        let extra = contextual(&schema, contextual_tuples, limits)?;
        self.with_overlay(reader, extra, |engine, reader| {
            engine
                .expand(reader, &resource, &relation, Timestamp::now())
                .map_err(engine_error)
        })
    }

    /// OpenFGA ListObjects: the objects (`type:id`) of `object_type` on
    /// which `user` has `relation`, each agreeing with Check. An object
    /// whose answer depends on missing condition parameters is error 2000.
    ///
    /// # Errors
    /// 2021 / 2022 for an unknown type / relation, 2000 for an invalid
    /// user, 2027 for an invalid contextual tuple, 2002 when too deep.
    #[expect(
        clippy::too_many_arguments,
        reason = "the request's fields, as OpenFGA's ListObjectsRequest has them"
    )]
    pub fn fga_list_objects(
        &self,
        reader: &dyn TupleReader,
        object_type: &str,
        relation: &str,
        user_text: &str,
        contextual_tuples: &[FgaTupleKey],
        context: &Map<String, Value>,
        limits: &FgaLimits,
    ) -> Result<Vec<String>, FgaError> {
        let mut objects = Vec::new();
        let query = FgaListObjects {
            object_type,
            relation,
            user: user_text,
            contextual_tuples,
            context,
        };
        self.fga_list_objects_each(reader, &query, limits, None, &mut |o| {
            objects.push(o);
            true
        })?;
        Ok(objects)
    }

    /// OpenFGA ListObjects as it finds them: each object is handed to
    /// `emit` as soon as it is decided (StreamedListObjects sends it then),
    /// until `emit` answers false, `limits.max_results` objects were
    /// emitted (0 = no cap) or `deadline` passes (OpenFGA's
    /// `listObjectsDeadline`: the answer so far stands, partial). Says why
    /// it stopped.
    ///
    /// # Errors
    /// As [`Engine::fga_list_objects`]; objects emitted before an error
    /// stay emitted.
    pub fn fga_list_objects_each(
        &self,
        reader: &dyn TupleReader,
        query: &FgaListObjects<'_>,
        limits: &FgaLimits,
        deadline: Option<std::time::Instant>,
        emit: &mut dyn FnMut(String) -> bool,
    ) -> Result<ListEnd, FgaError> {
        let schema = self.schema.clone();
        let ty = type_name(&schema, query.object_type).map_err(Bad::target)?;
        let rel = relation_name(&schema, &ty, query.relation).map_err(Bad::target)?;
        let subject = user(&schema, query.user).map_err(Bad::validation)?;
        let extra = contextual(&schema, query.contextual_tuples, limits)?;
        let cap = if limits.max_results == 0 {
            usize::MAX
        } else {
            limits.max_results
        };
        self.with_overlay(reader, extra, |engine, reader| {
            let (ty_id, rel_id) =
                super::check::resolve(&engine.schema, &ty, &rel).map_err(engine_error)?;
            // Candidates by a reverse walk from the user (a superset),
            // each then decided by the check walker: as lookups do, so
            // ListObjects agrees with Check.
            let candidates = super::reachability::candidate_resources(
                &engine.schema,
                reader,
                &subject,
                ty_id,
                rel_id,
            )
            .map_err(engine_error)?;
            let mut walker = super::check::Walker::new(
                engine,
                reader,
                &subject,
                query.context,
                Timestamp::now(),
            )
            .map_err(engine_error)?;
            let mut emitted = 0usize;
            for id in &candidates {
                if emitted >= cap {
                    return Ok(ListEnd::MaxResults);
                }
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    return Ok(ListEnd::Deadline);
                }
                let outcome = walker
                    .check_ids(ty_id, rel_id, &[id.as_str()])
                    .map_err(engine_error)?;
                // As OpenFGA: an object whose answer needs missing
                // condition parameters fails the request (2000).
                if two_valued(&outcome)? {
                    emitted += 1;
                    if !emit(format!("{}:{}", query.object_type, decode_id(id))) {
                        return Ok(ListEnd::Stopped);
                    }
                }
            }
            Ok(ListEnd::Complete)
        })
    }

    /// OpenFGA ListUsers: the users of `filter_type` (usersets with
    /// `filter_relation`) that have `relation` on `object_text`; a
    /// wildcard is reported as `type:*` (without exclusions, as OpenFGA).
    ///
    /// # Errors
    /// 2021 / 2022 for an unknown type / relation (object or filter), 2027
    /// for an invalid contextual tuple, 2002 when too deep.
    #[expect(
        clippy::too_many_arguments,
        reason = "the request's fields, as OpenFGA's ListUsersRequest has them"
    )]
    pub fn fga_list_users(
        &self,
        reader: &dyn TupleReader,
        object_text: &str,
        relation: &str,
        filter_type: &str,
        filter_relation: Option<&str>,
        contextual_tuples: &[FgaTupleKey],
        context: &Map<String, Value>,
        limits: &FgaLimits,
    ) -> Result<Vec<FgaUser>, FgaError> {
        let schema = self.schema.clone();
        let (ot, oid) = object_text
            .split_once(':')
            .filter(|(t, id)| !t.is_empty() && !id.is_empty())
            .ok_or_else(|| {
                FgaError::new(
                    FgaCode::Validation,
                    format!("invalid 'object' field format: `{object_text}`"),
                )
            })?;
        let ty = type_name(&schema, ot).map_err(Bad::target)?;
        let resource = ObjectRef::new(ty.clone(), enc_id(oid).map_err(Bad::validation)?);
        let rel = relation_name(&schema, &ty, relation).map_err(Bad::target)?;
        let fty = type_name(&schema, filter_type).map_err(Bad::target)?;
        let frel = match filter_relation.filter(|r| !r.is_empty()) {
            Some(r) => Some(relation_name(&schema, &fty, r).map_err(Bad::target)?),
            None => None,
        };
        let extra = contextual(&schema, contextual_tuples, limits)?;
        self.with_overlay(reader, extra, |engine, reader| {
            // ListUsers explores every branch: a condition missing
            // parameters anywhere is error 2000 (Check short-circuits).
            let engine = Engine {
                strict_conditions: true,
                ..engine.clone()
            };
            let found = engine
                .lookup_subjects(
                    reader,
                    &resource,
                    &rel,
                    &fty,
                    frel.as_deref(),
                    context,
                    Timestamp::now(),
                )
                .map_err(engine_error)?;
            for s in &found {
                two_valued(&s.outcome)?;
            }
            let mut users: Vec<FgaUser> = found
                .into_iter()
                .filter(|s| s.outcome.is_allowed())
                .map(|s| match (&s.id, filter_relation) {
                    (id, None) if id == WILDCARD => FgaUser::Wildcard {
                        object_type: filter_type.to_string(),
                    },
                    (id, Some(r)) if !r.is_empty() => FgaUser::Userset {
                        object_type: filter_type.to_string(),
                        id: decode_id(id),
                        relation: r.to_string(),
                    },
                    (id, _) => FgaUser::Object {
                        object_type: filter_type.to_string(),
                        id: decode_id(id),
                    },
                })
                .collect();
            if limits.max_results > 0 {
                users.truncate(limits.max_results);
            }
            Ok(users)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use verdict_storage::{MemStore, Op, RelationStore, Revision, Tenant, WriteBatch};

    use super::*;
    use crate::engine::{DecisionCache, EngineConfig};
    use crate::schema::openfga::compile_openfga_model;

    /// user; group member: [user]; doc viewer: [user, user:*, group#member]
    /// or editor; editor: [user] but not blocked; blocked: [user];
    /// secret: [user with is_ok]; loop_a: loop_b; loop_b: loop_a.
    const MODEL: &str = r#"{"schema_version":"1.1","type_definitions":[
      {"type":"user"},
      {"type":"group","relations":{"member":{"this":{}}},
       "metadata":{"relations":{"member":{"directly_related_user_types":[{"type":"user"}]}}}},
      {"type":"doc","relations":{
        "viewer":{"union":{"child":[{"this":{}},{"computedUserset":{"relation":"editor"}}]}},
        "editor":{"difference":{"base":{"this":{}},"subtract":{"computedUserset":{"relation":"blocked"}}}},
        "blocked":{"this":{}},
        "secret":{"this":{}},
        "loop_a":{"computedUserset":{"relation":"loop_b"}},
        "loop_b":{"computedUserset":{"relation":"loop_a"}}},
       "metadata":{"relations":{
        "viewer":{"directly_related_user_types":[{"type":"user"},{"type":"user","wildcard":{}},{"type":"group","relation":"member"}]},
        "editor":{"directly_related_user_types":[{"type":"user"}]},
        "blocked":{"directly_related_user_types":[{"type":"user"}]},
        "secret":{"directly_related_user_types":[{"type":"user","condition":"is_ok"}]}}}}],
      "conditions":{"is_ok":{"name":"is_ok","expression":"x < 10",
        "parameters":{"x":{"type_name":"TYPE_NAME_INT"}}}}}"#;

    fn setup(tuples: &[&str]) -> (Engine, MemStore) {
        let model = verdict_fga_lang::model::AuthorizationModel::from_json(MODEL).unwrap();
        let schema = Arc::new(compile_openfga_model(&model).unwrap());
        let engine = Engine::new(schema, EngineConfig::default())
            .unwrap()
            .with_cache(Arc::new(DecisionCache::new(1 << 20)));
        let store = MemStore::new();
        let ops = tuples
            .iter()
            .map(|t| Op::Touch(Tuple::parse(t).unwrap()))
            .collect();
        store
            .apply(
                &Tenant::default_tenant(),
                Revision(1),
                &WriteBatch {
                    ops,
                    preconditions: Vec::new(),
                },
            )
            .unwrap();
        (engine, store)
    }

    fn check(e: &Engine, s: &MemStore, user: &str, rel: &str, obj: &str) -> Result<bool, FgaError> {
        check_with(e, s, user, rel, obj, &[], &Map::new())
    }

    fn check_with(
        e: &Engine,
        s: &MemStore,
        user: &str,
        rel: &str,
        obj: &str,
        ctx: &[FgaTupleKey],
        context: &Map<String, Value>,
    ) -> Result<bool, FgaError> {
        let r = s.snapshot(&Tenant::default_tenant(), Revision(1)).unwrap();
        e.fga_check(
            &r,
            &FgaTupleKey::new(user, rel, obj),
            ctx,
            context,
            &FgaLimits::default(),
        )
    }

    #[test]
    fn a_define_reads_its_own_tuples_and_its_operands() {
        let (e, s) = setup(&[
            "doc:1#viewer@user:anne",
            "doc:1#editor@user:bob",
            "doc:1#editor@user:carl",
            "doc:1#blocked@user:carl",
            "doc:2#viewer@group:eng#member",
            "group:eng#member@user:dan",
        ]);
        assert_eq!(check(&e, &s, "user:anne", "viewer", "doc:1"), Ok(true));
        assert_eq!(check(&e, &s, "user:bob", "viewer", "doc:1"), Ok(true));
        assert_eq!(check(&e, &s, "user:carl", "viewer", "doc:1"), Ok(false));
        assert_eq!(check(&e, &s, "user:anne", "editor", "doc:1"), Ok(false));
        assert_eq!(check(&e, &s, "user:dan", "viewer", "doc:2"), Ok(true));
        assert_eq!(
            check(&e, &s, "group:eng#member", "viewer", "doc:2"),
            Ok(true)
        );
        let r = s.snapshot(&Tenant::default_tenant(), Revision(1)).unwrap();
        let limits = FgaLimits::default();
        let mut objects = e
            .fga_list_objects(&r, "doc", "viewer", "user:bob", &[], &Map::new(), &limits)
            .unwrap();
        objects.sort();
        assert_eq!(objects, vec!["doc:1".to_string()]);
        let users = e
            .fga_list_users(
                &r,
                "doc:1",
                "viewer",
                "user",
                None,
                &[],
                &Map::new(),
                &limits,
            )
            .unwrap();
        let mut users: Vec<String> = users.iter().map(FgaUser::to_string).collect();
        users.sort();
        assert_eq!(users, vec!["user:anne".to_string(), "user:bob".to_string()]);
    }

    #[test]
    fn stored_tuples_the_model_does_not_allow_are_ignored() {
        // `editor` allows `user` only; a wildcard and a group userset
        // stored under it (written under an older model) count for nothing.
        let (e, s) = setup(&[
            "doc:1#editor@user:*",
            "doc:1#editor@group:eng#member",
            "group:eng#member@user:dan",
            "doc:1#secret@user:anne",
        ]);
        assert_eq!(check(&e, &s, "user:zed", "editor", "doc:1"), Ok(false));
        assert_eq!(check(&e, &s, "user:dan", "editor", "doc:1"), Ok(false));
        // `secret` allows only `user with ok`: a tuple without the
        // condition is ignored.
        assert_eq!(check(&e, &s, "user:anne", "secret", "doc:1"), Ok(false));
    }

    #[test]
    fn missing_condition_parameters_are_error_2000_and_cycles_are_false() {
        let (e, s) = setup(&["doc:1#secret@user:anne[is_ok]"]);
        let err = check(&e, &s, "user:anne", "secret", "doc:1").unwrap_err();
        assert_eq!(err.code, FgaCode::Validation);
        let mut context = Map::new();
        context.insert("x".into(), json!(3));
        assert_eq!(
            check_with(&e, &s, "user:anne", "secret", "doc:1", &[], &context),
            Ok(true)
        );
        context.insert("x".into(), json!(30));
        assert_eq!(
            check_with(&e, &s, "user:anne", "secret", "doc:1", &[], &context),
            Ok(false)
        );
        assert_eq!(check(&e, &s, "user:anne", "loop_a", "doc:1"), Ok(false));
    }

    #[test]
    fn contextual_tuples_overlay_one_request_and_bypass_the_cache() {
        let (e, s) = setup(&[]);
        assert_eq!(check(&e, &s, "user:anne", "viewer", "doc:1"), Ok(false));
        let ctx = [FgaTupleKey::new("user:anne", "viewer", "doc:1")];
        assert_eq!(
            check_with(&e, &s, "user:anne", "viewer", "doc:1", &ctx, &Map::new()),
            Ok(true)
        );
        // Neither the cached DENIED nor the contextual ALLOWED leaked.
        assert_eq!(check(&e, &s, "user:anne", "viewer", "doc:1"), Ok(false));
        // Invalid contextual tuples are 2027; too many are refused.
        let bad = [FgaTupleKey::new("user:anne", "nope", "doc:1")];
        let err = check_with(&e, &s, "user:anne", "viewer", "doc:1", &bad, &Map::new());
        assert_eq!(err.unwrap_err().code, FgaCode::InvalidTuple);
        let many: Vec<FgaTupleKey> = (0..101)
            .map(|i| FgaTupleKey::new(format!("user:u{i}"), "viewer", "doc:1"))
            .collect();
        let err = check_with(&e, &s, "user:anne", "viewer", "doc:1", &many, &Map::new());
        assert_eq!(err.unwrap_err().code, FgaCode::Validation);
    }

    #[test]
    fn error_codes_follow_openfga() {
        let (e, s) = setup(&[]);
        let r = s.snapshot(&Tenant::default_tenant(), Revision(1)).unwrap();
        let limits = FgaLimits::default();
        let none = Map::new();
        assert_eq!(
            check(&e, &s, "user:anne", "nope", "doc:1")
                .unwrap_err()
                .code,
            FgaCode::Validation
        );
        let lo = |t: &str, rel: &str, u: &str| {
            e.fga_list_objects(&r, t, rel, u, &[], &none, &limits)
                .unwrap_err()
                .code
        };
        assert_eq!(lo("doc", "nope", "user:anne"), FgaCode::RelationNotFound);
        assert_eq!(lo("folder", "viewer", "user:anne"), FgaCode::TypeNotFound);
        assert_eq!(lo("doc", "viewer", "folder:x#member"), FgaCode::Validation);
    }

    #[test]
    fn tuples_round_trip_through_storage_names() {
        let model = verdict_fga_lang::model::AuthorizationModel::from_json(MODEL).unwrap();
        let schema = compile_openfga_model(&model).unwrap();
        let key = FgaTupleKey::new("user:Anne Smith", "viewer", "doc:a=b");
        let t = to_tuple(&schema, &key).unwrap();
        assert!(t.validate().is_ok(), "{t}");
        assert_eq!(from_tuple(&t), key);
        assert_eq!(model_rejects(&schema, &t), None);
    }
}
