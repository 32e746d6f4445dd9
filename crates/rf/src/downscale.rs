//! The downscaling flows: Hutengs & Vohland (fit on coarse pixels) and supervised (fit on
//! fine pixels of training scenes), with a random forest or ridge regression.

use amun_prior::{Base, FitReport, Prior};
use amun_raster::{bilinear_spread, conserve, resample, Raster, Resampling, Stack};
use ndarray::{Array1, Array2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::{CategoricalEncoding, FeatureSpec};
use crate::forest::{in_pool, subsample, RandomForest, RfParams, RfValidParams};
use crate::ridge::{RidgeModel, RidgeParams, RidgeValidParams};

/// Fine pixels per prediction task: one task holds one chunk of features
/// (`PIXELS_PER_CHUNK × features × 4` bytes).
const PIXELS_PER_CHUNK: usize = 1 << 16;

/// Which regression model maps covariates to LST.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelParams {
    /// A random forest (the paper's baseline).
    Forest(RfParams),
    /// Ridge regression (TsHARP/DisTrad-style linear baseline).
    Ridge(RidgeParams),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ValidModel {
    Forest(RfValidParams),
    Ridge(RidgeValidParams),
}

/// A fitted regression model.
#[derive(Debug)]
pub enum Model {
    /// A random forest.
    Forest(RandomForest),
    /// A linear model.
    Ridge(RidgeModel),
}

impl Model {
    /// Predicts row-major feature rows on the calling thread; rows with a `NaN` give `NaN`.
    fn predict_rows(&self, rows: &[f32], p: usize) -> Result<Vec<f32>> {
        match self {
            Model::Forest(f) => f.predict_rows(rows),
            Model::Ridge(m) => Ok(rows
                .chunks_exact(p)
                .map(|r| {
                    if r.iter().all(|v| v.is_finite()) {
                        m.predict_one(r.iter())
                    } else {
                        f32::NAN
                    }
                })
                .collect()),
        }
    }

    /// As `predict_rows`, with the model's spread: the quantile regression forest's standard
    /// deviation for a forest fitted with [`RfParams::uncertainty`], the training residual
    /// standard deviation for ridge.
    fn predict_rows_with_std(&self, rows: &[f32], p: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        match self {
            Model::Forest(f) => f.predict_rows_with_std(rows),
            Model::Ridge(m) => {
                let mean = self.predict_rows(rows, p)?;
                let s = m.residual_std() as f32;
                let std = mean
                    .iter()
                    .map(|v| if v.is_nan() { f32::NAN } else { s })
                    .collect();
                Ok((mean, std))
            }
        }
    }

    fn n_threads(&self, params: &ValidModel) -> Option<usize> {
        match (self, params) {
            (Model::Forest(_), ValidModel::Forest(p)) => p.n_threads(),
            _ => None,
        }
    }
}

impl Default for ResidualCorrection {
    /// `Aggregated { iterations: 10 }`.
    fn default() -> Self {
        ResidualCorrection::Aggregated { iterations: 10 }
    }
}

/// How the model's prediction is corrected so that it agrees with the coarse LST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResidualCorrection {
    /// No correction: the model's prediction as is.
    Off,
    /// Hutengs & Vohland (`docs/design.md` §6): the coarse residual
    /// `LST − model(coarse covariates)`, resampled bilinearly to the fine grid and added. In
    /// the supervised mode, where the model has no coarse-scale prediction, this is
    /// [`ResidualCorrection::Aggregated`] with one iteration.
    Coarse,
    /// The residual `LST − block mean(fine prediction)`, resampled bilinearly and added,
    /// repeated `iterations` times (see [`residual_correct`]): the aggregated output
    /// converges to the coarse input while the correction stays smooth.
    Aggregated {
        /// Number of passes (≥ 1).
        iterations: usize,
    },
}

/// What the supervised mode learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SupervisedTarget {
    /// The fine LST itself.
    Absolute,
    /// The fine LST minus the bilinear coarse LST (as AMUN's output head): the model learns
    /// the sub-pixel pattern, which carries over between scenes of different mean
    /// temperature, where trees cannot extrapolate absolute values beyond the training range.
    #[default]
    Residual,
}

/// Parameters of a downscaling flow (builder).
///
/// | field | default | meaning |
/// |---|---|---|
/// | model | random forest, [`RfParams`] defaults | regression model |
/// | `categorical` | [`CategoricalEncoding::Fractions`] | land-cover features |
/// | `coordinates` | `false` | add pixel-centre x/y (lon/lat) as features |
/// | `residual_correction` | `Aggregated { iterations: 10 }` | agreement with the coarse LST |
/// | `supervised_target` | [`SupervisedTarget::Residual`] | what the supervised mode learns |
/// | `min_coverage` | 0.5 | fraction of valid fine pixels a coarse cell needs in aggregation |
/// | `base` | [`Base::Bilinear`] | the field the model corrects (see below) |
///
/// With a physical prior as the base ([`Base::Prior`], `amun-prior`), the per-scene flow
/// fits the model on what the prior's linear model leaves of the coarse local anomalies (the
/// trend comes from the linear model, the model fits what is left — the remedy for a
/// forest's inability to extrapolate beyond the coarse cells' range), shrinks its
/// contribution by the skill it shows in a spatially blocked 5-fold cross-validation on the
/// coarse cells (none: the prior alone), and keeps the coarse block means exactly; the
/// supervised flow uses the prior in place of the bilinear field.
///
/// The default correction is the iterated aggregated residual rather than Hutengs &
/// Vohland's coarse-model residual ([`ResidualCorrection::Coarse`]): with a nonlinear model
/// the mean of the fine predictions differs from the prediction at the mean covariates, so
/// the coarse-model residual leaves the output far from the coarse input when aggregated
/// back (1.9 K against 0.01 K on the synthetic world of `docs/benchmarks/amun-rf.md`), and
/// it was less accurate there too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownscaleParams {
    model: ModelParams,
    categorical: CategoricalEncoding,
    coordinates: bool,
    residual_correction: ResidualCorrection,
    supervised_target: SupervisedTarget,
    min_coverage: f64,
    #[serde(default)]
    base: Base,
}

