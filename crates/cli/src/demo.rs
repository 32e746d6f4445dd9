//! `amun demo`: the paper-style simulated experiment on a built-in synthetic world.

use std::io::Write;
use std::time::Instant;

use amun_core::net::{AmunConfig, TrainConfig};
use amun_core::prior::{Base, PriorParams};
use amun_core::raster::Raster;
use amun_core::rf::{RfParams, RidgeParams};
use amun_core::synth::World;
use amun_core::{
    conserve, paper_style, score_method, AmunDownscaler, ConserveParams, Downscaler, Interpolation,
    PhysicalPrior, Regression, RegressionMode, Report, RunOptions, Scene,
};
use anyhow::{Context, Result};

use crate::commands::evaluate::prediction_figures;
use crate::commands::synth::{synth_scene, WorldVariant};
use crate::commands::{write_geotiff, Ctx};
use crate::figures;
use crate::output::check_writable;
use clap::Args;
use std::path::PathBuf;

// Months the models learn from and months they are tested on (unseen dates, one per season).
use amun_core::synth::{TEST_MONTHS, TRAIN_MONTHS};
/// Early-afternoon LST, when fine-scale contrasts are strongest.
const HOUR: u32 = 13;
/// 0.1° → 0.01°, as in the paper's real experiment.
const FACTOR: usize = 10;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "amun-demo")]
    pub out: PathBuf,
    /// Overwrite the output folder's files.
    #[arg(long)]
    pub force: bool,
    /// A smaller world and shorter training (about a minute).
    #[arg(long)]
    pub quick: bool,
    /// Seed of the synthetic world and of training.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Training epochs for AMUN (default: 20, or 6 with --quick).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Side of the world in fine pixels, a multiple of 10, at least 80 (default: 320, or 160
    /// with --quick); in the real-data experiment at least 400 (default 640, or 400 with
    /// --quick), and the 40×40-cell corner only above 400.
    #[arg(long)]
    pub size: Option<usize>,
    /// Which experiments to run: the paper's simulated one (default, 2–3 minutes on 2
    /// cores), the real-data one (`real`: about 17 minutes per world on 2 cores), or both.
    #[arg(long, value_enum, default_value_t = Experiments::Paper)]
    pub experiment: Experiments,
    /// The world variant (both experiments).
    #[arg(long, value_enum, default_value_t = WorldVariant::Default)]
    pub world: WorldVariant,
    /// Also show per-pixel uncertainty on the test months: AMUN as a deep ensemble of this
    /// many members (each trained as the demo's AMUN) and the random forest's quantile
    /// regression forest (`uncertainty.md`; K times AMUN's training time). In the real-data
    /// experiment the ensemble is trained one scale up, next to the prior's residual spread
    /// and the per-scene quantile forest.
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..))]
    pub ensemble: Option<u64>,
}

/// The demo's experiments.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Experiments {
    /// Both.
    All,
    /// The paper's simulated experiment: trained on the fine truth of some months, tested on
    /// others.
    Paper,
    /// The real-data experiment: trained one scale up from the coarse field alone, at 10× on
    /// a 640×640-pixel region and on a 40×40-coarse-cell corner of it.
    Real,
}

/// Runs `amun demo`.
pub fn run(ctx: &Ctx, a: &DemoArgs) -> Result<()> {
    check_writable(&a.out.join("report.json"), a.force)?;
    if a.experiment != Experiments::Real {
        paper(ctx, a)?;
    }
    if a.experiment != Experiments::Paper {
        real(ctx, a)?;
    }
    Ok(())
}

