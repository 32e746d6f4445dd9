//! AMUN in stages (as SRDA-Net downscales 2 km → 1 km → 500 m → 250 m): a large factor as a
//! chain of small ones, each stage trained one scale up on its own pairs.
//!
//! At factor 10 a region of 40×40 coarse cells gives one-scale-up training pairs whose input
//! is 4×4 cells; as stages 2 then 5, the first stage learns from 20×20-cell inputs and the
//! second from 8×8. Each stage is an ordinary AMUN checkpoint; the chain is a folder holding
//! them and `stages.json`.

use std::path::Path;

use amun_net::{Amplitude, AmunConfig, Checkpoint, HeldOutCheck, TileParams, TrainConfig, Verdict};
use amun_raster::Raster;
use serde::{Deserialize, Serialize};

use crate::amun::{amun_trainer, finish_checked, run_trainer};
use crate::downscale::Downscaler;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::report::write_json;
use crate::scene::Scene;

/// The file naming the stages of a staged checkpoint folder.
pub const STAGES_FILE: &str = "stages.json";

/// What `stages.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagesManifest {
    /// The factor of each stage, first (coarsest) first; their product is the scene factor.
    pub factors: Vec<usize>,
    /// Sub-folders holding each stage's checkpoint, in the same order.
    pub folders: Vec<String>,
}

/// AMUN as a chain of stages.
pub struct StagedAmun {
    factors: Vec<usize>,
    config: AmunConfig,
    train: TrainConfig,
    tiles: TileParams,
    stages: Vec<Checkpoint>,
}

impl StagedAmun {
    /// An untrained chain: one network per factor, each with `config` and `train`.
    ///
    /// # Errors
    /// [`Error::Method`] for an empty chain or a factor below 2.
    pub fn new(factors: Vec<usize>, config: AmunConfig, train: TrainConfig) -> Result<Self> {
        if factors.is_empty() || factors.iter().any(|&k| k < 2) {
            return Err(Error::Method {
                method: "amun-stages".into(),
                detail: format!("stages must be factors of at least 2, got {factors:?}"),
            });
        }
        Ok(Self {
            factors,
            config,
            train,
            tiles: TileParams::default(),
            stages: Vec::new(),
        })
    }

    /// These tiling settings for prediction.
    pub fn with_tiles(mut self, tiles: TileParams) -> Self {
        self.tiles = tiles;
        self
    }

    /// The stage factors.
    pub fn factors(&self) -> &[usize] {
        &self.factors
    }

    /// The trained stages.
    pub fn stages(&self) -> &[Checkpoint] {
        &self.stages
    }

    /// Writes the chain: `stages.json` and one checkpoint folder per stage.
    ///
    /// # Errors
    /// [`Error::Method`] before training; checkpoint and I/O errors.
    pub fn save(&self, dir: &Path) -> Result<()> {
        if self.stages.len() != self.factors.len() {
            return Err(Error::Method {
                method: "amun-stages".into(),
                detail: "save called before fit".into(),
            });
        }
        let folders: Vec<String> = (1..=self.stages.len())
            .map(|i| format!("stage-{i}"))
            .collect();
        for (c, f) in self.stages.iter().zip(&folders) {
            c.save(dir.join(f))?;
        }
        write_json(
            &dir.join(STAGES_FILE),
            &StagesManifest {
                factors: self.factors.clone(),
                folders,
            },
        )
    }

    /// Reads a chain written by [`StagedAmun::save`].
    ///
    /// # Errors
    /// I/O, JSON and checkpoint errors naming the file.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(STAGES_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let m: StagesManifest = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        if m.factors.len() != m.folders.len() || m.factors.is_empty() {
            return Err(Error::Method {
                method: "amun-stages".into(),
                detail: format!("{}: factors and folders differ in number", path.display()),
            });
        }
        let stages = m
            .folders
            .iter()
            .map(|f| Checkpoint::load(dir.join(f)))
            .collect::<amun_net::Result<Vec<_>>>()?;
        let config = stages[0].config().clone();
        Ok(Self {
            factors: m.factors,
            config,
            train: TrainConfig::default(),
            tiles: TileParams::default(),
            stages,
        })
    }

    fn product(&self) -> usize {
        self.factors.iter().product()
    }
}

