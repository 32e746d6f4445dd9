//! `amun train`: AMUN trained on scene folders into a checkpoint.

use std::path::PathBuf;

use amun_core::indices::LandcoverEncoding;
use amun_core::net::{
    collapsed_levels, AmunConfig, Checkpoint, DeviceSpec, HeldOutCheck, LevelHealth, Supervision,
    TrainConfig, Verdict,
};
use amun_core::prior::{Base, PriorParams};
use amun_core::{
    amun_trainer, finish_checked, frequent_classes, run_trainer, Downscaler, EnsembleAmun, Members,
    Scene, StagedAmun,
};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};

use super::{load_scenes, preset, Ctx, Preset};
use crate::figures;
use crate::output::check_writable;

/// Training-data construction (`docs/design.md` §5).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Learn from the scenes' fine reference at the target scale (paper-style simulation).
    Supervised,
    /// Learn one scale up (coarse LST aggregated again, covariates aggregated): what real
    /// data without fine truth allows.
    ScaleUp,
    /// Learn at the target scale from the coarse cells alone: the network sees the fine
    /// covariates and the block means of its correction of the prior are fitted to what the
    /// prior's linear model leaves of each coarse cell. No fine truth is read. The base is
    /// the covariate prior unless `--base` names another prior; use the model with
    /// `--conserve`.
    CoarseResidual,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training scene folders.
    #[arg(long, num_args = 1.., required = true)]
    pub scenes: Vec<PathBuf>,
    /// Checkpoint folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// TOML file with `[model]` (AmunConfig) and `[train]` (TrainConfig) tables; flags
    /// override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Resume from this checkpoint (its model and optimiser state).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Training settings when neither a config file's `[train]` table nor a resumed
    /// checkpoint gives them: `default`, the recipe measured best on a CPU budget (AdamW
    /// 1e-3 halved every 8 epochs, 20 epochs, stride 32, flips and turns, best epoch kept;
    /// `docs/benchmarks.md`), or `paper`, the AMUN paper's (RMSprop 1e-4, stride 16, 99
    /// epochs: hours on a CPU).
    #[arg(long, value_enum)]
    pub protocol: Option<Protocol>,
    /// Model preset when no config is given.
    #[arg(long, value_enum, default_value_t = Preset::Small)]
    pub preset: Preset,
    /// How training pairs are made.
    #[arg(long, value_enum, default_value_t = Scheme::Supervised)]
    pub scheme: Scheme,
    /// Epochs (total, counting resumed ones).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Wall-clock budget in minutes: training ends after the epoch that reaches it, or
    /// before one that would pass it (at least one epoch runs; with the config's
    /// `keep_best`, the best epoch is kept).
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Batch size.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The field the network corrects and takes as its first channel (default: the
    /// config's, else bilinear).
    #[arg(long, value_enum)]
    pub base: Option<BaseArg>,
    /// Train a chain of stages with these factors, coarsest first (e.g. `2,5` for a factor
    /// of 10): each stage one scale up on its own pairs; one checkpoint folder holds them.
    #[arg(long, value_delimiter = ',')]
    pub stages: Vec<usize>,
    /// Whole scenes held out for validation, besides spatial blocks (default: with
    /// `--scheme scale-up` and three scenes or more, 15 % of them, at least one).
    #[arg(long)]
    pub val_scenes: Option<usize>,
    /// Where to train: `cpu`, `cuda` or `cuda:N` (an NVIDIA GPU; needs a build with the `cuda`
    /// feature). Overrides the config's `device`; default `cpu`.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<DeviceSpec>,
    /// Overwrite an existing checkpoint folder.
    #[arg(long)]
    pub force: bool,
    /// Train a deep ensemble of this many members (at least 2): seeds `seed`, `seed + 1`, …
    /// on one split, their spread scaled so that the 90 % interval covers 90 % of the
    /// held-out pixels; one folder holds them (`amun downscale --uncertainty` reads it).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..))]
    pub ensemble: Option<u64>,
    /// With `--ensemble K`: take the members from one training instead of K, its weights
    /// after the last epoch and every this many epochs before it (a snapshot ensemble; one
    /// training's cost).
    #[arg(long, requires = "ensemble", value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshots: Option<u64>,
}

/// A training protocol on the command line.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `TrainConfig::default()`: the recipe measured best on a CPU budget.
    Default,
    /// `TrainConfig::paper()`: the AMUN paper's protocol.
    Paper,
}

/// A base field on the command line.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseArg {
    /// Bilinear interpolation of the coarse LST (the AMUN paper).
    Bilinear,
    /// The lapse-rate prior (needs an `elevation` covariate).
    PriorElevation,
    /// The ridge prior on every covariate's anomalies.
    PriorCovariates,
}

