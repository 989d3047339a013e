//! The client verbs, one module per service, and the input helpers they
//! share (tuple lines from arguments, files or stdin).

pub mod bench;
pub mod cluster;
pub mod key;
pub mod migrate;
pub mod perm;
pub mod rel;
pub mod schema;
pub mod schema_change;
pub mod tenant;
pub mod watch;

use std::io::{BufRead, BufReader, IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};

use super::client::CliError;

/// Where tuple lines come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Standard input (`-`).
    Stdin,
    /// A file of tuple lines.
    File(PathBuf),
    /// Text already loaded (a validation file's `relationships:` block),
    /// with the name to cite in errors.
    Text(String, String),
}

impl Source {
    /// `-` is stdin; `.yaml`/`.yml` files contribute their
    /// `relationships:` block; anything else is read line by line.
    ///
    /// # Errors
    /// A validation file that cannot be loaded.
    pub fn from_path(path: &Path) -> Result<Source, CliError> {
        if path.as_os_str() == "-" {
            return Ok(Source::Stdin);
        }
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            let file = crate::schema::loader::read_validation_file(path)
                .map_err(|e| CliError::Invalid(e.to_string()))?;
            return Ok(Source::Text(
                path.display().to_string(),
                file.relationships.unwrap_or_default(),
            ));
        }
        Ok(Source::File(path.to_path_buf()))
    }

    /// The name errors cite.
    pub fn name(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".into(),
            Source::File(p) => p.display().to_string(),
            Source::Text(name, _) => name.clone(),
        }
    }

    /// A line reader (for stdin, call this on the thread that reads).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn reader(&self) -> Result<Box<dyn BufRead>, CliError> {
        match self {
            Source::Stdin => Ok(Box::new(std::io::stdin().lock())),
            Source::File(p) => std::fs::File::open(p)
                .map(|f| Box::new(BufReader::new(f)) as Box<dyn BufRead>)
                .map_err(|e| CliError::Invalid(format!("cannot read `{}`: {e}", p.display()))),
            Source::Text(_, text) => Ok(Box::new(std::io::Cursor::new(text.clone().into_bytes()))),
        }
    }

    /// Every tuple line with its 1-based line number (blank lines and `//`
    /// comments skipped), via `each`; stops at the first error `each`
    /// returns.
    ///
    /// # Errors
    /// Reading fails, or `each` fails.
    pub fn for_each_line(
        &self,
        mut each: impl FnMut(usize, &str) -> Result<(), CliError>,
    ) -> Result<(), CliError> {
        let mut reader = self.reader()?;
        let mut buf = String::new();
        let mut number = 0usize;
        loop {
            buf.clear();
            let n = reader
                .read_line(&mut buf)
                .map_err(|e| CliError::Invalid(format!("cannot read {}: {e}", self.name())))?;
            if n == 0 {
                return Ok(());
            }
            number += 1;
            let line = buf.trim();
            if line.is_empty() || line.starts_with("//") {
                continue;
            }
            each(number, line)?;
        }
    }
}

/// Tuple arguments (`-` = stdin) then `--file`, as `(where, text)` pairs.
///
/// # Errors
/// Unreadable input.
pub fn gather_lines(
    args: &[String],
    file: Option<&Path>,
) -> Result<Vec<(String, String)>, CliError> {
    let mut out = Vec::new();
    let read_source = |source: Source, out: &mut Vec<(String, String)>| {
        let name = source.name();
        source.for_each_line(|n, line| {
            out.push((format!("{name}:{n}"), line.to_string()));
            Ok(())
        })
    };
    for (i, arg) in args.iter().enumerate() {
        if arg == "-" {
            read_source(Source::Stdin, &mut out)?;
        } else {
            out.push((format!("argument {}", i + 1), arg.clone()));
        }
    }
    if let Some(path) = file {
        read_source(Source::from_path(path)?, &mut out)?;
    }
    Ok(out)
}

/// Reads a whole file (`-` = stdin).
///
/// # Errors
/// Unreadable input.
pub fn read_text(path: &Path) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Invalid(format!("cannot read stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Invalid(format!("cannot read `{}`: {e}", path.display())))
}

/// Whether progress should be drawn (stderr is a terminal).
pub fn interactive() -> bool {
    std::io::stderr().is_terminal()
}
