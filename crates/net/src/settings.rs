//! Training settings and history: what a run is asked to do ([`TrainConfig`]) and what each
//! epoch did ([`EpochRecord`]). Kept apart from the trainer so that checkpoints, which store
//! both, do not depend on the training loop.

use serde::{Deserialize, Serialize};

use crate::data::NodataPolicy;
use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use crate::optim::Solver;

/// The pixel loss on the normalised target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum LossKind {
    /// Mean squared error (the paper).
    Mse,
    /// Charbonnier `√(d² + ε²)` (SRDA-Net), a smooth L1.
    Charbonnier {
        /// ε in normalised units (e.g. 1e-3).
        eps: f64,
    },
}

/// How the learning rate moves during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LrSchedule {
    /// Multiplied by `lr_drop_factor` every `lr_drop_every` epochs (the paper).
    #[default]
    Step,
    /// Half a cosine from `learning_rate` down towards zero over `epochs`, updated every
    /// batch (Loshchilov & Hutter's SGDR without restarts).
    Cosine,
}

/// Training settings. [`TrainConfig::paper`] is the paper's protocol (`docs/design.md` §4.4);
/// [`Default`] is the recipe measured best on a CPU budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Solver (default AdamW; paper: RMSprop, α 0.9, ε 1e-8).
    pub solver: Solver,
    /// Initial learning rate (default 1e-3; paper: 1e-4).
    pub learning_rate: f64,
    /// The learning rate is multiplied by `lr_drop_factor` every `lr_drop_every` epochs
    /// (default 8; paper: 50; 0 = never).
    pub lr_drop_every: usize,
    /// Learning-rate drop factor (default and paper: 0.5).
    pub lr_drop_factor: f64,
    /// Shape of the learning rate over the epochs (default and paper: [`LrSchedule::Step`]).
    pub lr_schedule: LrSchedule,
    /// Epochs of linear warm-up from zero to the scheduled rate, updated every batch;
    /// fractions of an epoch allowed (default and paper: 0, none).
    pub warmup_epochs: f64,
    /// Number of epochs (default 20; paper: 99).
    pub epochs: usize,
    /// Patches per batch (default 32; paper: 34).
    pub batch_size: usize,
    /// L2 regularisation strength on weights, decoupled weight decay under AdamW (default and
    /// paper: 1e-4).
    pub l2: f64,
    /// Pixel loss (default MSE).
    pub loss: LossKind,
    /// Weight of SRDA-Net's degradation-consistency term: mean over coarse cells of
    /// (cell mean of the prediction − coarse input)², in normalised units (default 0: off).
    pub degradation_weight: f64,
    /// Seed of initialisation, shuffling, augmentation and the split (default 0).
    pub seed: u64,
    /// Seed of the split alone (validation blocks, held-out scenes) when set, so that the
    /// members of an ensemble, trained with different `seed`s, hold out the same pixels and
    /// share their normalisation (default `None`: the split follows `seed`).
    pub split_seed: Option<u64>,
    /// Patch side in pixels, a multiple of the model's size multiple (default 32).
    pub patch: usize,
    /// Step between patches (default 32; paper: 16).
    pub stride: usize,
    /// Fraction of split blocks used for validation (paper: 0.15).
    pub val_fraction: f64,
    /// Side of the square blocks the split is drawn over, in fine pixels (default 128):
    /// patches are wholly in training or wholly in validation blocks.
    pub split_block: usize,
    /// Whole scenes held out for validation besides the spatial blocks (default 0): with
    /// many time steps of one region, validation is then held out in time as well as in
    /// space.
    pub val_scenes: usize,
    /// Patches with nodata (paper: dropped).
    pub nodata: NodataPolicy,
    /// Random flips and 90° rotations, transforming aspect consistently (default on; paper:
    /// off).
    pub augment: bool,
    /// Stop with [`Error::Diverged`] when a batch loss exceeds this multiple of the first
    /// epoch's mean loss, or is not finite (default 1000).
    pub divergence_factor: f64,
    /// Restore the weights of the epoch with the lowest validation RMSE at the end
    /// (default true; the paper keeps the last).
    pub keep_best: bool,
    /// Wall-clock budget in minutes (default none): training ends after the epoch that
    /// reaches it, or before an epoch that would pass it at the last epoch's pace; at least
    /// one epoch runs. With `keep_best`, recipes compared at equal time keep their best
    /// epoch.
    pub max_minutes: Option<f64>,
    /// Where to train: `"cpu"` (default), `"cuda"` or `"cuda:N"` in a configuration file.
    pub device: DeviceSpec,
}