impl BaseArg {
    /// The library's base field.
    pub fn base(self) -> Base {
        match self {
            BaseArg::Bilinear => Base::Bilinear,
            BaseArg::PriorElevation => Base::Prior(PriorParams::elevation()),
            BaseArg::PriorCovariates => Base::Prior(PriorParams::covariates()),
        }
    }
}

/// Warns when a level of the network collapsed during training (most of its weights near
/// zero: that part of the network no longer contributes).
pub fn report_health(ctx: &Ctx, what: &str, health: &[LevelHealth]) {
    let collapsed = collapsed_levels(health);
    if !collapsed.is_empty() {
        ctx.warn(&format!(
            "{what}: {} of {} network levels collapsed during training: {}; the result rests on the rest of the network (train with the default AdamW solver, or a lower learning rate)",
            collapsed.len(),
            health.len(),
            collapsed.join(", ")
        ));
    }
}

/// Prints a model's held-out check and warns when it lost to interpolation or the prior.
pub fn report_check(ctx: &Ctx, what: &str, check: Option<&HeldOutCheck>) {
    let Some(c) = check else {
        ctx.say(&format!("{what}: not checked against held-out truth"));
        return;
    };
    ctx.say(&format!("{what}: {}", c.summary()));
    if let Verdict::Worse {
        reference,
        reference_rmse_k,
        model_rmse_k,
    } = c.verdict()
    {
        ctx.warn(&format!(
            "{what} was worse than {reference} where it could be checked ({model_rmse_k:.3} K against {reference_rmse_k:.3} K): prefer `amun baseline prior`, or check the model before using it"
        ));
    }
}

#[derive(serde::Deserialize, Default)]
struct TrainFile {
    model: Option<AmunConfig>,
    train: Option<TrainConfig>,
}

/// Training scenes under a scheme: as they are, or one scale up.
pub fn scheme_scenes(scenes: Vec<Scene>, scheme: Scheme) -> Result<Vec<Scene>> {
    match scheme {
        Scheme::Supervised => Ok(scenes),
        Scheme::CoarseResidual => Ok(scenes.into_iter().map(Scene::without_reference).collect()),
        Scheme::ScaleUp => Ok(scenes
            .iter()
            .map(Scene::coarsened)
            .collect::<amun_core::Result<Vec<_>>>()?),
    }
}

/// Runs `amun train`.
pub fn run(ctx: &Ctx, a: &TrainArgs) -> Result<()> {
    check_out_folder(ctx, a)?;
    let file = read_config(a)?;
    let device = a
        .device
        .or(file.train.as_ref().map(|t| t.device))
        .unwrap_or_default();
    // Fail before reading the scenes if the device cannot be used; the trainer opens it again.
    device.device()?;
    let scenes = scheme_scenes(load_scenes(&a.scenes)?, a.scheme)?;
    let first = scenes.first().ok_or_else(|| anyhow!("no training scene"))?;
    let model_given = file.model.is_some();
    let mut model = file
        .model
        .unwrap_or_else(|| preset(a.preset).with_covariates(first.covariates().names()));
    if let Some(b) = a.base {
        model.base = b.base();
    }
    if a.scheme == Scheme::CoarseResidual {
        model.supervision = Supervision::CoarseResidual;
        if a.base.is_none() && model.base == Base::Bilinear {
            model.base = Base::Prior(PriorParams::covariates());
        }
        if !model_given {
            // FFRDB refines the base channel's features alone, and this model does not see
            // the base: the paper's GMFCA + U-Net variant.
            model.ffrdb = false;
            let classes = frequent_classes(&scenes, &model.landcover_band, 0.01)?;
            if !classes.is_empty() {
                model.landcover_encoding = LandcoverEncoding::OneHot(classes);
            }
        }
        if !a.stages.is_empty() || a.ensemble.is_some() {
            bail!("--scheme coarse-residual trains one model at the target scale: --stages and --ensemble are for the scale-up scheme");
        }
    }
    let resume = load_resume(ctx, a)?;
    let mut tc = training_settings(ctx, a, file.train, resume.as_ref())?;
    tc.device = device;
    tc.val_scenes = match (a.val_scenes, a.scheme) {
        (Some(n), _) => n,
        (None, Scheme::ScaleUp | Scheme::CoarseResidual) if scenes.len() >= 3 => {
            ((0.15 * scenes.len() as f64).round() as usize).max(1)
        }
        (None, _) => tc.val_scenes,
    };
    if !a.stages.is_empty() {
        return train_staged(ctx, a, model, tc, &scenes);
    }
    if let Some(k) = a.ensemble {
        return train_ensemble(ctx, a, k, model, tc, &scenes);
    }
    train_single(ctx, a, &model, &tc, &scenes, resume.as_ref())
}