impl Default for DownscaleParams {
    fn default() -> Self {
        Self::random_forest(RfParams::default())
    }
}

/// [`DownscaleParams`] that passed [`DownscaleParams::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownscaleValidParams {
    model: ValidModel,
    categorical: CategoricalEncoding,
    coordinates: bool,
    residual_correction: ResidualCorrection,
    supervised_target: SupervisedTarget,
    min_coverage: f64,
    #[serde(default)]
    base: Base,
}

impl DownscaleParams {
    /// A random-forest flow with the other defaults.
    pub fn random_forest(params: RfParams) -> Self {
        Self::with_model(ModelParams::Forest(params))
    }

    /// A ridge-regression (linear baseline) flow with the other defaults.
    pub fn ridge(params: RidgeParams) -> Self {
        Self::with_model(ModelParams::Ridge(params))
    }

    fn with_model(model: ModelParams) -> Self {
        Self {
            model,
            categorical: CategoricalEncoding::default(),
            coordinates: false,
            residual_correction: ResidualCorrection::default(),
            supervised_target: SupervisedTarget::default(),
            min_coverage: 0.5,
            base: Base::Bilinear,
        }
    }

    /// The field the model corrects.
    pub fn base(mut self, base: Base) -> Self {
        self.base = base;
        self
    }

    /// How categorical bands become features.
    pub fn categorical(mut self, encoding: CategoricalEncoding) -> Self {
        self.categorical = encoding;
        self
    }

    /// Whether pixel-centre coordinates are features.
    pub fn coordinates(mut self, on: bool) -> Self {
        self.coordinates = on;
        self
    }

    /// The residual correction.
    pub fn residual_correction(mut self, correction: ResidualCorrection) -> Self {
        self.residual_correction = correction;
        self
    }

    /// What the supervised mode learns.
    pub fn supervised_target(mut self, target: SupervisedTarget) -> Self {
        self.supervised_target = target;
        self
    }

    /// Fraction (0–1) of valid fine pixels a coarse cell needs when covariates are aggregated.
    pub fn min_coverage(mut self, fraction: f64) -> Self {
        self.min_coverage = fraction;
        self
    }

    /// Validates the parameters (the model's too).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an invalid model parameter, `min_coverage` outside
    /// 0–1, or zero correction iterations.
    pub fn check(self) -> Result<DownscaleValidParams> {
        if !(0.0..=1.0).contains(&self.min_coverage) {
            return Err(Error::InvalidParameter {
                name: "min_coverage",
                value: self.min_coverage.to_string(),
                reason: "must be a fraction in 0..=1",
            });
        }
        if self.residual_correction == (ResidualCorrection::Aggregated { iterations: 0 }) {
            return Err(Error::InvalidParameter {
                name: "residual_correction.iterations",
                value: "0".into(),
                reason: "must be at least 1 (use ResidualCorrection::Off for none)",
            });
        }
        if let Base::Prior(p) = &self.base {
            p.clone().check()?;
        }
        let model = match self.model {
            ModelParams::Forest(p) => ValidModel::Forest(p.check()?),
            ModelParams::Ridge(p) => ValidModel::Ridge(p.check()?),
        };
        Ok(DownscaleValidParams {
            model,
            categorical: self.categorical,
            coordinates: self.coordinates,
            residual_correction: self.residual_correction,
            supervised_target: self.supervised_target,
            min_coverage: self.min_coverage,
            base: self.base,
        })
    }

    /// Checks the parameters and fits on coarse pixels (see [`DownscaleValidParams::fit`]).
    ///
    /// # Errors
    /// As [`DownscaleParams::check`] and [`DownscaleValidParams::fit`].
    pub fn fit(self, coarse_lst: &Raster, fine_covariates: &Stack) -> Result<FittedDownscaler> {
        self.check()?.fit(coarse_lst, fine_covariates)
    }

    /// Checks the parameters and fits on fine pixels (see
    /// [`DownscaleValidParams::fit_supervised`]).
    ///
    /// # Errors
    /// As [`DownscaleParams::check`] and [`DownscaleValidParams::fit_supervised`].
    pub fn fit_supervised(self, scenes: &[SupervisedScene<'_>]) -> Result<SupervisedDownscaler> {
        self.check()?.fit_supervised(scenes)
    }
}

/// One training scene of the supervised mode, borrowed (amun-net's `TrainingScene` owns its
/// rasters).
#[derive(Debug, Clone, Copy)]
pub struct SupervisedScene<'a> {
    /// Coarse LST.
    pub coarse_lst: &'a Raster,
    /// Fine covariates on a grid refining the coarse LST's grid.
    pub covariates: &'a Stack,
    /// Fine LST truth on the covariates' grid.
    pub truth: &'a Raster,
}

impl DownscaleValidParams {
    fn fit_model(&self, x: Array2<f32>, y: Array1<f32>) -> Result<Model> {
        Ok(match &self.model {
            ValidModel::Forest(p) => Model::Forest(p.fit(x.view(), y.view())?),
            ValidModel::Ridge(p) => Model::Ridge(p.fit(x.view(), y.view())?),
        })
    }

    fn sample_cap(&self) -> (usize, u64) {
        match &self.model {
            ValidModel::Forest(p) => (p.max_samples(), p.seed()),
            ValidModel::Ridge(p) => (p.max_samples(), 0),
        }
    }