impl TrainConfig {
    /// The AMUN paper's protocol (`docs/design.md` §4.4): RMSprop at 1e-4 halved every 50
    /// epochs, 99 epochs, batches of 34, 32×32 patches at stride 16, L2 1e-4, no
    /// augmentation, the last epoch kept. Meant for a GPU: on a laptop CPU it takes hours
    /// where [`TrainConfig::default`] takes minutes (`docs/benchmarks.md`).
    pub fn paper() -> Self {
        Self {
            solver: Solver::RMSPROP,
            learning_rate: 1e-4,
            lr_drop_every: 50,
            lr_drop_factor: 0.5,
            lr_schedule: LrSchedule::Step,
            warmup_epochs: 0.0,
            epochs: 99,
            batch_size: 34,
            l2: 1e-4,
            loss: LossKind::Mse,
            degradation_weight: 0.0,
            seed: 0,
            split_seed: None,
            patch: 32,
            stride: 16,
            val_fraction: 0.15,
            split_block: 128,
            val_scenes: 0,
            nodata: NodataPolicy::Drop,
            augment: false,
            divergence_factor: 1000.0,
            keep_best: false,
            max_minutes: None,
            device: DeviceSpec::Cpu,
        }
    }
}

/// The recipe measured best on a CPU budget (`docs/benchmarks.md`, "Training recipes": three
/// seeds on two worlds against the paper's protocol and the alternatives): AdamW at 1e-3 with
/// decoupled decay 1e-4, halved every 8 epochs, 20 epochs, batches of 32, 32×32 patches at
/// stride 32, flips and turns, the best validation epoch kept. The rest as the paper.
impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            solver: Solver::ADAMW,
            learning_rate: 1e-3,
            lr_drop_every: 8,
            epochs: 20,
            batch_size: 32,
            stride: 32,
            augment: true,
            keep_best: true,
            ..Self::paper()
        }
    }
}

/// A [`TrainConfig`] that passed [`TrainConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainValidConfig(TrainConfig);

impl std::ops::Deref for TrainValidConfig {
    type Target = TrainConfig;
    fn deref(&self) -> &TrainConfig {
        &self.0
    }
}

impl TrainConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad field.
    pub fn check(self) -> Result<TrainValidConfig> {
        self.solver.validate()?;
        let pos = |v: f64| v > 0.0 && v.is_finite();
        if !pos(self.learning_rate) {
            return Err(Error::config(
                "learning_rate",
                format!("must be positive, got {}", self.learning_rate),
            ));
        }
        if !pos(self.lr_drop_factor) || self.lr_drop_factor > 1.0 {
            return Err(Error::config(
                "lr_drop_factor",
                format!("must be in (0, 1], got {}", self.lr_drop_factor),
            ));
        }
        if !(self.warmup_epochs >= 0.0 && self.warmup_epochs.is_finite()) {
            return Err(Error::config(
                "warmup_epochs",
                format!("must be ≥ 0, got {}", self.warmup_epochs),
            ));
        }
        if self.epochs == 0 {
            return Err(Error::config("epochs", "must be ≥ 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", "must be ≥ 1"));
        }
        if let Some(m) = self.max_minutes {
            if !pos(m) {
                return Err(Error::config(
                    "max_minutes",
                    format!("must be positive, got {m}"),
                ));
            }
        }
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return Err(Error::config("l2", format!("must be ≥ 0, got {}", self.l2)));
        }
        if !(self.degradation_weight >= 0.0 && self.degradation_weight.is_finite()) {
            return Err(Error::config(
                "degradation_weight",
                format!("must be ≥ 0, got {}", self.degradation_weight),
            ));
        }
        if let LossKind::Charbonnier { eps } = self.loss {
            if !pos(eps) {
                return Err(Error::config(
                    "loss",
                    format!("Charbonnier ε must be positive, got {eps}"),
                ));
            }
        }
        // The model's size multiple (16 with four U-Net levels) is checked with the model.
        if self.patch == 0 {
            return Err(Error::config("patch", "must be ≥ 1"));
        }
        if self.stride == 0 {
            return Err(Error::config("stride", "must be ≥ 1"));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(Error::config(
                "val_fraction",
                format!("must be in [0, 1), got {}", self.val_fraction),
            ));
        }
        if self.split_block < self.patch {
            return Err(Error::config(
                "split_block",
                format!("must be ≥ patch ({}), got {}", self.patch, self.split_block),
            ));
        }
        if let NodataPolicy::Mask { min_valid } = self.nodata {
            if !(min_valid > 0.0 && min_valid <= 1.0) {
                return Err(Error::config(
                    "nodata",
                    format!("min_valid must be in (0, 1], got {min_valid}"),
                ));
            }
        }
        if self.divergence_factor.is_nan() || self.divergence_factor <= 1.0 {
            return Err(Error::config(
                "divergence_factor",
                format!("must be > 1, got {}", self.divergence_factor),
            ));
        }
        Ok(TrainValidConfig(self))
    }

    /// These settings fitted to scenes whose smallest side is `side` pixels, for a model whose
    /// patch sides must be multiples of `multiple`: a patch larger than half the side
    /// shrinks to the largest multiple that fits twice, the stride to at most half the
    /// patch, and a split block larger than half the side to one patch, so that training
    /// and validation patches both exist. Returns the settings and a note per change.
    ///
    /// # Errors
    /// [`Error::RegionTooSmall`] when the side is below two patches of `multiple`.
    pub fn fitted_to(&self, side: usize, multiple: usize) -> Result<(TrainConfig, Vec<String>)> {
        let needed = 2 * multiple;
        if side < needed {
            return Err(Error::RegionTooSmall {
                side,
                needed,
                multiple,
            });
        }
        let mut tc = self.clone();
        let mut notes = Vec::new();
        if tc.patch > side / 2 {
            let patch = (side / 2 / multiple).max(1) * multiple;
            notes.push(format!(
                "patch {} → {patch} (scenes are {side} px on their smallest side)",
                tc.patch
            ));
            tc.patch = patch;
        }
        if tc.stride > tc.patch / 2 && tc.patch != self.patch {
            let stride = (tc.patch / 2).max(1);
            notes.push(format!("stride {} → {stride}", tc.stride));
            tc.stride = stride;
        }
        if tc.split_block > side / 2 || tc.split_block < tc.patch {
            let block = tc.patch;
            notes.push(format!("split block {} → {block}", tc.split_block));
            tc.split_block = block;
        }
        Ok((tc, notes))
    }

    /// The learning rate in the middle of (0-based) `epoch`: the rate its history records.
    pub fn learning_rate_at(&self, epoch: usize) -> f64 {
        self.learning_rate_during(epoch, 0.5)
    }

    /// The learning rate at `fraction` ∈ [0, 1] of the way through (0-based) `epoch`: the
    /// schedule's rate, times the warm-up's ramp while it lasts. The trainer asks for each
    /// batch's midpoint, so that neither the first step (warm-up) nor the last (cosine)
    /// has a rate of zero.
    pub fn learning_rate_during(&self, epoch: usize, fraction: f64) -> f64 {
        let t = epoch as f64 + fraction.clamp(0.0, 1.0);
        let scheduled = match self.lr_schedule {
            LrSchedule::Step => match self.lr_drop_every {
                0 => self.learning_rate,
                n => self.learning_rate * self.lr_drop_factor.powi((epoch / n) as i32),
            },
            LrSchedule::Cosine => {
                let progress = (t / self.epochs.max(1) as f64).min(1.0);
                0.5 * self.learning_rate * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        };
        if self.warmup_epochs > 0.0 && t < self.warmup_epochs {
            scheduled * t / self.warmup_epochs
        } else {
            scheduled
        }
    }
}

