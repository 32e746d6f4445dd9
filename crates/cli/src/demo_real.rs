//! The demo's real-data experiment: downscaling where no fine truth exists, as users of
//! ERA5-Land must. Every learned method learns from the coarse field alone, one scale up or
//! (`amun-coarse-cells`) at the target scale from the coarse cells (`docs/design.md` §5);
//! the synthetic world's fine truth is used only to score.

use std::path::Path;

use amun_core::indices::LandcoverEncoding;
use amun_core::net::{Ablation, AmunConfig, Supervision, TrainConfig};
use amun_core::prior::{Base, PriorParams};
use amun_core::rf::{RfParams, RidgeParams};
use amun_core::synth::World;
use amun_core::{
    conserve, frequent_classes, real_split, score_method, AmunDownscaler, ConserveParams,
    Downscaler, Interpolation, PhysicalPrior, Regression, RegressionMode, Report, RunOptions,
    Scene, StagedAmun,
};
use anyhow::{Context, Result};

use crate::commands::synth::synth_scene;
use crate::commands::Ctx;

/// Every month: a real user has many time steps of one region, and the scale-up scheme pools
/// them (no fine truth is used, so the months scored are among them).
const MONTHS: [u32; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
/// Scored months, one per season.
const SCORED: [u32; 4] = [2, 5, 8, 11];
const HOUR: u32 = 13;
const FACTOR: usize = 10;
/// Every month of a world as scenes (with the fine truth, for scoring only).
pub fn world_scenes(world: &World) -> Result<Vec<Scene>> {
    MONTHS
        .iter()
        .map(|&m| synth_scene(world, m, HOUR, FACTOR))
        .collect()
}

/// The top-left `cells × cells` coarse cells of every scene.
pub fn corner(scenes: &[Scene], cells: usize) -> Result<Vec<Scene>> {
    scenes
        .iter()
        .map(|s| {
            let fine = cells * FACTOR;
            let mut c = Scene::new(
                s.name(),
                s.coarse_lst().window(0, 0, cells, cells)?,
                s.covariates().window(0, 0, fine, fine)?,
            )?
            .with_time(s.month(), s.hour())?;
            if let Some(r) = s.reference() {
                c = c.with_reference(r.window(0, 0, fine, fine)?)?;
            }
            Ok(c)
        })
        .collect()
}

/// Runs the experiment on the scenes of one region (every month) and writes its report into
/// `dir`; with `ensemble`, also the uncertainty of the methods that give one
/// ([`crate::demo_uncertainty::scale_up`]), whose table it returns beside the report.
pub fn run_region(
    ctx: &Ctx,
    dir: &Path,
    label: &str,
    all: &[Scene],
    (seed, epochs): (u64, usize),
    ensemble: Option<usize>,
) -> Result<(Report, Option<String>)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let g = all[0].coarse_grid();
    ctx.say(&format!(
        "real-data experiment, {label}: {}×{} coarse cells at {FACTOR}×, trained one scale up on {} months",
        g.width(),
        g.height(),
        all.len()
    ));
    let scored: Vec<Scene> = all
        .iter()
        .filter(|s| s.month().is_some_and(|m| SCORED.contains(&m)))
        .cloned()
        .collect();
    // The learned methods never see the fine truth: the experiment trains them one scale
    // up and only the scoring reads the reference.
    let covariates = all[0].covariates().names().to_vec();
    let base = Base::Prior(PriorParams::covariates());
    let cfg = AmunConfig::small()
        .with_covariates(&covariates)
        .with_base(base.clone());
    let tc = TrainConfig {
        solver: amun_core::net::Solver::ADAM,
        learning_rate: 1e-3,
        epochs,
        batch_size: 16,
        seed,
        augment: true,
        keep_best: true,
        ..TrainConfig::paper()
    };
    let rf = || RfParams::new().seed(seed).n_trees(60);
    let for_ensemble = (cfg.clone(), tc.clone());
    let mut amun = AmunDownscaler::new(cfg.clone(), tc.clone());
    // At the target scale, from the coarse cells: land cover as classes, patches of 8 × 8
    // whole cells. FFRDB refines
    // the base channel's features alone, which this model does not see: the paper's
    // GMFCA + U-Net variant.
    let cells_cfg = cfg
        .clone()
        .with_ablation(Ablation::GmfcaUnet)
        .with_supervision(Supervision::CoarseResidual)
        .with_landcover_encoding(LandcoverEncoding::OneHot(frequent_classes(
            all,
            "landcover",
            0.01,
        )?));
    let cells_tc = TrainConfig {
        patch: 8 * FACTOR,
        stride: 8 * FACTOR,
        split_block: 16 * FACTOR,
        batch_size: 16,
        learning_rate: 2e-3,
        lr_drop_every: 10,
        lr_drop_factor: 0.5,
        ..tc.clone()
    };
    let mut cells = AmunDownscaler::new(cells_cfg, cells_tc);
    let mut staged = StagedAmun::new(vec![2, 5], cfg, tc)?;
    let mut methods: Vec<Box<dyn Downscaler + '_>> = vec![
        Box::new(Interpolation::bilinear()),
        Box::new(PhysicalPrior::new(PriorParams::elevation())),
        Box::new(PhysicalPrior::new(PriorParams::covariates())),
        Box::new(Regression::ridge(
            RidgeParams::new(),
            RegressionMode::PerScene,
        )),
        Box::new(Regression::random_forest(rf(), RegressionMode::PerScene)),
        Box::new(Regression::random_forest(rf(), RegressionMode::PerScene).with_base(base.clone())),
        Box::new(&mut amun),
        Box::new(&mut staged),
        Box::new(&mut cells),
    ];
    // Trained one scale up on every month; the scored months are downscaled.
    let out = real_split(
        all,
        &scored,
        &mut methods,
        &RunOptions::default(),
        &ctx.bars,
    )?;
    drop(methods);
    let (mut report, predictions) = (out.report, out.predictions);
    // Rename for the table, and add AMUN with conservation.
    for (m, name) in report.methods.iter_mut().zip([
        "bilinear",
        "prior-elevation",
        "prior-covariates",
        "ridge",
        "rf (bilinear base)",
        "rf (prior base)",
        "amun",
        "amun-stages-2-5",
        "amun-coarse-cells",
    ]) {
        m.method = name.to_string();
    }
    let n = report.methods.len();
    for idx in [n - 3, n - 2, n - 1] {
        let conserved = predictions[idx]
            .iter()
            .zip(&scored)
            .map(|(p, s)| Ok(conserve(p, s.coarse_lst(), &ConserveParams::default())?.0))
            .collect::<Result<Vec<_>>>()?;
        let src = &report.methods[idx];
        let mut row = score_method(
            &format!("{} + conservation", src.method),
            &scored,
            &conserved,
            &RunOptions::default(),
            src.fit_seconds,
            src.predict_seconds,
        )?;
        row.check = src.check.clone();
        row.departure = src.departure;
        row.amplitude = src.amplitude;
        report.methods.push(row);
    }
    report.title = format!("amun demo: real-data experiment ({label})");
    report.setup.insert(0, ("region".into(), label.to_string()));
    report.setup.push((
        "training".into(),
        format!(
            "from the coarse field alone, every month pooled ({} scenes): one scale up, AMUN small preset on the covariate prior, {epochs} epochs, stages 2 then 5; at the target scale from the coarse cells (amun-coarse-cells: GMFCA + U-Net, land cover as classes, {epochs} epochs)",
            MONTHS.len()
        ),
    ));
    report.notes.push(
        "No method saw the fine truth: the learned ones trained one scale up, where the coarse field is the truth, or (amun-coarse-cells) at the target scale on the block means of the coarse cells; the scores at the fine scale use the synthetic world's truth only to measure."
            .into(),
    );
    report.save(dir)?;
    let spread = match ensemble {
        Some(k) => Some(crate::demo_uncertainty::scale_up(
            ctx,
            dir,
            (all, &scored),
            k,
            for_ensemble,
            rf(),
        )?),
        None => None,
    };
    Ok((report, spread))
}