/// The training pairs of one stage from a training-scale scene (its reference is the truth
/// at the training scale): that reference aggregated by the stage's factor as input, the
/// scene's covariates, the reference as label. Rows and columns beyond the last whole block
/// are left out.
fn stage_pairs(scene: &Scene, k: usize) -> Result<Scene> {
    let truth = scene.require_reference("amun-stages")?;
    let (w, h) = (truth.grid().width(), truth.grid().height());
    let (cw, ch) = (w - w % k, h - h % k);
    if cw / k < 2 || ch / k < 2 {
        return Err(Error::Scene {
            scene: scene.name().to_string(),
            detail: format!(
                "{w}×{h} pixels at the training scale hold fewer than 2×2 blocks of the stage factor {k}"
            ),
        });
    }
    let label = truth.window(0, 0, cw, ch)?;
    let covariates = scene.covariates().window(0, 0, cw, ch)?;
    Ok(Scene::new(
        format!("{} (stage ×{k})", scene.name()),
        label.block_mean(k, 0.5)?,
        covariates,
    )?
    .with_reference(label)?
    .with_time(scene.month(), scene.hour())?
    .into_one_scale_up())
}

impl Downscaler for StagedAmun {
    fn name(&self) -> &str {
        "amun-stages"
    }

    /// `train` are training-scale scenes with their reference, as for [`crate::AmunDownscaler`]
    /// under the scale-up scheme; each stage is trained on pairs aggregated from them by its
    /// own factor.
    fn fit(&mut self, train: &[Scene], progress: &dyn Progress) -> Result<()> {
        let mut stages = Vec::with_capacity(self.factors.len());
        for &k in &self.factors {
            let pairs = train
                .iter()
                .map(|s| stage_pairs(s, k))
                .collect::<Result<Vec<_>>>()?;
            let (mut trainer, notes) = amun_trainer(&self.config, &self.train, &pairs, None)?;
            for n in &notes {
                progress.message(&format!("stage ×{k}: training settings fitted: {n}"));
            }
            run_trainer(&mut trainer, progress)?;
            stages.push(finish_checked(trainer, &pairs, &self.tiles)?);
        }
        self.stages = stages;
        Ok(())
    }

    fn predict(&self, scene: &Scene, progress: &dyn Progress) -> Result<Raster> {
        Ok(self.predict_checked(scene, progress)?.0)
    }

    /// The amplitude is the stage's whose correction was largest next to its own training
    /// residuals.
    fn predict_checked(
        &self,
        scene: &Scene,
        progress: &dyn Progress,
    ) -> Result<(Raster, Option<Amplitude>)> {
        if self.stages.len() != self.factors.len() {
            return Err(Error::Method {
                method: "amun-stages".into(),
                detail: "predict called before fit".into(),
            });
        }
        if scene.factor() != self.product() {
            return Err(Error::Scene {
                scene: scene.name().to_string(),
                detail: format!(
                    "factor {} but the stages {:?} multiply to {}",
                    scene.factor(),
                    self.factors,
                    self.product()
                ),
            });
        }
        let mut lst = scene.coarse_lst().clone();
        let mut worst: Option<Amplitude> = None;
        let mut remaining = scene.factor();
        for (ckpt, &k) in self.stages.iter().zip(&self.factors) {
            remaining /= k;
            // Covariates at this stage's output scale: the fine ones aggregated by what the
            // later stages will refine.
            let covariates = if remaining == 1 {
                scene.covariates().clone()
            } else {
                amun_indices::coarsen_stack(scene.covariates(), remaining, 0.5)?
            };
            let mut started = false;
            let (out, amplitude) =
                ckpt.predict_checked(&lst, &covariates, &self.tiles, |done, total| {
                    if !started {
                        progress.start(&format!("predict stage ×{k}"), total as u64);
                        started = true;
                    }
                    progress.advance(1);
                    if done == total {
                        progress.finish();
                    }
                })?;
            lst = out;
            if let Some(a) = amplitude {
                if worst.is_none_or(|w| a.ratio() > w.ratio()) {
                    worst = Some(a);
                }
            }
        }
        Ok((lst, worst))
    }

    /// The check of the stage that fared worst against its references (each stage is
    /// checked at its own training scale).
    fn check(&self) -> Option<HeldOutCheck> {
        let ratio = |c: &HeldOutCheck| match c.verdict() {
            Verdict::Worse {
                reference_rmse_k,
                model_rmse_k,
                ..
            } => model_rmse_k / reference_rmse_k,
            Verdict::Better => {
                let m = c.model_rmse().unwrap_or(f64::NAN);
                let r = c.best_reference().map_or(f64::NAN, |r| r.rmse_k);
                m / r
            }
            Verdict::Unchecked => f64::NEG_INFINITY,
        };
        self.stages
            .iter()
            .filter_map(|c| c.held_out())
            .max_by(|a, b| ratio(a).total_cmp(&ratio(b)))
            .cloned()
    }
}
