//! The layers point one way (ARCHITECTURE.md):
//!
//! ```text
//! cli ─▶ serve (start-up) ─▶ api (front doors) ─▶ server (the node) ─▶ engine ─▶ schema
//! ```
//!
//! Reads every `src/**/*.rs`, resolves each `crate::…` and `super::…`
//! path (also inside `use crate::{…}` groups) to the top-level module it
//! names, and fails on a reference a layer may not make. Comments and
//! string literals are ignored. Limitation: `super` is resolved against the
//! file's module, not an inline `mod` inside it, so a `super::super` from a
//! `mod tests` block resolves one level too high (it can only miss a
//! reference, never invent one).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::path::{Path, PathBuf};

/// (layer, top-level modules it must never reference).
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("server", &["api", "serve", "cli"]),
    ("api", &["serve", "cli"]),
    ("engine", &["server", "api", "serve", "cli"]),
    ("schema", &["engine", "server", "api", "serve", "cli"]),
    ("zookie", &["server", "api", "serve", "cli"]),
];

/// The module path of a source file: `src/server/state.rs` → `server::state`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "lib" | "main" | "mod") {
        parts.push(stem.to_string());
    }
    parts
}

/// `text` without comments, string literals and char literals (replaced
/// by spaces, so line numbers stay).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |s: &str| -> String {
        s.chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect()
    };
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            out.push_str(&blank(&rest[..end]));
            i += end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            out.push_str(&blank(&rest[..end]));
            i += end;
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            let end = rest[body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
            out.push_str(&blank(&rest[..end]));
            i += end;
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match rest.as_bytes()[j] {
                    b'\\' => j += 2,
                    b'"' => {
                        j += 1;
                        break;
                    }
                    _ => j += 1,
                }
            }
            let end = j.min(rest.len());
            out.push_str(&blank(&rest[..end]));
            i += end;
        } else if let Some(escaped) = rest.strip_prefix("'\\") {
            let end = escaped.find('\'').map_or(rest.len(), |e| e + 3);
            out.push_str(&blank(&rest[..end]));
            i += end;
        } else if rest.len() >= 3 && rest.starts_with('\'') && rest.as_bytes()[2] == b'\'' {
            out.push_str("   ");
            i += 3;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first path segment after `at` (skipping spaces), and, when it opens
/// a `{…}` group, the first segment of each member.
fn segments_after(code: &str, at: usize) -> Vec<String> {
    let rest = code[at..].trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 1;
        let mut end = 0;
        for (k, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k;
                        break;
                    }
                }
                _ => {}
            }
        }
        let inner = &group[..end];
        // Top-level members only: split on commas outside nested braces.
        let mut members = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        for (k, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    members.push(&inner[start..k]);
                    start = k + 1;
                }
                _ => {}
            }
        }
        members.push(&inner[start..]);
        members
            .into_iter()
            .map(|m| m.trim().chars().take_while(|c| is_ident(*c)).collect())
            .filter(|m: &String| !m.is_empty())
            .collect()
    } else {
        let first: String = rest.chars().take_while(|c| is_ident(*c)).collect();
        if first.is_empty() {
            Vec::new()
        } else {
            vec![first]
        }
    }
}

/// Every top-level module `code` (a file of module `module`) references,
/// with its line number.
fn references(module: &[String], code: &str) -> Vec<(usize, String)> {
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(k) = code[at..].find("crate::") {
        let pos = at + k;
        at = pos + "crate::".len();
        let before = code[..pos].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue; // `$crate::`, `verdict_crate::`, ...
        }
        for seg in segments_after(code, at) {
            found.push((line_of(pos), seg));
        }
    }
    let mut at = 0;
    while let Some(k) = code[at..].find("super::") {
        let pos = at + k;
        let before = code[..pos].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            at = pos + "super::".len();
            continue; // counted with the chain's first `super`
        }
        let mut ups = 0;
        let mut end = pos;
        while code[end..].starts_with("super::") {
            ups += 1;
            end += "super::".len();
        }
        at = end;
        if ups > module.len() {
            continue;
        }
        let base = &module[..module.len() - ups];
        let named = match base.first() {
            Some(top) => vec![top.clone()],
            None => segments_after(code, end),
        };
        for seg in named {
            found.push((line_of(pos), seg));
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every forbidden reference under `src`, as `file:line: layer -> module`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let module = module_path(src, &file);
        let Some(layer) = module.first() else {
            continue;
        };
        let Some((_, forbidden)) = FORBIDDEN.iter().find(|(l, _)| l == layer) else {
            continue;
        };
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        for (line, target) in references(&module, &code) {
            if forbidden.contains(&target.as_str()) {
                bad.push(format!(
                    "{}:{line}: `{layer}` may not reference `crate::{target}`",
                    file.display()
                ));
            }
        }
    }
    bad
}

#[test]
fn layers_point_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "layering violations (see ARCHITECTURE.md):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checker_sees_every_form_of_reference() {
    let server = ["server".to_string(), "state".to_string()];
    let code = code_only(
        r#"
        use crate::api::error::ApiError;
        use crate::{engine::Engine, api::pb};
        use super::super::api;
        fn f() { crate::serve::run(); }
        // use crate::api::comment;
        const S: &str = "crate::api::in_a_string";
        "#,
    );
    let refs: Vec<String> = references(&server, &code)
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(refs, ["api", "engine", "api", "serve", "api"]);
    // `super::` within the server layer stays in it.
    let code = code_only("use super::state::AppState; use super::error;");
    let refs: Vec<String> = references(&server, &code)
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(refs, ["server", "server"]);
}

#[test]
fn the_checker_fails_on_a_forbidden_use() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("server")).unwrap();
    std::fs::create_dir_all(src.join("engine")).unwrap();
    std::fs::create_dir_all(src.join("schema")).unwrap();
    std::fs::write(src.join("server/ok.rs"), "use crate::engine::Engine;\n").unwrap();
    std::fs::write(
        src.join("server/bad.rs"),
        "use std::sync::Arc;\nuse crate::api::pb;\n",
    )
    .unwrap();
    std::fs::write(src.join("engine/bad.rs"), "use crate::server::state;\n").unwrap();
    std::fs::write(src.join("schema.rs"), "use crate::engine::Engine;\n").unwrap();
    let bad = violations(&src);
    assert_eq!(bad.len(), 3, "{bad:#?}");
    assert!(bad[0].ends_with("engine/bad.rs:1: `engine` may not reference `crate::server`"));
    assert!(bad[1].ends_with("schema.rs:1: `schema` may not reference `crate::engine`"));
    assert!(bad[2].ends_with("server/bad.rs:2: `server` may not reference `crate::api`"));
}
