//! `amun baseline`: the regression baselines.

use std::path::PathBuf;

use amun_core::metrics::score;
use amun_core::net::Verdict;
use amun_core::prior::PriorParams;
use amun_core::rf::{RfParams, RidgeParams};
use amun_core::{Downscaler, PhysicalPrior, Regression, RegressionMode};
use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};

use super::evaluate::{metrics_header, metrics_row};
use super::train::{report_check, BaseArg};
use super::{load_scene, load_scenes, write_geotiff, Ctx};
use crate::output::check_writable;

/// Baseline downscalers.
#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// Random-forest downscaling: supervised on training scenes (paper-style) or fitted on
    /// the coarse pixels of the scene itself (Hutengs & Vohland) with residual correction.
    #[command(
        after_help = "Example:\n  amun baseline rf --train world/month-01 world/month-04 --scene world/month-07 --out rf.tif\n  amun baseline rf --scene scene --out rf.tif --base prior-covariates   # per scene, on the prior"
    )]
    Rf(RegressionArgs),
    /// Ridge-regression downscaling (TsHARP/DisTrad-style), supervised or per scene.
    #[command(
        after_help = "Example:\n  amun baseline ridge --scene scene --out ridge.tif\n  amun baseline ridge --train world/month-01 --scene world/month-07 --out ridge.tif"
    )]
    Ridge(RegressionArgs),
    /// The physical prior alone: bilinear coarse LST plus a lapse-rate (or covariate-anomaly)
    /// term fitted on the scene's coarse cells, keeping every coarse block mean.
    #[command(
        after_help = "Example:\n  amun baseline prior --scene scene --out prior.tif\n  amun baseline prior --scene scene --kind covariates --out prior.tif"
    )]
    Prior(PriorArgs),
}

/// Runs a baseline subcommand.
pub fn run(ctx: &Ctx, c: &BaselineCommand) -> Result<()> {
    match c {
        BaselineCommand::Rf(a) => regression(ctx, a, true),
        BaselineCommand::Ridge(a) => regression(ctx, a, false),
        BaselineCommand::Prior(a) => prior(ctx, a),
    }
}

/// What every baseline writes and how it answers for itself.
#[derive(Args, Debug)]
pub struct OutputArgs {
    /// Scene folder to downscale.
    #[arg(long)]
    pub scene: PathBuf,
    /// Output GeoTIFF.
    #[arg(long)]
    pub out: PathBuf,
    /// Refuse (write nothing) when the method was worse than interpolation or the prior
    /// where it could be checked, one scale up, instead of warning.
    #[arg(long)]
    pub strict: bool,
    /// Overwrite the output.
    #[arg(long)]
    pub force: bool,
    /// Write the bands `mean`, `std`, `q05`, `q95`: the quantile regression forest's spread
    /// (rf), the training residual standard deviation (ridge) or the fit's residual standard
    /// deviation (prior); none of them recalibrated. The interval is `mean ∓ 1.645·std`.
    /// Fitted per scene (no `--train`), the spread is what the fit leaves of the coarse cells,
    /// a lower bound at the fine scale (warned).
    #[arg(long)]
    pub uncertainty: bool,
}

#[derive(Args, Debug)]
pub struct RegressionArgs {
    /// Training scene folders (with fine reference); none: fit on the scene's own coarse
    /// pixels (Hutengs & Vohland).
    #[arg(long, num_args = 0..)]
    pub train: Vec<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The field the model corrects.
    #[arg(long, value_enum, default_value_t = BaseArg::Bilinear)]
    pub base: BaseArg,
    /// Number of trees (random forest).
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    /// L2 penalty on the standardised features (ridge).
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Which prior.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorKindArg {
    /// The lapse-rate prior on the `elevation` covariate.
    Elevation,
    /// The ridge prior on every covariate's anomalies.
    Covariates,
}

#[derive(Args, Debug)]
pub struct PriorArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    /// Which covariates enter the prior.
    #[arg(long, value_enum, default_value_t = PriorKindArg::Elevation)]
    pub kind: PriorKindArg,
    /// Lapse rate (K/km) used where the fit is unreliable.
    #[arg(long, default_value_t = -6.5, allow_negative_numbers = true)]
    pub fallback_lapse_rate: f64,
}

