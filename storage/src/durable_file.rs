//! Small files that must survive a crash whole: written to a temporary
//! file beside the target, fsynced, renamed over it, and the directory
//! fsynced so the rename itself is durable. A reader sees either the old
//! contents or the new, never a torn mix; after `write_atomic` returns,
//! the new contents survive power loss.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The temporary file `write_atomic` writes before renaming:
/// `<path>.tmp` (the whole name kept, so `a.json` and `a.toml` never share
/// one).
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut tmp = OsString::from(path.as_os_str());
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Replaces `path` with `bytes` atomically and durably.
///
/// # Errors
/// Any I/O failure; `path` then still holds its old contents (a leftover
/// temporary file is overwritten by the next write).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temporary_path(path);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_contents_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one").expect("first write");
        write_atomic(&path, b"two").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        assert!(!temporary_path(&path).exists());
    }

    #[test]
    fn a_failed_write_keeps_the_old_contents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old").expect("write");
        // The temporary file cannot be created where a directory stands.
        std::fs::create_dir(temporary_path(&path)).expect("block the temporary path");
        assert!(write_atomic(&path, b"new").is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
    }

    #[test]
    fn the_temporary_path_keeps_the_whole_name() {
        assert_eq!(
            temporary_path(Path::new("/d/keys.json")),
            PathBuf::from("/d/keys.json.tmp")
        );
    }
}
