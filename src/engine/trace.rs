//! Debug traces: the tree of sub-problems a check visited, each with its
//! result and the tuples that decided it.

use std::fmt::Write as _;

use super::outcome::Outcome;

/// One visited sub-problem.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceNode {
    /// What was asked, e.g. `document:readme#view` or `union`.
    pub label: String,
    /// Its answer.
    pub outcome: Outcome,
    /// Tuples that decided it (text form).
    pub tuples: Vec<String>,
    /// Sub-problems, in visit order.
    pub children: Vec<TraceNode>,
}

impl TraceNode {
    /// Renders the trace as an indented tree.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 0);
        out
    }

    fn render_into(&self, out: &mut String, depth: usize) {
        let _ = writeln!(
            out,
            "{:indent$}{} → {}",
            "",
            self.label,
            self.outcome,
            indent = depth * 2
        );
        for t in &self.tuples {
            let _ = writeln!(out, "{:indent$}  via {t}", "", indent = depth * 2);
        }
        for c in &self.children {
            c.render_into(out, depth + 1);
        }
    }
}

/// Builds a trace while walking: `enter` a node, `exit` it with its result.
#[derive(Debug, Default)]
pub(crate) struct TraceBuilder {
    stack: Vec<TraceNode>,
    root: Option<TraceNode>,
}

impl TraceBuilder {
    pub(crate) fn enter(&mut self, label: String) {
        self.stack.push(TraceNode {
            label,
            outcome: Outcome::Denied,
            tuples: Vec::new(),
            children: Vec::new(),
        });
    }

    pub(crate) fn tuple(&mut self, tuple: String) {
        if let Some(top) = self.stack.last_mut() {
            top.tuples.push(tuple);
        }
    }

    pub(crate) fn exit(&mut self, outcome: &Outcome) {
        if let Some(mut node) = self.stack.pop() {
            node.outcome = outcome.clone();
            match self.stack.last_mut() {
                Some(parent) => parent.children.push(node),
                None => self.root = Some(node),
            }
        }
    }

    /// Closes any open nodes (after an error) and returns the root.
    pub(crate) fn finish(&mut self) -> Option<TraceNode> {
        while !self.stack.is_empty() {
            self.exit(&Outcome::Denied);
        }
        self.root.take()
    }
}