/// One epoch of the training history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 0-based epoch.
    pub epoch: usize,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Mean training loss (normalised units, all terms).
    pub train_loss: f64,
    /// Training RMSE in kelvin (over the epoch's batches, during training).
    pub train_rmse_k: f64,
    /// Validation RMSE in kelvin (`NaN` without a validation set).
    pub val_rmse_k: f64,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Warm-up then cosine, by hand: 10 epochs at 1e-3 with one epoch of warm-up.
    #[test]
    fn cosine_with_warm_up_by_hand() {
        let tc = TrainConfig {
            learning_rate: 1e-3,
            epochs: 10,
            lr_schedule: LrSchedule::Cosine,
            warmup_epochs: 1.0,
            ..TrainConfig::paper()
        };
        let cos = |t: f64| 0.5e-3 * (1.0 + (std::f64::consts::PI * t / 10.0).cos());
        // Halfway through the warm-up epoch: half the cosine's rate there.
        assert!((tc.learning_rate_during(0, 0.5) - 0.5 * cos(0.5)).abs() < 1e-15);
        // After the warm-up, the cosine alone: 0.5e-3 at the midpoint, near 0 at the end.
        assert!((tc.learning_rate_during(5, 0.0) - 0.5e-3).abs() < 1e-15);
        assert!((tc.learning_rate_during(9, 0.5) - cos(9.5)).abs() < 1e-15);
        assert!(tc.learning_rate_during(9, 1.0).abs() < 1e-15);
        // The history's rate is the epoch's midpoint.
        assert!((tc.learning_rate_at(3) - tc.learning_rate_during(3, 0.5)).abs() < 1e-18);
        // A negative warm-up is refused by name.
        let bad = TrainConfig {
            warmup_epochs: -1.0,
            ..tc
        };
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains("warmup_epochs"), "{e}");
    }

    /// The step schedule is constant within an epoch, and warm-up multiplies it.
    #[test]
    fn step_schedule_with_warm_up() {
        let tc = TrainConfig {
            learning_rate: 1e-3,
            lr_drop_every: 2,
            lr_drop_factor: 0.5,
            warmup_epochs: 0.5,
            ..TrainConfig::paper()
        };
        assert!((tc.learning_rate_during(0, 0.25) - 0.5e-3).abs() < 1e-15);
        assert!((tc.learning_rate_during(0, 0.75) - 1e-3).abs() < 1e-15);
        assert!((tc.learning_rate_during(2, 0.1) - 0.5e-3).abs() < 1e-15);
        assert!((tc.learning_rate_during(2, 0.9) - 0.5e-3).abs() < 1e-15);
    }
}
