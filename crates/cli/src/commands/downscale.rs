//! `amun downscale`: a checkpoint applied to a scene.

use std::path::PathBuf;

use amun_core::net::{Checkpoint, DeviceSpec, TileParams, Verdict};
use amun_core::{conserve, AmunDownscaler, ConserveParams, Downscaler, StagedAmun, STAGES_FILE};
use anyhow::{bail, Context, Result};
use clap::Args;

use super::train::report_check;
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
    /// Refuse a checkpoint that was worse than interpolation or the physical prior where it
    /// could be checked (its held-out check), instead of warning.
    #[arg(long)]
    pub strict: bool,
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
    let tiles = TileParams {
        tile: a.tile,
        ..TileParams::default()
    };
    // A staged checkpoint (`amun train --stages`) or a single one; the covariates of the
    // first network are those every stage was trained on.
    let (model, covariates): (Box<dyn Downscaler>, Vec<String>) =
        if a.checkpoint.join(STAGES_FILE).exists() {
            if !device.is_cpu() {
                bail!(
                    "staged checkpoints run on the CPU only (--device {})",
                    a.device
                );
            }
            let staged = StagedAmun::load(&a.checkpoint)
                .with_context(|| format!("loading staged checkpoint {}", a.checkpoint.display()))?;
            ctx.say(&format!("stages {:?}", staged.factors()));
            let covariates = staged
                .stages()
                .first()
                .map(|c| c.config().covariates.clone())
                .unwrap_or_default();
            (Box::new(staged.with_tiles(tiles)), covariates)
        } else {
            let ckpt = Checkpoint::load_on(&a.checkpoint, &device)
                .with_context(|| format!("loading checkpoint {}", a.checkpoint.display()))?;
            let covariates = ckpt.config().covariates.clone();
            (
                Box::new(AmunDownscaler::from_checkpoint(ckpt).with_tiles(tiles)),
                covariates,
            )
        };
    let check = model.check();
    if let (true, Some(Verdict::Worse { reference, .. })) =
        (a.strict, check.as_ref().map(|c| c.verdict()))
    {
        bail!(
            "checkpoint {} was worse than {reference} where it could be checked (--strict): {}",
            a.checkpoint.display(),
            check.map(|c| c.summary()).unwrap_or_default()
        );
    }
    report_check(ctx, "checkpoint", check.as_ref());
    let scene = load_scene(&a.scene)?;
    let missing: Vec<&String> = covariates
        .iter()
        .filter(|c| scene.covariates().get(c).is_none())
        .collect();
    if !missing.is_empty() {
        bail!(
            "checkpoint {} was trained on covariates [{}] but scene {} has [{}] (missing: {})",
            a.checkpoint.display(),
            covariates.join(", "),
            a.scene.display(),
            scene.covariates().names().join(", "),
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
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
