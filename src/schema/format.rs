//! The canonical printer: one layout for every schema, so diffs are about
//! meaning. Formatting is idempotent and preserves the compiled IR.

use std::fmt::Write as _;

use super::ast::*;

/// Prints a parsed schema in canonical form.
pub fn format_schema(file: &SchemaFile) -> String {
    let mut out = String::new();
    let mut previous_was_use = false;
    for (index, item) in file.items.iter().enumerate() {
        let is_use = matches!(item, Item::Use(_) | Item::Import { .. });
        if index > 0 && !(is_use && previous_was_use) {
            out.push('\n');
        }
        previous_was_use = is_use;
        match item {
            Item::Use(name) => {
                let _ = writeln!(out, "use {}", name.text);
            }
            Item::Import { path, .. } => {
                let _ = writeln!(out, "import {}", quote_path(path));
            }
            Item::Definition(def) => definition(&mut out, "definition", def),
            Item::Partial(def) => definition(&mut out, "partial", def),
            Item::Caveat(caveat) => caveat_def(&mut out, caveat),
        }
    }
    out
}

/// Quotes an import path with a delimiter it does not contain.
fn quote_path(path: &str) -> String {
    let single_line = !path.contains('\n') && !path.ends_with('\\');
    let quote = if single_line && !path.contains('"') {
        "\""
    } else if single_line && !path.contains('\'') {
        "'"
    } else if !path.contains("\"\"\"") && !path.ends_with('"') {
        "\"\"\""
    } else {
        "'''"
    };
    format!("{quote}{path}{quote}")
}

fn doc(out: &mut String, doc: &Option<String>, indent: &str) {
    let Some(text) = doc else { return };
    if text.is_empty() {
        return;
    }
    // A doc that would close a block comment early is printed as `///`
    // lines; a simple one-liner stays on one line; anything else is a block
    // with ` * ` on every line (which keeps leading `*` and spaces).
    if text.contains("*/") {
        for line in text.lines() {
            let _ = writeln!(out, "{indent}/// {line}");
        }
        return;
    }
    let simple = !text.contains('\n')
        && !text.starts_with(|c: char| c == '*' || c.is_whitespace())
        && !text.ends_with(char::is_whitespace);
    if simple {
        let _ = writeln!(out, "{indent}/** {text} */");
        return;
    }
    let _ = writeln!(out, "{indent}/**");
    for line in text.lines() {
        if line.is_empty() {
            let _ = writeln!(out, "{indent} *");
        } else {
            let _ = writeln!(out, "{indent} * {line}");
        }
    }
    let _ = writeln!(out, "{indent} */");
}

fn definition(out: &mut String, keyword: &str, def: &Definition) {
    doc(out, &def.doc, "");
    if def.members.is_empty() {
        let _ = writeln!(out, "{keyword} {} {{}}", def.name.text);
        return;
    }
    let _ = writeln!(out, "{keyword} {} {{", def.name.text);
    let mut previous: Option<&Member> = None;
    for member in &def.members {
        // A blank line between the relation block and the permission block.
        if let Some(prev) = previous {
            let kind = |m: &Member| matches!(m, Member::Permission(_));
            if kind(prev) != kind(member) {
                out.push('\n');
            }
        }
        previous = Some(member);
        match member {
            Member::PartialRef(name) => {
                let _ = writeln!(out, "    ...{}", name.text);
            }
            Member::Relation(r) => {
                doc(out, &r.doc, "    ");
                let types: Vec<String> = r.types.iter().map(type_ref).collect();
                let _ = writeln!(out, "    relation {}: {}", r.name.text, types.join(" | "));
            }
            Member::Permission(p) => {
                doc(out, &p.doc, "    ");
                let annotation = if p.annotation.is_empty() {
                    String::new()
                } else {
                    let names: Vec<&str> = p.annotation.iter().map(|n| n.text.as_str()).collect();
                    format!(": {}", names.join(" | "))
                };
                let _ = writeln!(
                    out,
                    "    permission {}{annotation} = {}",
                    p.name.text,
                    expr(&p.expr)
                );
            }
        }
    }
    out.push_str("}\n");
}

fn type_ref(t: &TypeRef) -> String {
    let mut s = t.type_name.text.clone();
    match &t.kind {
        SubjectKind::Direct => {}
        SubjectKind::Relation(r) => {
            s.push('#');
            s.push_str(&r.text);
        }
        SubjectKind::Wildcard => s.push_str(":*"),
    }
    match (&t.caveat, t.expiration) {
        (Some(c), true) => {
            let _ = write!(s, " with {} and expiration", c.text);
        }
        (Some(c), false) => {
            let _ = write!(s, " with {}", c.text);
        }
        (None, true) => s.push_str(" with expiration"),
        (None, false) => {}
    }
    s
}

