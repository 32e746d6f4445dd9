//! `amun baseline`: the regression baselines.

use std::path::PathBuf;

use amun_core::metrics::score;
use amun_core::rf::RfParams;
use amun_core::{Downscaler, Regression, RegressionMode};
use anyhow::Result;
use clap::{Args, Subcommand};

use super::evaluate::{metrics_header, metrics_row};
use super::{load_scene, load_scenes, write_geotiff, Ctx};
use crate::output::check_writable;

/// Baseline downscalers.
#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// Random-forest downscaling: supervised on training scenes (paper-style) or fitted on
    /// the coarse pixels of the scene itself (Hutengs & Vohland) with residual correction.
    #[command(
        after_help = "Example:\n  amun baseline rf --train world/month-01 world/month-04 --scene world/month-07 --out rf.tif\n  amun baseline rf --scene scene --out rf.tif   # per-scene (no training scenes)"
    )]
    Rf(RfArgs),
}

/// Runs a baseline subcommand.
pub fn run(ctx: &Ctx, c: &BaselineCommand) -> Result<()> {
    match c {
        BaselineCommand::Rf(a) => rf(ctx, a),
    }
}

#[derive(Args, Debug)]
pub struct RfArgs {
    /// Training scene folders (with fine reference); none: fit on the scene's own coarse
    /// pixels (Hutengs & Vohland).
    #[arg(long, num_args = 0..)]
    pub train: Vec<PathBuf>,
    /// Scene folder to downscale.
    #[arg(long)]
    pub scene: PathBuf,
    /// Output GeoTIFF.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of trees.
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Overwrite the output.
    #[arg(long)]
    pub force: bool,
}

fn rf(ctx: &Ctx, a: &RfArgs) -> Result<()> {
    check_writable(&a.out, a.force)?;
    let scene = load_scene(&a.scene)?;
    let train = load_scenes(&a.train)?;
    let mode = if train.is_empty() {
        RegressionMode::PerScene
    } else {
        RegressionMode::Supervised
    };
    let mut rf = Regression::random_forest(RfParams::new().n_trees(a.trees).seed(a.seed), mode);
    rf.fit(&train, &ctx.bars)?;
    let out = rf.predict(&scene, &ctx.bars)?;
    write_geotiff(&a.out, &out, a.force)?;
    if let Some(r) = scene.reference() {
        let m = score(&out, r, None)?;
        ctx.say(&format!("{}\n{}", metrics_header(), metrics_row("rf", &m)));
    }
    ctx.say(&format!("wrote {}", a.out.display()));
    Ok(())
}
