//! AMUN (from `amun-net`) as a [`Downscaler`].

use amun_indices::Igbp;
use amun_net::{
    Amplitude, AmunConfig, Base, Checkpoint, HeldOutCheck, Supervision, TileParams, TrainConfig,
    Trainer, TrainingScene,
};
use amun_raster::Raster;

use crate::downscale::Downscaler;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::scene::Scene;

/// The AMUN network: trained by [`Downscaler::fit`] on scenes with a fine reference, or
/// loaded from a checkpoint; predicts whole scenes tile by tile without seams.
pub struct AmunDownscaler {
    config: AmunConfig,
    train: TrainConfig,
    tiles: TileParams,
    checkpoint: Option<Checkpoint>,
    notes: Vec<String>,
}

impl AmunDownscaler {
    /// An untrained model with its training settings.
    pub fn new(config: AmunConfig, train: TrainConfig) -> Self {
        Self {
            config,
            train,
            tiles: TileParams::default(),
            checkpoint: None,
            notes: Vec::new(),
        }
    }

    /// A trained model from a checkpoint (fitting again resumes training from it).
    pub fn from_checkpoint(checkpoint: Checkpoint) -> Self {
        Self {
            config: checkpoint.config().clone(),
            // The settings it was trained with, so that fitting again continues with them.
            train: checkpoint.meta().train_config.clone().unwrap_or_default(),
            tiles: TileParams::default(),
            checkpoint: Some(checkpoint),
            notes: Vec::new(),
        }
    }

    /// These tiling settings for prediction.
    pub fn with_tiles(mut self, tiles: TileParams) -> Self {
        self.tiles = tiles;
        self
    }

    /// The changes [`Downscaler::fit`] made to the training settings to fit small scenes.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The trained checkpoint, once fitted or loaded.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.checkpoint.as_ref()
    }
}

/// Converts scenes into `amun-net` training scenes: with their fine reference as the label
/// under [`Supervision::FineLabel`]; under [`Supervision::CoarseResidual`] a reference is
/// never read (the model learns from the coarse cells).
///
/// # Errors
/// [`Error::Method`] if a scene has no fine reference where one is needed.
pub fn training_scenes(scenes: &[Scene], supervision: Supervision) -> Result<Vec<TrainingScene>> {
    scenes
        .iter()
        .map(|s| {
            let label = match supervision {
                Supervision::FineLabel => Some(s.require_reference("amun")?.clone()),
                Supervision::CoarseResidual => None,
            };
            Ok(TrainingScene {
                coarse_lst: s.coarse_lst().clone(),
                covariates: s.covariates().clone(),
                label,
                fit_prior_on_label: s.is_one_scale_up(),
            })
        })
        .collect()
}

/// The land-cover classes that cover at least `min_share` (0–1) of the valid pixels of
/// `band` over `scenes`, in code order: the classes worth a channel of their own
/// ([`amun_indices::LandcoverEncoding::OneHot`]). Empty when no scene has the band.
///
/// # Errors
/// Land-cover errors for values that are not IGBP codes.
pub fn frequent_classes(scenes: &[Scene], band: &str, min_share: f64) -> Result<Vec<Igbp>> {
    let mut counts = [0usize; 256];
    let mut n = 0usize;
    for s in scenes {
        let Some(b) = s.covariates().get(band) else {
            continue;
        };
        let codes = amun_indices::landcover_raster(b.clone())?;
        for &v in codes.data().iter().filter(|v| !v.is_nan()) {
            counts[v as usize] += 1;
            n += 1;
        }
    }
    Ok(Igbp::ALL
        .into_iter()
        .filter(|c| n > 0 && counts[usize::from(c.code())] as f64 >= min_share * n as f64)
        .collect())
}

/// A trainer for AMUN on `scenes` (with a reference), new or resuming `resume`, with the
/// patch, stride and split settings fitted to scenes too small for them
/// ([`TrainConfig::fitted_to`]). Returns the trainer (its settings: `Trainer::config`) and
/// a note per setting changed.
///
/// # Errors
/// [`Error::Method`] if a scene has no reference; `amun-net` errors (scenes too small,
/// bad settings, no patches).
pub fn amun_trainer(
    config: &AmunConfig,
    tc: &TrainConfig,
    scenes: &[Scene],
    resume: Option<&Checkpoint>,
) -> Result<(Trainer, Vec<String>)> {
    let config = resume.map_or(config, |c| c.config());
    let data = training_scenes(scenes, config.supervision)?;
    let side = scenes
        .iter()
        .map(|s| s.fine_grid().width().min(s.fine_grid().height()))
        .min()
        .unwrap_or(0);
    let (tc, notes) = tc.fitted_to(side, config.size_multiple())?;
    let trainer = match resume {
        Some(c) => Trainer::resume(c, &tc, &data)?,
        None => Trainer::new(config, &tc, &data)?,
    };
    Ok((trainer, notes))
}