/// Refuses to replace a checkpoint without `--force`; a folder that a killed save left
/// without its metadata may be replaced.
fn check_out_folder(ctx: &Ctx, a: &TrainArgs) -> Result<()> {
    // A folder that a killed save left without its metadata is no checkpoint: it may be
    // replaced without --force (a complete one, old format or new, holds checkpoint.json).
    let incomplete = a.out.is_dir()
        && !a.out.join("checkpoint.json").exists()
        && !a.out.join("manifest.json").exists()
        && !a.out.join(amun_core::STAGES_FILE).exists()
        && !a.out.join(amun_core::ENSEMBLE_FILE).exists();
    if incomplete {
        ctx.say(&format!(
            "{} holds no complete checkpoint (an interrupted save?): it will be replaced",
            a.out.display()
        ));
    } else {
        check_writable(&a.out, a.force)?;
    }
    Ok(())
}

/// The configuration file's tables (none without `--config`).
fn read_config(a: &TrainArgs) -> Result<TrainFile> {
    Ok(match &a.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("{}: invalid config", p.display()))?
        }
        None => TrainFile::default(),
    })
}

/// The checkpoint `--resume` names, loaded on the CPU.
fn load_resume(ctx: &Ctx, a: &TrainArgs) -> Result<Option<Checkpoint>> {
    Ok(match &a.resume {
        Some(dir) => {
            // Loaded on the CPU: the trainer copies weights and optimiser state to its device.
            let ckpt = Checkpoint::load(dir)
                .with_context(|| format!("loading checkpoint {}", dir.display()))?;
            ctx.say(&format!(
                "resuming from {} after epoch {}",
                dir.display(),
                ckpt.history().len()
            ));
            Some(ckpt)
        }
        None => None,
    })
}

/// The training settings: a config file's `[train]` table, a resumed checkpoint's own, or
/// `--protocol`'s; then the flags, named when they change a resumed run's settings.
fn training_settings(
    ctx: &Ctx,
    a: &TrainArgs,
    from_file: Option<TrainConfig>,
    resume: Option<&Checkpoint>,
) -> Result<TrainConfig> {
    // A resume continues with the checkpoint's own settings, unless a config file or a flag
    // says otherwise (and then says so).
    let saved = resume.and_then(|c| c.meta().train_config.clone());
    let mut tc = match (from_file, saved, a.protocol) {
        (Some(_), _, Some(_)) => {
            bail!("--protocol and a config file's [train] table both set the training; give one")
        }
        (None, Some(_), Some(_)) => bail!(
            "--protocol with --resume: a resume continues with the checkpoint's settings \
             (change one with its flag, e.g. --epochs)"
        ),
        (Some(tc), _, None) => tc,
        (None, Some(saved), None) => saved,
        (None, None, Some(Protocol::Paper)) => TrainConfig::paper(),
        (None, None, _) => TrainConfig::default(),
    };
    let mut changed = Vec::new();
    if let Some(e) = a.epochs {
        if e != tc.epochs {
            changed.push(format!("epochs {} → {e}", tc.epochs));
        }
        tc.epochs = e;
    }
    if let Some(m) = a.minutes {
        if Some(m) != tc.max_minutes {
            changed.push(format!(
                "time budget {} → {m} min",
                tc.max_minutes
                    .map_or("none".to_string(), |b| format!("{b} min"))
            ));
        }
        tc.max_minutes = Some(m);
    }
    if let Some(lr) = a.lr {
        if lr != tc.learning_rate {
            changed.push(format!("learning rate {} → {lr}", tc.learning_rate));
        }
        tc.learning_rate = lr;
    }
    if let Some(b) = a.batch {
        if b != tc.batch_size {
            changed.push(format!("batch {} → {b}", tc.batch_size));
        }
        tc.batch_size = b;
    }
    if let Some(s) = a.seed {
        if s != tc.seed {
            changed.push(format!("seed {} → {s}", tc.seed));
        }
        tc.seed = s;
    }
    if resume.is_some() {
        ctx.say(&format!(
            "training settings: {}{}",
            if a.config.is_some() {
                "from the config file"
            } else {
                "the checkpoint's"
            },
            if changed.is_empty() {
                String::new()
            } else {
                format!(", changed by flags: {}", changed.join(", "))
            }
        ));
    }
    Ok(tc)
}