    /// Hutengs & Vohland (2016): aggregates the fine covariates onto the coarse LST's grid
    /// (mean of continuous bands, class fractions or mode of categorical bands, plus x/y if
    /// asked), fits the model on the coarse pixels where the LST and every feature are
    /// valid, and keeps the coarse residual for the correction.
    ///
    /// # Errors
    /// Grid errors if the fine grid does not refine the coarse grid by an integer factor;
    /// [`Error::Indices`] for a land-cover value that is not an IGBP code;
    /// [`Error::TooFewSamples`] with fewer than 2 valid coarse pixels;
    /// model errors.
    pub fn fit(&self, coarse_lst: &Raster, fine_covariates: &Stack) -> Result<FittedDownscaler> {
        let k = fine_covariates.grid().refinement_of(coarse_lst.grid())?;
        let prior = match &self.base {
            Base::Bilinear => None,
            Base::Prior(p) => Some(p.fit(coarse_lst, fine_covariates)?),
        };
        let spec = FeatureSpec::new(
            &[fine_covariates],
            self.categorical,
            false,
            self.coordinates,
        )?;
        let (_, cols) = spec.coarse_columns(fine_covariates, k, self.min_coverage)?;
        let p = spec.len();
        let lst = coarse_lst.data();
        let mut all = Vec::with_capacity(lst.len() * p);
        for (idx, _) in lst.indexed_iter() {
            all.extend(cols.iter().map(|c| c[idx]));
        }
        // The target: the coarse LST, or what the prior's linear model leaves of it.
        let flat_lst: Vec<f32> = match &prior {
            None => lst.iter().copied().collect(),
            Some(p) => p.coarse_residual().data().iter().copied().collect(),
        };
        let rows: Vec<usize> = (0..flat_lst.len())
            .filter(|&i| {
                flat_lst[i].is_finite() && all[i * p..(i + 1) * p].iter().all(|v| v.is_finite())
            })
            .collect();
        let (cap, seed) = self.sample_cap();
        let keep: Vec<usize> = subsample(rows.len(), cap, seed)
            .into_iter()
            .map(|i| rows[i])
            .collect();
        if keep.len() < 2 {
            return Err(Error::TooFewSamples {
                got: keep.len(),
                needed: 2,
            });
        }
        let x = Array2::from_shape_fn((keep.len(), p), |(r, j)| all[keep[r] * p + j]);
        let y: Array1<f32> = keep.iter().map(|&i| flat_lst[i]).collect();
        let on_prior = match prior {
            Some(prior) => {
                let cells: Vec<(usize, usize)> = keep
                    .iter()
                    .map(|&i| (i / lst.ncols(), i % lst.ncols()))
                    .collect();
                let (weight, cv_r2) = self.cross_validated_weight(&x, &y, &cells)?;
                Some(OnPrior {
                    prior,
                    weight,
                    cv_r2,
                })
            }
            None => None,
        };
        let model = self.fit_model(x, y)?;
        let coarse_pred = model.predict_rows(&all, p)?;
        let residual = Array2::from_shape_fn(lst.dim(), |(r, c)| {
            let i = r * lst.ncols() + c;
            flat_lst[i] - coarse_pred[i]
        });
        Ok(FittedDownscaler {
            params: self.clone(),
            spec,
            model,
            coarse_lst: coarse_lst.clone(),
            coarse_residual: Raster::new(coarse_lst.grid().clone(), residual)?,
            coarse_model: Raster::new(
                coarse_lst.grid().clone(),
                Array2::from_shape_vec(lst.dim(), coarse_pred).map_err(|_| {
                    Error::SizeMismatch {
                        what: "coarse predictions",
                        expected: lst.len(),
                        got: 0,
                    }
                })?,
            )?,
            on_prior,
            samples: keep.len(),
        })
    }

    /// How much of a model fitted on coarse cells to add to a prior: the least-squares
    /// scale (clamped to 0–1) of its out-of-fold predictions in a 5-fold cross-validation
    /// whose folds are blocks of 4×4 coarse cells, and the out-of-fold R² at that scale.
    /// A model with no skill on held-out blocks gets weight 0: the prior alone.
    fn cross_validated_weight(
        &self,
        x: &Array2<f32>,
        y: &Array1<f32>,
        cells: &[(usize, usize)],
    ) -> Result<(f64, f64)> {
        const FOLDS: usize = 5;
        const BLOCK: usize = 4;
        let fold_of = |&(r, c): &(usize, usize)| (r / BLOCK + 3 * (c / BLOCK)) % FOLDS;
        let mut oof = vec![f64::NAN; y.len()];
        for fold in 0..FOLDS {
            let (train, test): (Vec<usize>, Vec<usize>) =
                (0..y.len()).partition(|&i| fold_of(&cells[i]) != fold);
            if train.len() < 2 || test.is_empty() {
                continue;
            }
            let xt = Array2::from_shape_fn((train.len(), x.ncols()), |(r, j)| x[(train[r], j)]);
            let yt: Array1<f32> = train.iter().map(|&i| y[i]).collect();
            let model = self.fit_model(xt, yt)?;
            let rows: Vec<f32> = test.iter().flat_map(|&i| x.row(i).to_vec()).collect();
            for (&i, v) in test.iter().zip(model.predict_rows(&rows, x.ncols())?) {
                oof[i] = f64::from(v);
            }
        }
        let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
        for (i, &p) in oof.iter().enumerate() {
            if p.is_finite() {
                let t = f64::from(y[i]);
                sxy += t * p;
                sxx += p * p;
                syy += t * t;
            }
        }
        if sxx <= 0.0 || syy <= 0.0 {
            return Ok((0.0, 0.0));
        }
        let weight = (sxy / sxx).clamp(0.0, 1.0);
        // Σ(y − w p)² = Σy² − 2w Σyp + w² Σp².
        let sse = syy - 2.0 * weight * sxy + weight * weight * sxx;
        Ok((weight, 1.0 - sse / syy))
    }

