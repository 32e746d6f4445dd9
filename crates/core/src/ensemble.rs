//! AMUN as a deep ensemble (Lakshminarayanan et al. 2017): `K` networks trained alike but
//! for their seed (initial weights, patch order, augmentation), their spread read as the
//! prediction's uncertainty and scaled once on held-out pixels.
//!
//! Every member holds out the same pixels (the split's seed is shared,
//! [`TrainConfig::split_seed`]), so they share their normalisation and the held-out pixels
//! are unseen by all of them: there the members' mean and spread are compared with the
//! truth, and the spread is recalibrated to `√(floor² + (scale·σ)²)`, `floor` and `scale`
//! minimising the CRPS on those pixels ([`amun_metrics::fit_spread_model`]): networks trained
//! on squared error agree where the noise is, so the raw spread misses a constant part. The folder holds one ordinary checkpoint per member
//! and `ensemble.json`; members that disagree on their architecture, covariates or
//! normalisation are refused at load.

use std::path::Path;

use amun_metrics::{fit_spread_model, SpreadModel};
use amun_net::{AmunConfig, Checkpoint, HeldOutCheck, TileParams, TrainConfig};
use amun_raster::Raster;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::amun::{amun_trainer, run_epochs, run_trainer};
use crate::downscale::{Downscaler, Uncertain};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::report::write_json;
use crate::scene::Scene;

/// The file naming the members of an ensemble checkpoint folder.
pub const ENSEMBLE_FILE: &str = "ensemble.json";

/// Nominal probability of the interval the spread is calibrated for.
const CALIBRATED_NOMINAL: f64 = 0.9;

/// How an ensemble's members are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Members {
    /// Independent trainings with seeds `seed`, `seed + 1`, … (a deep ensemble; `K` times
    /// the training).
    #[default]
    Independent,
    /// One training; the members are its weights after the last epoch and every `every`
    /// epochs before it (a snapshot ensemble, Huang et al. 2017, without their cyclic
    /// learning rate; one training's cost).
    Snapshots {
        /// Epochs between snapshots.
        every: usize,
    },
}

/// What `ensemble.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleManifest {
    /// Sub-folders holding each member's checkpoint.
    pub folders: Vec<String>,
    /// How the members were made.
    #[serde(default)]
    pub members: Members,
    /// The recalibration: the factor on the members' standard deviation.
    pub calibration: SpreadCalibration,
    /// The ensemble mean against interpolation and the prior on the held-out pixels.
    pub held_out: Option<HeldOutCheck>,
}

/// The recalibration of an ensemble's spread and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpreadCalibration {
    /// The spread is `√(floor² + (scale·σ)²)` of the members' standard deviation `σ`
    /// (the identity when not fitted).
    pub model: SpreadModel,
    /// Nominal probability of the interval whose coverage is reported.
    pub nominal: f64,
    /// Held-out pixels it was fitted on (0: not fitted, e.g. no validation pixel).
    pub pixels: usize,
    /// Share of those pixels inside the raw interval `mean ± z·σ`.
    pub raw_coverage: f64,
    /// Share of those pixels inside the recalibrated interval.
    pub coverage: f64,
    /// Pixel width (grid units) of the training scenes' fine grid, where the spread was
    /// fitted; `None` in manifests written before it was recorded.
    #[serde(default)]
    pub pixel_width: Option<f64>,
}

impl SpreadCalibration {
    fn identity() -> Self {
        Self {
            model: SpreadModel::IDENTITY,
            nominal: CALIBRATED_NOMINAL,
            pixels: 0,
            raw_coverage: f64::NAN,
            coverage: f64::NAN,
            pixel_width: None,
        }
    }

    /// Whether the spread was fitted at the pixel size of `grid` (within 1 %, or unknown).
    ///
    /// An ensemble trained one scale up (`--scheme scale-up`) was calibrated where its
    /// training scenes' fine grid is, ten times coarser than the grid it downscales to; in
    /// the demo's real-data experiment such a spread covered under half of what its 90 %
    /// interval promised at the target scale (`docs/benchmarks.md`): its `std` is a lower
    /// bound there, not a calibrated spread.
    pub fn fitted_at(&self, grid: &amun_raster::Grid) -> bool {
        self.pixel_width.is_none_or(|w| {
            let g = grid.pixel_width().abs();
            (w.abs() - g).abs() <= 0.01 * g
        })
    }
}

