//! A parallel random-forest regressor on smartcore: a forest of smartcore forests, read
//! into compact trees for prediction.

use std::borrow::Cow;

use ndarray::{Array1, ArrayView1, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

use crate::error::{Error, Result};
use crate::tree::{trees_of, Tree};

/// Number of smartcore sub-forests a forest is split into (at most one per tree). Fixed, so
/// that a seed gives the same forest whatever the number of threads. One tree per
/// sub-forest (up to 128 trees) keeps the seeds and trees of the layout that predicted with
/// smartcore tree-major (each sub-forest sorts the features once: 1.7× the fit CPU of 16
/// sub-forests, measured on 20 000 rows); prediction now uses [`Tree`]s, tree-major per chunk.
const SUB_FORESTS: usize = 128;
/// Rows predicted per task.
const PREDICT_CHUNK: usize = 8192;

/// Features tried at each split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Mtry {
    /// All features (scikit-learn's `RandomForestRegressor` default, `max_features=1.0`).
    All,
    /// `⌊√p⌋` (smartcore's and R's classification default).
    Sqrt,
    /// `max(1, ⌊fraction · p⌋)`, fraction in (0, 1] (R's regression default is 1/3).
    Fraction(f64),
    /// A fixed number, at most `p`.
    Count(usize),
}

impl Mtry {
    /// The number of features for `p` features.
    fn resolve(self, p: usize) -> Result<usize> {
        let m = match self {
            Mtry::All => p,
            Mtry::Sqrt => ((p as f64).sqrt().floor() as usize).max(1),
            Mtry::Fraction(f) => ((f * p as f64).floor() as usize).max(1),
            Mtry::Count(c) => c,
        };
        if m == 0 || m > p {
            return Err(Error::InvalidParameter {
                name: "mtry",
                value: format!("{self:?} with {p} features"),
                reason: "must select between 1 and the number of features",
            });
        }
        Ok(m)
    }
}

/// Random-forest hyperparameters (builder). Call [`RfParams::check`] or fit directly.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `n_trees` | 100 | trees in the forest |
/// | `mtry` | [`Mtry::All`] | features tried per split, as scikit-learn's regressor |
/// | `min_samples_leaf` | 1 | minimum samples in a leaf |
/// | `min_samples_split` | 2 | minimum samples to split a node |
/// | `max_depth` | `None` | depth limit as scikit-learn counts it (a stump has depth 1; `None`: grow until pure or too small) |
/// | `seed` | 0 | seed of bootstrap samples and feature draws |
/// | `max_samples` | 1 000 000 | training rows kept (a seeded uniform subsample above it) |
/// | `n_threads` | `None` | threads (`None`: rayon's global pool, all cores) |
/// | `uncertainty` | `false` | keep each leaf's training-target mean and variance, for the quantile regression forest's spread ([`RandomForest::predict_rows_with_std`]) |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfParams {
    n_trees: usize,
    mtry: Mtry,
    min_samples_leaf: usize,
    min_samples_split: usize,
    max_depth: Option<u16>,
    seed: u64,
    max_samples: usize,
    n_threads: Option<usize>,
    #[serde(default)]
    uncertainty: bool,
}

impl Default for RfParams {
    fn default() -> Self {
        Self {
            n_trees: 100,
            mtry: Mtry::All,
            min_samples_leaf: 1,
            min_samples_split: 2,
            max_depth: None,
            seed: 0,
            max_samples: 1_000_000,
            n_threads: None,
            uncertainty: false,
        }
    }
}

/// [`RfParams`] that passed [`RfParams::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfValidParams(RfParams);

impl RfParams {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of trees.
    pub fn n_trees(mut self, n: usize) -> Self {
        self.n_trees = n;
        self
    }
    /// Features tried at each split.
    pub fn mtry(mut self, m: Mtry) -> Self {
        self.mtry = m;
        self
    }
    /// Minimum samples in a leaf.
    pub fn min_samples_leaf(mut self, n: usize) -> Self {
        self.min_samples_leaf = n;
        self
    }
    /// Minimum samples needed to split a node.
    pub fn min_samples_split(mut self, n: usize) -> Self {
        self.min_samples_split = n;
        self
    }
    /// Maximum tree depth, counted as scikit-learn's `max_depth` (`None`: unlimited).
    pub fn max_depth(mut self, d: Option<u16>) -> Self {
        self.max_depth = d;
        self
    }
    /// Random seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Cap on training rows (memory): above it a seeded uniform subsample is used.
    pub fn max_samples(mut self, n: usize) -> Self {
        self.max_samples = n;
        self
    }
    /// Number of threads (`None`: rayon's global pool).
    pub fn n_threads(mut self, n: Option<usize>) -> Self {
        self.n_threads = n;
        self
    }