fn level(e: &Expr) -> u8 {
    match e {
        Expr::Exclusion(..) => 1,
        Expr::Intersection(..) => 2,
        Expr::Union(..) => 3,
        Expr::Arrow { .. } | Expr::Ref(_) | Expr::Nil(_) | Expr::SelfRef(_) => 4,
    }
}

/// Prints an expression with the fewest parentheses that keep its tree.
pub fn expr(e: &Expr) -> String {
    let binary = |a: &Expr, b: &Expr, op: &str, lvl: u8| {
        let left = if level(a) < lvl {
            format!("({})", expr(a))
        } else {
            expr(a)
        };
        let right = if level(b) <= lvl {
            format!("({})", expr(b))
        } else {
            expr(b)
        };
        format!("{left} {op} {right}")
    };
    match e {
        Expr::Ref(name) => name.text.clone(),
        Expr::Nil(_) => "nil".into(),
        Expr::SelfRef(_) => "self".into(),
        Expr::Arrow {
            left, right, func, ..
        } => {
            let base = if level(left) < 4 {
                format!("({})", expr(left))
            } else {
                expr(left)
            };
            match func {
                ArrowFunc::Arrow => format!("{base}->{}", right.text),
                ArrowFunc::Any => format!("{base}.any({})", right.text),
                ArrowFunc::All => format!("{base}.all({})", right.text),
            }
        }
        Expr::Union(a, b) => binary(a, b, "+", 3),
        Expr::Intersection(a, b) => binary(a, b, "&", 2),
        Expr::Exclusion(a, b) => binary(a, b, "-", 1),
    }
}

fn caveat_def(out: &mut String, c: &CaveatDef) {
    doc(out, &c.doc, "");
    let params: Vec<String> = c
        .params
        .iter()
        .map(|p| format!("{} {}", p.name.text, p.type_text))
        .collect();
    let _ = writeln!(out, "caveat {}({}) {{", c.name.text, params.join(", "));
    let _ = writeln!(out, "    {}", c.expression);
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::super::{limits::SchemaLimits, parser::parse};
    use super::*;

    fn fmt(text: &str) -> String {
        let (file, errors) = parse(text, &SchemaLimits::default());
        assert!(errors.is_empty(), "{errors:?}");
        format_schema(&file)
    }

    #[test]
    fn canonical_layout() {
        let got = fmt("use expiration\n/** users */ definition user {}\ndefinition doc { permission view = (a + b) - c & d\nrelation a: user | user:* with expiration\n relation b: doc#a\n relation c: user\n relation d: user }\ncaveat cv(x int) {   x > 1   }");
        let want = "use expiration\n\n/** users */\ndefinition user {}\n\ndefinition doc {\n    permission view = a + b - c & d\n\n    relation a: user | user:* with expiration\n    relation b: doc#a\n    relation c: user\n    relation d: user\n}\n\ncaveat cv(x int) {\n    x > 1\n}\n";
        assert_eq!(got, want);
    }

    #[test]
    fn keeps_needed_parentheses() {
        let got = fmt("definition d {\n permission p = a - (b - c) + (x & y)\n}");
        assert!(
            got.contains("permission p = a - (b - c) + (x & y)"),
            "{got}"
        );
        let got = fmt("definition d {\n permission p = (a + b).any(c)\n}");
        assert!(got.contains("(a + b).any(c)"), "{got}");
    }

    #[test]
    fn import_paths_keep_their_quotes_parseable() {
        for path in ["a.zed", "it's.zed", "say \"hi\".zed", "both'\".zed"] {
            let once = format_schema(&SchemaFile {
                items: vec![Item::Import {
                    path: path.to_string(),
                    span: Default::default(),
                }],
            });
            assert_eq!(fmt(&once), once, "{path}");
        }
    }

    #[test]
    fn awkward_doc_comments_survive_formatting() {
        for doc in [
            "/// closes */ early\ndefinition a {}",
            "/** * starts with a star */\ndefinition a {}",
            "/**\n *   indented\n * * bullet\n */\ndefinition a {}",
            "/// * star line\ndefinition a {}",
            "/**\n *\ruser\n */\ndefinition a {}",
            "/** \u{85}x\u{2028} */\ndefinition a {}",
        ] {
            let once = fmt(doc);
            assert_eq!(fmt(&once), once, "{doc}");
        }
    }

    #[test]
    fn formatting_is_idempotent() {
        let once = fmt("/**\n * multi\n * line\n */\ndefinition d { relation r: user\n permission p = r->x + (r & r)\n ...part }");
        assert_eq!(fmt(&once), once);
    }
}