    /// The supervised mode of the paper's simulated experiment: features at each fine pixel
    /// are the coarse LST resampled bilinearly to the fine grid plus the fine covariates (plus
    /// x/y if asked), the label is the fine truth; pixels of all scenes are pooled (a seeded
    /// uniform subsample above the model's sample cap).
    ///
    /// # Errors
    /// Grid errors if a scene's grids do not nest or its truth is on another grid;
    /// [`Error::BandMismatch`] if scenes have different bands; [`Error::Indices`] for a
    /// land-cover value that is not an IGBP code; [`Error::TooFewSamples`]; model errors.
    pub fn fit_supervised(&self, scenes: &[SupervisedScene<'_>]) -> Result<SupervisedDownscaler> {
        let stacks: Vec<&Stack> = scenes.iter().map(|s| s.covariates).collect();
        let mut spec = FeatureSpec::new(&stacks, self.categorical, true, self.coordinates)?;
        spec.base = self.base.name();
        let p = spec.len();
        let mut lsts = Vec::with_capacity(scenes.len());
        for s in scenes {
            s.covariates.grid().refinement_of(s.coarse_lst.grid())?;
            s.covariates.grid().check_same(s.truth.grid())?;
            lsts.push(self.base.field(s.coarse_lst, s.covariates)?.0);
        }
        // Pass 1: which pixels have every feature and the label.
        let mut valid: Vec<(usize, usize, usize)> = Vec::new();
        let mut buf = vec![0.0f32; p];
        for (si, (s, lst)) in scenes.iter().zip(&lsts).enumerate() {
            for ((r, c), &t) in s.truth.data().indexed_iter() {
                if t.is_nan() {
                    continue;
                }
                spec.fine_row(s.covariates, Some(lst), r, c, &mut buf);
                if buf.iter().all(|v| v.is_finite()) {
                    valid.push((si, r, c));
                }
            }
        }
        let (cap, seed) = self.sample_cap();
        let keep = subsample(valid.len(), cap, seed);
        if keep.len() < 2 {
            return Err(Error::TooFewSamples {
                got: keep.len(),
                needed: 2,
            });
        }
        // Pass 2: the kept rows.
        let mut x = Array2::<f32>::zeros((keep.len(), p));
        let mut y = Array1::<f32>::zeros(keep.len());
        for (row, &i) in keep.iter().enumerate() {
            let (si, r, c) = valid[i];
            let s = &scenes[si];
            spec.fine_row(s.covariates, Some(&lsts[si]), r, c, &mut buf);
            x.row_mut(row).assign(&ndarray::ArrayView1::from(&buf[..]));
            y[row] = s.truth.data()[(r, c)];
            if self.supervised_target == SupervisedTarget::Residual {
                // buf[0] is the base field (the spec's first column).
                y[row] -= buf[0];
            }
        }
        let model = self.fit_model(x, y)?;
        Ok(SupervisedDownscaler {
            params: self.clone(),
            spec,
            model,
            samples: keep.len(),
        })
    }
}

/// Predicts every pixel of `stack`'s grid in row chunks, in parallel; pixels with a missing
/// feature come out missing.
fn predict_grid(
    model: &Model,
    spec: &FeatureSpec,
    stack: &Stack,
    lst: Option<&Raster>,
    n_threads: Option<usize>,
) -> Result<Raster> {
    Ok(predict_grid_spread(model, spec, stack, lst, n_threads, false)?.0)
}

/// [`predict_grid`], and with `spread` also the model's standard deviation per pixel.
fn predict_grid_spread(
    model: &Model,
    spec: &FeatureSpec,
    stack: &Stack,
    lst: Option<&Raster>,
    n_threads: Option<usize>,
    spread: bool,
) -> Result<(Raster, Option<Raster>)> {
    spec.check(stack)?;
    let grid = stack.grid();
    let (rows, cols) = grid.shape();
    let p = spec.len();
    let chunk_rows = (PIXELS_PER_CHUNK / cols).max(1);
    let mut out = vec![f32::NAN; rows * cols];
    let mut std = vec![f32::NAN; if spread { rows * cols } else { 0 }];
    let chunk = chunk_rows * cols;
    let features = |ci: usize, len: usize| {
        let r0 = ci * chunk_rows;
        let mut feats = vec![0.0f32; len * p];
        for (i, f) in feats.chunks_exact_mut(p).enumerate() {
            spec.fine_row(stack, lst, r0 + i / cols, i % cols, f);
        }
        feats
    };
    let run = |out: &mut Vec<f32>, std: &mut Vec<f32>| {
        if spread {
            out.par_chunks_mut(chunk)
                .zip(std.par_chunks_mut(chunk))
                .enumerate()
                .try_for_each(|(ci, (dst, sd))| -> Result<()> {
                    let (m, s) = model.predict_rows_with_std(&features(ci, dst.len()), p)?;
                    dst.copy_from_slice(&m);
                    sd.copy_from_slice(&s);
                    Ok(())
                })
        } else {
            out.par_chunks_mut(chunk)
                .enumerate()
                .try_for_each(|(ci, dst)| -> Result<()> {
                    dst.copy_from_slice(&model.predict_rows(&features(ci, dst.len()), p)?);
                    Ok(())
                })
        }
    };
    in_pool(n_threads, || run(&mut out, &mut std))??;
    let to_raster = |v: Vec<f32>| -> Result<Raster> {
        let n = v.len();
        let data = Array2::from_shape_vec((rows, cols), v).map_err(|_| Error::SizeMismatch {
            what: "predicted pixels",
            expected: rows * cols,
            got: n,
        })?;
        Ok(Raster::new(grid.clone(), data)?)
    };
    let std = if spread { Some(to_raster(std)?) } else { None };
    Ok((to_raster(out)?, std))
}

/// Sets `std` missing wherever `mean` is missing.
fn mask_like(std: &mut Raster, mean: &Raster) {
    ndarray::Zip::from(std.data_mut())
        .and(mean.data())
        .for_each(|s, &m| {
            if m.is_nan() {
                *s = f32::NAN;
            }
        });
}

/// Sets fine pixels whose coarse parent cell is missing to missing.
fn mask_by_parent(fine: &mut Raster, coarse: &Raster, k: usize) {
    let c = coarse.data();
    for ((r, col), v) in fine.data_mut().indexed_iter_mut() {
        if c.get((r / k, col / k)).is_none_or(|p| p.is_nan()) {
            *v = f32::NAN;
        }
    }
}

/// Adds `b` to `a` where `b` is valid.
fn add_where_valid(a: &mut Raster, b: &Raster) {
    ndarray::Zip::from(a.data_mut())
        .and(b.data())
        .for_each(|x, &y| {
            if !y.is_nan() {
                *x += y;
            }
        });
}

/// Makes a fine field agree with a coarse one: `iterations` times, the residual `coarse −
/// block mean(fine)` is resampled bilinearly onto the fine grid and added (fine pixels
/// whose residual cannot be interpolated are left as they are). Each pass shrinks the
/// aggregated mismatch (by at least a factor 4 per pass for its smoothest part, 4/3 for a
/// checkerboard); fine pixels under a missing coarse cell come out missing.
///
/// # Errors
/// Grid errors if `fine`'s grid is not an integer refinement of `coarse`'s.
pub fn residual_correct(fine: &Raster, coarse: &Raster, iterations: usize) -> Result<Raster> {
    let k = fine.grid().refinement_of(coarse.grid())?;
    let mut f = fine.clone();
    for _ in 0..iterations {
        let agg = f.block_mean(k, 0.0)?;
        let res = Raster::new(
            coarse.grid().clone(),
            ndarray::Zip::from(coarse.data())
                .and(agg.data())
                .map_collect(|&c, &a| c - a),
        )?;
        let up = resample(&res, f.grid(), Resampling::Bilinear)?;
        add_where_valid(&mut f, &up);
    }
    mask_by_parent(&mut f, coarse, k);
    Ok(f)
}

/// A model fitted on coarse pixels (Hutengs & Vohland), ready to predict the fine LST.
#[derive(Debug)]
pub struct FittedDownscaler {
    params: DownscaleValidParams,
    spec: FeatureSpec,
    model: Model,
    coarse_lst: Raster,
    coarse_residual: Raster,
    /// The model on the coarse cells' features.
    coarse_model: Raster,
    on_prior: Option<OnPrior>,
    samples: usize,
}

/// A per-scene model on top of a prior.
#[derive(Debug)]
struct OnPrior {
    prior: Prior,
    /// Share of the model's sub-grid pattern added to the prior (0–1).
    weight: f64,
    /// Out-of-fold R² of the weighted model on the prior's coarse residual.
    cv_r2: f64,
}

impl FittedDownscaler {
    /// Predicts the fine LST from the fine covariates (the bands used in fitting, on a grid
    /// refining the coarse LST's), with the configured residual correction. Pixels with a
    /// missing covariate, or under a missing coarse LST cell, come out missing.
    ///
    /// # Errors
    /// [`Error::BandMismatch`]; [`Error::Indices`] for a land-cover value that is not an
    /// IGBP code; grid errors if the grids do not nest; model errors.
    pub fn predict(&self, fine_covariates: &Stack) -> Result<Raster> {
        let k = fine_covariates
            .grid()
            .refinement_of(self.coarse_lst.grid())?;
        if let Some(op) = &self.on_prior {
            return self.predict_on_prior(op, fine_covariates, k);
        }
        let mut out = self.predict_uncorrected(fine_covariates)?;
        match self.params.residual_correction {
            ResidualCorrection::Off => {}
            ResidualCorrection::Coarse => {
                let up = resample(&self.coarse_residual, out.grid(), Resampling::Bilinear)?;
                add_where_valid(&mut out, &up);
            }
            ResidualCorrection::Aggregated { iterations } => {
                out = residual_correct(&out, &self.coarse_lst, iterations)?;
            }
        }
        mask_by_parent(&mut out, &self.coarse_lst, k);
        Ok(out)
    }