fn regression(ctx: &Ctx, a: &RegressionArgs, forest: bool) -> Result<()> {
    let o = &a.output;
    check_writable(&o.out, o.force)?;
    let scene = load_scene(&o.scene)?;
    let train = load_scenes(&a.train)?;
    let mode = if train.is_empty() {
        RegressionMode::PerScene
    } else {
        RegressionMode::Supervised
    };
    let method = if forest {
        Regression::random_forest(
            RfParams::new()
                .n_trees(a.trees)
                .seed(a.seed)
                .uncertainty(o.uncertainty),
            mode,
        )
    } else {
        Regression::ridge(RidgeParams::new().alpha(a.alpha), mode)
    }
    .with_base(a.base.base());
    finish(ctx, o, method, &train, &scene)
}

fn prior(ctx: &Ctx, a: &PriorArgs) -> Result<()> {
    let o = &a.output;
    check_writable(&o.out, o.force)?;
    let scene = load_scene(&o.scene)?;
    let params = match a.kind {
        PriorKindArg::Elevation => PriorParams::elevation(),
        PriorKindArg::Covariates => PriorParams::covariates(),
    }
    .fallback_lapse_rate(a.fallback_lapse_rate / 1000.0);
    params.clone().check()?;
    let method = PhysicalPrior::new(params);
    let out = predict_checked(ctx, o, &method, &scene)?;
    if let Some(r) = method.last_report() {
        ctx.say(&r.summary());
    }
    let spread = spread_of(ctx, o, &method, &scene, true)?;
    write_out(ctx, o, method.name(), &out, spread.as_ref(), &scene)
}

/// Fits and predicts, reports the method's check and, with `--strict`, refuses a method
/// that lost to interpolation or the prior.
fn predict_checked(
    ctx: &Ctx,
    o: &OutputArgs,
    method: &(impl Downscaler + ?Sized),
    scene: &amun_core::Scene,
) -> Result<amun_core::raster::Raster> {
    let out = method.predict(scene, &ctx.bars)?;
    let check = method.check();
    if let (true, Some(Verdict::Worse { reference, .. })) =
        (o.strict, check.as_ref().map(|c| c.verdict()))
    {
        bail!(
            "{} was worse than {reference} one scale up (--strict; nothing written): {}",
            method.name(),
            check.map(|c| c.summary()).unwrap_or_default()
        );
    }
    report_check(ctx, method.name(), check.as_ref());
    Ok(out)
}

fn finish(
    ctx: &Ctx,
    o: &OutputArgs,
    mut method: Regression,
    train: &[amun_core::Scene],
    scene: &amun_core::Scene,
) -> Result<()> {
    method.fit(train, &ctx.bars)?;
    let out = predict_checked(ctx, o, &method, scene)?;
    let spread = spread_of(ctx, o, &method, scene, train.is_empty())?;
    write_out(ctx, o, method.name(), &out, spread.as_ref(), scene)
}

/// With `--uncertainty`, the method's per-pixel standard deviation. A method fitted on the
/// scene's own coarse cells (`per_scene`) gets a warning that its spread is a coarse-scale
/// quantity.
fn spread_of(
    ctx: &Ctx,
    o: &OutputArgs,
    method: &(impl Downscaler + ?Sized),
    scene: &amun_core::Scene,
    per_scene: bool,
) -> Result<Option<amun_core::raster::Raster>> {
    if !o.uncertainty {
        return Ok(None);
    }
    if per_scene {
        ctx.warn(&format!(
            "{}'s spread is what its fit leaves of the scene's coarse cells: it does not see the variability inside a cell, and at 10× in amun's real-data experiment its 90 % interval covered 19 % of the fine truth; read std as a lower bound",
            method.name()
        ));
    }
    let u = method
        .predict_with_spread(scene, &ctx.bars)?
        .ok_or_else(|| anyhow::anyhow!("{} gives no spread", method.name()))?;
    Ok(Some(u.std))
}

fn write_out(
    ctx: &Ctx,
    o: &OutputArgs,
    name: &str,
    out: &amun_core::raster::Raster,
    std: Option<&amun_core::raster::Raster>,
    scene: &amun_core::Scene,
) -> Result<()> {
    match std {
        Some(std) => {
            check_writable(&o.out, o.force)?;
            amun_core::raster::write(
                &o.out,
                &super::uncertain::uncertainty_stack(out, std)?,
                &Default::default(),
            )?;
        }
        None => write_geotiff(&o.out, out, o.force)?,
    }
    if let Some(r) = scene.reference() {
        let m = score(out, r, None)?;
        ctx.say(&format!("{}\n{}", metrics_header(), metrics_row(name, &m)));
    }
    ctx.say(&format!("wrote {}", o.out.display()));
    Ok(())
}
