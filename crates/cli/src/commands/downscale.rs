//! `amun downscale`: a checkpoint applied to a scene.

use std::path::PathBuf;

use amun_core::net::{Checkpoint, DeviceSpec, TileParams};
use amun_core::{conserve, AmunDownscaler, ConserveParams, Downscaler};
use anyhow::{bail, Context, Result};
use clap::Args;

use super::{load_scene, write_geotiff, Ctx};
use crate::output::check_writable;

#[derive(Args, Debug)]
pub struct DownscaleArgs {
    /// Checkpoint folder (from `amun train`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Scene folder (from `amun prepare` or `amun synth`).
    #[arg(long)]
    pub scene: PathBuf,
    /// Output GeoTIFF.
    #[arg(long)]
    pub out: PathBuf,
    /// Tile side in pixels (a multiple of 16); memory grows with it, results do not change.
    #[arg(long, default_value_t = 256)]
    pub tile: usize,
    /// Make block means equal the coarse input (iterative back-projection).
    #[arg(long)]
    pub conserve: bool,
    /// Overwrite the output.
    #[arg(long)]
    pub force: bool,
    /// Where the network runs: `cpu`, `cuda` or `cuda:N` (an NVIDIA GPU; needs a build with
    /// the `cuda` feature).
    #[arg(long, default_value_t = DeviceSpec::Cpu, value_name = "DEVICE")]
    pub device: DeviceSpec,
}

/// Runs `amun downscale`.
pub fn run(ctx: &Ctx, a: &DownscaleArgs) -> Result<()> {
    check_writable(&a.out, a.force)?;
    if !a.checkpoint.is_dir() {
        bail!("{}: no such checkpoint folder", a.checkpoint.display());
    }
    let device = a.device.device()?;
    let ckpt = Checkpoint::load_on(&a.checkpoint, &device)
        .with_context(|| format!("loading checkpoint {}", a.checkpoint.display()))?;
    let scene = load_scene(&a.scene)?;
    let missing: Vec<&String> = ckpt
        .config()
        .covariates
        .iter()
        .filter(|c| scene.covariates().get(c).is_none())
        .collect();
    if !missing.is_empty() {
        bail!(
            "checkpoint {} was trained on covariates [{}] but scene {} has [{}] (missing: {})",
            a.checkpoint.display(),
            ckpt.config().covariates.join(", "),
            a.scene.display(),
            scene.covariates().names().join(", "),
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let model = AmunDownscaler::from_checkpoint(ckpt).with_tiles(TileParams {
        tile: a.tile,
        ..TileParams::default()
    });
    let mut out = model.predict(&scene, &ctx.bars)?;
    if a.conserve {
        let (c, it) = conserve(&out, scene.coarse_lst(), &ConserveParams::default())?;
        ctx.detail(&format!("coarse conservation: {it} iterations"));
        out = c;
    }
    write_geotiff(&a.out, &out, a.force)?;
    ctx.say(&format!("wrote {}", a.out.display()));
    Ok(())
}