/// Ends a training run and checks the model where the truth is known: every training scene
/// is predicted whole and scored on the pixels training held out, next to bilinear
/// interpolation and the physical priors ([`crate::guard::check`]); the check is stored in
/// the checkpoint.
///
/// # Errors
/// Training-end, prediction and prior errors.
pub fn finish_checked(
    trainer: Trainer,
    scenes: &[Scene],
    tiles: &TileParams,
) -> Result<Checkpoint> {
    let masks = trainer.validation_masks();
    let mut ckpt = trainer.finish()?;
    if let (Supervision::CoarseResidual, Base::Prior(prior)) =
        (ckpt.config().supervision, &ckpt.config().base)
    {
        let preds = scenes
            .iter()
            .map(|s| Ok(ckpt.predict(s.coarse_lst(), s.covariates(), tiles, |_, _| {})?))
            .collect::<Result<Vec<_>>>()?;
        let check = crate::guard::check_coarse_residual(scenes, &preds, &masks, prior)?;
        ckpt.set_held_out(check);
        return Ok(ckpt);
    }
    let preds = scenes
        .iter()
        .map(|s| {
            let fit = s.prior_fit();
            Ok(ckpt
                .predict_fitted_on(fit, s.coarse_lst(), s.covariates(), tiles, |_, _| {})?
                .0)
        })
        .collect::<Result<Vec<_>>>()?;
    let check = crate::guard::check(
        format!(
            "training scale, {} scene(s), validation blocks and held-out scenes",
            scenes.len()
        ),
        scenes,
        &preds,
        Some(&masks),
        Some(&ckpt.config().base),
    )?;
    ckpt.set_held_out(check);
    Ok(ckpt)
}

/// Runs a trainer to the end of its own settings' epochs or time budget, reporting batches
/// and epochs to `progress`.
///
/// # Errors
/// Training errors (divergence, bad data).
pub fn run_trainer(trainer: &mut Trainer, progress: &dyn Progress) -> Result<()> {
    let epochs = trainer.config().epochs;
    run_epochs(trainer, epochs, progress, |_| Ok(()))
}

/// Runs a trainer until `until` epochs are done, reporting to `progress` and calling
/// `after_epoch` with the trainer after each epoch (e.g. to take a snapshot).
pub(crate) fn run_epochs(
    trainer: &mut Trainer,
    until: usize,
    progress: &dyn Progress,
    mut after_epoch: impl FnMut(&Trainer) -> Result<()>,
) -> Result<()> {
    let tc = trainer.config().clone();
    let (train_patches, _) = trainer.patch_counts();
    let batches = train_patches.div_ceil(tc.batch_size.max(1)).max(1);
    progress.start(
        "train amun",
        (until.saturating_sub(trainer.epochs_done()) * batches) as u64,
    );
    let (started, first) = (std::time::Instant::now(), trainer.epochs_done());
    while trainer.epochs_done() < until && trainer.wants_epoch(started, first) {
        let rec = trainer.run_epoch(&mut |p| {
            if let amun_net::TrainEvent::Batch { .. } = p {
                progress.advance(1);
            }
        })?;
        // After the epoch, so that the line can say whether a level has collapsed.
        let collapsed = amun_net::collapsed_levels(trainer.health());
        let health = if collapsed.is_empty() {
            String::new()
        } else {
            format!("; COLLAPSED: {}", collapsed.join(", "))
        };
        progress.message(&format!(
            "epoch {}: train {:.3} K, validation {:.3} K, lr {:.1e}, {:.0} s{health}",
            rec.epoch + 1,
            rec.train_rmse_k,
            rec.val_rmse_k,
            rec.learning_rate,
            rec.seconds
        ));
        after_epoch(trainer)?;
    }
    progress.finish();
    Ok(())
}

impl Downscaler for AmunDownscaler {
    fn name(&self) -> &str {
        "amun"
    }

    fn fit(&mut self, train: &[Scene], progress: &dyn Progress) -> Result<()> {
        let (mut trainer, notes) =
            amun_trainer(&self.config, &self.train, train, self.checkpoint.as_ref())?;
        for n in &notes {
            progress.message(&format!("training settings fitted to the scenes: {n}"));
        }
        self.notes = notes;
        run_trainer(&mut trainer, progress)?;
        self.checkpoint = Some(finish_checked(trainer, train, &self.tiles)?);
        Ok(())
    }

    fn check(&self) -> Option<HeldOutCheck> {
        self.checkpoint.as_ref().and_then(|c| c.held_out().cloned())
    }

    fn learns_at_target_scale(&self) -> bool {
        self.config.supervision == Supervision::CoarseResidual
    }

    fn predict(&self, scene: &Scene, progress: &dyn Progress) -> Result<Raster> {
        Ok(self.predict_checked(scene, progress)?.0)
    }

    fn predict_checked(
        &self,
        scene: &Scene,
        progress: &dyn Progress,
    ) -> Result<(Raster, Option<Amplitude>)> {
        let ckpt = self.checkpoint.as_ref().ok_or_else(|| Error::Method {
            method: "amun".into(),
            detail: "predict called before fit (train or load a checkpoint first)".into(),
        })?;
        let mut started = false;
        let out = ckpt.predict_checked(
            scene.coarse_lst(),
            scene.covariates(),
            &self.tiles,
            |done, total| {
                if !started {
                    progress.start("predict amun", total as u64);
                    started = true;
                }
                progress.advance(1);
                if done == total {
                    progress.finish();
                }
            },
        )?;
        Ok(out)
    }
}
