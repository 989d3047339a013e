//! Resolves `import "path.zed"` statements: loads each imported file once
//! (diamonds and cycles are fine), keeps every path inside the root file's
//! directory, and combines all files into one syntax tree whose spans point
//! into a shared offset space ([`SchemaSources`] maps them back).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::ast::{Item, Name, SchemaFile};
use super::diagnostic::{Diagnostic, SourceMap, Span};
use super::limits::SchemaLimits;
use super::parser::parse_at;

/// The files a combined schema came from, each at its base offset.
#[derive(Debug, Clone, Default)]
pub struct SchemaSources {
    files: Vec<(String, String, usize)>,
    next_base: usize,
}

impl SchemaSources {
    /// Adds a file; returns the base offset its spans start at.
    pub fn add(&mut self, name: String, text: String) -> usize {
        let base = self.next_base;
        // One spare byte so an end-of-file span never touches the next file.
        self.next_base += text.len() + 1;
        self.files.push((name, text, base));
        base
    }

    /// Renders diagnostics against the file each one points into.
    pub fn render_all(&self, diagnostics: &[Diagnostic]) -> String {
        diagnostics
            .iter()
            .map(|d| {
                let file = self
                    .files
                    .iter()
                    .rev()
                    .find(|(_, _, base)| *base <= d.span.start)
                    .or_else(|| self.files.first());
                match file {
                    Some((name, text, base)) => {
                        let mut local = d.clone();
                        local.span = Span::new(
                            d.span.start - base.min(&d.span.start),
                            d.span.end.saturating_sub(*base),
                        );
                        SourceMap::new(name, text).render(&local)
                    }
                    None => format!("error[{}]: {}\n", d.code, d.message),
                }
            })
            .collect()
    }
}

/// Loads `root` and everything it imports, combined into one tree: `use`
/// flags first, then each file's items after the items of the files it
/// imports. Returns the diagnostics (syntax errors, failed imports) as
/// errors, along with the sources to render them.
pub fn load_with_imports(
    root: &Path,
    limits: &SchemaLimits,
) -> (Result<SchemaFile, Vec<Diagnostic>>, SchemaSources) {
    let mut sources = SchemaSources::default();
    let text = match std::fs::read_to_string(root) {
        Ok(text) => text,
        Err(e) => {
            let d = Diagnostic::error(
                "SCHEMA:ImportFailed",
                Span::default(),
                format!("cannot read `{}`: {e}", root.display()),
            );
            return (Err(vec![d]), sources);
        }
    };
    let root_dir = root.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut state = State {
        root_dir,
        visited: BTreeSet::new(),
        uses: Vec::new(),
        items: Vec::new(),
        diagnostics: Vec::new(),
        limits,
    };
    state
        .visited
        .insert(PathBuf::new().join(root.file_name().unwrap_or_default()));
    state.visit(
        Path::new(""),
        root.display().to_string(),
        text,
        &mut sources,
    );
    if !state.diagnostics.is_empty() {
        return (Err(state.diagnostics), sources);
    }
    let mut items: Vec<Item> = state.uses.into_iter().map(Item::Use).collect();
    items.extend(state.items);
    (Ok(SchemaFile { items }), sources)
}

struct State<'l> {
    root_dir: PathBuf,
    /// Paths relative to `root_dir`, normalised.
    visited: BTreeSet<PathBuf>,
    uses: Vec<Name>,
    items: Vec<Item>,
    diagnostics: Vec<Diagnostic>,
    limits: &'l SchemaLimits,
}

/// Joins `import` onto `dir` (both relative to the root directory) and
/// normalises `.`/`..`; `None` when the result would leave the root.
fn resolve(dir: &Path, import: &str) -> Option<PathBuf> {
    let mut parts: Vec<std::ffi::OsString> =
        dir.components().map(|c| c.as_os_str().to_owned()).collect();
    for component in Path::new(import).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

impl State<'_> {
    fn visit(&mut self, dir: &Path, name: String, text: String, sources: &mut SchemaSources) {
        let base = sources.add(name, text.clone());
        let (file, diagnostics) = parse_at(&text, base, self.limits);
        self.diagnostics.extend(diagnostics);
        for item in file.items {
            match item {
                Item::Import { path, span } => {
                    let Some(relative) = resolve(dir, &path) else {
                        self.diagnostics.push(
                            Diagnostic::error(
                                "SCHEMA:ImportFailed",
                                span,
                                format!("import `{path}` leaves the schema's directory"),
                            )
                            .with_hint(
                                "imports are relative paths inside the root schema's directory",
                            ),
                        );
                        continue;
                    };
                    if !self.visited.insert(relative.clone()) {
                        continue; // already imported (diamond or cycle)
                    }
                    let full = self.root_dir.join(&relative);
                    match std::fs::read_to_string(&full) {
                        Ok(imported) => {
                            let next_dir = relative.parent().unwrap_or(Path::new("")).to_path_buf();
                            self.visit(&next_dir, full.display().to_string(), imported, sources);
                        }
                        Err(e) => self.diagnostics.push(Diagnostic::error(
                            "SCHEMA:ImportFailed",
                            span,
                            format!("cannot import `{path}` ({}): {e}", full.display()),
                        )),
                    }
                }
                Item::Use(flag) => {
                    if !self.uses.iter().any(|u| u.text == flag.text) {
                        self.uses.push(flag);
                    }
                }
                other => self.items.push(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_stays_inside_the_root() {
        assert_eq!(
            resolve(Path::new("a"), "b/c.zed"),
            Some(PathBuf::from("a/b/c.zed"))
        );
        assert_eq!(
            resolve(Path::new("a"), "../c.zed"),
            Some(PathBuf::from("c.zed"))
        );
        assert_eq!(resolve(Path::new(""), "../c.zed"), None);
        assert_eq!(resolve(Path::new(""), "/etc/passwd"), None);
    }

    #[test]
    fn imports_combine_once_and_errors_point_into_the_right_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| std::fs::write(dir.path().join(name), body).unwrap();
        write("root.zed", "use import\n\nimport \"a.zed\"\nimport \"b.zed\"\n\ndefinition doc {\n  relation viewer: user\n}\n");
        write(
            "a.zed",
            "use import\nimport \"b.zed\"\ndefinition user {}\n",
        );
        write(
            "b.zed",
            "use import\nimport \"a.zed\"\ndefinition group {}\n",
        );
        let (file, _) = load_with_imports(&dir.path().join("root.zed"), &SchemaLimits::default());
        let file = file.unwrap();
        let names: Vec<String> = file
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Definition(d) => Some(d.name.text.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(names, vec!["group", "user", "doc"]);

        write("bad.zed", "definition broken {\n  relation : user\n}\n");
        write("root2.zed", "use import\nimport \"bad.zed\"\n");
        let (file, sources) =
            load_with_imports(&dir.path().join("root2.zed"), &SchemaLimits::default());
        let rendered = sources.render_all(&file.unwrap_err());
        assert!(rendered.contains("bad.zed:2:12"), "{rendered}");
    }
}
