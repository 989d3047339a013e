//! Migration files and their checkpoints: a YAML list of steps
//! (`apply_schema`, `copy_relation`, `delete_relation`) and a JSON state
//! file recording completed steps and the copy cursor, so an interrupted
//! `verdict migrate run` resumes where it stopped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a migration or its state cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The file cannot be read or written.
    #[error("cannot {action} `{path}`: {message}")]
    Io {
        /// read or write.
        action: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The migration file is malformed.
    #[error("`{path}`: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, naming the step and field.
        message: String,
    },
    /// The state file records another migration.
    #[error("state file `{path}` belongs to a different migration (sha256 {found}, this file is {expected}); remove it to start over")]
    StateMismatch {
        /// The state file.
        path: String,
        /// Hash recorded in the state.
        found: String,
        /// Hash of the migration file.
        expected: String,
    },
}

/// A migration: steps run in order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// The steps, each a one-key map (`- apply_schema: {file: v2.zed}`).
    #[serde(deserialize_with = "serde_yaml_ng::with::singleton_map_recursive::deserialize")]
    pub steps: Vec<Step>,
}

/// One migration step.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Apply a schema file (relative to the migration file) with
    /// `verdict schema apply` semantics.
    ApplySchema {
        /// The schema file.
        file: PathBuf,
        /// Delete the relationships the schema orphans, in its revision.
        #[serde(default)]
        allow_orphan_delete: bool,
    },
    /// Copy (or move) `type#relation` to `type#relation`, batched, at one
    /// snapshot, resumable.
    CopyRelation {
        /// `type#relation` to copy from.
        from: String,
        /// `type#relation` to copy to (same type).
        to: String,
        /// Delete each source tuple with its copy (a move).
        #[serde(default)]
        delete_source: bool,
        /// Tuples per batch (default 500).
        #[serde(default)]
        batch_size: Option<u32>,
    },
    /// Delete every tuple of `type#relation`.
    DeleteRelation {
        /// `type#relation`.
        rel: String,
    },
}

impl Step {
    /// A one-line description for progress output.
    pub fn describe(&self) -> String {
        match self {
            Step::ApplySchema { file, .. } => format!("apply_schema {}", file.display()),
            Step::CopyRelation {
                from,
                to,
                delete_source,
                ..
            } => format!(
                "{} {from} -> {to}",
                if *delete_source {
                    "move_relation"
                } else {
                    "copy_relation"
                }
            ),
            Step::DeleteRelation { rel } => format!("delete_relation {rel}"),
        }
    }
}

/// `type#relation` → (type, relation).
///
/// # Errors
/// Not of that shape.
pub fn split_relation(s: &str) -> Result<(String, String), String> {
    match s.split_once('#') {
        Some((t, r)) if !t.is_empty() && !r.is_empty() && !r.contains('#') && !t.contains(':') => {
            Ok((t.to_string(), r.to_string()))
        }
        _ => Err(format!("`{s}` is not `type#relation`")),
    }
}

/// Parses a migration file's text; `path` names it in errors.
///
/// # Errors
/// Malformed YAML, an unknown step, or a bad `type#relation`.
pub fn parse(path: &Path, text: &str) -> Result<Migration, MigrateError> {
    let invalid = |message: String| MigrateError::Invalid {
        path: path.display().to_string(),
        message,
    };
    let m: Migration = serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if m.steps.is_empty() {
        return Err(invalid("`steps` is empty".into()));
    }
    for (i, step) in m.steps.iter().enumerate() {
        match step {
            Step::CopyRelation { from, to, .. } => {
                let (ft, _) =
                    split_relation(from).map_err(|e| invalid(format!("steps[{i}].from: {e}")))?;
                let (tt, _) =
                    split_relation(to).map_err(|e| invalid(format!("steps[{i}].to: {e}")))?;
                if ft != tt {
                    return Err(invalid(format!(
                        "steps[{i}]: `from` and `to` must be on the same type (`{ft}` vs `{tt}`)"
                    )));
                }
            }
            Step::DeleteRelation { rel } => {
                split_relation(rel).map_err(|e| invalid(format!("steps[{i}].rel: {e}")))?;
            }
            Step::ApplySchema { .. } => {}
        }
    }
    Ok(m)
}

