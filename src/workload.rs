//! Reads the shared benchmark workload format (`%% zanzibar-workload v1`,
//! written by `../shared/peers/gen_workload.py`): a schema, relationship
//! lines and check lines. Used by the load generator, benchmarks and the
//! differential test against SpiceDB's answers.

use verdict_storage::{Tuple, TupleError};

/// A parsed workload.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    /// The schema text.
    pub schema: String,
    /// The relationships, in file order.
    pub relationships: Vec<Tuple>,
    /// The checks (`resource#permission@subject`), in file order.
    pub checks: Vec<Tuple>,
}

/// Why a workload file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadError {
    /// Not a workload file.
    #[error("not a zanzibar workload file (missing `%% zanzibar-workload v1` header)")]
    NotAWorkload,
    /// A relationship or check line did not parse.
    #[error("line {line}: {source}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// The parse error.
        #[source]
        source: TupleError,
    },
}

/// Why the shared workload could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// Running the generator or reading a workload file failed.
    #[error("cannot run or read `{path}`: {source}")]
    Io {
        /// The generator script or workload file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The generator exited with an error.
    #[error("`{script}` failed with {status}")]
    Failed {
        /// The generator script.
        script: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// The output did not parse.
    #[error(transparent)]
    Parse(#[from] WorkloadError),
}

/// Generates and parses the shared benchmark dataset (`gen_workload.py
/// --seed 42 --relationships 100000 --checks 20000`, the one SpiceDB's
/// recorded answers and figures refer to) with the generator in
/// `peers_dir` (`../shared/peers`).
///
/// # Errors
/// See [`GenerateError`].
pub fn generate_shared(peers_dir: &std::path::Path) -> Result<Workload, GenerateError> {
    let script = peers_dir.join("gen_workload.py");
    let io = |source| GenerateError::Io {
        path: script.display().to_string(),
        source,
    };
    let dir = tempfile::tempdir().map_err(io)?;
    let out = dir.path().join("workload.txt");
    let status = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "--seed",
            "42",
            "--relationships",
            "100000",
            "--checks",
            "20000",
            "-o",
        ])
        .arg(&out)
        .status()
        .map_err(io)?;
    if !status.success() {
        return Err(GenerateError::Failed {
            script: script.display().to_string(),
            status,
        });
    }
    let text = std::fs::read_to_string(&out).map_err(io)?;
    Ok(parse_workload(&text)?)
}

/// The workload benchmarks run: the file named by `VERDICT_WORKLOAD` if
/// set, else [`generate_shared`].
///
/// # Errors
/// See [`GenerateError`].
pub fn benchmark_workload(peers_dir: &std::path::Path) -> Result<Workload, GenerateError> {
    match std::env::var_os("VERDICT_WORKLOAD") {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|source| GenerateError::Io {
                path: std::path::PathBuf::from(path).display().to_string(),
                source,
            })?;
            Ok(parse_workload(&text)?)
        }
        None => generate_shared(peers_dir),
    }
}

/// Parses workload text.
///
/// # Errors
/// A missing header or a malformed relationship/check line.
pub fn parse_workload(text: &str) -> Result<Workload, WorkloadError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.starts_with("%% zanzibar-workload") => {}
        _ => return Err(WorkloadError::NotAWorkload),
    }
    #[derive(PartialEq)]
    enum Section {
        Other,
        Schema,
        Relationships,
        Checks,
    }
    let mut section = Section::Other;
    let mut workload = Workload::default();
    for (index, line) in lines {
        if let Some(rest) = line.strip_prefix("%% ") {
            section = match rest.split_whitespace().next() {
                Some("schema") => Section::Schema,
                Some("relationships") => Section::Relationships,
                Some("checks") => Section::Checks,
                _ => Section::Other,
            };
            continue;
        }
        match section {
            Section::Schema => {
                workload.schema.push_str(line);
                workload.schema.push('\n');
            }
            Section::Relationships | Section::Checks if !line.trim().is_empty() => {
                let tuple = Tuple::parse(line.trim()).map_err(|source| WorkloadError::Line {
                    line: index + 1,
                    source,
                })?;
                if section == Section::Checks {
                    workload.checks.push(tuple);
                } else {
                    workload.relationships.push(tuple);
                }
            }
            _ => {}
        }
    }
    Ok(workload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections() {
        let w = parse_workload("%% zanzibar-workload v1\n%% meta {}\n%% schema\ndefinition user {}\n%% relationships\ndoc:1#viewer@user:a\n%% checks\ndoc:1#view@user:a\n%% end\n").unwrap();
        assert_eq!(w.schema, "definition user {}\n");
        assert_eq!(w.relationships.len(), 1);
        assert_eq!(w.checks.len(), 1);
        assert!(matches!(
            parse_workload("nope"),
            Err(WorkloadError::NotAWorkload)
        ));
        assert!(matches!(
            parse_workload("%% zanzibar-workload v1\n%% relationships\nbad line\n"),
            Err(WorkloadError::Line { line: 3, .. })
        ));
    }
}