/// AMUN as an ensemble of `K` members (see the module documentation).
pub struct EnsembleAmun {
    size: usize,
    kind: Members,
    config: AmunConfig,
    train: TrainConfig,
    tiles: TileParams,
    members: Vec<Checkpoint>,
    calibration: SpreadCalibration,
    held_out: Option<HeldOutCheck>,
}

fn method_error(detail: impl Into<String>) -> Error {
    Error::Method {
        method: "amun-ensemble".into(),
        detail: detail.into(),
    }
}

impl EnsembleAmun {
    /// An untrained ensemble of `size` members with `config` and `train`; member `i` is
    /// trained with seed `train.seed + i`, all with the split of `train.split_seed` (or
    /// `train.seed`).
    ///
    /// # Errors
    /// [`Error::Method`] for fewer than 2 members (one member has no spread).
    pub fn new(size: usize, config: AmunConfig, train: TrainConfig) -> Result<Self> {
        if size < 2 {
            return Err(method_error(format!(
                "an ensemble needs at least 2 members, got {size}"
            )));
        }
        Ok(Self {
            size,
            kind: Members::Independent,
            config,
            train,
            tiles: TileParams::default(),
            members: Vec::new(),
            calibration: SpreadCalibration::identity(),
            held_out: None,
        })
    }

    /// These tiling settings for prediction.
    pub fn with_tiles(mut self, tiles: TileParams) -> Self {
        self.tiles = tiles;
        self
    }

    /// Members made this way (default [`Members::Independent`]).
    ///
    /// # Errors
    /// [`Error::Method`] for snapshots 0 epochs apart.
    pub fn with_members(mut self, kind: Members) -> Result<Self> {
        if kind == (Members::Snapshots { every: 0 }) {
            return Err(method_error("snapshots must be at least 1 epoch apart"));
        }
        self.kind = kind;
        Ok(self)
    }

    /// How the members are made.
    pub fn members_kind(&self) -> Members {
        self.kind
    }

    /// The trained members.
    pub fn members(&self) -> &[Checkpoint] {
        &self.members
    }

    /// The spread's recalibration.
    pub fn calibration(&self) -> &SpreadCalibration {
        &self.calibration
    }

    /// The training settings of member `i`.
    fn member_config(&self, i: usize) -> TrainConfig {
        TrainConfig {
            seed: self.train.seed.wrapping_add(i as u64),
            split_seed: Some(self.train.split_seed.unwrap_or(self.train.seed)),
            ..self.train.clone()
        }
    }

    /// Writes the ensemble as the folder `dir`: one checkpoint folder per member and
    /// `ensemble.json`, first into a sibling folder that then replaces `dir` whole.
    ///
    /// # Errors
    /// [`Error::Method`] before training; checkpoint and I/O errors naming the path.
    pub fn save(&self, dir: &Path) -> Result<()> {
        if self.members.len() != self.size {
            return Err(method_error("save called before fit"));
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let name = dir
            .file_name()
            .map_or_else(|| "ensemble".into(), |n| n.to_string_lossy().into_owned());
        let new = dir.with_file_name(format!(".{name}.new-{}", std::process::id()));
        if new.exists() {
            std::fs::remove_dir_all(&new).map_err(io(&new))?;
        }
        let result = (|| {
            let folders: Vec<String> = (1..=self.members.len())
                .map(|i| format!("member-{i}"))
                .collect();
            for (c, f) in self.members.iter().zip(&folders) {
                c.save(new.join(f))?;
            }
            write_json(
                &new.join(ENSEMBLE_FILE),
                &EnsembleManifest {
                    folders,
                    members: self.kind,
                    calibration: self.calibration.clone(),
                    held_out: self.held_out.clone(),
                },
            )?;
            let old = dir.with_file_name(format!(".{name}.old-{}", std::process::id()));
            if dir.exists() {
                std::fs::rename(dir, &old).map_err(io(dir))?;
            }
            std::fs::rename(&new, dir).map_err(io(dir))?;
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(io(&old))?;
            }
            Ok(())
        })();
        if result.is_err() && new.exists() {
            let _ = std::fs::remove_dir_all(&new);
        }
        result
    }

