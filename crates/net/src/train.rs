//! Training: configuration, losses, the epoch loop, validation, divergence guard, resume.

use candle_core::{Device, Module, Tensor};
use candle_nn::Optimizer;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, CheckpointMeta, OptimizerMeta};
use crate::config::AmunConfig;
use crate::data::{
    assemble, build_dataset, AspectChannels, Batch, Dataset, NodataPolicy, PatchRef, PatchSettings,
    TrainingScene,
};
use crate::device::DeviceSpec;
use crate::error::{Error, Result};
use crate::init::SeededVarMap;
use crate::model::Amun;
use crate::optim::{Optim, OptimConfig, Solver};

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

/// Training settings. [`Default`] is the paper's protocol (`docs/design.md` §4.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Solver (paper: RMSprop, α 0.9, ε 1e-8).
    pub solver: Solver,
    /// Initial learning rate (paper: 1e-4).
    pub learning_rate: f64,
    /// The learning rate is multiplied by `lr_drop_factor` every `lr_drop_every` epochs
    /// (paper: 50; 0 = never).
    pub lr_drop_every: usize,
    /// Learning-rate drop factor (paper: 0.5).
    pub lr_drop_factor: f64,
    /// Number of epochs (paper: 99).
    pub epochs: usize,
    /// Patches per batch (paper: 34).
    pub batch_size: usize,
    /// L2 regularisation strength on weights (paper: 1e-4).
    pub l2: f64,
    /// Pixel loss (default MSE).
    pub loss: LossKind,
    /// Weight of SRDA-Net's degradation-consistency term: mean over coarse cells of
    /// (cell mean of the prediction − coarse input)², in normalised units (default 0: off).
    pub degradation_weight: f64,
    /// Seed of initialisation, shuffling, augmentation and the split (default 0).
    pub seed: u64,
    /// Patch side in pixels, a multiple of the model's size multiple (default 32).
    pub patch: usize,
    /// Step between patches (default 16).
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
    /// Random flips and 90° rotations, transforming aspect consistently (default off).
    pub augment: bool,
    /// Stop with [`Error::Diverged`] when a batch loss exceeds this multiple of the first
    /// epoch's mean loss, or is not finite (default 1000).
    pub divergence_factor: f64,
    /// Restore the weights of the epoch with the lowest validation RMSE at the end
    /// (default false: the paper keeps the last).
    pub keep_best: bool,
    /// Where to train: `"cpu"` (default), `"cuda"` or `"cuda:N"` in a configuration file.
    pub device: DeviceSpec,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            solver: Solver::RMSPROP,
            learning_rate: 1e-4,
            lr_drop_every: 50,
            lr_drop_factor: 0.5,
            epochs: 99,
            batch_size: 34,
            l2: 1e-4,
            loss: LossKind::Mse,
            degradation_weight: 0.0,
            seed: 0,
            patch: 32,
            stride: 16,
            val_fraction: 0.15,
            split_block: 128,
            val_scenes: 0,
            nodata: NodataPolicy::Drop,
            augment: false,
            divergence_factor: 1000.0,
            keep_best: false,
            device: DeviceSpec::Cpu,
        }
    }
}

/// A [`TrainConfig`] that passed [`TrainConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTrainConfig(TrainConfig);