/// Where a copy step stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyProgress {
    /// The step index.
    pub step: usize,
    /// The snapshot zookie every batch reads at.
    pub snapshot: String,
    /// The cursor after the last committed batch.
    pub cursor: String,
    /// Tuples copied so far.
    pub copied: u64,
}

/// The checkpoint of a migration run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MigrationState {
    /// SHA-256 of the migration file it belongs to.
    pub migration_sha256: String,
    /// Steps completed (a prefix of the file's steps).
    pub completed: usize,
    /// A copy step in progress.
    pub copy: Option<CopyProgress>,
}

/// The default state file: `FILE.state.json` next to the migration.
pub fn default_state_path(migration: &Path) -> PathBuf {
    let mut name = migration.as_os_str().to_owned();
    name.push(".state.json");
    PathBuf::from(name)
}

impl MigrationState {
    /// Loads the state at `path` for a migration with hash `sha256`
    /// (a fresh state when the file does not exist).
    ///
    /// # Errors
    /// Unreadable or malformed, or it belongs to another migration.
    pub fn load(path: &Path, sha256: &str) -> Result<MigrationState, MigrateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(MigrationState {
                    migration_sha256: sha256.to_string(),
                    ..MigrationState::default()
                })
            }
            Err(e) => {
                return Err(MigrateError::Io {
                    action: "read",
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
            }
        };
        let state: MigrationState =
            serde_json::from_str(&text).map_err(|e| MigrateError::Invalid {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        if state.migration_sha256 != sha256 {
            return Err(MigrateError::StateMismatch {
                path: path.display().to_string(),
                found: state.migration_sha256,
                expected: sha256.to_string(),
            });
        }
        Ok(state)
    }

    /// Writes the state atomically and durably.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), MigrateError> {
        let io = |e: std::io::Error| MigrateError::Io {
            action: "write",
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| MigrateError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        verdict_storage::durable_file::write_atomic(path, text.as_bytes()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENAME: &str = "
steps:
  - apply_schema: {file: v2.zed}
  - copy_relation: {from: document#reader, to: document#viewer, delete_source: true, batch_size: 50}
  - delete_relation: {rel: document#reader}
  - apply_schema: {file: v3.zed, allow_orphan_delete: false}
";

    #[test]
    fn parses_the_rename_sequence() {
        let m = parse(Path::new("m.yaml"), RENAME).unwrap();
        assert_eq!(m.steps.len(), 4);
        assert_eq!(
            m.steps[1],
            Step::CopyRelation {
                from: "document#reader".into(),
                to: "document#viewer".into(),
                delete_source: true,
                batch_size: Some(50),
            }
        );
        assert_eq!(
            m.steps[1].describe(),
            "move_relation document#reader -> document#viewer"
        );
    }

    #[test]
    fn bad_steps_are_named() {
        let e = parse(
            Path::new("m.yaml"),
            "steps:\n  - copy_relation: {from: document#reader, to: folder#viewer}\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`m.yaml`: steps[0]: `from` and `to` must be on the same type (`document` vs `folder`)"
        );
        let e = parse(
            Path::new("m.yaml"),
            "steps:\n  - delete_relation: {rel: reader}\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`m.yaml`: steps[0].rel: `reader` is not `type#relation`"
        );
        assert!(parse(Path::new("m.yaml"), "steps:\n  - drop_everything: {}\n").is_err());
        assert!(parse(Path::new("m.yaml"), "steps: []\n").is_err());
    }

    #[test]
    fn state_round_trips_and_refuses_another_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml.state.json");
        let fresh = MigrationState::load(&path, "abc").unwrap();
        assert_eq!(fresh.completed, 0);
        let state = MigrationState {
            migration_sha256: "abc".into(),
            completed: 1,
            copy: Some(CopyProgress {
                step: 1,
                snapshot: "z".into(),
                cursor: "c".into(),
                copied: 50,
            }),
        };
        state.save(&path).unwrap();
        assert_eq!(MigrationState::load(&path, "abc").unwrap(), state);
        assert!(matches!(
            MigrationState::load(&path, "other"),
            Err(MigrateError::StateMismatch { .. })
        ));
        assert_eq!(
            default_state_path(Path::new("/x/m.yaml")),
            PathBuf::from("/x/m.yaml.state.json")
        );
    }
}
