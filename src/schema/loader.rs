//! Loads schema text from files: plain `.zed` schemas and SpiceDB
//! validation files (YAML with `schema:` or `schemaFile:`).

use std::path::{Component, Path, PathBuf};

/// Schema text read from disk, and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedSchema {
    /// The name to show in diagnostics (the file holding the text).
    pub name: String,
    /// The schema text.
    pub text: String,
    /// The parsed validation file, when the input was one.
    pub validation: Option<ValidationFile>,
}

/// The parts of a SpiceDB validation file Verdict reads.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationFile {
    /// Inline schema text.
    #[serde(default)]
    pub schema: Option<String>,
    /// A schema file path, relative to the validation file.
    #[serde(default, rename = "schemaFile")]
    pub schema_file: Option<String>,
    /// Relationships, one per line (`//` comment lines allowed).
    #[serde(default)]
    pub relationships: Option<String>,
    /// Check assertions.
    #[serde(default)]
    pub assertions: Option<Assertions>,
    /// Expected relations (`type:id#permission` → subjects); kept raw.
    #[serde(default)]
    pub validation: Option<serde_yaml_ng::Value>,
}

/// `assertions:` of a validation file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertions {
    /// Must be allowed.
    #[serde(default, rename = "assertTrue")]
    pub assert_true: Option<Vec<String>>,
    /// Must be denied.
    #[serde(default, rename = "assertFalse")]
    pub assert_false: Option<Vec<String>>,
    /// Must be conditional (a caveat lacks context).
    #[serde(default, rename = "assertCaveated")]
    pub assert_caveated: Option<Vec<String>>,
}

impl ValidationFile {
    /// The relationship lines, without blanks and comments, with their
    /// 1-based position among the lines of the `relationships` block.
    pub fn relationship_lines(&self) -> Vec<(usize, &str)> {
        self.relationships
            .as_deref()
            .unwrap_or("")
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with("//"))
            .collect()
    }
}

/// Why a schema could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed or has unknown keys.
    #[error("`{path}` is not a valid validation file: {message}")]
    InvalidYaml {
        /// The file.
        path: PathBuf,
        /// What the YAML parser said.
        message: String,
    },
    /// Both `schema` and `schemaFile`, or neither.
    #[error("`{path}`: {message}")]
    SchemaSource {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: &'static str,
    },
    /// `schemaFile` is an absolute path.
    #[error("`{path}`: schemaFile `{schema_file}` must be a path relative to the validation file")]
    NonLocalSchemaFile {
        /// The file.
        path: PathBuf,
        /// The offending path.
        schema_file: String,
    },
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Reads a validation file's YAML.
///
/// # Errors
/// Unreadable file, malformed YAML, or unknown keys (such as the legacy
/// `validation_tuples`).
pub fn read_validation_file(path: &Path) -> Result<ValidationFile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_validation_file(&text).map_err(|message| LoadError::InvalidYaml {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses validation-file YAML text.
///
/// # Errors
/// The YAML parser's message.
pub fn parse_validation_file(text: &str) -> Result<ValidationFile, String> {
    if text.trim().is_empty() || text.trim() == "---" {
        return Ok(ValidationFile::default());
    }
    serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
}

/// Loads schema text from a `.zed` file or a validation file.
///
/// # Errors
/// See [`LoadError`].
pub fn load(path: &Path) -> Result<LoadedSchema, LoadError> {
    if !is_yaml(path) {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        return Ok(LoadedSchema {
            name: path.display().to_string(),
            text,
            validation: None,
        });
    }
    let file = read_validation_file(path)?;
    match (&file.schema, &file.schema_file) {
        (Some(_), Some(_)) => Err(LoadError::SchemaSource {
            path: path.to_path_buf(),
            message: "has both `schema` and `schemaFile`; use one",
        }),
        // Relationships only (SpiceDB loads them into an existing schema).
        (None, None) => Ok(LoadedSchema {
            name: path.display().to_string(),
            text: String::new(),
            validation: Some(file),
        }),
        (Some(text), None) => Ok(LoadedSchema {
            name: path.display().to_string(),
            text: text.clone(),
            validation: Some(file),
        }),
        (None, Some(relative)) => {
            let rel = Path::new(relative);
            // As `zed validate` does, `..` is allowed (examples share one
            // schema between validation folders); absolute paths are not.
            let local = rel.components().all(|c| {
                matches!(
                    c,
                    Component::Normal(_) | Component::CurDir | Component::ParentDir
                )
            });
            if !local {
                return Err(LoadError::NonLocalSchemaFile {
                    path: path.to_path_buf(),
                    schema_file: relative.clone(),
                });
            }
            let full = path.parent().unwrap_or(Path::new(".")).join(rel);
            let text = std::fs::read_to_string(&full).map_err(|source| LoadError::Io {
                path: full.clone(),
                source,
            })?;
            Ok(LoadedSchema {
                name: full.display().to_string(),
                text,
                validation: Some(file),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_file_with_inline_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.yaml");
        std::fs::write(
            &path,
            "schema: |-\n  definition user {}\nrelationships: |-\n  // c\n  doc:1#viewer@user:a\n\n  doc:2#viewer@user:b\nassertions:\n  assertTrue:\n    - doc:1#viewer@user:a\n",
        )
        .unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.text, "definition user {}");
        let v = loaded.validation.unwrap();
        assert_eq!(v.relationship_lines().len(), 2);
        assert_eq!(v.assertions.unwrap().assert_true.unwrap().len(), 1);
    }

    #[test]
    fn rejects_both_sources_non_local_paths_and_legacy_keys() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        write("s.zed", "definition user {}");
        assert!(matches!(
            load(&write("both.yaml", "schema: x\nschemaFile: ./s.zed\n")),
            Err(LoadError::SchemaSource { .. })
        ));
        assert!(matches!(
            load(&write("far.yaml", "schemaFile: /etc/passwd\n")),
            Err(LoadError::NonLocalSchemaFile { .. })
        ));
        assert!(matches!(
            load(&write("missing.yaml", "schemaFile: ../nowhere/s.zed\n")),
            Err(LoadError::Io { .. })
        ));
        let only_rels = load(&write("rels.yaml", "relationships: doc:1#viewer@user:a\n")).unwrap();
        assert_eq!(only_rels.text, "");
        assert!(matches!(
            load(&write("legacy.yaml", "validation_tuples:\n  - foo\n")),
            Err(LoadError::InvalidYaml { .. })
        ));
        assert_eq!(
            load(&write("ok.yaml", "schemaFile: ./s.zed\n"))
                .unwrap()
                .text,
            "definition user {}"
        );
    }
}
