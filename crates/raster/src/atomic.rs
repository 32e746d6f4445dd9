//! Writing a file so that a reader sees the old file or the whole new one, never a part.
//!
//! The one routine every amun crate writes its outputs through (GeoTIFFs, scene and report
//! JSON, checkpoints, figures); `amun-bayesopt`, which depends on no amun crate, calls the
//! crate below it directly. It lives here because `amun-raster` is at the bottom of the
//! dependency graph.
//!
//! The work is done by [`atomic_write_file`]: a temporary file created next to the target
//! with mode `0o666` less the umask (0644 by default, as GDAL and `File::create` do; the
//! `tempfile` crate creates 0600, which hid outputs from other users of a shared machine),
//! taking over the mode of a file it replaces; flushed to disk, renamed over the target,
//! and the directory flushed; removed if anything fails.

use std::fs::File;
use std::path::Path;

use atomic_write_file::AtomicWriteFile;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically (see the module documentation).
///
/// # Errors
/// [`Error::Io`] naming the file if it cannot be created, written or renamed into place;
/// `path` is then unchanged.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let path = path.as_ref();
    write_atomic_with(path, |f| {
        f.write_all(bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Writes `path` atomically through `write`, which gets the temporary file (it may seek);
/// the file replaces `path` only if `write` succeeds.
///
/// # Errors
/// What `write` returns, or [`Error::Io`] naming the file if it cannot be created, flushed
/// or renamed into place; `path` is then unchanged.
pub fn write_atomic_with<T>(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut File) -> Result<T>,
) -> Result<T> {
    let path = path.as_ref();
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = AtomicWriteFile::open(path).map_err(io)?;
    // Dropping `file` without `commit` removes the temporary file.
    let out = write(&mut file)?;
    file.commit().map_err(io)?;
    Ok(out)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// This process's umask, from `/proc/self/status` (Linux 4.7 and later).
    fn umask() -> Option<u32> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line.split_whitespace().nth(1)?, 8).ok()
    }

    #[test]
    fn new_files_get_the_umask_mode_and_replace_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        write_atomic(&p, b"first").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        if let Some(mask) = umask() {
            // GDAL and `File::create`: 0o666 less the umask (0644 with the usual 022).
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o666 & !mask, "mode {mode:o}, umask {mask:o}");
        }
        // A failed write leaves the old file and no temporary file.
        let e = write_atomic_with(&p, |_| -> Result<()> {
            Err(Error::InvalidOperation {
                detail: "stop".into(),
            })
        });
        assert!(e.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A replaced file keeps its mode.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn a_bare_file_name_is_written_in_the_current_directory() {
        // `Path::new("x").parent()` is `Some("")`, which a temporary file cannot be made in.
        let name = format!("amun-atomic-{}.txt", std::process::id());
        write_atomic(&name, b"here").unwrap();
        assert_eq!(std::fs::read(&name).unwrap(), b"here");
        std::fs::remove_file(&name).unwrap();
    }

    #[test]
    fn a_missing_folder_is_named() {
        let e = write_atomic("/nonexistent-amun-dir/x.json", b"").unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent-amun-dir/x.json"),
            "{e}"
        );
    }
}