    /// Keep the leaves' training-target moments so that the forest also predicts a spread
    /// (one more pass of the training rows through every tree at fit time, and two `f64`
    /// per node).
    pub fn uncertainty(mut self, on: bool) -> Self {
        self.uncertainty = on;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for zero trees, leaf size or sample cap, a split size
    /// below 2, a zero depth or thread count, or an `mtry` fraction outside (0, 1].
    pub fn check(self) -> Result<RfValidParams> {
        let bad = |name, value: String, reason| {
            Err(Error::InvalidParameter {
                name,
                value,
                reason,
            })
        };
        if self.n_trees == 0 {
            return bad("n_trees", "0".into(), "must be at least 1");
        }
        if self.min_samples_leaf == 0 {
            return bad("min_samples_leaf", "0".into(), "must be at least 1");
        }
        if self.min_samples_split < 2 {
            return bad(
                "min_samples_split",
                self.min_samples_split.to_string(),
                "must be at least 2",
            );
        }
        if self.max_depth == Some(0) {
            return bad("max_depth", "0".into(), "must be at least 1 (or None)");
        }
        if self.max_samples == 0 {
            return bad("max_samples", "0".into(), "must be at least 1");
        }
        if self.n_threads == Some(0) {
            return bad("n_threads", "0".into(), "must be at least 1 (or None)");
        }
        match self.mtry {
            Mtry::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return bad("mtry", format!("{f}"), "fraction must be in (0, 1]")
            }
            Mtry::Count(0) => return bad("mtry", "0".into(), "must be at least 1"),
            _ => {}
        }
        Ok(RfValidParams(self))
    }

    /// Checks the parameters and fits a forest (see [`RfValidParams::fit`]).
    ///
    /// # Errors
    /// As [`RfParams::check`] and [`RfValidParams::fit`].
    pub fn fit(self, x: ArrayView2<'_, f32>, y: ArrayView1<'_, f32>) -> Result<RandomForest> {
        self.check()?.fit(x, y)
    }
}

impl RfValidParams {
    /// The parameters.
    pub fn params(&self) -> &RfParams {
        &self.0
    }

    /// Number of threads asked for.
    pub(crate) fn n_threads(&self) -> Option<usize> {
        self.0.n_threads
    }

    /// Sample cap.
    pub(crate) fn max_samples(&self) -> usize {
        self.0.max_samples
    }

    /// Seed.
    pub(crate) fn seed(&self) -> u64 {
        self.0.seed
    }

