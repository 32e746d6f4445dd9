//! Writing output files safely: never half-written, never overwriting without `--force`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Refuses to overwrite an existing path unless `force`.
///
/// # Errors
/// If the path exists and `force` is false.
pub fn check_writable(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!(
            "{} already exists (use --force to overwrite)",
            path.display()
        );
    }
    Ok(())
}

/// Draws a PNG into a temporary path (the callback gets it), then renames it into place.
///
/// # Errors
/// If drawing fails or the file cannot be written.
pub fn write_png_atomic(path: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = parent_dir(path);
    let tmp = tempfile::Builder::new()
        .suffix(".png")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    draw(tmp.path())?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
