//! Expand: the userset tree of `resource#permission`, as in the Zanzibar
//! paper — operator nodes for the rewrite, leaves listing the stored
//! subjects (usersets appear as subjects, not expanded further), computed
//! relations and arrows expanded as subtrees on the objects they reach.

use std::collections::HashSet;

use verdict_storage::{ObjectRef, SubjectRef, Timestamp, TupleReader};

use super::check::resolve;
use super::error::EngineError;
use super::Engine;
use crate::schema::ir::{RelationId, RelationKind, Rewrite, TypeId};

/// One subject in a leaf, with what conditions it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandSubject {
    /// The subject (possibly a userset or wildcard).
    pub subject: SubjectRef,
    /// The caveat name on the tuple, if any.
    pub caveat: Option<String>,
    /// The tuple's expiration, if any.
    pub expiration: Option<Timestamp>,
}

/// What an expand node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandKind {
    /// Stored subjects of a relation.
    Leaf(Vec<ExpandSubject>),
    /// Any child.
    Union(Vec<ExpandNode>),
    /// Every child.
    Intersection(Vec<ExpandNode>),
    /// The first child minus the second.
    Exclusion(Vec<ExpandNode>),
    /// Already being expanded higher in the tree (cyclic data).
    Cycle,
}

/// A node of the userset tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandNode {
    /// The object this node is about.
    pub object: ObjectRef,
    /// The relation or permission.
    pub relation: String,
    /// Its content.
    pub kind: ExpandKind,
}

impl ExpandNode {
    /// Every leaf subject in the tree (ignoring operators), de-duplicated.
    pub fn leaf_subjects(&self) -> Vec<&SubjectRef> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a SubjectRef>) {
        match &self.kind {
            ExpandKind::Leaf(subjects) => {
                for s in subjects {
                    if !out.contains(&&s.subject) {
                        out.push(&s.subject);
                    }
                }
            }
            ExpandKind::Union(c) | ExpandKind::Intersection(c) | ExpandKind::Exclusion(c) => {
                c.iter().for_each(|n| n.collect(out))
            }
            ExpandKind::Cycle => {}
        }
    }
}

struct Expander<'e> {
    engine: &'e Engine,
    reader: &'e dyn TupleReader,
    now: Timestamp,
    path: HashSet<(TypeId, RelationId, String)>,
    depth: u32,
}

pub(crate) fn expand(
    engine: &Engine,
    reader: &dyn TupleReader,
    resource: &ObjectRef,
    permission: &str,
    now: Timestamp,
) -> Result<ExpandNode, EngineError> {
    let (ty, rel) = resolve(&engine.schema, &resource.object_type, permission)?;
    let mut e = Expander {
        engine,
        reader,
        now,
        path: HashSet::new(),
        depth: 0,
    };
    e.expand(ty, rel, &resource.object_id)
}

impl Expander<'_> {
    fn expand(&mut self, ty: TypeId, rel: RelationId, id: &str) -> Result<ExpandNode, EngineError> {
        let schema = &self.engine.schema;
        let def = schema.definition(ty);
        let relation = def.relation(rel);
        let object = ObjectRef::new(&*def.name, id);
        let key = (ty, rel, id.to_string());
        if self.path.contains(&key) {
            return Ok(ExpandNode {
                object,
                relation: relation.name.to_string(),
                kind: ExpandKind::Cycle,
            });
        }
        if self.depth >= self.engine.config.max_depth {
            return Err(EngineError::DepthExceeded {
                max_depth: self.engine.config.max_depth,
            });
        }
        self.depth += 1;
        self.path.insert(key.clone());
        let kind = match &relation.kind {
            RelationKind::Relation { .. } => {
                let tuples = self.reader.subjects(&def.name, &[id], &relation.name)?;
                ExpandKind::Leaf(
                    tuples
                        .into_iter()
                        .filter(|t| !t.is_expired_at(self.now))
                        .map(|t| ExpandSubject {
                            subject: t.subject,
                            caveat: t.caveat.map(|c| c.name),
                            expiration: t.expiration,
                        })
                        .collect(),
                )
            }
            RelationKind::Permission { rewrite } => self.rewrite(ty, rewrite, id)?.kind,
        };
        self.path.remove(&key);
        self.depth -= 1;
        Ok(ExpandNode {
            object,
            relation: relation.name.to_string(),
            kind,
        })
    }

    fn rewrite(
        &mut self,
        ty: TypeId,
        rewrite: &Rewrite,
        id: &str,
    ) -> Result<ExpandNode, EngineError> {
        let schema = self.engine.schema.clone();
        let def = schema.definition(ty);
        let node = |kind| ExpandNode {
            object: ObjectRef::new(&*def.name, id),
            relation: String::new(),
            kind,
        };
        Ok(match rewrite {
            Rewrite::Nil => node(ExpandKind::Leaf(Vec::new())),
            Rewrite::SelfRef => node(ExpandKind::Leaf(vec![ExpandSubject {
                subject: SubjectRef::direct(&*def.name, id),
                caveat: None,
                expiration: None,
            }])),
            Rewrite::Computed(rel) => self.expand(ty, *rel, id)?,
            Rewrite::Union(children) => node(ExpandKind::Union(self.children(ty, children, id)?)),
            Rewrite::Intersection(children) => {
                node(ExpandKind::Intersection(self.children(ty, children, id)?))
            }
            Rewrite::Exclusion(a, b) => {
                let a = self.rewrite(ty, a, id)?;
                let b = self.rewrite(ty, b, id)?;
                node(ExpandKind::Exclusion(vec![a, b]))
            }
            Rewrite::Arrow(arrow) => {
                let tupleset = &def.relation(arrow.tupleset).name;
                let tuples = self.reader.subjects(&def.name, &[id], tupleset)?;
                let mut children = Vec::new();
                let now = self.now;
                for t in tuples.iter().filter(|t| !t.is_expired_at(now)) {
                    let Some(sty) = schema.type_id(&t.subject.object.object_type) else {
                        continue;
                    };
                    match arrow.resolved.iter().find(|(rt, _)| *rt == sty) {
                        Some((_, srel)) => {
                            children.push(self.expand(sty, *srel, &t.subject.object.object_id)?)
                        }
                        // Under `.all()`, a target lacking the relation
                        // grants nobody: keep it as an empty operand.
                        None if arrow.func == crate::schema::ir::ArrowFunc::All => {
                            children.push(ExpandNode {
                                object: t.subject.object.clone(),
                                relation: arrow.target.to_string(),
                                kind: ExpandKind::Leaf(Vec::new()),
                            })
                        }
                        None => {}
                    }
                }
                let kind = match arrow.func {
                    crate::schema::ir::ArrowFunc::All => ExpandKind::Intersection(children),
                    _ => ExpandKind::Union(children),
                };
                node(kind)
            }
        })
    }

    fn children(
        &mut self,
        ty: TypeId,
        children: &[Rewrite],
        id: &str,
    ) -> Result<Vec<ExpandNode>, EngineError> {
        children.iter().map(|c| self.rewrite(ty, c, id)).collect()
    }
}