    /// Fits a forest on `x` (`[samples, features]`) and `y`. The trees are split into a
    /// fixed number of smartcore forests with derived seeds, fitted in parallel and each read
    /// into compact trees at once (the smartcore forest is then dropped); the result
    /// depends on the seed only, not on the number of threads.
    ///
    /// # Errors
    /// [`Error::SizeMismatch`] if `x` and `y` differ in rows; [`Error::TooFewSamples`] with
    /// no row; [`Error::NonFinite`] for a `NaN`/infinite value (drop missing pixels first);
    /// [`Error::InvalidParameter`] if `mtry` exceeds the features; [`Error::Model`] if
    /// smartcore fails; [`Error::TreeLayout`] if its trees cannot be read.
    pub fn fit(&self, x: ArrayView2<'_, f32>, y: ArrayView1<'_, f32>) -> Result<RandomForest> {
        let p = &self.0;
        let (n, n_features) = x.dim();
        check_training_data(x, y)?;
        if n == 0 || n_features == 0 {
            return Err(Error::TooFewSamples { got: n, needed: 1 });
        }
        let mtry = p.mtry.resolve(n_features)?;
        let rows = subsample(n, p.max_samples, p.seed);
        let mut values = Vec::with_capacity(rows.len() * n_features);
        let mut target = Vec::with_capacity(rows.len());
        for &r in &rows {
            values.extend(x.row(r).iter().copied());
            target.push(f64::from(y[r]));
        }
        // The rows again for the leaf moments (smartcore's matrix keeps its own copy).
        let routed = p.uncertainty.then(|| values.clone());
        let matrix = DenseMatrix::new(rows.len(), n_features, values, false)?;
        let jobs = split_trees(p.n_trees, p.seed);
        let fit_all = || {
            jobs.par_iter()
                .map(|&(n_trees, seed)| {
                    let forest = self.sub_forest(&matrix, &target, mtry, n_trees, seed)?;
                    let importances = forest.compute_feature_importances()?;
                    Ok((n_trees, trees_of(&forest, n_features)?, importances))
                })
                .collect::<Result<Vec<_>>>()
        };
        let forests = in_pool(p.n_threads, fit_all)??;
        // Importances: smartcore's (normalised) per sub-forest, weighted by its trees.
        let mut importances = vec![0.0; n_features];
        let mut trees = Vec::with_capacity(p.n_trees);
        for (n_trees, sub, imp) in forests {
            for (a, b) in importances.iter_mut().zip(imp) {
                *a += b * n_trees as f64;
            }
            trees.extend(sub);
        }
        let s: f64 = importances.iter().sum();
        if s > 0.0 {
            importances.iter_mut().for_each(|v| *v /= s);
        }
        if trees.len() != p.n_trees {
            return Err(Error::TreeLayout {
                detail: "smartcore's forests hold another number of trees than asked for",
            });
        }
        let leaf_moments = if let Some(values) = routed {
            let moments = || {
                trees
                    .par_iter()
                    .map(|t| leaf_moments(t, &values, n_features, &target))
                    .collect::<Vec<_>>()
            };
            Some(in_pool(p.n_threads, moments)?)
        } else {
            None
        };
        Ok(RandomForest {
            trees,
            importances,
            n_features,
            n_threads: p.n_threads,
            leaf_moments,
        })
    }
}

impl RfValidParams {
    /// Fits one smartcore forest of `n_trees` trees with `seed`.
    #[allow(clippy::ptr_arg)] // smartcore's target type is `Vec<f64>`
    fn sub_forest(
        &self,
        x: &DenseMatrix<f32>,
        y: &Vec<f64>,
        mtry: usize,
        n_trees: usize,
        seed: u64,
    ) -> Result<SmartForest> {
        let p = &self.0;
        let mut params = RandomForestRegressorParameters::default()
            .with_n_trees(n_trees)
            .with_m(mtry)
            .with_min_samples_leaf(p.min_samples_leaf)
            .with_min_samples_split(p.min_samples_split)
            .with_seed(seed);
        // scikit-learn counts split levels below the root; smartcore counts node levels
        // with the root at 1.
        params.max_depth = p.max_depth.map(|d| d.saturating_add(1));
        Ok(RandomForestRegressor::fit(x, y, params)?)
    }
}

/// Mean and (population) variance of the training targets `y` of the rows `rows`
/// (row-major, `p` features) that fall in each leaf of `tree`, indexed by node; `[NaN, NaN]`
/// for internal nodes and for leaves no row reaches.
pub(crate) fn leaf_moments(tree: &Tree, rows: &[f32], p: usize, y: &[f64]) -> Vec<[f64; 2]> {
    // Per node: count, Welford mean and sum of squared deviations.
    let mut acc = vec![(0u64, 0.0f64, 0.0f64); tree.len()];
    tree.visit_leaves(rows, p, |r, leaf| {
        let a = &mut acc[leaf as usize];
        a.0 += 1;
        let d = y[r] - a.1;
        a.1 += d / a.0 as f64;
        a.2 += d * (y[r] - a.1);
    });
    acc.into_iter()
        .map(|(n, mean, m2)| {
            if n == 0 {
                [f64::NAN, f64::NAN]
            } else {
                [mean, m2 / n as f64]
            }
        })
        .collect()
}

/// Rejects a target whose length differs from the rows of `x`, and `NaN`/infinite values.
pub(crate) fn check_training_data(x: ArrayView2<'_, f32>, y: ArrayView1<'_, f32>) -> Result<()> {
    if y.len() != x.nrows() {
        return Err(Error::SizeMismatch {
            what: "target values (rows of x)",
            expected: x.nrows(),
            got: y.len(),
        });
    }
    if let Some(((row, col), _)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "feature",
            row,
            col,
        });
    }
    if let Some((row, _)) = y.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "target",
            row,
            col: 0,
        });
    }
    Ok(())
}

