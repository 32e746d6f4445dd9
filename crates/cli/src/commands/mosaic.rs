//! `amun mosaic`: row bands of one scene (from `amun downscale --rows --shard …`) joined
//! into one GeoTIFF.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::Ctx;
use crate::output::{check_can_create, check_writable};

#[derive(Args, Debug)]
pub struct MosaicArgs {
    /// Row band GeoTIFFs, or folders whose `rows-*.tif` files are taken.
    #[arg(required = true)]
    pub bands: Vec<PathBuf>,
    /// Output GeoTIFF.
    #[arg(long)]
    pub out: PathBuf,
    /// Write a Cloud-Optimized GeoTIFF (tiled, with internal overviews).
    #[arg(long)]
    pub cog: bool,
    /// Overwrite the output.
    #[arg(long)]
    pub force: bool,
}

/// Runs `amun mosaic`.
pub fn run(ctx: &Ctx, a: &MosaicArgs) -> Result<()> {
    check_writable(&a.out, a.force)?;
    check_can_create(&a.out)?;
    let mut parts = Vec::new();
    for b in &a.bands {
        if b.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(b)
                .with_context(|| format!("reading {}", b.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("rows-") && n.ends_with(".tif"))
                })
                .collect();
            if found.is_empty() {
                bail!("{}: no row band (rows-*.tif) in this folder", b.display());
            }
            found.sort();
            parts.extend(found);
        } else {
            parts.push(b.clone());
        }
    }
    let s = amun_core::mosaic(&parts, &a.out, a.cog)
        .with_context(|| format!("joining the row bands into {}", a.out.display()))?;
    ctx.say(&format!(
        "wrote {} ({}×{} pixels from {} band(s))",
        a.out.display(),
        s.grid.height(),
        s.grid.width(),
        s.bands.len()
    ));
    Ok(())
}
