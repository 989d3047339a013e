//! The compiler: resolves a parsed [`SchemaFile`] into the [`Schema`] IR and
//! type-checks it, collecting every error and warning at once.
//!
//! ```text
//! SchemaFile ─▶ inline partials ─▶ register names ─▶ resolve relations
//!            ─▶ resolve permissions (arrows, wildcards) ─▶ cycle check
//!            ─▶ caveat type check ─▶ warnings ─▶ Schema
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::ast::{self, Expr, Item, Member, SubjectKind};
use super::cel_check::{check_caveat_expression, CaveatType};
use super::diagnostic::{suggest, Diagnostic, Span};
use super::ir::*;
use super::limits::SchemaLimits;
use super::parser::RESERVED_WORDS;

/// Compiles a parsed schema. Returns the schema and its warnings, or every
/// diagnostic (errors first) when there is at least one error.
pub fn compile_ast(
    file: &ast::SchemaFile,
    limits: &SchemaLimits,
) -> Result<(Schema, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut c = Compiler {
        diagnostics: Vec::new(),
        limits,
    };
    let schema = c.compile(file);
    let mut diagnostics = c.diagnostics;
    diagnostics.sort_by_key(|d| (std::cmp::Reverse(d.severity), d.span.start));
    if diagnostics.iter().any(Diagnostic::is_error) {
        Err(diagnostics)
    } else {
        Ok((schema, diagnostics))
    }
}

struct Compiler<'l> {
    diagnostics: Vec<Diagnostic>,
    limits: &'l SchemaLimits,
}

/// A definition's members after partials are inlined.
struct FlatDefinition<'a> {
    def: &'a ast::Definition,
    relations: Vec<&'a ast::RelationDef>,
    permissions: Vec<&'a ast::PermissionDef>,
    /// Every member in order (relations and permissions).
    order: Vec<FlatMember<'a>>,
}

#[derive(Clone, Copy)]
enum FlatMember<'a> {
    Relation(&'a ast::RelationDef),
    Permission(&'a ast::PermissionDef),
}

impl FlatMember<'_> {
    fn name(&self) -> &ast::Name {
        match self {
            FlatMember::Relation(r) => &r.name,
            FlatMember::Permission(p) => &p.name,
        }
    }
}

/// The kind of relation `name` of definition `index`, for the passes that
/// fill it in (`None` if pass 2 did not register it).
fn relation_kind_mut<'s>(
    schema: &'s mut Schema,
    index: usize,
    name: &str,
) -> Option<&'s mut RelationKind> {
    let def = schema.definitions.get_mut(index)?;
    let id = def.relation_id(name)?;
    def.relations.get_mut(id.0 as usize).map(|r| &mut r.kind)
}

fn is_valid_identifier(name: &str) -> bool {
    // SpiceDB: ^[a-z][a-z0-9_]{1,62}[a-z0-9]$
    let bytes = name.as_bytes();
    (3..=64).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && !name.ends_with('_')
}

fn is_valid_path(name: &str) -> bool {
    // SpiceDB: ^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$
    let mut segments: Vec<&str> = name.split('/').collect();
    let Some(last) = segments.pop() else {
        return false;
    };
    is_valid_identifier(last)
        && segments
            .iter()
            .all(|s| s.len() <= 63 && is_valid_identifier(s))
}

impl<'l> Compiler<'l> {
    fn error(&mut self, code: &'static str, span: Span, message: String, hint: Option<String>) {
        let mut d = Diagnostic::error(code, span, message);
        d.hint = hint;
        self.diagnostics.push(d);
    }

    fn warn(&mut self, code: &'static str, span: Span, message: String, hint: &str) {
        self.diagnostics
            .push(Diagnostic::warning(code, span, message).with_hint(hint));
    }

