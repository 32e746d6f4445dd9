//! Training: the epoch loop, losses, validation, divergence guard, resume (the settings and
//! history types are in `settings.rs`).

use candle_core::{Device, Module, Tensor};
use candle_nn::Optimizer;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{Checkpoint, CheckpointMeta, OptimizerMeta};
use crate::config::{AmunConfig, Supervision};
use crate::data::{
    assemble, build_dataset, AspectChannels, Batch, Dataset, PatchRef, PatchSettings, TrainingScene,
};
use crate::error::{Error, Result};
use crate::health::{self, GradTally, LevelHealth};
use crate::init::SeededVarMap;
use crate::model::Amun;
use crate::optim::{Optim, OptimConfig};
use crate::settings::LrSchedule;
pub use crate::settings::{EpochRecord, LossKind, TrainConfig, TrainValidConfig};

/// What the progress callback receives.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum TrainEvent {
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
    tc: TrainValidConfig,
    device: Device,
    vars: SeededVarMap,
    model: Amun,
    opt: Optim,
    data: Dataset,
    aspect: AspectChannels,
    history: Vec<EpochRecord>,
    epoch: usize,
    reference_loss: Option<f64>,
    best: Option<(f64, Vec<Tensor>, Vec<LevelHealth>)>,
    /// Each level's health after the last epoch (of the best epoch after `finish`).
    health: Vec<LevelHealth>,
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
        let tc = tc.clone().check()?;
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
            seed: tc.split_seed.unwrap_or(tc.seed),
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
            health: from.map(|c| c.meta().health.clone()).unwrap_or_default(),
        })
    }

    /// Each level's health after the last epoch: the share of near-zero weights and the
    /// gradient reaching them (empty before the first epoch).
    pub fn health(&self) -> &[LevelHealth] {
        &self.health
    }

    /// The settings this trainer runs with.
    pub fn config(&self) -> &TrainConfig {
        &self.tc
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

    /// Whether the model learns from coarse cells alone ([`Supervision::CoarseResidual`]).
    fn on_cells(&self) -> bool {
        self.cfg.supervision == Supervision::CoarseResidual
    }

    fn loss(&self, out: &Tensor, batch: &Batch) -> candle_core::Result<Tensor> {
        if self.on_cells() {
            // The cells are the only target: SRDA-Net's degradation term, alone.
            return match degradation_term(out, batch)? {
                Some(term) => Ok(term),
                None => Tensor::zeros((), out.dtype(), out.device()),
            };
        }
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
    pub fn run_epoch(&mut self, progress: &mut dyn FnMut(&TrainEvent)) -> Result<EpochRecord> {
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
        let with_cells = self.tc.degradation_weight > 0.0 || self.on_cells();
        let vars = self.vars.sorted_vars();
        let mut tally = GradTally::default();
        let per_batch = self.tc.lr_schedule != LrSchedule::Step || self.tc.warmup_epochs > 0.0;
        for (bi, chunk) in order.chunks(bs).enumerate() {
            if per_batch {
                let mid = (bi as f64 + 0.5) / batches as f64;
                self.opt
                    .set_learning_rate(self.tc.learning_rate_during(epoch, mid));
            }
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
            let grads = loss.backward()?;
            tally.add(&vars, &grads)?;
            self.opt.step(&grads)?;
            let (sq, n) = self.squared_errors(&out.detach(), &batch)?;
            sq_sum += sq;
            px += n;
            loss_sum += lv;
            progress(&TrainEvent::Batch {
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
        let val_rmse_k = self.validation_rmse()?;
        self.health = health::measure(&vars, &tally)?;
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
            && self.best.as_ref().is_none_or(|(b, _, _)| val_rmse_k < *b)
        {
            let snapshot = vars
                .iter()
                .map(|(_, v)| v.as_tensor().copy())
                .collect::<candle_core::Result<Vec<_>>>()?;
            self.best = Some((val_rmse_k, snapshot, self.health.clone()));
        }
        self.history.push(rec);
        self.epoch += 1;
        progress(&TrainEvent::Epoch(rec));
        Ok(rec)
    }

    /// Validation RMSE in kelvin over the validation patches (`NaN` if there are none).
    ///
    /// # Errors
    /// Tensor errors.
    pub fn validation_rmse(&self) -> Result<f64> {
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
                self.on_cells(),
                &self.device,
            )?;
            let out = self.model.forward(&batch.x)?;
            let (s, n) = self.squared_errors(&out, &batch)?;
            sq += s;
            px += n;
        }
        Ok(self.data.norm.target.std * (sq / px.max(1.0)).sqrt())
    }

    /// The batch's sum of squared errors (normalised units) and how many terms it has: over
    /// the labelled pixels, or over the coarse cells under [`Supervision::CoarseResidual`].
    fn squared_errors(&self, out: &Tensor, batch: &Batch) -> Result<(f64, f64)> {
        if self.on_cells() {
            return Ok(match cell_errors(out, batch)? {
                Some((sq, n)) => (f64::from(sq.to_scalar::<f32>()?), n as f64),
                None => (0.0, 0.0),
            });
        }
        let sq = ((out - &batch.y)?.sqr()? * &batch.m)?.sum_all()?;
        Ok((f64::from(sq.to_scalar::<f32>()?), batch.valid))
    }

    /// Trains until `epochs` epochs are done in total.
    ///
    /// # Errors
    /// As [`Trainer::run_epoch`].
    pub fn run(&mut self, mut progress: impl FnMut(&TrainEvent)) -> Result<()> {
        let (started, first) = (std::time::Instant::now(), self.epoch);
        while self.wants_epoch(started, first) {
            self.run_epoch(&mut progress)?;
        }
        Ok(())
    }

    /// Whether another epoch should run in a run that began at `started` with epoch
    /// `first`: epochs remain, and the time budget ([`TrainConfig::max_minutes`]) allows one
    /// more at the last epoch's pace. The run's first epoch always runs.
    pub fn wants_epoch(&self, started: std::time::Instant, first: usize) -> bool {
        if self.epoch >= self.tc.epochs {
            return false;
        }
        match (self.tc.max_minutes, self.history.last()) {
            (Some(budget), Some(last)) if self.epoch > first => {
                started.elapsed().as_secs_f64() + last.seconds <= 60.0 * budget
            }
            _ => true,
        }
    }

    /// Ends the run: with `keep_best`, restores the weights of the epoch with the lowest
    /// validation RMSE; returns the checkpoint.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn finish(mut self) -> Result<Checkpoint> {
        if let Some((_, snapshot, health)) = self.best.take() {
            for ((_, var), t) in self.vars.sorted_vars().iter().zip(snapshot) {
                var.set(&t)?;
            }
            self.health = health;
        }
        self.checkpoint()
    }

    /// A checkpoint of the current state (weights, normalisation, history, optimiser).
    ///
    /// # Errors
    /// Tensor errors while copying the weights.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let (state, steps) = self.opt.state();
        let mut meta = CheckpointMeta::new(
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
        meta.health = self.health.clone();
        Checkpoint::from_parts(meta, &self.vars.sorted_vars(), state, &self.device)
    }
}

/// Mean squared difference between each coarse cell's mean output and its target, over
/// the fully valid cells of the batch; `None` when the batch has no such cell.
fn degradation_term(out: &Tensor, batch: &Batch) -> candle_core::Result<Option<Tensor>> {
    cell_errors(out, batch)?
        .map(|(sq, n)| sq.affine(1.0 / n as f64, 0.0))
        .transpose()
}

/// The sum over the fully valid cells of the batch of (cell mean of the output − the
/// cell's target)², and the number of such cells; `None` when there is none.
fn cell_errors(out: &Tensor, batch: &Batch) -> candle_core::Result<Option<(Tensor, usize)>> {
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
    Ok(Some((total, n)))
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
    progress: impl FnMut(&TrainEvent),
) -> Result<Trained> {
    let mut t = Trainer::new(cfg, tc, scenes)?;
    t.run(progress)?;
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::NodataPolicy;
    use crate::optim::Solver;
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
            ..TrainConfig::paper()
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

    /// The default recipe (the demo's), briefly: every level receives a gradient and none
    /// collapses; the U-Net's bridge keeps all its weights above the near-zero bound.
    #[test]
    fn the_default_recipe_keeps_every_level_alive() {
        let tc = TrainConfig {
            epochs: 5,
            patch: 16,
            stride: 16,
            split_block: 32,
            batch_size: 8,
            ..TrainConfig::default()
        };
        let t = train(&tiny_config(), &tc, &scenes(), |_| {}).unwrap();
        let health = &t.meta().health;
        assert!(health.len() > 4, "{health:?}");
        assert!(
            crate::health::collapsed_levels(health).is_empty(),
            "{health:?}"
        );
        assert!(health.iter().all(|l| l.grad_rms > 0.0), "{health:?}");
        let bridge = health.iter().find(|l| l.level == "unet.bridge").unwrap();
        assert!(
            bridge.near_zero == 0.0 && bridge.max_abs > 1e-2,
            "{bridge:?}"
        );
    }

    #[test]
    fn trains_reports_kelvin_and_is_deterministic() {
        let mut events = (0, 0);
        let a = train(&tiny_config(), &quick(), &scenes(), |p| match p {
            TrainEvent::Batch { .. } => events.0 += 1,
            TrainEvent::Epoch(_) => events.1 += 1,
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
        // Every level was measured, received a gradient and is alive after two epochs.
        let health = &a.meta().health;
        let levels: Vec<&str> = health.iter().map(|l| l.level.as_str()).collect();
        assert!(
            levels.contains(&"unet.bridge") && levels.contains(&"unet.enc.0"),
            "{levels:?}"
        );
        assert!(
            health
                .iter()
                .all(|l| l.grad_rms > 0.0 && l.grad_rms.is_finite() && !l.collapsed()),
            "{health:?}"
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
        // With the split's seed fixed, another seed changes the weights but not the
        // held-out pixels nor the normalisation (the members of an ensemble).
        let member = |seed| {
            Trainer::new(
                &tiny_config(),
                &TrainConfig {
                    seed,
                    split_seed: Some(11),
                    ..quick()
                },
                &scenes(),
            )
            .unwrap()
        };
        let (m1, m2) = (member(11), member(12));
        assert_eq!(m1.validation_masks(), m2.validation_masks());
        let (n1, n2) = (m1.checkpoint().unwrap(), m2.checkpoint().unwrap());
        assert_eq!(n1.normalization(), n2.normalization());
        assert_ne!(weights(&n1), weights(&n2));
    }

    /// A budget far below one epoch's time: the first epoch runs, then training stops.
    #[test]
    fn a_time_budget_stops_after_the_epoch_that_reaches_it() {
        let tc = TrainConfig {
            epochs: 5,
            max_minutes: Some(1e-9),
            ..quick()
        };
        let ck = train(&tiny_config(), &tc, &scenes(), |_| {}).unwrap();
        assert_eq!(ck.history().len(), 1);
        let bad = TrainConfig {
            max_minutes: Some(0.0),
            ..quick()
        };
        let e = train(&tiny_config(), &bad, &scenes(), |_| {}).unwrap_err();
        assert!(e.to_string().contains("max_minutes"), "{e}");
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
        assert!(TrainConfig::paper().check().is_ok());
        // The paper's schedule: 1e-4 halved every 50 epochs.
        let d = TrainConfig::paper();
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
        sc[0].label.as_mut().unwrap().data_mut()[(5, 5)] = f32::NAN;
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
        let tc = TrainConfig::paper(); // patch 32, stride 16, split block 128
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

    /// Trained on coarse cells alone: the error is reported in kelvin over the cells and
    /// falls with training, and the learnt correction is a function of the covariates
    /// alone — moving the coarse field moves the prior it corrects, never the correction.
    #[test]
    fn coarse_cells_alone_teach_a_correction_blind_to_the_coarse_field() {
        use amun_indices::{Igbp, LandcoverEncoding};
        use amun_prior::PriorParams;
        use amun_raster::Raster;

        use crate::config::Base;
        use crate::testutil::coarse_cell_scene;
        let prior = PriorParams::covariates().elevation_band("height");
        let cfg = tiny_config()
            .with_covariates(&["ndvi", "landcover", "height", "aspect"])
            .with_landcover_encoding(LandcoverEncoding::OneHot(vec![
                Igbp::Cropland,
                Igbp::UrbanBuiltUp,
            ]))
            .with_base(Base::Prior(prior.clone()))
            .with_supervision(Supervision::CoarseResidual);
        let scenes = vec![coarse_cell_scene(64, 4, 0.0), coarse_cell_scene(64, 4, 3.0)];
        let tc = TrainConfig {
            epochs: 6,
            stride: 16,
            keep_best: false,
            ..quick()
        };
        let mut t = Trainer::new(&cfg, &tc, &scenes).unwrap();
        t.run(|_| {}).unwrap();
        let h = t.history().to_vec();
        assert!(h
            .iter()
            .all(|r| r.train_rmse_k.is_finite() && r.val_rmse_k.is_finite()));
        let (first, last) = (h[0].train_rmse_k, h[h.len() - 1].train_rmse_k);
        assert!(last < first, "cell RMSE {first} K → {last} K");
        let ck = t.finish().unwrap();
        let sc = &scenes[0];
        let tiles = crate::infer::TileParams::default();
        let g = sc.coarse_lst.grid().clone();
        let moved = Raster::from_fn(g, |(r, c)| {
            sc.coarse_lst.data()[(r, c)] + 0.7 + 0.2 * c as f32 - 0.1 * r as f32
        });
        let correction = |coarse: &Raster| {
            let out = ck
                .predict(coarse, &sc.covariates, &tiles, |_, _| {})
                .unwrap();
            let base = prior.fit(coarse, &sc.covariates).unwrap();
            out.data() - base.field(&sc.covariates).unwrap().data()
        };
        let (a, b) = (correction(&sc.coarse_lst), correction(&moved));
        assert!(a.iter().any(|v| v.abs() > 1e-4), "no correction at all");
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 2e-3, "{x} vs {y}");
        }
    }
}