    /// Reads an ensemble written by [`EnsembleAmun::save`], checking that every member has
    /// the first one's architecture (covariates included) and normalisation.
    ///
    /// # Errors
    /// I/O, JSON and checkpoint errors naming the file; [`Error::Method`] for fewer than 2
    /// members, a member that disagrees with the first (naming its folder and what differs)
    /// or a spread scale that is not positive.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(ENSEMBLE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let m: EnsembleManifest = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        if m.folders.len() < 2 {
            return Err(method_error(format!(
                "{}: {} member(s); an ensemble has at least 2",
                path.display(),
                m.folders.len()
            )));
        }
        let SpreadModel { floor, scale } = m.calibration.model;
        if !(floor.is_finite() && scale.is_finite() && floor >= 0.0 && scale >= 0.0) {
            return Err(method_error(format!(
                "{}: spread model floor {floor}, scale {scale}: both must be finite and ≥ 0",
                path.display()
            )));
        }
        let members = m
            .folders
            .iter()
            .map(|f| Checkpoint::load(dir.join(f)))
            .collect::<amun_net::Result<Vec<_>>>()?;
        let first = &members[0];
        for (c, f) in members.iter().zip(&m.folders).skip(1) {
            let differs = if c.config().covariates != first.config().covariates {
                Some("covariates")
            } else if c.config() != first.config() {
                Some("architecture")
            } else if c.normalization() != first.normalization() {
                Some("normalisation")
            } else {
                None
            };
            if let Some(what) = differs {
                return Err(method_error(format!(
                    "{}: member {f} differs from {} in its {what}; the members of an ensemble must be trained alike on one split",
                    dir.display(),
                    m.folders[0]
                )));
            }
        }
        Ok(Self {
            kind: m.members,
            size: members.len(),
            config: first.config().clone(),
            train: first.meta().train_config.clone().unwrap_or_default(),
            tiles: TileParams::default(),
            members,
            calibration: m.calibration,
            held_out: m.held_out,
        })
    }

    /// Mean and raw (unscaled) population standard deviation of the members' predictions.
    fn members_predict(&self, scene: &Scene, progress: &dyn Progress) -> Result<(Raster, Raster)> {
        if self.members.len() != self.size {
            return Err(method_error("predict called before fit"));
        }
        let shape = scene.fine_grid().shape();
        let (mut s1, mut s2) = (Array2::<f64>::zeros(shape), Array2::<f64>::zeros(shape));
        let mut missing = Array2::from_elem(shape, false);
        progress.start("predict amun ensemble", self.members.len() as u64);
        for c in &self.members {
            let (p, _) = c.predict_fitted_on(
                scene.prior_fit(),
                scene.coarse_lst(),
                scene.covariates(),
                &self.tiles,
                |_, _| {},
            )?;
            ndarray::Zip::from(&mut s1)
                .and(&mut s2)
                .and(&mut missing)
                .and(p.data())
                .for_each(|a, b, m, &v| {
                    if v.is_nan() {
                        *m = true;
                    } else {
                        *a += f64::from(v);
                        *b += f64::from(v) * f64::from(v);
                    }
                });
            progress.advance(1);
        }
        progress.finish();
        let k = self.members.len() as f64;
        let mean = ndarray::Zip::from(&s1).and(&missing).map_collect(|&a, &m| {
            if m {
                f32::NAN
            } else {
                (a / k) as f32
            }
        });
        let std = ndarray::Zip::from(&s1)
            .and(&s2)
            .and(&missing)
            .map_collect(|&a, &b, &m| {
                if m {
                    f32::NAN
                } else {
                    let mu = a / k;
                    (b / k - mu * mu).max(0.0).sqrt() as f32
                }
            });
        let grid = scene.fine_grid().clone();
        Ok((Raster::new(grid.clone(), mean)?, Raster::new(grid, std)?))
    }
}

impl Downscaler for EnsembleAmun {
    fn name(&self) -> &str {
        "amun-ensemble"
    }