/// `--stages`: one model per factor of the chain.
fn train_staged(
    ctx: &Ctx,
    a: &TrainArgs,
    model: AmunConfig,
    tc: TrainConfig,
    scenes: &[Scene],
) -> Result<()> {
    if a.resume.is_some() {
        bail!("--stages cannot resume a checkpoint (train the chain anew)");
    }
    let mut staged = StagedAmun::new(a.stages.clone(), model, tc)?;
    ctx.say(&format!(
        "training {} stages {:?} on {} scenes",
        a.stages.len(),
        a.stages,
        scenes.len()
    ));
    staged.fit(scenes, &ctx.bars)?;
    staged.save(&a.out)?;
    for (k, c) in a.stages.iter().zip(staged.stages()) {
        report_check(ctx, &format!("stage ×{k}"), c.held_out());
        report_health(ctx, &format!("stage ×{k}"), &c.meta().health);
    }
    ctx.say(&format!("wrote staged checkpoint {}", a.out.display()));
    Ok(())
}

/// `--ensemble K`: K members (or snapshots) and their calibrated spread.
fn train_ensemble(
    ctx: &Ctx,
    a: &TrainArgs,
    k: u64,
    model: AmunConfig,
    tc: TrainConfig,
    scenes: &[Scene],
) -> Result<()> {
    if a.resume.is_some() || !a.stages.is_empty() {
        bail!("--ensemble trains anew and without stages (drop --resume / --stages)");
    }
    let k = usize::try_from(k).unwrap_or(usize::MAX);
    let mut ens = EnsembleAmun::new(k, model, tc)?;
    if let Some(every) = a.snapshots {
        ens = ens.with_members(Members::Snapshots {
            every: usize::try_from(every).unwrap_or(usize::MAX),
        })?;
    }
    ctx.say(&format!(
        "training an ensemble of {k} members on {} scenes",
        scenes.len()
    ));
    ens.fit(scenes, &ctx.bars)?;
    ens.save(&a.out)?;
    report_check(ctx, "the ensemble mean", ens.check().as_ref());
    let c = ens.calibration();
    if c.pixels > 0 {
        ctx.say(&format!(
            "spread: the members' 90 % interval covered {:.1} % of {} held-out pixels; recalibrated to √({:.3}² K² + ({:.3}·σ)²), it covers {:.1} %",
            100.0 * c.raw_coverage,
            c.pixels,
            c.model.floor,
            c.model.scale,
            100.0 * c.coverage
        ));
    } else {
        ctx.warn("no held-out pixel: the ensemble's spread is not calibrated");
    }
    ctx.say(&format!("wrote ensemble checkpoint {}", a.out.display()));
    Ok(())
}

/// One model, new or resumed.
fn train_single(
    ctx: &Ctx,
    a: &TrainArgs,
    model: &AmunConfig,
    tc: &TrainConfig,
    scenes: &[Scene],
    resume: Option<&Checkpoint>,
) -> Result<()> {
    let (mut trainer, notes) = amun_trainer(model, tc, scenes, resume)?;
    let tc = trainer.config().clone();
    for n in notes {
        ctx.say(&format!("fitted to the scenes: {n}"));
    }
    let (ntrain, nval) = trainer.patch_counts();
    ctx.say(&format!(
        "training on {} scenes (base: {}): {ntrain} training and {nval} validation patches{}, {} epochs",
        scenes.len(),
        model.base.name(),
        if tc.val_scenes > 0 {
            format!(" ({} whole scene(s) held out)", tc.val_scenes)
        } else {
            String::new()
        },
        tc.epochs
    ));
    run_trainer(&mut trainer, &ctx.bars)?;
    let ckpt = finish_checked(trainer, scenes, &Default::default())?;
    ckpt.save(&a.out)?;
    report_check(ctx, "the model", ckpt.held_out());
    report_health(ctx, "the model", &ckpt.meta().health);
    let h = ckpt.history();
    if let Some(last) = h.last() {
        ctx.say(&format!(
            "epoch {}: train RMSE {:.3} K, validation RMSE {:.3} K",
            last.epoch + 1,
            last.train_rmse_k,
            last.val_rmse_k
        ));
    }
    let tr: Vec<f64> = h.iter().map(|r| r.train_rmse_k).collect();
    let va: Vec<f64> = h.iter().map(|r| r.val_rmse_k).collect();
    figures::curves_png(&a.out.join("training.png"), "AMUN training", &tr, &va)?;
    ctx.say(&format!("wrote checkpoint {}", a.out.display()));
    Ok(())
}