    /// The prior plus the weighted sub-grid pattern of the model (its fine prediction minus
    /// the bilinear spread of its coarse one), with the block means kept exactly.
    fn predict_on_prior(&self, op: &OnPrior, fine: &Stack, k: usize) -> Result<Raster> {
        let mut out = op.prior.field(fine)?;
        if op.weight > 0.0 {
            let model = self.predict_uncorrected(fine)?;
            let (h, w) = fine.grid().shape();
            let smooth = bilinear_spread(self.coarse_model.data().view(), k, 0, 0, h, w);
            let wt = op.weight as f32;
            ndarray::Zip::from(out.data_mut())
                .and(model.data())
                .and(&smooth)
                .for_each(|o, &m, &s| *o += wt * (m - s));
            let params = match &self.params.base {
                Base::Prior(p) => p.conserve,
                Base::Bilinear => amun_raster::ConserveParams::default(),
            };
            out = conserve(&out, &self.coarse_lst, &params)?.0;
        }
        mask_by_parent(&mut out, &self.coarse_lst, k);
        Ok(out)
    }

    /// [`FittedDownscaler::predict`] and its per-pixel standard deviation. Without a prior,
    /// the model's spread at the fine covariates (the quantile regression forest's for a
    /// forest fitted with [`RfParams::uncertainty`], the residual standard deviation for
    /// ridge): the spread of the coarse LST among coarse cells with like covariates, taken
    /// as the fine pixel's. On a prior, the prior's residual standard deviation
    /// ([`FitReport::residual_std`]) for every pixel. Uncalibrated: scale it on held-out data
    /// before reading it as a probability.
    ///
    /// # Errors
    /// As [`FittedDownscaler::predict`]; [`Error::NoUncertainty`] for a forest fitted
    /// without leaf moments.
    pub fn predict_with_std(&self, fine_covariates: &Stack) -> Result<(Raster, Raster)> {
        let mean = self.predict(fine_covariates)?;
        let mut std = match &self.on_prior {
            Some(op) => {
                let s = op.prior.report().residual_std as f32;
                mean.map(|_| s)
            }
            None => predict_grid_spread(
                &self.model,
                &self.spec,
                fine_covariates,
                None,
                self.model.n_threads(&self.params.model),
                true,
            )?
            .1
            .ok_or(Error::NoUncertainty)?,
        };
        mask_like(&mut std, &mean);
        Ok((mean, std))
    }

    /// With a prior as the base: the prior's fit report, the weight given to the model's
    /// sub-grid pattern (0 = the prior alone) and its cross-validated R² on the coarse cells.
    pub fn prior_report(&self) -> Option<(&FitReport, f64, f64)> {
        self.on_prior
            .as_ref()
            .map(|op| (op.prior.report(), op.weight, op.cv_r2))
    }

    /// The model applied to covariates on any grid (no correction, no coarse mask): e.g.
    /// the coarse-scale fit applied at another scale.
    ///
    /// # Errors
    /// [`Error::BandMismatch`]; [`Error::Indices`] for a land-cover value that is not an
    /// IGBP code; model errors.
    pub fn predict_uncorrected(&self, covariates: &Stack) -> Result<Raster> {
        predict_grid(
            &self.model,
            &self.spec,
            covariates,
            None,
            self.model.n_threads(&self.params.model),
        )
    }

    /// The coarse residual `LST − model(coarse covariates)` (missing where either is).
    pub fn coarse_residual(&self) -> &Raster {
        &self.coarse_residual
    }

    /// The fitted model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Feature names in model order.
    pub fn feature_names(&self) -> Vec<String> {
        self.spec.names()
    }