    /// Trains the members one after another, then predicts the training scenes with all of
    /// them: the held-out check of the ensemble mean and the spread's scale come from the
    /// pixels every member held out.
    fn fit(&mut self, train: &[Scene], progress: &dyn Progress) -> Result<()> {
        let mut members = Vec::with_capacity(self.size);
        let mut masks = None;
        match self.kind {
            Members::Independent => {
                for i in 0..self.size {
                    let (mut trainer, notes) =
                        amun_trainer(&self.config, &self.member_config(i), train, None)?;
                    for n in &notes {
                        progress
                            .message(&format!("member {}: training settings fitted: {n}", i + 1));
                    }
                    masks.get_or_insert_with(|| trainer.validation_masks());
                    run_trainer(&mut trainer, progress)?;
                    members.push(trainer.finish()?);
                }
            }
            Members::Snapshots { every } => {
                let (mut trainer, notes) =
                    amun_trainer(&self.config, &self.member_config(0), train, None)?;
                for n in &notes {
                    progress.message(&format!("training settings fitted: {n}"));
                }
                let epochs = trainer.config().epochs;
                let span = (self.size - 1).saturating_mul(every);
                if span >= epochs {
                    return Err(method_error(format!(
                        "{} snapshots {every} epoch(s) apart need more than {span} epochs; the run has {epochs}",
                        self.size
                    )));
                }
                // The epoch counts after which a snapshot is taken: the last and every
                // `every` before it.
                let at: Vec<usize> = (0..self.size).map(|i| epochs - i * every).collect();
                masks = Some(trainer.validation_masks());
                run_epochs(&mut trainer, epochs, progress, |t| {
                    if at.contains(&t.epochs_done()) {
                        members.push(t.checkpoint()?);
                    }
                    Ok(())
                })?;
            }
        }
        self.members = members;
        let masks = masks.unwrap_or_default();
        let (mut means, mut triples) = (Vec::new(), (Vec::new(), Vec::new(), Vec::new()));
        for (scene, mask) in train.iter().zip(&masks) {
            let (mean, std) = self.members_predict(scene, progress)?;
            if let Some(truth) = scene.reference() {
                for (((m, s), t), &held) in mean
                    .data()
                    .iter()
                    .zip(std.data())
                    .zip(truth.data())
                    .zip(mask)
                {
                    if held {
                        triples.0.push(f64::from(*m));
                        triples.1.push(f64::from(*s));
                        triples.2.push(f64::from(*t));
                    }
                }
            }
            means.push(mean);
        }
        self.held_out = Some(crate::guard::check(
            format!(
                "training scale, {} scene(s), validation blocks and held-out scenes (ensemble mean of {})",
                train.len(),
                self.size
            ),
            train,
            &means,
            Some(&masks),
            Some(&self.config.base),
        )?);
        self.calibration = match fit_spread_model(&triples.0, &triples.1, &triples.2) {
            Ok(model) => {
                let z = amun_metrics::normal_quantile(0.5 + CALIBRATED_NOMINAL / 2.0);
                let (mut n, mut raw, mut inside) = (0usize, 0usize, 0usize);
                for ((m, s), t) in triples.0.iter().zip(&triples.1).zip(&triples.2) {
                    if m.is_finite() && s.is_finite() && t.is_finite() {
                        n += 1;
                        raw += usize::from((t - m).abs() <= z * s);
                        inside += usize::from((t - m).abs() <= z * model.apply(*s));
                    }
                }
                let share = |k: usize| k as f64 / n.max(1) as f64;
                SpreadCalibration {
                    model,
                    nominal: CALIBRATED_NOMINAL,
                    pixels: n,
                    raw_coverage: share(raw),
                    coverage: share(inside),
                    pixel_width: train.first().map(|s| s.fine_grid().pixel_width().abs()),
                }
            }
            Err(amun_metrics::Error::NothingToScore { .. }) => {
                progress.message(
                    "no held-out pixel to calibrate the ensemble's spread on: it is left as the members give it",
                );
                SpreadCalibration::identity()
            }
            Err(e) => return Err(e.into()),
        };
        Ok(())
    }

    fn predict(&self, scene: &Scene, progress: &dyn Progress) -> Result<Raster> {
        Ok(self.members_predict(scene, progress)?.0)
    }

    fn predict_with_spread(
        &self,
        scene: &Scene,
        progress: &dyn Progress,
    ) -> Result<Option<Uncertain>> {
        let (mean, std) = self.members_predict(scene, progress)?;
        let model = self.calibration.model;
        Ok(Some(Uncertain {
            mean,
            std: std.map(|v| model.apply(f64::from(v)) as f32),
        }))
    }

    fn check(&self) -> Option<HeldOutCheck> {
        self.held_out.clone()
    }
}