/// The real-data experiment on a full region and on a 40×40-cell corner of it.
fn real(ctx: &Ctx, a: &DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let variant = a.world.name();
    let size = a.size.unwrap_or(if a.quick { 400 } else { 640 });
    // One scale up a region of `size / 10` coarse cells gives whole blocks of 10 cells only,
    // and AMUN needs 32 training pixels a side: 40 cells, 400 px.
    if size < 400 || !size.is_multiple_of(FACTOR) {
        anyhow::bail!(
            "--size {size}: the real-data experiment needs a multiple of {FACTOR} of at least 400 px (40 coarse cells, so that training one scale up has 40 × 40 pixels)"
        );
    }
    let epochs = a.epochs.unwrap_or(if a.quick { 10 } else { 30 });
    let world = World::generate(&a.world.params(a.seed, size))?;
    let full = crate::demo_real::world_scenes(&world)?;
    let mut regions = vec![(format!("{variant} world, {size}×{size} px"), full.clone())];
    if !a.quick && size > 400 {
        regions.push((
            format!("{variant} world, 40×40-cell corner"),
            crate::demo_real::corner(&full, 40)?,
        ));
    }
    let members = a.ensemble.map(|k| usize::try_from(k).unwrap_or(usize::MAX));
    let mut tables = String::new();
    for (i, (label, scenes)) in regions.iter().enumerate() {
        let dir = a
            .out
            .join(format!("real-{variant}-{}", ["full", "corner"][i]));
        let (report, spread) =
            crate::demo_real::run_region(ctx, &dir, label, scenes, (a.seed, epochs), members)?;
        tables.push_str(&format!("\n### {label}\n\n{}", report.table_markdown()));
        if let Some(md) = spread {
            tables.push_str(&format!("\nUncertainty, scored at the fine scale:\n\n{md}"));
        }
    }
    println!(
        "\nReal-data experiment ({:.0} s):{tables}",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The paper-style simulated experiment.
fn paper(ctx: &Ctx, a: &DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let out = &a.out;
    for sub in ["geotiff", "figures"] {
        std::fs::create_dir_all(out.join(sub))
            .with_context(|| format!("creating {}", out.join(sub).display()))?;
    }
    let size = a.size.unwrap_or(if a.quick { 160 } else { 320 });
    if size < 80 || !size.is_multiple_of(FACTOR) {
        anyhow::bail!("--size {size} must be a multiple of {FACTOR} and at least 80");
    }
    let epochs = a.epochs.unwrap_or(if a.quick { 6 } else { 20 });

    ctx.say(&format!(
        "amun demo: a {size}×{size} {} synthetic world at 0.01° (seed {}), LST at {HOUR}:00, factor {FACTOR}",
        a.world.name(),
        a.seed
    ));
    let world = World::generate(&a.world.params(a.seed, size))?;
    let (train, test) = demo_scenes(&world)?;
    ctx.say(&format!(
        "training months {:?}, test months {:?}; noise {:.2} K (std)",
        TRAIN_MONTHS,
        TEST_MONTHS,
        world.noise_std()
    ));

    let covariates = train[0].covariates().names().to_vec();
    // AMUN and the second forest correct the covariate prior, fitted on each scene's own
    // coarse cells: the supervised models then learn what the month's own regression leaves,
    // rather than one mapping for every season (`docs/design.md` §5.4).
    let base = Base::Prior(PriorParams::covariates());
    let amun_cfg = AmunConfig::small()
        .with_covariates(&covariates)
        .with_base(base.clone());
    let tc = TrainConfig {
        epochs,
        seed: a.seed,
        // Smaller worlds need smaller validation blocks to hold any at all.
        split_block: if size >= 320 { 128 } else { 32 },
        ..TrainConfig::default()
    };
    let for_ensemble = (amun_cfg.clone(), tc.clone());
    // A capped sample keeps the forest's memory and time modest on a laptop.
    let rf_params = RfParams::new().seed(a.seed).n_trees(60).max_samples(40_000);
    let mut amun = AmunDownscaler::new(amun_cfg, tc);
    let (mut report, mut predictions) =
        run_methods(ctx, &train, &test, &rf_params, &base, &mut amun)?;
    add_conserved(ctx, &test, &mut report, &mut predictions)?;
    add_oracles(ctx, &world, &test, &mut report, &mut predictions)?;
    describe(&mut report, a, size, epochs, &world);
    write_outputs(ctx, out, &report, &predictions, &test)?;
    if let Some(ckpt) = amun.checkpoint() {
        let h = ckpt.history();
        let tr: Vec<f64> = h.iter().map(|r| r.train_rmse_k).collect();
        let va: Vec<f64> = h.iter().map(|r| r.val_rmse_k).collect();
        figures::curves_png(
            &out.join("figures/amun_training.png"),
            "AMUN training (small preset)",
            &tr,
            &va,
        )?;
        ckpt.save(out.join("amun-checkpoint"))?;
    }
    let spread = match a.ensemble {
        Some(k) => Some(crate::demo_uncertainty::run(
            ctx,
            out,
            &train,
            &test,
            usize::try_from(k).unwrap_or(usize::MAX),
            for_ensemble,
            rf_params,
        )?),
        None => None,
    };
    report.setup.push((
        "wall time".into(),
        format!("{:.0} s", t0.elapsed().as_secs_f64()),
    ));
    report.save(out)?;
    // Written with `?`, so that a closed pipe ends the program quietly (see `main`).
    let mut w = std::io::stdout().lock();
    writeln!(w, "\n{}", report.table_markdown())?;
    if let Some(md) = spread {
        writeln!(w, "Uncertainty on the test months:\n\n{md}")?;
    }
    writeln!(
        w,
        "Report: {}  Figures: {}  GeoTIFFs: {}",
        out.join("report.md").display(),
        out.join("figures").display(),
        out.join("geotiff").display()
    )?;
    Ok(())
}

/// The report's title, setup lines and notes.
fn describe(report: &mut Report, a: &DemoArgs, size: usize, epochs: usize, world: &World) {
    report.title = "amun demo: paper-style simulated experiment on a synthetic world".into();
    report.setup.insert(
        0,
        (
            "world".into(),
            format!(
                "{} world, {size}×{size} px at 0.01°, seed {}",
                a.world.name(),
                a.seed
            ),
        ),
    );
    report
        .setup
        .push(("hour".into(), format!("{HOUR}:00 local solar time")));
    report.setup.push((
        "AMUN".into(),
        format!("small preset on the covariate prior, {epochs} epochs"),
    ));
    report.setup.push((
        "noise".into(),
        format!(
            "{:.2} K standard deviation, spatially correlated; its block means are in the coarse LST, so the floor no method can pass is the within-block part: the row `oracle-blind-noise`",
            world.noise_std()
        ),
    ));
    report.notes.push(
        "Scores are against the synthetic world's fine truth on months no model saw in training."
            .into(),
    );
    report.notes.push(
        "The oracles (oracle-blind-…) know the world's physics and every input, hidden ones \
         included, except the within-block part of the named terms (their block means come from the coarse \
         LST): their RMSE is that part's RMS. Blind to noise, the oracle's error is the \
         floor no method can pass; blind also to soil moisture (no covariate measures it), it \
         is what a method that cannot infer moisture from the covariates could reach."
            .into(),
    );
    report.notes.push(
        "amun-conserved is AMUN's output after coarse conservation (`amun downscale --conserve`): \
         its block means equal the coarse input; ridge and rf keep them by residual correction."
            .into(),
    );
}

/// The demo's training and test scenes of a world.
fn demo_scenes(world: &World) -> Result<(Vec<Scene>, Vec<Scene>)> {
    let months = |ms: &[u32]| {
        ms.iter()
            .map(|&m| synth_scene(world, m, HOUR, FACTOR))
            .collect::<Result<Vec<_>>>()
    };
    Ok((months(&TRAIN_MONTHS)?, months(&TEST_MONTHS)?))
}

/// Fits and scores the demo's methods, named as the report shows them.
fn run_methods(
    ctx: &Ctx,
    train: &[Scene],
    test: &[Scene],
    rf_params: &RfParams,
    base: &Base,
    amun: &mut AmunDownscaler,
) -> Result<(Report, Vec<Vec<Raster>>)> {
    let rf = || rf_params.clone();
    let mut methods: Vec<Box<dyn Downscaler + '_>> = vec![
        Box::new(Interpolation::bilinear()),
        Box::new(PhysicalPrior::new(PriorParams::covariates())),
        Box::new(Regression::ridge(
            RidgeParams::new(),
            RegressionMode::Supervised,
        )),
        Box::new(Regression::random_forest(rf(), RegressionMode::Supervised)),
        Box::new(
            Regression::random_forest(rf(), RegressionMode::Supervised).with_base(base.clone()),
        ),
        Box::new(amun),
    ];
    let run = paper_style(train, test, &mut methods, &RunOptions::default(), &ctx.bars)?;
    drop(methods);
    let (mut report, predictions) = (run.report, run.predictions);
    for (m, name) in report.methods.iter_mut().zip([
        "bilinear",
        "prior-covariates",
        "ridge",
        "rf",
        "rf-prior",
        "amun",
    ]) {
        m.method = name.to_string();
    }
    Ok((report, predictions))
}

/// AMUN's rows with the coarse block means kept (`amun downscale --conserve`).
fn add_conserved(
    ctx: &Ctx,
    test: &[Scene],
    report: &mut Report,
    predictions: &mut Vec<Vec<Raster>>,
) -> Result<()> {
    // AMUN's output does not keep the coarse block means (the baselines' residual correction
    // does): show it also with the coarse-conservation post-step `amun downscale --conserve`
    // applies.
    ctx.say("conserving AMUN's block means");
    let t1 = Instant::now();
    let amun_idx = report.methods.len() - 1;
    let conserved = predictions[amun_idx]
        .iter()
        .zip(test)
        .map(|(p, scene)| Ok(conserve(p, scene.coarse_lst(), &ConserveParams::default())?.0))
        .collect::<Result<Vec<_>>>()?;
    let amun_report = &report.methods[amun_idx];
    let row = score_method(
        "amun-conserved",
        test,
        &conserved,
        &RunOptions::default(),
        amun_report.fit_seconds,
        amun_report.predict_seconds + t1.elapsed().as_secs_f64(),
    )?;
    report.methods.push(row);
    predictions.push(conserved);
    Ok(())
}

/// The oracle rows (see [`ORACLES`]).
fn add_oracles(
    ctx: &Ctx,
    world: &World,
    test: &[Scene],
    report: &mut Report,
    predictions: &mut Vec<Vec<Raster>>,
) -> Result<()> {
    // Oracles: the world's own physics with the true inputs, blind only to the within-block
    // part of hidden terms (their block means are in the coarse field). They bound what any
    // method could learn from the covariates and their neighbourhood.
    ctx.say("scoring the oracles");
    for (label, hidden) in ORACLES {
        let preds = TEST_MONTHS
            .iter()
            .zip(test)
            .map(|(&m, scene)| oracle(world, m, scene, hidden))
            .collect::<Result<Vec<_>>>()?;
        let row = score_method(label, test, &preds, &RunOptions::default(), 0.0, 0.0)?;
        report.methods.push(row);
        predictions.push(preds);
    }
    Ok(())
}

/// Every method's GeoTIFF and figures per test month, with the reference and coarse field.
fn write_outputs(
    ctx: &Ctx,
    out: &std::path::Path,
    report: &Report,
    predictions: &[Vec<Raster>],
    test: &[Scene],
) -> Result<()> {
    ctx.say("writing GeoTIFFs and figures");
    for (si, scene) in test.iter().enumerate() {
        let stem = scene.name();
        let reference = scene.require_reference("demo")?;
        write_geotiff(
            &out.join(format!("geotiff/{stem}_reference.tif")),
            reference,
            true,
        )?;
        write_geotiff(
            &out.join(format!("geotiff/{stem}_coarse.tif")),
            scene.coarse_lst(),
            true,
        )?;
        for (mi, m) in report.methods.iter().enumerate() {
            let pred = &predictions[mi][si];
            write_geotiff(
                &out.join(format!("geotiff/{stem}_{}.tif", m.method)),
                pred,
                true,
            )?;
            prediction_figures(
                &out.join("figures"),
                &format!("{stem}_{}", m.method),
                &format!("{} ({stem})", m.method),
                pred,
                reference,
                Some(scene.coarse_lst()),
                true,
            )?;
        }
    }
    Ok(())
}

/// The oracle rows: a label and the LST terms (`World::lst_terms`) whose within-block part
/// the oracle does not know.
const ORACLES: [(&str, &[&str]); 2] = [
    ("oracle-blind-noise", &["noise"]),
    ("oracle-blind-noise-moisture", &["noise", "moisture"]),
];

/// The truth of `scene` (month `month` of `world`) less the within-block part of the
/// `hidden` terms: what the world's physics gives from every input but those.
fn oracle(world: &World, month: u32, scene: &Scene, hidden: &[&str]) -> Result<Raster> {
    let truth = scene.require_reference("demo")?;
    let terms = world.lst_terms(month, HOUR)?;
    let mut data = truth.data().clone();
    for name in hidden {
        let t = terms
            .band(name)
            .with_context(|| format!("the world has no LST term `{name}`"))?;
        let means = t.block_mean(FACTOR, 1.0)?;
        for ((r, c), v) in data.indexed_iter_mut() {
            *v -= t.data()[(r, c)] - means.data()[(r / FACTOR, c / FACTOR)];
        }
    }
    Ok(Raster::new(truth.grid().clone(), data)?)
}