/// All rows, or a sorted seeded uniform subsample of `cap` rows.
pub(crate) fn subsample(n: usize, cap: usize, seed: u64) -> Vec<usize> {
    if n <= cap {
        return (0..n).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_CAB5_0000_0001);
    let mut idx = rand::seq::index::sample(&mut rng, n, cap).into_vec();
    idx.sort_unstable();
    idx
}

/// Splits `n_trees` into at most [`SUB_FORESTS`] groups, each with its own seed (SplitMix64
/// of the base seed and the group index, so that smartcore's per-tree seeds `seed + i` of
/// different groups do not overlap in practice).
fn split_trees(n_trees: usize, seed: u64) -> Vec<(usize, u64)> {
    let groups = n_trees.min(SUB_FORESTS);
    (0..groups)
        .map(|g| {
            let n = n_trees / groups + usize::from(g < n_trees % groups);
            (
                n,
                splitmix64(seed ^ (g as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            )
        })
        .collect()
}

/// The first output of SplitMix64 seeded with `x` (Steele, Lea & Flood 2014): a well-mixed
/// hash of `x`.
fn splitmix64(x: u64) -> u64 {
    use rand::{RngCore, SeedableRng};
    rand_xoshiro::SplitMix64::seed_from_u64(x).next_u64()
}

/// Runs `f` in a pool of `n` threads, or in the global pool.
pub(crate) fn in_pool<T: Send>(n: Option<usize>, f: impl FnOnce() -> T + Send) -> Result<T> {
    match n {
        None => Ok(f()),
        Some(n) => Ok(rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()?
            .install(f)),
    }
}

type SmartForest = RandomForestRegressor<f32, f64, DenseMatrix<f32>, Vec<f64>>;

/// A fitted random forest: the mean of its trees.
#[derive(Debug)]
pub struct RandomForest {
    /// smartcore's trees in compact form, sub-forest by sub-forest.
    trees: Vec<Tree>,
    /// Normalised impurity importances, computed by smartcore at fit time.
    importances: Vec<f64>,
    n_features: usize,
    n_threads: Option<usize>,
    /// Per tree, per node: mean and variance of the training targets in the leaf
    /// (fitted with [`RfParams::uncertainty`]).
    leaf_moments: Option<Vec<Vec<[f64; 2]>>>,
}

impl RandomForest {
    /// Number of features the forest was fitted on.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Predicts every row of `x` (`[samples, features]`), in parallel over row chunks (one
    /// chunk of features per thread). Rows containing `NaN` give `NaN`.
    ///
    /// # Errors
    /// [`Error::SizeMismatch`] if `x` has another number of features.
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array1<f32>> {
        if x.ncols() != self.n_features {
            return Err(Error::SizeMismatch {
                what: "feature columns",
                expected: self.n_features,
                got: x.ncols(),
            });
        }
        let n = x.nrows();
        let run = || {
            (0..n.div_ceil(PREDICT_CHUNK))
                .into_par_iter()
                .map(|c| {
                    let rows = c * PREDICT_CHUNK..((c + 1) * PREDICT_CHUNK).min(n);
                    let mut chunk = Vec::with_capacity(rows.len() * self.n_features);
                    for r in rows {
                        chunk.extend(x.row(r).iter().copied());
                    }
                    self.predict_rows(&chunk)
                })
                .collect::<Result<Vec<Vec<f32>>>>()
        };
        let parts = in_pool(self.n_threads, run)??;
        Ok(parts.into_iter().flatten().collect())
    }

    /// Predicts row-major feature rows on the calling thread, tree by tree (each tree's
    /// nodes stay in cache over the rows). Rows with a `NaN` give `NaN`.
    ///
    /// # Errors
    /// [`Error::SizeMismatch`] if the length is not a multiple of the feature count.
    pub fn predict_rows(&self, rows: &[f32]) -> Result<Vec<f32>> {
        let p = self.n_features;
        if !rows.len().is_multiple_of(p) {
            return Err(Error::SizeMismatch {
                what: "row-major feature values (multiple of the feature count)",
                expected: rows.len().div_ceil(p) * p,
                got: rows.len(),
            });
        }
        let n = rows.len() / p;
        // Only complete rows go to the trees (a NaN would silently take the `false` branch).
        let valid: Vec<usize> = (0..n)
            .filter(|&r| rows[r * p..(r + 1) * p].iter().all(|v| v.is_finite()))
            .collect();
        let mut out = vec![f32::NAN; n];
        if valid.is_empty() {
            return Ok(out);
        }
        let values: Cow<'_, [f32]> = if valid.len() == n {
            Cow::Borrowed(rows)
        } else {
            valid
                .iter()
                .flat_map(|&r| rows[r * p..(r + 1) * p].iter().copied())
                .collect()
        };
        // Summed in tree order, as smartcore sums a forest's trees.
        let mut sum = vec![0.0f64; valid.len()];
        for tree in &self.trees {
            tree.add_predictions(&values, p, &mut sum);
        }
        let n_trees = self.trees.len() as f64;
        for (&r, s) in valid.iter().zip(sum) {
            out[r] = (s / n_trees) as f32;
        }
        Ok(out)
    }

    /// Whether the forest was fitted with [`RfParams::uncertainty`] and so predicts a spread.
    pub fn has_uncertainty(&self) -> bool {
        self.leaf_moments.is_some()
    }

    /// Predicts row-major feature rows with a spread: the forest's mean (as
    /// [`RandomForest::predict_rows`]) and the standard deviation of the quantile regression
    /// forest's predictive distribution (Meinshausen 2006). That distribution weights each
    /// training target by the share of trees whose leaf holds it, divided by the leaf's size:
    /// a mixture, over trees, of the empirical distributions of the leaves reached. Its
    /// variance is exact from each leaf's target mean `μ_t` and variance `v_t`:
    /// `mean_t(v_t + μ_t²) − (mean_t μ_t)²` — within-leaf spread plus the spread of the
    /// trees' leaf means. Rows with a `NaN` give `NaN` for both.
    ///
    /// # Errors
    /// [`Error::NoUncertainty`] if the forest was fitted without [`RfParams::uncertainty`];
    /// [`Error::SizeMismatch`] as [`RandomForest::predict_rows`].
    pub fn predict_rows_with_std(&self, rows: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let moments = self.leaf_moments.as_ref().ok_or(Error::NoUncertainty)?;
        let mean = self.predict_rows(rows)?;
        let p = self.n_features;
        let n = mean.len();
        let mut s1 = vec![0.0f64; n];
        let mut s2 = vec![0.0f64; n];
        let mut hits = vec![0u32; n];
        for (tree, m) in self.trees.iter().zip(moments) {
            tree.visit_leaves(rows, p, |r, leaf| {
                let [mu, v] = m[leaf as usize];
                // A leaf no training row reached (possible only for rows never seen in
                // training) adds nothing.
                if mu.is_finite() {
                    s1[r] += mu;
                    s2[r] += v + mu * mu;
                    hits[r] += 1;
                }
            });
        }
        let std = (0..n)
            .map(|r| {
                if mean[r].is_nan() || hits[r] == 0 {
                    return f32::NAN;
                }
                let t = f64::from(hits[r]);
                let (m1, m2) = (s1[r] / t, s2[r] / t);
                (m2 - m1 * m1).max(0.0).sqrt() as f32
            })
            .collect();
        Ok((mean, std))
    }

    /// Impurity-based feature importances (smartcore's, mean over trees, normalised to sum
    /// to 1), computed when fitting.
    pub fn feature_importances(&self) -> &[f64] {
        &self.importances
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// y = 3·x0 + step(x1) + 0·x2 on a deterministic grid of points.
    fn data(n: usize) -> (Array2<f32>, Array1<f32>) {
        let (x, y) = clean(n);
        // Deterministic pseudo-noise of ±0.1 so that bootstrap samples give different trees.
        let y = y
            .iter()
            .enumerate()
            .map(|(i, v)| v + 0.1 * (((i * 7919) % 201) as f32 / 100.0 - 1.0))
            .collect();
        (x, y)
    }

    fn clean(n: usize) -> (Array2<f32>, Array1<f32>) {
        let x = Array2::from_shape_fn((n, 3), |(i, j)| match j {
            0 => (i % 17) as f32 / 17.0,
            1 => ((i * 7) % 13) as f32 / 13.0,
            _ => ((i * 5) % 11) as f32,
        });
        let y = x
            .rows()
            .into_iter()
            .map(|r| 3.0 * r[0] + if r[1] > 0.5 { 1.0 } else { 0.0 })
            .collect();
        (x, y)
    }

    #[test]
    fn fits_a_known_function_and_is_deterministic_across_threads() {
        let (x, y) = data(400);
        let p = RfParams::new().n_trees(20).seed(7);
        let f1 = p
            .clone()
            .n_threads(Some(1))
            .fit(x.view(), y.view())
            .unwrap();
        let f2 = p.n_threads(Some(2)).fit(x.view(), y.view()).unwrap();
        let (a, b) = (f1.predict(x.view()).unwrap(), f2.predict(x.view()).unwrap());
        assert_eq!(a, b, "same seed, other thread count: same forest");
        // The noise-free function is recovered to about the noise level.
        let (_, truth) = clean(400);
        let rmse = (a
            .iter()
            .zip(&truth)
            .map(|(p, t)| (p - t).powi(2))
            .sum::<f32>()
            / 400.0)
            .sqrt();
        assert!(rmse < 0.1, "{rmse}");
        let imp = f1.feature_importances();
        assert!(imp[2] < 0.05 && imp[0] > imp[2], "{imp:?}");
        let f3 = RfParams::new()
            .n_trees(20)
            .seed(8)
            .fit(x.view(), y.view())
            .unwrap();
        assert_ne!(
            f3.predict(x.view()).unwrap(),
            a,
            "another seed, another forest"
        );
    }

    #[test]
    fn predictions_equal_smartcores() {
        // Reference: smartcore's own `RandomForestRegressor::predict` of the same sub-forests
        // (same seeds and parameters), weighted by their trees, on 3000 training rows and
        // 3000 new ones; 130 trees, so that two sub-forests hold two trees.
        let (x, y) = data(6000);
        let (train, test) = (
            x.slice(ndarray::s![..3000, ..]),
            x.slice(ndarray::s![3000.., ..]),
        );
        let params = RfParams::new().n_trees(130).seed(5).check().unwrap();
        let forest = params.fit(train, y.slice(ndarray::s![..3000])).unwrap();
        let values: Vec<f32> = train.iter().copied().collect();
        let matrix = DenseMatrix::new(3000, 3, values, false).unwrap();
        let target: Vec<f64> = y.iter().take(3000).map(|&v| f64::from(v)).collect();
        for q in [train, test] {
            let qm = DenseMatrix::new(q.nrows(), 3, q.iter().copied().collect(), false).unwrap();
            let mut want = vec![0.0f64; q.nrows()];
            for (n_trees, seed) in split_trees(130, 5) {
                let sub = params
                    .sub_forest(&matrix, &target, 3, n_trees, seed)
                    .unwrap();
                for (w, v) in want.iter_mut().zip(sub.predict(&qm).unwrap()) {
                    *w += v * n_trees as f64 / 130.0;
                }
            }
            let got = forest.predict(q).unwrap();
            for (g, w) in got.iter().zip(&want) {
                let diff = (f64::from(*g) - w).abs();
                assert!(diff <= 1e-6 * w.abs().max(1.0), "{g} vs smartcore {w}");
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (mut x, y) = data(50);
        assert!(RfParams::new().n_trees(0).check().is_err());
        assert!(RfParams::new().mtry(Mtry::Fraction(1.5)).check().is_err());
        assert!(RfParams::new().min_samples_split(1).check().is_err());
        let e = RfParams::new().mtry(Mtry::Count(4)).fit(x.view(), y.view());
        assert!(matches!(
            e,
            Err(Error::InvalidParameter { name: "mtry", .. })
        ));
        assert!(matches!(
            RfParams::new().fit(x.view(), y.slice(ndarray::s![..10])),
            Err(Error::SizeMismatch { .. })
        ));
        x[(3, 1)] = f32::NAN;
        assert!(matches!(
            RfParams::new().fit(x.view(), y.view()),
            Err(Error::NonFinite { row: 3, col: 1, .. })
        ));
        // NaN rows predict NaN; others are predicted.
        let (x, y) = data(50);
        let f = RfParams::new().n_trees(3).fit(x.view(), y.view()).unwrap();
        let mut q = x.slice(ndarray::s![..2, ..]).to_owned();
        q[(0, 0)] = f32::NAN;
        let out = f.predict(q.view()).unwrap();
        assert!(out[0].is_nan() && out[1].is_finite());
        assert!(f.predict(x.slice(ndarray::s![.., ..2])).is_err());
    }

    #[test]
    fn subsample_and_tree_split() {
        assert_eq!(subsample(5, 10, 1), vec![0, 1, 2, 3, 4]);
        let s = subsample(1000, 10, 1);
        assert_eq!(s.len(), 10);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        let jobs = split_trees(100, 0);
        assert_eq!(jobs.len(), 100, "one tree per sub-forest");
        assert_eq!(jobs.iter().map(|j| j.0).sum::<usize>(), 100);
        assert_eq!(split_trees(3, 0).len(), 3);
    }

    /// The committed Friedman #1 split (see `fixtures/rf/README.md`).
    fn friedman() -> (Array2<f32>, Array1<f32>, Array2<f32>, Array1<f32>) {
        let text = include_str!("../../../fixtures/rf/friedman1.csv");
        let rows: Vec<Vec<f32>> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
            .collect();
        let part = |r: std::ops::Range<usize>| {
            let x = Array2::from_shape_fn((r.len(), 5), |(i, j)| rows[r.start + i][j]);
            let y = r.map(|i| rows[i][5]).collect();
            (x, y)
        };
        let (xtr, ytr) = part(0..600);
        let (xte, yte) = part(600..900);
        (xtr, ytr, xte, yte)
    }

    fn r2(pred: &Array1<f32>, truth: &Array1<f32>) -> f64 {
        let mean = truth.iter().map(|&v| f64::from(v)).sum::<f64>() / truth.len() as f64;
        let ss_tot: f64 = truth.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum();
        let ss_res: f64 = pred
            .iter()
            .zip(truth)
            .map(|(&p, &t)| f64::from(p - t).powi(2))
            .sum();
        1.0 - ss_res / ss_tot
    }

    #[test]
    fn test_r2_matches_scikit_learn() {
        // Reference: fixtures/rf/make_reference.py, sklearn.ensemble.RandomForestRegressor
        // with the same hyperparameters, test R² averaged over random_state 0..9.
        let want: serde_json::Value =
            serde_json::from_str(include_str!("../../../fixtures/rf/expected.json")).unwrap();
        let (xtr, ytr, xte, yte) = friedman();
        let configs = [
            ("default", RfParams::new()),
            (
                "shallow",
                RfParams::new()
                    .mtry(Mtry::Fraction(0.5))
                    .min_samples_leaf(5)
                    .max_depth(Some(6)),
            ),
        ];
        for (name, params) in configs {
            // Mean over seeds 0..10 as for the reference (one seed's spread is ~0.004).
            let got = (0..10)
                .map(|seed| {
                    let forest = params
                        .clone()
                        .seed(seed)
                        .fit(xtr.view(), ytr.view())
                        .unwrap();
                    r2(&forest.predict(xte.view()).unwrap(), &yte)
                })
                .sum::<f64>()
                / 10.0;
            let reference = want[name]["test_r2_mean"].as_f64().unwrap();
            eprintln!("{name}: amun-rf test R² {got:.4}, scikit-learn {reference:.4}");
            assert!(
                (got - reference).abs() < 0.01,
                "{name}: amun-rf R² {got:.4} vs scikit-learn {reference:.4}"
            );
        }
    }

    #[test]
    fn quantile_forest_spread_of_hand_made_trees() {
        // Two stumps on one feature, the training rows x = 0.1, 0.2, 0.3, 0.7, 0.9 with
        // targets 1, 2, 3, 10, 14. Tree A splits at 0.5 ({1, 2, 3} | {10, 14}), tree B at
        // 0.25 ({1, 2} | {3, 10, 14}); leaf outputs are the leaf means.
        let a = Tree::hand_made(&[Some((0, 0.5, 1, 2)), None, None], &[0.0, 2.0, 12.0], 1);
        let b = Tree::hand_made(&[Some((0, 0.25, 1, 2)), None, None], &[0.0, 1.5, 9.0], 1);
        let x = [0.1f32, 0.2, 0.3, 0.7, 0.9];
        let y = [1.0, 2.0, 3.0, 10.0, 14.0];
        let moments: Vec<_> = [&a, &b]
            .iter()
            .map(|t| leaf_moments(t, &x, 1, &y))
            .collect();
        assert!((moments[1][2][0] - 9.0).abs() < 1e-12);
        assert!((moments[1][2][1] - 62.0 / 3.0).abs() < 1e-12);
        assert!(moments[0][0][0].is_nan(), "the root is no leaf");
        let forest = RandomForest {
            trees: vec![a, b],
            importances: vec![1.0],
            n_features: 1,
            n_threads: None,
            leaf_moments: Some(moments),
        };
        // Reference: Meinshausen's (2006) weights w_i(x) = mean over trees of
        // 1{x_i in the leaf of x} / |leaf|, and the moments of the weighted targets.
        let leaf_of = |t: f32, v: f32| v <= t;
        for q in [0.05f32, 0.27, 0.4, 0.6, 0.95] {
            let mut w = [0.0f64; 5];
            for t in [0.5f32, 0.25] {
                let members: Vec<usize> = (0..5)
                    .filter(|&i| leaf_of(t, x[i]) == leaf_of(t, q))
                    .collect();
                for &i in &members {
                    w[i] += 0.5 / members.len() as f64;
                }
            }
            let m: f64 = w.iter().zip(&y).map(|(w, y)| w * y).sum();
            let v: f64 = w.iter().zip(&y).map(|(w, y)| w * (y - m).powi(2)).sum();
            let (mean, std) = forest.predict_rows_with_std(&[q]).unwrap();
            assert!(
                (f64::from(mean[0]) - m).abs() < 1e-5,
                "{q}: {} vs {m}",
                mean[0]
            );
            assert!(
                (f64::from(std[0]) - v.sqrt()).abs() < 1e-5,
                "{q}: {} vs {}",
                std[0],
                v.sqrt()
            );
        }
        let (m, s) = forest.predict_rows_with_std(&[f32::NAN]).unwrap();
        assert!(m[0].is_nan() && s[0].is_nan());
    }

    #[test]
    fn quantile_forest_spread_follows_the_noise() {
        // y = x + σ(x)·ε, ε standard normal (Box–Muller on a SplitMix64 stream), σ = 0.1 for
        // x < 0.5 and 0.5 above: the spread must be about 5× larger on the noisy half and
        // its ±1.645σ interval must cover about 90 % of new draws.
        use rand::{RngCore, SeedableRng};
        let mut rng = rand_xoshiro::SplitMix64::seed_from_u64(99);
        let mut uniform = move || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let mut draw = |n: usize| {
            let mut x = Array2::<f32>::zeros((n, 1));
            let mut y = Array1::<f32>::zeros(n);
            for i in 0..n {
                let (u, v, w) = (uniform(), uniform(), uniform());
                let eps = (-2.0 * v.ln()).sqrt() * (2.0 * std::f64::consts::PI * w).cos();
                let sigma = if u < 0.5 { 0.1 } else { 0.5 };
                x[(i, 0)] = u as f32;
                y[i] = (u + sigma * eps) as f32;
            }
            (x, y)
        };
        let (x, y) = draw(4000);
        let forest = RfParams::new()
            .n_trees(40)
            .min_samples_leaf(20)
            .seed(5)
            .uncertainty(true)
            .fit(x.view(), y.view())
            .unwrap();
        let (xt, yt) = draw(4000);
        let rows: Vec<f32> = xt.iter().copied().collect();
        let (mean, std) = forest.predict_rows_with_std(&rows).unwrap();
        let (mut quiet, mut noisy, mut inside) = ((0.0, 0), (0.0, 0), 0);
        for i in 0..rows.len() {
            let s = f64::from(std[i]);
            if rows[i] < 0.5 {
                quiet = (quiet.0 + s, quiet.1 + 1);
            } else {
                noisy = (noisy.0 + s, noisy.1 + 1);
            }
            if (f64::from(yt[i]) - f64::from(mean[i])).abs() <= 1.645 * s {
                inside += 1;
            }
        }
        let ratio = (noisy.0 / f64::from(noisy.1)) / (quiet.0 / f64::from(quiet.1));
        let coverage = f64::from(inside) / rows.len() as f64;
        assert!((3.5..7.0).contains(&ratio), "spread ratio {ratio}");
        assert!((0.85..0.97).contains(&coverage), "coverage {coverage}");
        assert!(matches!(
            RfParams::new()
                .n_trees(2)
                .fit(x.view(), y.view())
                .unwrap()
                .predict_rows_with_std(&rows),
            Err(Error::NoUncertainty)
        ));
    }
}
