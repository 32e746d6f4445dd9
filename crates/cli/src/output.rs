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

/// Checks that a file can be created at `path`: its folder exists, is a folder, and takes a
/// new file (a temporary one is created and removed). Commands that run for long call it
/// before the work, so that a typo in the output path does not cost the whole run.
///
/// # Errors
/// If the folder is missing, is not a folder, or refuses a new file.
pub fn check_can_create(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!(
            "{}: cannot write there: {} is not an existing folder",
            path.display(),
            dir.display()
        );
    }
    tempfile::Builder::new()
        .prefix(".amun-write-check-")
        .tempfile_in(&dir)
        .with_context(|| {
            format!(
                "{}: cannot create a file in {}",
                path.display(),
                dir.display()
            )
        })?;
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
