//! AMUN (from `amun-net`) as a [`Downscaler`].

use amun_net::{AmunConfig, Checkpoint, TileParams, TrainConfig, Trainer, TrainingScene};
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
}

impl AmunDownscaler {
    /// An untrained model with its training settings.
    pub fn new(config: AmunConfig, train: TrainConfig) -> Self {
        Self {
            config,
            train,
            tiles: TileParams::default(),
            checkpoint: None,
        }
    }

    /// A trained model from a checkpoint (fitting again resumes training from it).
    pub fn from_checkpoint(checkpoint: Checkpoint) -> Self {
        Self {
            config: checkpoint.config().clone(),
            train: TrainConfig::default(),
            tiles: TileParams::default(),
            checkpoint: Some(checkpoint),
        }
    }

    /// These tiling settings for prediction.
    pub fn with_tiles(mut self, tiles: TileParams) -> Self {
        self.tiles = tiles;
        self
    }

    /// The trained checkpoint, once fitted or loaded.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.checkpoint.as_ref()
    }
}

/// Converts scenes with a fine reference into `amun-net` training scenes.
///
/// # Errors
/// [`Error::Method`] if a scene has no fine reference.
pub fn training_scenes(scenes: &[Scene]) -> Result<Vec<TrainingScene>> {
    scenes
        .iter()
        .map(|s| {
            Ok(TrainingScene {
                coarse_lst: s.coarse_lst().clone(),
                covariates: s.covariates().clone(),
                label: s.require_reference("amun")?.clone(),
            })
        })
        .collect()
}

/// Runs a trainer to the end, reporting batches and epochs to `progress`.
///
/// # Errors
/// Training errors (divergence, bad data).
pub fn run_trainer(trainer: &mut Trainer, tc: &TrainConfig, progress: &dyn Progress) -> Result<()> {
    let epochs = tc.epochs;
    let (train_patches, _) = trainer.patch_counts();
    let batches = train_patches.div_ceil(tc.batch_size.max(1)).max(1);
    progress.start(
        "train amun",
        (epochs.saturating_sub(trainer.epochs_done()) * batches) as u64,
    );
    while trainer.epochs_done() < epochs {
        trainer.run_epoch(&mut |p| match p {
            amun_net::train::Progress::Batch { .. } => progress.advance(1),
            amun_net::train::Progress::Epoch(r) => progress.message(&format!(
                "epoch {}: train {:.3} K, validation {:.3} K",
                r.epoch + 1,
                r.train_rmse_k,
                r.val_rmse_k
            )),
            _ => {}
        })?;
    }
    progress.finish();
    Ok(())
}

impl Downscaler for AmunDownscaler {
    fn name(&self) -> &str {
        "amun"
    }

    fn fit(&mut self, train: &[Scene], progress: &dyn Progress) -> Result<()> {
        let scenes = training_scenes(train)?;
        let mut trainer = match &self.checkpoint {
            Some(c) => Trainer::resume(c, &self.train, &scenes)?,
            None => Trainer::new(&self.config, &self.train, &scenes)?,
        };
        run_trainer(&mut trainer, &self.train, progress)?;
        self.checkpoint = Some(trainer.finish()?);
        Ok(())
    }

    fn predict(&self, scene: &Scene, progress: &dyn Progress) -> Result<Raster> {
        let ckpt = self.checkpoint.as_ref().ok_or_else(|| Error::Method {
            method: "amun".into(),
            detail: "predict called before fit (train or load a checkpoint first)".into(),
        })?;
        let mut started = false;
        let out = ckpt.predict(
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