impl std::ops::Deref for ValidTrainConfig {
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
    pub fn check(&self) -> Result<ValidTrainConfig> {
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
        if self.epochs == 0 {
            return Err(Error::config("epochs", "must be ≥ 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", "must be ≥ 1"));
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
        Ok(ValidTrainConfig(self.clone()))
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

    /// The learning rate in (0-based) `epoch`.
    pub fn learning_rate_at(&self, epoch: usize) -> f64 {
        match self.lr_drop_every {
            0 => self.learning_rate,
            n => self.learning_rate * self.lr_drop_factor.powi((epoch / n) as i32),
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

/// What the progress callback receives.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Progress {
    /// A batch finished.
    Batch {
        /// 0-based epoch.
        epoch: usize,
        /// Total epochs.
        epochs: usize,
        /// Batches done in this epoch.
        batch: usize,
        /// Batches per epoch.
        batches: usize,
        /// This batch's loss.
        loss: f64,
    },
    /// An epoch finished (after validation).
    Epoch(EpochRecord),
}

/// The result of training: a checkpoint with its history.
pub type Trained = Checkpoint;

/// A training run that can be stepped, inspected, saved and resumed.
pub struct Trainer {
    cfg: AmunConfig,
    tc: ValidTrainConfig,
    device: Device,
    vars: SeededVarMap,
    model: Amun,
    opt: Optim,
    data: Dataset,
    aspect: AspectChannels,
    history: Vec<EpochRecord>,
    epoch: usize,
    reference_loss: Option<f64>,
    best: Option<(f64, Vec<Tensor>)>,
}

impl Trainer {
    /// Prepares a new run: data set, split, normalisation, seeded weights, optimiser.
    ///
    /// # Errors
    /// Invalid settings, scenes that do not align, missing covariates, or no patches.
    pub fn new(cfg: &AmunConfig, tc: &TrainConfig, scenes: &[TrainingScene]) -> Result<Self> {
        Self::build(cfg, tc, scenes, None)
    }

    /// Continues a run from a checkpoint (its weights, normalisation, history and optimiser
    /// state) up to `tc.epochs` epochs in total. With the scenes and settings of the first
    /// run, the result equals an uninterrupted run.
    ///
    /// # Errors
    /// As [`Trainer::new`]; [`Error::BadCheckpoint`] if it has no optimiser state or its
    /// solver differs from `tc.solver`.
    pub fn resume(ckpt: &Checkpoint, tc: &TrainConfig, scenes: &[TrainingScene]) -> Result<Self> {
        Self::build(ckpt.config(), tc, scenes, Some(ckpt))
    }

    fn build(
        cfg: &AmunConfig,
        tc: &TrainConfig,
        scenes: &[TrainingScene],
        from: Option<&Checkpoint>,
    ) -> Result<Self> {
        cfg.validate()?;
        let tc = tc.check()?;
        let m = cfg.size_multiple();
        if tc.patch % m != 0 {
            return Err(Error::config(
                "patch",
                format!("must be a multiple of {m} for this model, got {}", tc.patch),
            ));
        }
        let device = tc.device.device()?;
        let settings = PatchSettings {
            patch: tc.patch,
            stride: tc.stride,
            nodata: tc.nodata,
            val_fraction: tc.val_fraction,
            split_block: tc.split_block,
            val_scenes: tc.val_scenes,
            seed: tc.seed,
        };
        let data = build_dataset(
            cfg,
            &settings,
            scenes,
            from.map(|c| &c.meta().normalization),
        )?;
        let vars = SeededVarMap::new(tc.seed);
        let model = Amun::new(cfg, vars.var_builder(&device))?;
        let opt_cfg = OptimConfig {
            solver: tc.solver,
            learning_rate: tc.learning_rate_at(0),
            l2: tc.l2,
        };
        let mut opt = Optim::with_names(vars.sorted_vars(), opt_cfg)?;
        let (mut history, mut epoch) = (Vec::new(), 0);
        if let Some(ck) = from {
            ck.copy_weights_into(&vars)?;
            let meta = ck.meta();
            let om = meta
                .optimizer
                .as_ref()
                .ok_or_else(|| Error::BadCheckpoint {
                    path: ck.dir().to_path_buf(),
                    detail: "no optimiser state: cannot resume".into(),
                })?;
            if om.solver.name() != tc.solver.name() {
                return Err(Error::BadCheckpoint {
                    path: ck.dir().to_path_buf(),
                    detail: format!(
                        "saved with {}, resumed with {}",
                        om.solver.name(),
                        tc.solver.name()
                    ),
                });
            }
            opt.set_state(ck.optimizer_state(), om.steps)?;
            history = meta.history.clone();
            epoch = meta.epochs_done;
        }
        let reference_loss = history.first().map(|h| h.train_loss);
        Ok(Self {
            aspect: AspectChannels::of(cfg),
            cfg: cfg.clone(),
            tc,
            device,
            vars,
            model,
            opt,
            data,
            history,
            epoch,
            reference_loss,
            best: None,
        })
    }

    /// Number of training and validation patches.
    pub fn patch_counts(&self) -> (usize, usize) {
        (self.data.train.len(), self.data.val.len())
    }

    /// For each training scene, the pixels covered by validation patches: never trained on
    /// (the split is by spatial blocks and whole held-out scenes).
    pub fn validation_masks(&self) -> Vec<ndarray::Array2<bool>> {
        let p = self.tc.patch;
        let mut masks: Vec<ndarray::Array2<bool>> = self
            .data
            .scenes
            .iter()
            .map(|s| ndarray::Array2::from_elem(s.target.dim(), false))
            .collect();
        for pr in &self.data.val {
            masks[pr.scene]
                .slice_mut(ndarray::s![pr.row..pr.row + p, pr.col..pr.col + p])
                .fill(true);
        }
        masks
    }

    /// Epochs completed so far.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// The per-epoch history so far.
    pub fn history(&self) -> &[EpochRecord] {
        &self.history
    }

    /// The model being trained.
    pub fn model(&self) -> &Amun {
        &self.model
    }

    fn loss(&self, out: &Tensor, batch: &Batch) -> candle_core::Result<Tensor> {
        let d = (out - &batch.y)?;
        let per_px = match self.tc.loss {
            LossKind::Mse => d.sqr()?,
            LossKind::Charbonnier { eps } => (d.sqr()? + eps * eps)?.sqrt()?,
        };
        let mut loss = (per_px * &batch.m)?
            .sum_all()?
            .affine(1.0 / batch.valid.max(1.0), 0.0)?;
        if self.tc.degradation_weight > 0.0 {
            if let Some(deg) = degradation_term(out, batch)? {
                loss = (loss + deg.affine(self.tc.degradation_weight, 0.0)?)?;
            }
        }
        Ok(loss)
    }

    /// Trains one epoch and validates.
    ///
    /// # Errors
    /// [`Error::Diverged`] if the loss is not finite or explodes; tensor errors.
    pub fn run_epoch(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<EpochRecord> {
        let start = std::time::Instant::now();
        let epoch = self.epoch;
        let lr = self.tc.learning_rate_at(epoch);
        self.opt.set_learning_rate(lr);
        // A generator per epoch: resuming at epoch e reproduces the same order.
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.tc
                .seed
                .wrapping_add(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(epoch as u64 + 1)),
        );
        let mut order: Vec<PatchRef> = self.data.train.clone();
        order.shuffle(&mut rng);
        let bs = self.tc.batch_size;
        let batches = order.len().div_ceil(bs);
        let (mut loss_sum, mut sq_sum, mut px) = (0.0, 0.0, 0.0);
        let with_cells = self.tc.degradation_weight > 0.0;
        for (bi, chunk) in order.chunks(bs).enumerate() {
            let aug = if self.tc.augment {
                Some(&mut rng)
            } else {
                None
            };
            let batch = assemble(
                &self.data,
                chunk,
                self.tc.patch,
                self.aspect,
                aug,
                with_cells,
                &self.device,
            )?;
            let out = self.model.forward(&batch.x)?;
            let loss = self.loss(&out, &batch)?;
            let lv = f64::from(loss.to_scalar::<f32>()?);
            let reference = self.reference_loss.unwrap_or(f64::NAN);
            if !lv.is_finite()
                || (reference.is_finite() && lv > self.tc.divergence_factor * reference.max(1e-6))
            {
                return Err(Error::Diverged {
                    epoch,
                    batch: bi,
                    loss: lv,
                    reference,
                });
            }
            self.opt.backward_step(&loss)?;
            let sq = ((out.detach() - &batch.y)?.sqr()? * &batch.m)?.sum_all()?;
            sq_sum += f64::from(sq.to_scalar::<f32>()?);
            px += batch.valid;
            loss_sum += lv;
            progress(&Progress::Batch {
                epoch,
                epochs: self.tc.epochs,
                batch: bi + 1,
                batches,
                loss: lv,
            });
        }
        let train_loss = loss_sum / batches.max(1) as f64;
        if self.reference_loss.is_none() {
            self.reference_loss = Some(train_loss);
        }
        let sigma = self.data.norm.target.std;
        let val_rmse_k = self.validate()?;
        let rec = EpochRecord {
            epoch,
            learning_rate: lr,
            train_loss,
            train_rmse_k: sigma * (sq_sum / px.max(1.0)).sqrt(),
            val_rmse_k,
            seconds: start.elapsed().as_secs_f64(),
        };
        if self.tc.keep_best
            && val_rmse_k.is_finite()
            && self.best.as_ref().is_none_or(|(b, _)| val_rmse_k < *b)
        {
            let snapshot = self
                .vars
                .sorted_vars()
                .iter()
                .map(|(_, v)| v.as_tensor().copy())
                .collect::<candle_core::Result<Vec<_>>>()?;
            self.best = Some((val_rmse_k, snapshot));
        }
        self.history.push(rec);
        self.epoch += 1;
        progress(&Progress::Epoch(rec));
        Ok(rec)
    }

    /// Validation RMSE in kelvin over the validation patches (`NaN` if there are none).
    ///
    /// # Errors
    /// Tensor errors.
    pub fn validate(&self) -> Result<f64> {
        if self.data.val.is_empty() {
            return Ok(f64::NAN);
        }
        let (mut sq, mut px) = (0.0, 0.0);
        for chunk in self.data.val.chunks(self.tc.batch_size) {
            let batch = assemble(
                &self.data,
                chunk,
                self.tc.patch,
                self.aspect,
                None,
                false,
                &self.device,
            )?;
            let out = self.model.forward(&batch.x)?;
            let s = ((out - &batch.y)?.sqr()? * &batch.m)?.sum_all()?;
            sq += f64::from(s.to_scalar::<f32>()?);
            px += batch.valid;
        }
        Ok(self.data.norm.target.std * (sq / px.max(1.0)).sqrt())
    }

    /// Trains until `epochs` epochs are done in total.
    ///
    /// # Errors
    /// As [`Trainer::run_epoch`].
    pub fn run(&mut self, mut progress: impl FnMut(&Progress)) -> Result<()> {
        while self.epoch < self.tc.epochs {
            self.run_epoch(&mut progress)?;
        }
        Ok(())
    }

    /// Ends the run: with `keep_best`, restores the weights of the epoch with the lowest
    /// validation RMSE; returns the checkpoint.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn finish(mut self) -> Result<Checkpoint> {
        if let Some((_, snapshot)) = self.best.take() {
            for ((_, var), t) in self.vars.sorted_vars().iter().zip(snapshot) {
                var.set(&t)?;
            }
        }
        self.checkpoint()
    }

    /// A checkpoint of the current state (weights, normalisation, history, optimiser).
    ///
    /// # Errors
    /// Tensor errors while copying the weights.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let (state, steps) = self.opt.state();
        let meta = CheckpointMeta::new(
            self.cfg.clone(),
            self.data.norm.clone(),
            Some((*self.tc).clone()),
            self.history.clone(),
            self.epoch,
            Some(OptimizerMeta {
                solver: self.tc.solver,
                steps,
            }),
        );
        Checkpoint::from_parts(meta, &self.vars.sorted_vars(), state, &self.device)
    }
}

/// Mean squared difference between each coarse cell's mean output and its target, over
/// the fully valid cells of the batch; `None` when the batch has no such cell.
fn degradation_term(out: &Tensor, batch: &Batch) -> candle_core::Result<Option<Tensor>> {
    let mut terms = Vec::new();
    let mut n = 0usize;
    for (i, ct) in batch.cells.iter().enumerate() {
        let (or, nr, oc, nc) = ct.lattice;
        let k = ct.k;
        if nr == 0 || nc == 0 {
            continue;
        }
        let valid: Vec<f32> = ct
            .values
            .iter()
            .map(|v| if v.is_finite() { 1.0 } else { 0.0 })
            .collect();
        let cnt = valid.iter().filter(|&&v| v > 0.0).count();
        if cnt == 0 {
            continue;
        }
        let target: Vec<f32> = ct
            .values
            .iter()
            .map(|v| if v.is_finite() { *v } else { 0.0 })
            .collect();
        let dev = out.device();
        let o = out
            .get(i)?
            .narrow(1, or, nr * k)?
            .narrow(2, oc, nc * k)?
            .reshape((nr, k, nc, k))? // [1, nr·k, nc·k] -> [nr, k, nc, k]
            .mean(3)?
            .mean(1)?; // [nr, nc]
        let t = Tensor::from_vec(target, (nr, nc), dev)?;
        let w = Tensor::from_vec(valid, (nr, nc), dev)?;
        terms.push(((o - t)?.sqr()? * w)?.sum_all()?);
        n += cnt;
    }
    if terms.is_empty() {
        return Ok(None);
    }
    let total = Tensor::stack(&terms, 0)?.sum_all()?;
    Ok(Some(total.affine(1.0 / n as f64, 0.0)?))
}

/// Trains a model: builds the data set, trains `tc.epochs` epochs and returns the
/// checkpoint. `progress` receives every batch and epoch.
///
/// # Errors
/// As [`Trainer::new`] and [`Trainer::run`].
pub fn train(
    cfg: &AmunConfig,
    tc: &TrainConfig,
    scenes: &[TrainingScene],
    progress: impl FnMut(&Progress),
) -> Result<Trained> {
    let mut t = Trainer::new(cfg, tc, scenes)?;
    t.run(progress)?;
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{scene, tiny_config};

    fn quick() -> TrainConfig {
        TrainConfig {
            solver: Solver::ADAM,
            learning_rate: 3e-3,
            epochs: 2,
            batch_size: 8,
            patch: 16,
            stride: 8,
            split_block: 32,
            augment: true,
            seed: 11,
            ..TrainConfig::default()
        }
    }

    fn scenes() -> Vec<TrainingScene> {
        vec![scene(64, 4, 0.0), scene(64, 4, 3.0)]
    }

    fn weights(ck: &Checkpoint) -> Vec<Vec<f32>> {
        ck.weights()
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    }

    #[test]
    fn trains_reports_kelvin_and_is_deterministic() {
        let mut events = (0, 0);
        let a = train(&tiny_config(), &quick(), &scenes(), |p| match p {
            Progress::Batch { .. } => events.0 += 1,
            Progress::Epoch(_) => events.1 += 1,
        })
        .unwrap();
        assert_eq!(events.1, 2);
        assert!(events.0 >= 2);
        let h = a.history();
        assert_eq!(h.len(), 2);
        assert!(h
            .iter()
            .all(|r| r.train_rmse_k.is_finite() && r.val_rmse_k.is_finite()));
        // The model starts near the bilinear baseline (small output layer), so the first
        // validation RMSE is of the order of the residual's spread, in kelvin.
        assert!(
            h[0].val_rmse_k < 5.0 * a.normalization().target.std,
            "{h:?}"
        );
        let b = train(&tiny_config(), &quick(), &scenes(), |_| {}).unwrap();
        assert_eq!(
            weights(&a),
            weights(&b),
            "same seed must give the same weights"
        );
        let c = train(
            &tiny_config(),
            &TrainConfig {
                seed: 12,
                ..quick()
            },
            &scenes(),
            |_| {},
        )
        .unwrap();
        assert_ne!(weights(&a), weights(&c));
    }

    #[test]
    fn resume_from_a_checkpoint_equals_an_uninterrupted_run() {
        let straight = train(&tiny_config(), &quick(), &scenes(), |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut t = Trainer::new(
            &tiny_config(),
            &TrainConfig {
                epochs: 1,
                ..quick()
            },
            &scenes(),
        )
        .unwrap();
        t.run(|_| {}).unwrap();
        t.checkpoint().unwrap().save(dir.path()).unwrap();
        let ck = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(ck.meta().epochs_done, 1);
        let mut r = Trainer::resume(&ck, &quick(), &scenes()).unwrap();
        assert_eq!(r.epochs_done(), 1);
        r.run(|_| {}).unwrap();
        let resumed = r.finish().unwrap();
        assert_eq!(weights(&resumed), weights(&straight));
        assert_eq!(resumed.history().len(), 2);
        // Another solver cannot take over the saved state.
        let e = Trainer::resume(
            &ck,
            &TrainConfig {
                solver: Solver::SGDM,
                ..quick()
            },
            &scenes(),
        );
        assert!(matches!(e, Err(Error::BadCheckpoint { .. })));
    }

    #[test]
    fn divergence_is_caught() {
        let tc = TrainConfig {
            solver: Solver::Sgdm { momentum: 0.9 },
            learning_rate: 1e4,
            epochs: 3,
            augment: false,
            ..quick()
        };
        let e = train(&tiny_config(), &tc, &scenes(), |_| {}).unwrap_err();
        assert!(matches!(e, Error::Diverged { .. }), "{e}");
        assert!(e.to_string().contains("diverged"));
    }

    #[test]
    fn config_check_names_the_field() {
        for (tc, field) in [
            (
                TrainConfig {
                    patch: 0,
                    ..quick()
                },
                "patch",
            ),
            (
                TrainConfig {
                    batch_size: 0,
                    ..quick()
                },
                "batch_size",
            ),
            (
                TrainConfig {
                    val_fraction: 1.0,
                    ..quick()
                },
                "val_fraction",
            ),
            (
                TrainConfig {
                    learning_rate: 0.0,
                    ..quick()
                },
                "learning_rate",
            ),
            (
                TrainConfig {
                    split_block: 8,
                    ..quick()
                },
                "split_block",
            ),
        ] {
            let e = tc.check().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        assert!(TrainConfig::default().check().is_ok());
        // The paper's schedule: 1e-4 halved every 50 epochs.
        let d = TrainConfig::default();
        assert!((d.learning_rate_at(49) - 1e-4).abs() < 1e-18);
        assert!((d.learning_rate_at(50) - 5e-5).abs() < 1e-18);
        assert!((d.learning_rate_at(98) - 5e-5).abs() < 1e-18);
    }

    /// The degradation term on a hand-made batch: output constant 1 on a 4×4 patch with
    /// 2×2 cells whose targets are 0, 1, 3 and NaN → mean of (1, 0, 4) = 5/3.
    #[test]
    fn degradation_term_by_hand() {
        let dev = Device::Cpu;
        let out = Tensor::ones((1, 1, 4, 4), candle_core::DType::F32, &dev).unwrap();
        let batch = Batch {
            x: out.clone(),
            y: out.clone(),
            m: out.clone(),
            valid: 16.0,
            cells: vec![crate::data::CellTargets {
                lattice: (0, 2, 0, 2),
                k: 2,
                values: ndarray::arr2(&[[0.0, 1.0], [3.0, f32::NAN]]),
            }],
        };
        let d = degradation_term(&out, &batch).unwrap().unwrap();
        assert!((d.to_scalar::<f32>().unwrap() - 5.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn degradation_and_charbonnier_and_masking_train() {
        let mut sc = scenes();
        sc[0].label.data_mut()[(5, 5)] = f32::NAN;
        let tc = TrainConfig {
            loss: LossKind::Charbonnier { eps: 1e-3 },
            degradation_weight: 0.5,
            nodata: NodataPolicy::Mask { min_valid: 0.5 },
            epochs: 1,
            ..quick()
        };
        let ck = train(&tiny_config(), &tc, &sc, |_| {}).unwrap();
        assert!(ck.history()[0].train_loss.is_finite());
    }

    /// Small scenes get a smaller patch, stride and split block, each change noted; scenes
    /// below two patches of the size multiple are refused with advice.
    #[test]
    fn settings_fit_small_scenes() {
        let tc = TrainConfig::default(); // patch 32, stride 16, split block 128
        let (same, notes) = tc.fitted_to(400, 16).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!((same.patch, same.stride, same.split_block), (32, 16, 128));
        let (t, notes) = tc.fitted_to(40, 16).unwrap();
        assert_eq!((t.patch, t.stride, t.split_block), (16, 8, 16));
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].contains("patch 32 → 16"), "{notes:?}");
        let (t, _) = tc.fitted_to(80, 16).unwrap();
        assert_eq!((t.patch, t.split_block), (32, 32));
        let e = tc.fitted_to(31, 16).unwrap_err();
        assert!(matches!(
            e,
            Error::RegionTooSmall {
                side: 31,
                needed: 32,
                ..
            }
        ));
        assert!(e.to_string().contains("amun baseline prior"), "{e}");
    }

    /// Whole held-out scenes are validation only, and on a 40-px scene with 16-px patches
    /// every scene yields validation patches.
    #[test]
    fn whole_scenes_are_held_out_and_masks_cover_validation() {
        let scenes = vec![scene(48, 4, 0.0), scene(48, 4, 1.0), scene(48, 4, 2.0)];
        let tc = TrainConfig {
            val_scenes: 1,
            epochs: 1,
            ..quick()
        };
        let t = Trainer::new(&tiny_config(), &tc, &scenes).unwrap();
        let masks = t.validation_masks();
        let full: Vec<bool> = masks.iter().map(|m| m.iter().all(|&v| v)).collect();
        assert_eq!(full.iter().filter(|&&f| f).count(), 1, "{full:?}");
        // The other scenes keep some validation blocks and some training pixels.
        for (m, f) in masks.iter().zip(&full) {
            if !f {
                let n = m.iter().filter(|&&v| v).count();
                assert!(n > 0 && n < m.len(), "{n} of {}", m.len());
            }
        }
        assert_eq!(
            crate::data::held_out_scenes(1, 1, 0),
            vec![false],
            "never every scene"
        );
    }
}