    /// Number of coarse pixels the model was fitted on.
    pub fn training_samples(&self) -> usize {
        self.samples
    }
}

/// A model fitted on fine pixels of training scenes (supervised mode).
#[derive(Debug)]
pub struct SupervisedDownscaler {
    params: DownscaleValidParams,
    spec: FeatureSpec,
    model: Model,
    samples: usize,
}

impl SupervisedDownscaler {
    /// Predicts the fine LST of a scene from its coarse LST and fine covariates, with the
    /// configured residual correction ([`ResidualCorrection::Coarse`] acts as one
    /// aggregated pass here). Pixels with a missing feature, or under a missing coarse LST
    /// cell, come out missing.
    ///
    /// # Errors
    /// [`Error::BandMismatch`]; [`Error::Indices`] for a land-cover value that is not an
    /// IGBP code; grid errors if the grids do not nest; model errors.
    pub fn predict(&self, coarse_lst: &Raster, covariates: &Stack) -> Result<Raster> {
        Ok(self.predict_impl(coarse_lst, covariates, false)?.0)
    }

    /// [`SupervisedDownscaler::predict`] and its per-pixel standard deviation: the quantile
    /// regression forest's for a forest fitted with [`RfParams::uncertainty`], the training
    /// residual standard deviation for ridge. The residual correction shifts the mean only.
    /// Uncalibrated: scale it on held-out data before reading it as a probability.
    ///
    /// # Errors
    /// As [`SupervisedDownscaler::predict`]; [`Error::NoUncertainty`] for a forest fitted
    /// without leaf moments.
    pub fn predict_with_std(
        &self,
        coarse_lst: &Raster,
        covariates: &Stack,
    ) -> Result<(Raster, Raster)> {
        let (mean, std) = self.predict_impl(coarse_lst, covariates, true)?;
        let mut std = std.ok_or(Error::NoUncertainty)?;
        mask_like(&mut std, &mean);
        Ok((mean, std))
    }

    fn predict_impl(
        &self,
        coarse_lst: &Raster,
        covariates: &Stack,
        spread: bool,
    ) -> Result<(Raster, Option<Raster>)> {
        let k = covariates.grid().refinement_of(coarse_lst.grid())?;
        let lst = self.params.base.field(coarse_lst, covariates)?.0;
        let (mut out, std) = predict_grid_spread(
            &self.model,
            &self.spec,
            covariates,
            Some(&lst),
            self.model.n_threads(&self.params.model),
            spread,
        )?;
        if self.params.supervised_target == SupervisedTarget::Residual {
            add_where_valid(&mut out, &lst);
        }
        let iterations = match self.params.residual_correction {
            ResidualCorrection::Off => 0,
            ResidualCorrection::Coarse => 1,
            ResidualCorrection::Aggregated { iterations } => iterations,
        };
        if iterations > 0 {
            out = residual_correct(&out, coarse_lst, iterations)?;
        }
        mask_by_parent(&mut out, coarse_lst, k);
        Ok((out, std))
    }

    /// The fitted model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Feature names in model order (`lst_bilinear` first).
    pub fn feature_names(&self) -> Vec<String> {
        self.spec.names()
    }

