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