    fn compile(&mut self, file: &ast::SchemaFile) -> Schema {
        let use_flags: BTreeSet<String> = file
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Use(name) => Some(name.text.clone()),
                _ => None,
            })
            .collect();
        for item in &file.items {
            if let Item::Import { span, path } = item {
                self.error(
                    "SCHEMA:UnresolvedImport",
                    *span,
                    format!("import `{path}` was not resolved"),
                    Some("imports are resolved when checking files from disk (`verdict schema check FILE`); send the combined schema to the server".into()),
                );
            }
        }
        let partials = self.collect_partials(file);
        let definitions: Vec<&ast::Definition> = file
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Definition(d) => Some(d),
                _ => None,
            })
            .collect();
        let caveats: Vec<&ast::CaveatDef> = file
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Caveat(c) => Some(c),
                _ => None,
            })
            .collect();

        // Pass 1: register type and caveat names.
        let mut schema = Schema {
            use_flags,
            ..Schema::default()
        };
        let mut seen_names: HashMap<&str, Span> = HashMap::new();
        let mut flat = Vec::new();
        for def in &definitions {
            if !self.check_top_level_name(&def.name, "definition", &mut seen_names) {
                continue;
            }
            let id = TypeId(schema.definitions.len() as u32);
            let name: Arc<str> = Arc::from(def.name.text.as_str());
            schema.type_ids.insert(name.clone(), id);
            schema.definitions.push(Definition {
                id,
                name,
                doc: def.doc.clone(),
                relations: Vec::new(),
                relation_ids: HashMap::new(),
                stored_ids: HashMap::new(),
            });
            flat.push(self.flatten(def, &partials));
        }
        let mut caveat_asts = Vec::new();
        for caveat in &caveats {
            if !self.check_top_level_name(&caveat.name, "caveat", &mut seen_names) {
                continue;
            }
            let id = CaveatId(schema.caveats.len() as u32);
            let name: Arc<str> = Arc::from(caveat.name.text.as_str());
            schema.caveat_ids.insert(name.clone(), id);
            let params = self.caveat_params(caveat);
            schema.caveats.push(Caveat {
                id,
                name,
                doc: caveat.doc.clone(),
                params,
                expression: caveat.expression.clone(),
            });
            caveat_asts.push(*caveat);
        }

        // Pass 2: register relation and permission names per definition
        // (`flat` and `schema.definitions` were pushed in step by pass 1).
        for (f, def) in flat.iter().zip(schema.definitions.iter_mut()) {
            let mut seen: HashMap<&str, (Span, bool)> = HashMap::new();
            let mut relations = Vec::new();
            let mut relation_ids = HashMap::new();
            if f.order.len() > self.limits.max_relations_per_definition {
                self.error(
                    "SCHEMA:TooManyRelations",
                    f.def.name.span,
                    format!(
                        "definition `{}` has {} relations and permissions, more than the limit of {}",
                        f.def.name.text,
                        f.order.len(),
                        self.limits.max_relations_per_definition
                    ),
                    None,
                );
            }
            for member in &f.order {
                let name = member.name();
                let is_permission = matches!(member, FlatMember::Permission(_));
                let what = if is_permission {
                    "permission"
                } else {
                    "relation"
                };
                if !is_valid_identifier(&name.text) {
                    self.error(
                        "SCHEMA:InvalidName",
                        name.span,
                        format!("{what} name `{}` is invalid", name.text),
                        Some("names are 3–64 characters of `a-z`, `0-9` and `_`, starting with a letter and not ending with `_`".into()),
                    );
                }
                if let Some((first, first_is_permission)) = seen.get(name.text.as_str()) {
                    let message = if *first_is_permission != is_permission {
                        format!(
                            "`{}` is defined as both a relation and a permission in `{}`",
                            name.text, f.def.name.text
                        )
                    } else {
                        format!(
                            "duplicate {what} `{}` in definition `{}`",
                            name.text, f.def.name.text
                        )
                    };
                    let _ = first;
                    self.error(
                        "SCHEMA:DuplicateRelation",
                        name.span,
                        message,
                        Some("relations and permissions share one namespace per definition; rename one".into()),
                    );
                    continue;
                }
                seen.insert(&name.text, (name.span, is_permission));
                let id = RelationId(relations.len() as u32);
                let rel_name: Arc<str> = Arc::from(name.text.as_str());
                relation_ids.insert(rel_name.clone(), id);
                relations.push(Relation {
                    id,
                    name: rel_name,
                    doc: match member {
                        FlatMember::Relation(r) => r.doc.clone(),
                        FlatMember::Permission(p) => p.doc.clone(),
                    },
                    kind: if is_permission {
                        RelationKind::Permission {
                            rewrite: Rewrite::Nil,
                        }
                    } else {
                        RelationKind::Relation {
                            allowed: Vec::new(),
                        }
                    },
                });
            }
            def.relations = relations;
            def.relation_ids = relation_ids;
        }

        // Pass 3: resolve allowed subject types of relations.
        for (index, f) in flat.iter().enumerate() {
            for relation in &f.relations {
                let allowed = self.resolve_allowed(&schema, f, relation);
                if let Some(RelationKind::Relation { allowed: slot }) =
                    relation_kind_mut(&mut schema, index, &relation.name.text)
                {
                    *slot = allowed;
                }
            }
        }

        // Pass 4: transitive wildcards through usersets.
        for f in &flat {
            for relation in &f.relations {
                self.check_transitive_wildcards(&schema, f, relation);
            }
        }

        // Pass 5: permissions.
        for (index, f) in flat.iter().enumerate() {
            for permission in &f.permissions {
                let rewrite = self.resolve_expr(&schema, f, permission, &permission.expr);
                if let Some(RelationKind::Permission { rewrite: slot }) =
                    relation_kind_mut(&mut schema, index, &permission.name.text)
                {
                    *slot = rewrite;
                }
                for annotated in &permission.annotation {
                    if schema.type_id(&annotated.text).is_none() {
                        self.unknown_definition(&schema, annotated);
                    }
                }
            }
        }

        // Pass 6: permissions that compute themselves without a relation.
        if !self.diagnostics.iter().any(Diagnostic::is_error) {
            self.check_cycles(&schema, &flat);
        }

        // Pass 7: caveat expressions.
        for (caveat, ast) in schema.caveats.iter().zip(&caveat_asts) {
            if caveat.params.len() != ast.params.len() {
                continue; // a parameter type was already reported
            }
            if let Err(errors) =
                check_caveat_expression(&caveat.expression, &caveat.params_for_check())
            {
                for e in errors {
                    let span = match e.offset {
                        Some(offset) => {
                            let start =
                                (ast.expression_span.start + offset).min(ast.expression_span.end);
                            Span::new(start, start + 1)
                        }
                        None => ast.expression_span,
                    };
                    self.error(
                        "SCHEMA:CaveatType",
                        span,
                        format!("in caveat `{}`: {}", caveat.name, e.message),
                        Some("caveat expressions are CEL over the declared parameters and must yield `bool`".into()),
                    );
                }
            }
        }

        self.warnings(&schema, &flat, &caveat_asts);
        schema
    }

    fn check_top_level_name<'a>(
        &mut self,
        name: &'a ast::Name,
        what: &str,
        seen: &mut HashMap<&'a str, Span>,
    ) -> bool {
        if !is_valid_path(&name.text) {
            self.error(
                "SCHEMA:InvalidName",
                name.span,
                format!("{what} name `{}` is invalid", name.text),
                Some("names are 3–64 characters of `a-z`, `0-9` and `_`, starting with a letter, optionally prefixed by `prefix/`".into()),
            );
        }
        if RESERVED_WORDS.contains(&name.text.as_str()) {
            self.error(
                "SCHEMA:ReservedWord",
                name.span,
                format!("`{}` is a reserved word", name.text),
                None,
            );
        }
        if seen.contains_key(name.text.as_str()) {
            self.error(
                "SCHEMA:DuplicateDefinition",
                name.span,
                format!("`{}` is defined more than once", name.text),
                Some("definitions and caveats share one namespace; rename or remove one".into()),
            );
            return false;
        }
        seen.insert(&name.text, name.span);
        true
    }

    fn collect_partials<'a>(
        &mut self,
        file: &'a ast::SchemaFile,
    ) -> HashMap<&'a str, &'a ast::Definition> {
        let mut partials = HashMap::new();
        for item in &file.items {
            if let Item::Partial(p) = item {
                if partials.insert(p.name.text.as_str(), p).is_some() {
                    self.error(
                        "SCHEMA:DuplicateDefinition",
                        p.name.span,
                        format!("partial `{}` is defined more than once", p.name.text),
                        None,
                    );
                }
            }
        }
        partials
    }

    fn flatten<'a>(
        &mut self,
        def: &'a ast::Definition,
        partials: &HashMap<&'a str, &'a ast::Definition>,
    ) -> FlatDefinition<'a> {
        let mut flat = FlatDefinition {
            def,
            relations: Vec::new(),
            permissions: Vec::new(),
            order: Vec::new(),
        };
        let mut stack = Vec::new();
        self.flatten_members(&def.members, partials, &mut flat, &mut stack);
        flat
    }

    fn flatten_members<'a>(
        &mut self,
        members: &'a [Member],
        partials: &HashMap<&'a str, &'a ast::Definition>,
        flat: &mut FlatDefinition<'a>,
        stack: &mut Vec<&'a str>,
    ) {
        for member in members {
            match member {
                Member::Relation(r) => {
                    flat.relations.push(r);
                    flat.order.push(FlatMember::Relation(r));
                }
                Member::Permission(p) => {
                    flat.permissions.push(p);
                    flat.order.push(FlatMember::Permission(p));
                }
                Member::PartialRef(name) => match partials.get(name.text.as_str()) {
                    None => self.error(
                        "SCHEMA:UnknownPartial",
                        name.span,
                        format!("partial `{}` not found", name.text),
                        None,
                    ),
                    Some(_) if stack.contains(&name.text.as_str()) => self.error(
                        "SCHEMA:PartialCycle",
                        name.span,
                        format!("partial `{}` includes itself", name.text),
                        None,
                    ),
                    Some(p) => {
                        stack.push(&name.text);
                        self.flatten_members(&p.members, partials, flat, stack);
                        stack.pop();
                    }
                },
            }
        }
    }

    fn caveat_params(&mut self, caveat: &ast::CaveatDef) -> Vec<(Arc<str>, CaveatType)> {
        let mut params = Vec::new();
        let mut seen = HashSet::new();
        for p in &caveat.params {
            if !seen.insert(p.name.text.as_str()) {
                self.error(
                    "SCHEMA:DuplicateParameter",
                    p.name.span,
                    format!(
                        "duplicate parameter `{}` in caveat `{}`",
                        p.name.text, caveat.name.text
                    ),
                    None,
                );
                continue;
            }
            match CaveatType::parse(&p.type_text) {
                Some(t) => params.push((Arc::from(p.name.text.as_str()), t)),
                None => self.error(
                    "SCHEMA:UnknownCaveatType",
                    p.type_span,
                    format!("unknown caveat parameter type `{}`", p.type_text),
                    Some("types are int, uint, double, bool, string, bytes, duration, timestamp, list<T>, map<T>, ipaddress and any".into()),
                ),
            }
        }
        params
    }

    fn unknown_definition(&mut self, schema: &Schema, name: &ast::Name) {
        let hint = suggest(&name.text, schema.type_ids.keys().map(|k| &**k))
            .map(|s| format!("did you mean `{s}`?"))
            .or_else(|| Some(format!("add `definition {} {{}}`", name.text)));
        self.error(
            "SCHEMA:UnknownDefinition",
            name.span,
            format!("definition `{}` not found", name.text),
            hint,
        );
    }

    fn resolve_allowed(
        &mut self,
        schema: &Schema,
        f: &FlatDefinition,
        relation: &ast::RelationDef,
    ) -> Vec<AllowedSubject> {
        let mut allowed = Vec::new();
        let mut seen = HashSet::new();
        for t in &relation.types {
            let Some(subject_type) = schema.type_id(&t.type_name.text) else {
                self.unknown_definition(schema, &t.type_name);
                continue;
            };
            let kind = match &t.kind {
                SubjectKind::Direct => AllowedKind::Direct,
                SubjectKind::Wildcard => AllowedKind::Wildcard,
                SubjectKind::Relation(rel) => {
                    let target = schema.definition(subject_type);
                    match target.relation_id(&rel.text) {
                        Some(id) => AllowedKind::Userset(id),
                        None => {
                            let hint = suggest(&rel.text, target.relation_ids.keys().map(|k| &**k))
                                .map(|s| format!("did you mean `{}#{s}`?", t.type_name.text));
                            self.error(
                                "SCHEMA:UnknownRelation",
                                rel.span,
                                format!(
                                    "relation or permission `{}` not found under definition `{}`",
                                    rel.text, t.type_name.text
                                ),
                                hint,
                            );
                            continue;
                        }
                    }
                }
            };
            let caveat = match &t.caveat {
                None => None,
                Some(name) => match schema.caveat_id(&name.text) {
                    Some(id) => Some(id),
                    None => {
                        let hint = if name.text == "expiration" {
                            Some("to make the relationship expire, add `use expiration` at the top of the schema".to_string())
                        } else {
                            suggest(&name.text, schema.caveat_ids.keys().map(|k| &**k))
                                .map(|s| format!("did you mean `{s}`?"))
                        };
                        self.error(
                            "SCHEMA:UnknownCaveat",
                            name.span,
                            format!("caveat `{}` not found", name.text),
                            hint,
                        );
                        continue;
                    }
                },
            };
            let entry = AllowedSubject {
                subject_type,
                kind,
                caveat,
                expiration: t.expiration,
            };
            if !seen.insert(entry.clone()) {
                self.error(
                    "SCHEMA:DuplicateAllowedType",
                    t.span,
                    format!(
                        "relation `{}` in `{}` lists the same subject type twice",
                        relation.name.text, f.def.name.text
                    ),
                    Some("remove the duplicate".into()),
                );
                continue;
            }
            allowed.push(entry);
        }
        allowed
    }

    /// Finds a wildcard reachable from `relation` through userset subjects.
    fn find_wildcard(
        schema: &Schema,
        type_id: TypeId,
        relation: RelationId,
        seen: &mut HashSet<(TypeId, RelationId)>,
    ) -> Option<(TypeId, RelationId, TypeId)> {
        if !seen.insert((type_id, relation)) {
            return None;
        }
        let def = schema.definition(type_id);
        for a in def.relation(relation).allowed() {
            match a.kind {
                AllowedKind::Wildcard => return Some((type_id, relation, a.subject_type)),
                AllowedKind::Userset(r) => {
                    if let Some(found) = Self::find_wildcard(schema, a.subject_type, r, seen) {
                        return Some(found);
                    }
                }
                AllowedKind::Direct => {}
            }
        }
        None
    }

    fn check_transitive_wildcards(
        &mut self,
        schema: &Schema,
        f: &FlatDefinition,
        relation: &ast::RelationDef,
    ) {
        for t in &relation.types {
            let (SubjectKind::Relation(rel), Some(type_id)) =
                (&t.kind, schema.type_id(&t.type_name.text))
            else {
                continue;
            };
            let Some(rel_id) = schema.definition(type_id).relation_id(&rel.text) else {
                continue;
            };
            if let Some((via_type, via_rel, wildcard)) =
                Self::find_wildcard(schema, type_id, rel_id, &mut HashSet::new())
            {
                let via = schema.definition(via_type);
                self.error(
                    "SCHEMA:TransitiveWildcard",
                    t.span,
                    format!(
                        "relation `{}#{}` includes `{}#{}`, which allows the wildcard `{}:*` (via `{}#{}`); wildcards cannot be included transitively",
                        f.def.name.text,
                        relation.name.text,
                        t.type_name.text,
                        rel.text,
                        schema.definition(wildcard).name,
                        via.name,
                        via.relation(via_rel).name
                    ),
                    Some(format!("allow `{}:*` directly on this relation instead", schema.definition(wildcard).name)),
                );
            }
        }
    }

    fn resolve_expr(
        &mut self,
        schema: &Schema,
        f: &FlatDefinition,
        permission: &ast::PermissionDef,
        expr: &Expr,
    ) -> Rewrite {
        let def = match schema.type_id(&f.def.name.text) {
            Some(id) => schema.definition(id),
            None => return Rewrite::Nil,
        };
        match expr {
            Expr::Nil(_) => Rewrite::Nil,
            Expr::SelfRef(_) => Rewrite::SelfRef,
            Expr::Ref(name) => match def.relation_id(&name.text) {
                Some(id) => Rewrite::Computed(id),
                None => {
                    self.unknown_relation(def, name, &permission.name.text);
                    Rewrite::Nil
                }
            },
            Expr::Union(a, b) => {
                let mut children = Vec::new();
                for side in [a, b] {
                    match self.resolve_expr(schema, f, permission, side) {
                        Rewrite::Union(inner) => children.extend(inner),
                        other => children.push(other),
                    }
                }
                Rewrite::Union(children)
            }
            Expr::Intersection(a, b) => {
                let mut children = Vec::new();
                for side in [a, b] {
                    match self.resolve_expr(schema, f, permission, side) {
                        Rewrite::Intersection(inner) => children.extend(inner),
                        other => children.push(other),
                    }
                }
                Rewrite::Intersection(children)
            }
            Expr::Exclusion(a, b) => Rewrite::Exclusion(
                Box::new(self.resolve_expr(schema, f, permission, a)),
                Box::new(self.resolve_expr(schema, f, permission, b)),
            ),
            Expr::Arrow {
                left,
                right,
                func,
                span,
            } => self.resolve_arrow(schema, def, permission, left, right, *func, *span),
        }
    }

    fn unknown_relation(&mut self, def: &Definition, name: &ast::Name, permission: &str) {
        let hint = suggest(&name.text, def.relation_ids.keys().map(|k| &**k))
            .map(|s| format!("did you mean `{s}`?"));
        self.error(
            "SCHEMA:UnknownRelation",
            name.span,
            format!(
                "relation or permission `{}` not found under definition `{}` (in permission `{permission}`)",
                name.text, def.name
            ),
            hint,
        );
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the arrow expression's parts plus where it sits (schema, definition, permission) for the diagnostics"
    )]
    fn resolve_arrow(
        &mut self,
        schema: &Schema,
        def: &Definition,
        permission: &ast::PermissionDef,
        left: &Expr,
        right: &ast::Name,
        func: ArrowFunc,
        span: Span,
    ) -> Rewrite {
        let tupleset_name = match left {
            Expr::Ref(name) => name,
            Expr::Arrow { .. } => {
                self.error(
                    "SCHEMA:NestedArrow",
                    span,
                    "nested arrows are not supported".into(),
                    Some("add a permission on the intermediate type and arrow to it".into()),
                );
                return Rewrite::Nil;
            }
            other => {
                self.error(
                    "SCHEMA:ArrowLeftSide",
                    other.span(),
                    "the left side of an arrow must be a relation".into(),
                    None,
                );
                return Rewrite::Nil;
            }
        };
        let Some(tupleset) = def.relation_id(&tupleset_name.text) else {
            self.unknown_relation(def, tupleset_name, &permission.name.text);
            return Rewrite::Nil;
        };
        let relation = def.relation(tupleset);
        if relation.is_permission() {
            self.error(
                "SCHEMA:PermissionLeftOfArrow",
                tupleset_name.span,
                format!(
                    "under permission `{}`: permissions cannot be used on the left hand side of an arrow (found `{}`)",
                    permission.name.text, tupleset_name.text
                ),
                Some("arrows follow stored relationships: use a relation on the left".into()),
            );
            return Rewrite::Nil;
        }
        if let Some((_, _, wildcard)) =
            Self::find_wildcard(schema, def.id, tupleset, &mut HashSet::new())
        {
            self.error(
                "SCHEMA:WildcardInArrow",
                tupleset_name.span,
                format!(
                    "under permission `{}`: the arrow walks relation `{}`, which allows the wildcard `{}:*`",
                    permission.name.text,
                    tupleset_name.text,
                    schema.definition(wildcard).name
                ),
                Some("arrows cannot walk relations with wildcards; remove the wildcard or arrow through another relation".into()),
            );
            return Rewrite::Nil;
        }
        let mut resolved = Vec::new();
        let mut subject_types = Vec::new();
        for a in relation.allowed() {
            if subject_types.contains(&a.subject_type) {
                continue;
            }
            subject_types.push(a.subject_type);
            if let Some(id) = schema.definition(a.subject_type).relation_id(&right.text) {
                resolved.push((a.subject_type, id));
            }
        }
        // SpiceDB accepts an arrow to a relation that none of the
        // tupleset's subject types defines (the arrow then yields nothing:
        // `.any` grants nobody, `.all` over any relationship is false), so
        // this is a warning, not an error.
        if resolved.is_empty() && !relation.allowed().is_empty() {
            let types: Vec<String> = subject_types
                .iter()
                .map(|t| format!("`{}`", schema.definition(*t).name))
                .collect();
            self.warn(
                "SCHEMA:ArrowTargetNotFound",
                right.span,
                format!(
                    "under permission `{}`: `{}` is not a relation or permission on any subject type of `{}` ({}); the arrow grants nobody",
                    permission.name.text,
                    right.text,
                    tupleset_name.text,
                    types.join(", ")
                ),
                &format!("add `{}` to one of those definitions, or remove the arrow", right.text),
            );
        }
        Rewrite::Arrow(Arrow {
            tupleset,
            target: Arc::from(right.text.as_str()),
            func,
            resolved,
        })
    }

    /// A permission whose value depends on itself only through computed
    /// references (no relation, so no data, in between) can never be
    /// evaluated: reject it.
    fn check_cycles(&mut self, schema: &Schema, flat: &[FlatDefinition]) {
        for f in flat {
            let Some(type_id) = schema.type_id(&f.def.name.text) else {
                continue;
            };
            let def = schema.definition(type_id);
            for permission in &f.permissions {
                let Some(start) = def.relation_id(&permission.name.text) else {
                    continue;
                };
                let mut stack = vec![start];
                let mut seen = HashSet::new();
                let mut cyclic = false;
                while let Some(current) = stack.pop() {
                    if let RelationKind::Permission { rewrite } = &def.relation(current).kind {
                        let mut refs = Vec::new();
                        computed_refs(rewrite, &mut refs);
                        for r in refs {
                            if r == start {
                                cyclic = true;
                            } else if seen.insert(r) {
                                stack.push(r);
                            }
                        }
                    }
                }
                if cyclic {
                    self.error(
                        "SCHEMA:PermissionCycle",
                        permission.name.span,
                        format!(
                            "permission `{}` in `{}` refers to itself without going through a relation",
                            permission.name.text, f.def.name.text
                        ),
                        Some("no data can ever break this cycle; reference a relation or an arrow instead".into()),
                    );
                }
            }
        }
    }

    fn warnings(&mut self, schema: &Schema, flat: &[FlatDefinition], caveats: &[&ast::CaveatDef]) {
        // Unused caveats.
        let mut used = HashSet::new();
        for def in &schema.definitions {
            for rel in &def.relations {
                for a in rel.allowed() {
                    if let Some(c) = a.caveat {
                        used.insert(c);
                    }
                }
            }
        }
        for (caveat, ast) in schema.caveats.iter().zip(caveats) {
            if !used.contains(&caveat.id) {
                self.warn(
                    "SCHEMA:UnusedCaveat",
                    ast.name.span,
                    format!("caveat `{}` is not used by any relation", caveat.name),
                    "reference it with `relation r: user with caveat_name`, or remove it",
                );
            }
        }
        for f in flat {
            // A relation named after its own definition is usually a typo.
            for relation in &f.relations {
                let short = f.def.name.text.rsplit('/').next().unwrap_or("");
                if relation.name.text == short {
                    self.warn(
                        "SCHEMA:RelationNamedLikeParent",
                        relation.name.span,
                        format!(
                            "relation `{}` has the same name as its definition `{}`",
                            relation.name.text, f.def.name.text
                        ),
                        "name the relation after its role (e.g. `parent`, `owner`)",
                    );
                }
            }
            // Arrows to relations rather than permissions (SpiceDB lints this).
            let Some(def) = schema.definition_named(&f.def.name.text) else {
                continue;
            };
            for permission in &f.permissions {
                let mut arrows = Vec::new();
                arrow_exprs(&permission.expr, &mut arrows);
                for (left, right) in arrows {
                    let Some(tupleset) = def.relation_named(&left.text) else {
                        continue;
                    };
                    for a in tupleset.allowed() {
                        let target = schema.definition(a.subject_type);
                        if let Some(rel) = target.relation_named(&right.text) {
                            if !rel.is_permission() {
                                self.warn(
                                    "SCHEMA:ArrowToRelation",
                                    right.span,
                                    format!(
                                        "arrow `{}->{}` under permission `{}` points to relation `{}#{}`; prefer pointing to a permission",
                                        left.text, right.text, permission.name.text, target.name, right.text
                                    ),
                                    "permissions keep the arrow correct when the relation is later refactored",
                                );
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

fn computed_refs(rewrite: &Rewrite, out: &mut Vec<RelationId>) {
    match rewrite {
        Rewrite::Computed(id) => out.push(*id),
        Rewrite::Union(children) | Rewrite::Intersection(children) => {
            children.iter().for_each(|c| computed_refs(c, out))
        }
        Rewrite::Exclusion(a, b) => {
            computed_refs(a, out);
            computed_refs(b, out);
        }
        Rewrite::Nil | Rewrite::SelfRef | Rewrite::Arrow(_) => {}
    }
}

fn arrow_exprs<'a>(expr: &'a Expr, out: &mut Vec<(&'a ast::Name, &'a ast::Name)>) {
    match expr {
        Expr::Arrow { left, right, .. } => {
            if let Expr::Ref(l) = &**left {
                out.push((l, right));
            }
        }
        Expr::Union(a, b) | Expr::Intersection(a, b) | Expr::Exclusion(a, b) => {
            arrow_exprs(a, out);
            arrow_exprs(b, out);
        }
        Expr::Ref(_) | Expr::Nil(_) | Expr::SelfRef(_) => {}
    }
}

impl Caveat {
    fn params_for_check(&self) -> Vec<(String, CaveatType)> {
        self.params
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect()
    }
}

#[cfg(test)]
#[path = "compiler_test.rs"]
mod tests;
