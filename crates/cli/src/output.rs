//! Writing output files safely: never half-written, never overwriting without `--force`.

use std::path::Path;

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

/// Draws a PNG (the callback gets a path in a private temporary folder, since the plotting
/// library writes by path), then writes it to `path` atomically with the umask's
/// permissions ([`amun_core::write_atomic`]).
///
/// # Errors
/// If drawing fails or the file cannot be written.
pub fn write_png_atomic(path: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = tempfile::tempdir().context("creating a temporary folder")?;
    let drawn = tmp.path().join("figure.png");
    draw(&drawn)?;
    let bytes = std::fs::read(&drawn).with_context(|| format!("reading {}", drawn.display()))?;
    amun_core::write_atomic(path, &bytes)?;
    Ok(())
}