    /// Number of fine pixels the model was fitted on.
    pub fn training_samples(&self) -> usize {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::{BandKind, Grid};

    const K: usize = 5;

    /// A hand-made world: smooth terrain and two land-cover classes; the fine truth is
    /// `300 − 0.0065·elevation + 2·[class 13]` (lapse rate 6.5 K/km, urban +2 K), which is
    /// linear in the covariates, so that its coarse mean is exactly linear in the block
    /// means and class fractions.
    fn world(phase: f32) -> (Raster, Stack, Raster) {
        let coarse = Grid::geographic(10.0, 50.0, 0.05, 8, 8).unwrap();
        let fine = coarse.refine(K).unwrap();
        let elev = Raster::from_fn(fine.clone(), |(r, c)| {
            let (x, y) = (c as f32 / 40.0, r as f32 / 40.0);
            800.0 + 600.0 * (6.0 * x + phase).sin() * (4.0 * y).cos() + 300.0 * x
        });
        let lc = Raster::from_fn(fine.clone(), |(r, c)| {
            if (r * 3 + c * 5 + phase as usize) % 7 < 2 {
                13.0
            } else {
                10.0
            }
        })
        .with_kind(BandKind::Categorical);
        let truth = Raster::new(
            fine.clone(),
            ndarray::Zip::from(elev.data())
                .and(lc.data())
                .map_collect(|&z, &l| 300.0 - 0.0065 * z + if l > 12.5 { 2.0 } else { 0.0 }),
        )
        .unwrap();
        let stack = Stack::new(fine)
            .with("elevation", elev)
            .unwrap()
            .with("landcover", lc)
            .unwrap();
        let coarse_lst = truth.block_mean(K, 1.0).unwrap();
        (coarse_lst, stack, truth)
    }

    fn rmse(a: &Raster, b: &Raster) -> f64 {
        let (mut n, mut s) = (0usize, 0.0f64);
        for (&x, &y) in a.data().iter().zip(b.data()) {
            if !x.is_nan() && !y.is_nan() {
                n += 1;
                s += f64::from(x - y).powi(2);
            }
        }
        (s / n as f64).sqrt()
    }

    #[test]
    fn ridge_recovers_a_linear_world_from_coarse_pixels() {
        let (coarse, stack, truth) = world(0.0);
        let fitted = DownscaleParams::ridge(RidgeParams::new().alpha(1e-8))
            .residual_correction(ResidualCorrection::Off)
            .fit(&coarse, &stack)
            .unwrap();
        assert_eq!(
            fitted.feature_names(),
            ["elevation", "landcover=10", "landcover=13"]
        );
        assert_eq!(fitted.training_samples(), 64);
        let pred = fitted.predict(&stack).unwrap();
        // The truth is linear in the features at both scales: the fine prediction is exact.
        assert!(rmse(&pred, &truth) < 0.01, "{}", rmse(&pred, &truth));
        let Model::Ridge(m) = fitted.model() else {
            panic!("ridge expected")
        };
        assert!((m.weights()[0] + 0.0065).abs() < 1e-4, "{:?}", m.weights());
        // An exact linear fit: its residual spread is (almost) zero everywhere.
        let (_, std) = fitted.predict_with_std(&stack).unwrap();
        assert!(std.stats().unwrap().max < 0.01);
    }

    #[test]
    fn forest_flow_corrects_residuals_and_masks_nodata() {
        let (mut coarse, mut stack, truth) = world(0.0);
        coarse.data_mut()[(0, 0)] = f32::NAN;
        let mut elev = stack.remove("elevation").unwrap();
        elev.data_mut()[(20, 20)] = f32::NAN;
        let lc = stack.remove("landcover").unwrap();
        let stack = Stack::new(elev.grid().clone())
            .with("elevation", elev)
            .unwrap()
            .with("landcover", lc)
            .unwrap();
        let rf = RfParams::new().n_trees(30).seed(1);
        let base = DownscaleParams::random_forest(rf);
        let plain = base
            .clone()
            .residual_correction(ResidualCorrection::Off)
            .fit(&coarse, &stack)
            .unwrap();
        let hv = base
            .clone()
            .residual_correction(ResidualCorrection::Coarse)
            .fit(&coarse, &stack)
            .unwrap();
        let agg = base
            .residual_correction(ResidualCorrection::Aggregated { iterations: 10 })
            .fit(&coarse, &stack)
            .unwrap();
        assert_eq!(
            hv.training_samples(),
            63,
            "the missing coarse cell is not a sample"
        );
        for f in [&plain, &hv, &agg] {
            let p = f.predict(&stack).unwrap();
            assert!(
                p.data()[(20, 20)].is_nan(),
                "missing covariate -> missing output"
            );
            assert!(
                p.data()[(2, 3)].is_nan(),
                "missing coarse LST -> missing output"
            );
            assert!(rmse(&p, &truth) < 1.5, "{}", rmse(&p, &truth));
        }
        // The aggregated correction makes the output average back to the coarse input.
        let p = agg.predict(&stack).unwrap();
        let back = p.block_mean(K, 0.0).unwrap();
        assert!(rmse(&back, &coarse) < 0.05, "{}", rmse(&back, &coarse));
        let p0 = plain.predict(&stack).unwrap();
        assert!(rmse(&p0.block_mean(K, 0.0).unwrap(), &coarse) > rmse(&back, &coarse));
        // Wrong bands are refused.
        let wrong = stack.select(&["landcover", "elevation"]).unwrap();
        assert!(matches!(
            hv.predict(&wrong),
            Err(Error::BandMismatch { .. })
        ));
    }

    #[test]
    fn supervised_forest_beats_bilinear_on_an_unseen_scene() {
        let (c0, s0, t0) = world(0.0);
        let (c1, s1, t1) = world(1.3);
        let (c2, s2, t2) = world(2.1);
        let scenes = [
            SupervisedScene {
                coarse_lst: &c0,
                covariates: &s0,
                truth: &t0,
            },
            SupervisedScene {
                coarse_lst: &c1,
                covariates: &s1,
                truth: &t1,
            },
        ];
        let model =
            DownscaleParams::random_forest(RfParams::new().n_trees(30).seed(3).uncertainty(true))
                .residual_correction(ResidualCorrection::Aggregated { iterations: 10 })
                .fit_supervised(&scenes)
                .unwrap();
        assert_eq!(model.feature_names()[0], "lst_bilinear");
        assert_eq!(model.training_samples(), 2 * 1600);
        let pred = model.predict(&c2, &s2).unwrap();
        let bilinear = resample(&c2, s2.grid(), Resampling::Bilinear).unwrap();
        let (e_rf, e_bl) = (rmse(&pred, &t2), rmse(&bilinear, &t2));
        assert!(e_rf < 0.5 * e_bl, "RF {e_rf} vs bilinear {e_bl}");
        assert!(rmse(&pred.block_mean(K, 0.0).unwrap(), &c2) < 0.05);
        // With a spread: the same mean, a finite positive std exactly where the mean is.
        let (mean, std) = model.predict_with_std(&c2, &s2).unwrap();
        assert_eq!(mean.data(), pred.data());
        assert!(mean
            .data()
            .iter()
            .zip(std.data())
            .all(|(m, s)| m.is_nan() == s.is_nan() && (s.is_nan() || *s >= 0.0)));
        assert!(std.stats().unwrap().mean > 0.0);
        let plain = DownscaleParams::random_forest(RfParams::new().n_trees(2))
            .fit_supervised(&scenes)
            .unwrap();
        assert!(matches!(
            plain.predict_with_std(&c2, &s2),
            Err(Error::NoUncertainty)
        ));
        let bad = DownscaleParams::default()
            .residual_correction(ResidualCorrection::Aggregated { iterations: 0 })
            .check();
        assert!(bad.is_err());
    }

    #[test]
    fn residual_correct_converges_to_the_coarse_mean() {
        let (coarse, stack, _) = world(0.5);
        let flat = Raster::filled(stack.grid().clone(), 290.0);
        let once = residual_correct(&flat, &coarse, 1).unwrap();
        let many = residual_correct(&flat, &coarse, 20).unwrap();
        let e1 = rmse(&once.block_mean(K, 0.0).unwrap(), &coarse);
        let e20 = rmse(&many.block_mean(K, 0.0).unwrap(), &coarse);
        assert!(e20 < 0.01 && e20 < e1 / 10.0, "{e1} -> {e20}");
    }

    /// The acceptance check on a (small) synthetic world at 10×: the supervised RF
    /// beats bilinear upsampling in RMSE against the fine truth of an unseen month, and the
    /// corrected output aggregates back to the coarse input within 0.05 K. The full-size run
    /// is `examples/synthetic.rs` (numbers in docs/benchmarks/amun-rf.md).
    #[test]
    fn synthetic_world_supervised_rf_beats_bilinear() {
        use amun_synth::{World, WorldParams};
        let world = World::generate(&WorldParams::new().seed(42).size(100, 100)).unwrap();
        let scene = |m: u32| {
            (
                world.coarse_lst(m, 13, 10).unwrap(),
                world.covariates(m).unwrap(),
                world.lst(m, 13).unwrap(),
            )
        };
        let train = [scene(1), scene(5), scene(9)];
        let scenes: Vec<_> = train
            .iter()
            .map(|(c, s, t)| SupervisedScene {
                coarse_lst: c,
                covariates: s,
                truth: t,
            })
            .collect();
        let model = DownscaleParams::random_forest(RfParams::new().n_trees(20).seed(1))
            .fit_supervised(&scenes)
            .unwrap();
        let (coarse, cov, truth) = scene(7);
        let pred = model.predict(&coarse, &cov).unwrap();
        let bilinear = resample(&coarse, truth.grid(), Resampling::Bilinear).unwrap();
        let (e_rf, e_bl) = (rmse(&pred, &truth), rmse(&bilinear, &truth));
        assert!(e_rf < e_bl, "RF {e_rf} K vs bilinear {e_bl} K");
        let back = rmse(&pred.block_mean(10, 0.0).unwrap(), &coarse);
        assert!(back < 0.05, "aggregated back: {back} K");
    }

    /// A larger hand-made world for the prior base: `cells × cells` coarse cells of `K`
    /// fine pixels, smooth terrain, a lapse rate of 6 K/km and `extra(row, col, class)`.
    fn relief_world(
        cells: usize,
        extra: impl Fn(usize, usize, f32) -> f32,
    ) -> (Raster, Stack, Raster) {
        let coarse = Grid::geographic(10.0, 50.0, 0.05, cells, cells).unwrap();
        let fine = coarse.refine(K).unwrap();
        let elev = Raster::from_fn(fine.clone(), |(r, c)| {
            let (x, y) = (c as f32 / 17.0, r as f32 / 13.0);
            450.0 + 300.0 * x.sin() * y.cos() + 150.0 * (0.7 * x + 1.3 * y).sin()
        });
        let lc = Raster::from_fn(fine.clone(), |(r, c)| {
            if ((r / 3) * 5 + (c / 2) * 3) % 7 < 2 {
                13.0
            } else {
                10.0
            }
        })
        .with_kind(BandKind::Categorical);
        let truth = Raster::from_fn(fine.clone(), |(r, c)| {
            300.0 - 0.006 * elev.data()[(r, c)] + extra(r, c, lc.data()[(r, c)])
        });
        let stack = Stack::new(fine)
            .with("elevation", elev)
            .unwrap()
            .with("landcover", lc)
            .unwrap();
        (truth.block_mean(K, 1.0).unwrap(), stack, truth)
    }

    fn prior_base() -> Base {
        Base::Prior(amun_prior::PriorParams::elevation())
    }

    /// With nothing left to learn (the truth is the prior's model plus noise that no
    /// covariate explains), the forest on the prior gets (almost) no weight in the
    /// cross-validation and returns (almost) the prior: never worse than it.
    #[test]
    fn forest_on_the_prior_returns_the_prior_when_nothing_is_left() {
        let noise =
            |r: usize, c: usize, _| (((r * 7919 + c * 104_729) % 1000) as f32 / 1000.0 - 0.5) * 0.6;
        let (coarse, stack, truth) = relief_world(20, noise);
        let prior = amun_prior::PriorParams::elevation()
            .fit(&coarse, &stack)
            .unwrap();
        let prior_field = prior.field(&stack).unwrap();
        let rf = DownscaleParams::random_forest(RfParams::new().n_trees(30).seed(2))
            .base(prior_base())
            .fit(&coarse, &stack)
            .unwrap();
        let (_, weight, cv_r2) = rf.prior_report().unwrap();
        let pred = rf.predict(&stack).unwrap();
        let (e_rf, e_prior) = (rmse(&pred, &truth), rmse(&prior_field, &truth));
        assert!(weight < 0.3, "weight {weight}, cv R² {cv_r2}");
        assert!(
            e_rf <= e_prior + 0.02,
            "forest on prior {e_rf} K vs prior {e_prior} K"
        );
        // Conservation holds either way.
        let back = rmse(&pred.block_mean(K, 0.0).unwrap(), &coarse);
        assert!(back < 1e-4, "aggregated back: {back} K");
    }

    /// The elevation prior misses the urban heat of class 13 (+3 K); a forest and a ridge
    /// regression on the prior learn it from the class fractions of the coarse cells.
    #[test]
    fn forest_on_the_prior_learns_what_the_prior_misses() {
        let urban = |_: usize, _: usize, lc: f32| if lc > 12.5 { 3.0 } else { 0.0 };
        let (coarse, stack, truth) = relief_world(20, urban);
        let prior = amun_prior::PriorParams::elevation()
            .fit(&coarse, &stack)
            .unwrap();
        let e_prior = rmse(&prior.field(&stack).unwrap(), &truth);
        let rf = DownscaleParams::random_forest(RfParams::new().n_trees(30).seed(2))
            .base(prior_base())
            .fit(&coarse, &stack)
            .unwrap();
        let (report, weight, cv_r2) = rf.prior_report().unwrap();
        let e_rf = rmse(&rf.predict(&stack).unwrap(), &truth);
        assert!(
            weight > 0.5 && cv_r2 > 0.3,
            "weight {weight}, cv R² {cv_r2}; {}",
            report.summary()
        );
        // Less than all of it: at the fine scale a pixel is all urban or not at all, beyond
        // the coarse class fractions the forest saw (it cannot extrapolate); the linear
        // model on the prior can.
        assert!(
            e_rf < 0.85 * e_prior,
            "forest on prior {e_rf} K vs prior {e_prior} K"
        );
        let ridge = DownscaleParams::ridge(RidgeParams::new().alpha(1e-6))
            .base(prior_base())
            .fit(&coarse, &stack)
            .unwrap();
        let e_ridge = rmse(&ridge.predict(&stack).unwrap(), &truth);
        assert!(
            e_ridge < 0.3 * e_prior,
            "ridge on prior {e_ridge} K vs prior {e_prior} K"
        );
        // The supervised flow takes the prior as its base column.
        let sup = DownscaleParams::random_forest(RfParams::new().n_trees(10).seed(1))
            .base(prior_base())
            .fit_supervised(&[SupervisedScene {
                coarse_lst: &coarse,
                covariates: &stack,
                truth: &truth,
            }])
            .unwrap();
        assert_eq!(sup.feature_names()[0], "lst_prior-elevation");
    }
}
