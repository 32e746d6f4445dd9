//! Gaussian-process regression with a Matérn-5/2 ARD kernel, fitted by maximising the log
//! marginal likelihood (plus weak log-normal priors) with argmin's L-BFGS.
//!
//! Model, on standardised outputs `z = (y − mean(y)) / std(y)`:
//!
//! ```text
//! z ~ GP(0, s² k(r)) + N(0, σ²),   k(r) = (1 + √5 r + 5r²/3) exp(−√5 r),
//! r² = Σ_d (x_d − x'_d)² / l_d²,   σ² = noise_floor + exp(η)
//! ```
//!
//! The hyperparameters `θ = (ln l_1 … ln l_D, ln s², η)` maximise
//! `log p(z | θ) + log p(θ)` with the priors below, from several starts. The noise floor keeps
//! noise-free objectives from collapsing the noise to zero and the kernel matrix to singular.

use std::cell::RefCell;

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason, TerminationStatus};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linalg;

const SQRT5: f64 = 2.236_067_977_499_79;
const LN_2PI: f64 = 1.837_877_066_409_345_3;

/// Prior on each `ln l_d`: normal with this mean (l ≈ 0.5 of the unit cube) …
const PRIOR_LN_LENGTHSCALE_MEAN: f64 = -std::f64::consts::LN_2;
/// … and this standard deviation.
const PRIOR_LN_LENGTHSCALE_SD: f64 = 1.5;
/// Prior on `ln s²` (outputs are standardised, so `s² ≈ 1`): mean 0 and this deviation.
const PRIOR_LN_SIGNAL_SD: f64 = 3.0;
/// Prior on the noise excess `η`: normal with mean `ln 1e-6` …
const PRIOR_NOISE_MEAN: f64 = -13.815_510_557_964_274;
/// … and this standard deviation (wide: noisy objectives move it easily).
const PRIOR_NOISE_SD: f64 = 3.0;

/// Parameters of a Gaussian-process fit (linfa style: build, [`check`](GpParams::check), fit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpParams {
    noise_floor: f64,
    n_restarts: usize,
    max_iters: u64,
    seed: u64,
}

impl Default for GpParams {
    fn default() -> Self {
        Self {
            noise_floor: 1e-6,
            n_restarts: 2,
            max_iters: 100,
            seed: 0,
        }
    }
}

impl GpParams {
    /// Defaults: noise floor `1e-6` (variance, standardised units), 2 random restarts besides
    /// the default (or warm) start, 100 L-BFGS iterations per start, seed 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Smallest noise variance, in units of the standardised output (default `1e-6`).
    pub fn noise_floor(mut self, v: f64) -> Self {
        self.noise_floor = v;
        self
    }

    /// Random restarts of the hyperparameter search besides the first start (default 2).
    pub fn n_restarts(mut self, v: usize) -> Self {
        self.n_restarts = v;
        self
    }

    /// Iteration cap of each L-BFGS run (default 100).
    pub fn max_iters(mut self, v: u64) -> Self {
        self.max_iters = v;
        self
    }

    /// Seed of the random restarts (default 0).
    pub fn seed(mut self, v: u64) -> Self {
        self.seed = v;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] if the noise floor is not positive and finite or `max_iters`
    /// is zero.
    pub fn check(self) -> Result<GpValidParams> {
        if !(self.noise_floor > 0.0 && self.noise_floor.is_finite()) {
            return Err(Error::InvalidParam {
                name: "noise_floor",
                value: self.noise_floor.to_string(),
                reason: "must be positive and finite",
            });
        }
        if self.max_iters == 0 {
            return Err(Error::InvalidParam {
                name: "max_iters",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        Ok(GpValidParams(self))
    }
}

/// Checked [`GpParams`]; [`fit`](GpValidParams::fit) trains a [`Gp`].
#[derive(Debug, Clone, PartialEq)]
pub struct GpValidParams(GpParams);

impl GpValidParams {
    /// Fits a Gaussian process to inputs `x` (one row per observation, all of one length,
    /// ideally scaled to the unit cube) and outputs `y`.
    ///
    /// # Errors
    /// [`Error::InvalidData`] if there are no rows, rows differ in length, `y` has another
    /// length or any value is not finite; [`Error::Solver`] or
    /// [`Error::NotPositiveDefinite`] if no hyperparameter start gives a usable model.
    pub fn fit(&self, x: &[Vec<f64>], y: &[f64]) -> Result<Gp> {
        let m = x.first().map_or(0, Vec::len);
        if x.is_empty() || m == 0 {
            return Err(Error::InvalidData {
                what: "at least one observation with at least one input",
                expected: 1,
                got: 0,
            });
        }
        if let Some(row) = x.iter().find(|r| r.len() != m) {
            return Err(Error::InvalidData {
                what: "input rows of equal length",
                expected: m,
                got: row.len(),
            });
        }
        if y.len() != x.len() {
            return Err(Error::InvalidData {
                what: "one output per input row",
                expected: x.len(),
                got: y.len(),
            });
        }
        let flat: Vec<f64> = x.iter().flatten().copied().collect();
        let bad = flat.iter().chain(y).filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::InvalidData {
                what: "finite inputs and outputs (count of non-finite values)",
                expected: 0,
                got: bad,
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.0.seed);
        self.fit_flat(flat, m, y, None, &mut rng)
    }

    /// Fit on validated, flattened data; `warm` is a previous `θ` to start from.
    pub(crate) fn fit_flat(
        &self,
        x: Vec<f64>,
        m: usize,
        y: &[f64],
        warm: Option<&[f64]>,
        rng: &mut ChaCha8Rng,
    ) -> Result<Gp> {
        let n = y.len();
        let (y_mean, y_std) = standardisation(y);
        let z: Vec<f64> = y.iter().map(|v| (v - y_mean) / y_std).collect();
        let floor = self.0.noise_floor;

        let mut starts = Vec::with_capacity(1 + self.0.n_restarts);
        match warm {
            Some(t) if t.len() == m + 2 && t.iter().all(|v| v.is_finite()) => {
                starts.push(t.to_vec())
            }
            _ => starts.push(default_theta(m)),
        }
        for _ in 0..self.0.n_restarts {
            starts.push(random_theta(m, rng));
        }

        let problem = || NegLogPosterior {
            x: &x,
            n,
            m,
            z: &z,
            floor,
            cache: RefCell::new(None),
        };
        let mut report = FitReport::default();
        let mut best: Option<(f64, Vec<f64>)> = None;
        let mut last_error = String::new();
        for start in starts {
            report.starts += 1;
            let start_cost = match problem().evaluate(&start) {
                Ok((c, _)) => c,
                Err(e) => {
                    report.failed += 1;
                    last_error = e.to_string();
                    continue;
                }
            };
            // Tolerances suited to a cost of order n: far tighter ones only make the line
            // search fail on rounding noise at the optimum.
            let solver = LBFGS::new(MoreThuenteLineSearch::new(), 7)
                .with_tolerance_grad(1e-5)
                .and_then(|s| s.with_tolerance_cost(1e-9))
                .map_err(|e| Error::Solver {
                    stage: "kernel hyperparameters",
                    starts: 0,
                    message: e.to_string(),
                })?;
            let run = Executor::new(problem(), solver)
                .configure(|s| s.param(start.clone()).max_iters(self.0.max_iters))
                .run();
            let (cost, theta) = match run {
                Ok(res) => {
                    let state = res.state();
                    match state.get_termination_status() {
                        TerminationStatus::Terminated(TerminationReason::SolverConverged)
                        | TerminationStatus::Terminated(TerminationReason::TargetCostReached) => {
                            report.converged += 1
                        }
                        TerminationStatus::Terminated(TerminationReason::MaxItersReached) => {
                            report.max_iters += 1
                        }
                        // Line-search failures end the run with `SolverExit`: the best point
                        // found so far is still a valid (if unpolished) answer.
                        _ => report.stopped_early += 1,
                    }
                    match state.get_best_param() {
                        Some(p) => (state.get_best_cost(), p.clone()),
                        None => (start_cost, start),
                    }
                }
                Err(e) => {
                    report.failed += 1;
                    last_error = e.to_string();
                    (start_cost, start)
                }
            };
            if cost.is_finite() && best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, theta));
            }
        }
        let (_, theta) = best.ok_or(Error::Solver {
            stage: "kernel hyperparameters",
            starts: report.starts,
            message: last_error,
        })?;
        let theta = clamp_theta(&theta, m);
        Gp::build(x, n, m, z, y_mean, y_std, theta, floor, report)
    }
}

/// How the hyperparameter search went: argmin's termination status of each start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FitReport {
    /// Starts tried.
    pub starts: usize,
    /// Runs that met L-BFGS's gradient or cost-change tolerance.
    pub converged: usize,
    /// Runs stopped by the iteration cap.
    pub max_iters: usize,
    /// Runs ended by the solver itself (e.g. a failed line search); their best point is used.
    pub stopped_early: usize,
    /// Starts whose run returned an error (e.g. the kernel matrix could not be factorised).
    pub failed: usize,
}

/// Kernel hyperparameters of a fitted [`Gp`], in standardised output units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    /// One length scale per input dimension (automatic relevance determination).
    pub lengthscales: Vec<f64>,
    /// Signal variance `s²`.
    pub signal_variance: f64,
    /// Noise variance `σ²` (at least the noise floor).
    pub noise_variance: f64,
}

/// Posterior of the latent function at one input, in the original output units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Posterior mean.
    pub mean: f64,
    /// Posterior variance of the latent function (observation noise not included).
    pub variance: f64,
}

/// A fitted Gaussian process.
#[derive(Debug, Clone)]
pub struct Gp {
    x: Vec<f64>,
    n: usize,
    m: usize,
    y_mean: f64,
    y_std: f64,
    theta: Vec<f64>,
    floor: f64,
    /// Inverse squared length scales.
    inv_l2: Vec<f64>,
    signal: f64,
    chol: Vec<f64>,
    alpha: Vec<f64>,
    lml: f64,
    report: FitReport,
}

impl Gp {
    #[allow(clippy::too_many_arguments)]
    fn build(
        x: Vec<f64>,
        n: usize,
        m: usize,
        z: Vec<f64>,
        y_mean: f64,
        y_std: f64,
        theta: Vec<f64>,
        floor: f64,
        report: FitReport,
    ) -> Result<Self> {
        let k = kernel_matrix(&x, n, m, &theta, floor);
        let (chol, _) = linalg::cholesky_jittered(&k, n)?;
        let mut alpha = z.clone();
        linalg::solve_lower(&chol, n, &mut alpha);
        let quad: f64 = alpha.iter().map(|a| a * a).sum();
        linalg::solve_upper_t(&chol, n, &mut alpha);
        let log_det: f64 = (0..n).map(|i| chol[i * n + i].ln()).sum();
        let lml = -0.5 * quad - log_det - 0.5 * n as f64 * LN_2PI;
        let inv_l2 = theta[..m].iter().map(|t| (-2.0 * t).exp()).collect();
        let signal = theta[m].exp();
        Ok(Self {
            x,
            n,
            m,
            y_mean,
            y_std,
            theta,
            floor,
            inv_l2,
            signal,
            chol,
            alpha,
            lml,
            report,
        })
    }

    /// A GP with given hyperparameters (no fitting), on standardised `y`; for tests.
    #[cfg(test)]
    pub(crate) fn with_theta(
        x: Vec<f64>,
        m: usize,
        y: &[f64],
        theta: Vec<f64>,
        floor: f64,
    ) -> Result<Self> {
        let (y_mean, y_std) = standardisation(y);
        let z = y.iter().map(|v| (v - y_mean) / y_std).collect();
        Self::build(
            x,
            y.len(),
            m,
            z,
            y_mean,
            y_std,
            theta,
            floor,
            FitReport::default(),
        )
    }

    /// Posterior mean and latent variance at input `x`, in the original output units.
    ///
    /// # Errors
    /// [`Error::InvalidData`] if `x` does not have the training inputs' length.
    pub fn predict(&self, x: &[f64]) -> Result<Prediction> {
        if x.len() != self.m {
            return Err(Error::InvalidData {
                what: "input length of the training data",
                expected: self.m,
                got: x.len(),
            });
        }
        let mut scratch = Scratch::new(self.n);
        let (mu, var) = self.posterior(x, &mut scratch, None);
        Ok(Prediction {
            mean: self.y_mean + self.y_std * mu,
            variance: var * self.y_std * self.y_std,
        })
    }

    /// The fitted kernel hyperparameters.
    pub fn hyperparameters(&self) -> Hyperparameters {
        Hyperparameters {
            lengthscales: self.theta[..self.m].iter().map(|t| t.exp()).collect(),
            signal_variance: self.signal,
            noise_variance: self.floor + self.theta[self.m + 1].exp(),
        }
    }

    /// Log marginal likelihood of the standardised training outputs.
    pub fn log_marginal_likelihood(&self) -> f64 {
        self.lml
    }

    /// How the hyperparameter search ended, start by start.
    pub fn fit_report(&self) -> FitReport {
        self.report
    }

    /// Number of training observations.
    pub fn n_observations(&self) -> usize {
        self.n
    }

    pub(crate) fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// Standardises an output value the way the training outputs were.
    pub(crate) fn standardise(&self, y: f64) -> f64 {
        (y - self.y_mean) / self.y_std
    }

    /// Posterior mean and latent variance at feature vector `x`, standardised units.
    ///
    /// With `grad = Some((dims, dmu, dvar))`, also writes the derivatives of mean and variance
    /// with respect to the features listed in `dims`.
    pub(crate) fn posterior(
        &self,
        x: &[f64],
        s: &mut Scratch,
        grad: Option<(&[usize], &mut [f64], &mut [f64])>,
    ) -> (f64, f64) {
        let (n, m) = (self.n, self.m);
        // k_j = s² k(r_j) and c_j = s² (5/3)(1 + √5 r_j) exp(−√5 r_j), which gives
        // ∂k_j/∂x_d = −c_j (x_d − x_jd) / l_d².
        for j in 0..n {
            let row = &self.x[j * m..(j + 1) * m];
            let r2: f64 = row
                .iter()
                .zip(x)
                .zip(&self.inv_l2)
                .map(|((a, b), w)| (a - b) * (a - b) * w)
                .sum();
            let r = r2.sqrt();
            let e = (-SQRT5 * r).exp();
            s.k[j] = self.signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * e;
            s.c[j] = self.signal * 5.0 / 3.0 * (1.0 + SQRT5 * r) * e;
        }
        let mu: f64 = s.k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        s.v.copy_from_slice(&s.k);
        linalg::solve_lower(&self.chol, n, &mut s.v);
        let vv: f64 = s.v.iter().map(|a| a * a).sum();
        let var = (self.signal - vv).max(0.0);
        if let Some((dims, dmu, dvar)) = grad {
            // w = K⁻¹ k; ∂σ²/∂x_d = −2 wᵀ ∂k/∂x_d.
            linalg::solve_upper_t(&self.chol, n, &mut s.v);
            for (slot, &d) in dims.iter().enumerate() {
                let (mut gm, mut gv) = (0.0, 0.0);
                for j in 0..n {
                    let dk = -s.c[j] * (x[d] - self.x[j * m + d]) * self.inv_l2[d];
                    gm += self.alpha[j] * dk;
                    gv += s.v[j] * dk;
                }
                dmu[slot] = gm;
                dvar[slot] = -2.0 * gv;
            }
        }
        (mu, var)
    }
}

/// Work buffers for [`Gp::posterior`], reused across calls.
pub(crate) struct Scratch {
    k: Vec<f64>,
    c: Vec<f64>,
    v: Vec<f64>,
}

impl Scratch {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            k: vec![0.0; n],
            c: vec![0.0; n],
            v: vec![0.0; n],
        }
    }
}

fn standardisation(y: &[f64]) -> (f64, f64) {
    let n = y.len().max(1) as f64;
    let mean = y.iter().sum::<f64>() / n;
    let var = y.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let std = var.sqrt();
    if std > 1e-12 * (1.0 + mean.abs()) {
        (mean, std)
    } else {
        (mean, 1.0)
    }
}

/// `θ` at the prior means.
fn default_theta(m: usize) -> Vec<f64> {
    let mut t = vec![PRIOR_LN_LENGTHSCALE_MEAN; m];
    t.push(0.0);
    t.push(PRIOR_NOISE_MEAN);
    t
}

/// A random start: length scales log-uniform in [0.05, 5], signal in [0.3, 3], noise excess
/// in [1e-6, 1e-1].
fn random_theta(m: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut t: Vec<f64> = (0..m)
        .map(|_| rng.random_range(0.05_f64.ln()..5.0_f64.ln()))
        .collect();
    t.push(rng.random_range(0.3_f64.ln()..3.0_f64.ln()));
    t.push(rng.random_range(1e-6_f64.ln()..1e-1_f64.ln()));
    t
}

fn kernel_matrix(x: &[f64], n: usize, m: usize, theta: &[f64], floor: f64) -> Vec<f64> {
    let inv_l2: Vec<f64> = theta[..m].iter().map(|t| (-2.0 * t).exp()).collect();
    let signal = theta[m].exp();
    let noise = floor + theta[m + 1].exp();
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        let xi = &x[i * m..(i + 1) * m];
        for j in 0..i {
            let xj = &x[j * m..(j + 1) * m];
            let r2: f64 = xi
                .iter()
                .zip(xj)
                .zip(&inv_l2)
                .map(|((a, b), w)| (a - b) * (a - b) * w)
                .sum();
            let r = r2.sqrt();
            let v = signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * (-SQRT5 * r).exp();
            k[i * n + j] = v;
            k[j * n + i] = v;
        }
        k[i * n + i] = signal + noise;
    }
    k
}

/// Log marginal likelihood of standardised outputs `z` and its gradient with respect to `θ`.
///
/// `∂/∂θ_p = ½ tr((ααᵀ − K⁻¹) ∂K/∂θ_p)` with `α = K⁻¹ z` (Rasmussen & Williams 2006, eq. 5.9).
pub(crate) fn log_marginal_likelihood(
    x: &[f64],
    n: usize,
    m: usize,
    z: &[f64],
    theta: &[f64],
    floor: f64,
) -> Result<(f64, Vec<f64>)> {
    let k = kernel_matrix(x, n, m, theta, floor);
    let (l, _) = linalg::cholesky_jittered(&k, n)?;
    let mut alpha = z.to_vec();
    linalg::solve_lower(&l, n, &mut alpha);
    let quad: f64 = alpha.iter().map(|a| a * a).sum();
    linalg::solve_upper_t(&l, n, &mut alpha);
    let log_det: f64 = (0..n).map(|i| l[i * n + i].ln()).sum();
    let lml = -0.5 * quad - log_det - 0.5 * n as f64 * LN_2PI;

    // W = ααᵀ − K⁻¹ (symmetric).
    let mut w = linalg::inverse_from_cholesky(&l, n);
    for i in 0..n {
        for j in 0..n {
            w[i * n + j] = alpha[i] * alpha[j] - w[i * n + j];
        }
    }
    let inv_l2: Vec<f64> = theta[..m].iter().map(|t| (-2.0 * t).exp()).collect();
    let signal = theta[m].exp();
    let mut grad = vec![0.0; m + 2];
    // Off-diagonal pairs, each counted twice in the trace (which cancels the ½).
    for i in 0..n {
        let xi = &x[i * m..(i + 1) * m];
        for j in 0..i {
            let xj = &x[j * m..(j + 1) * m];
            let r2: f64 = xi
                .iter()
                .zip(xj)
                .zip(&inv_l2)
                .map(|((a, b), w)| (a - b) * (a - b) * w)
                .sum();
            let r = r2.sqrt();
            let e = (-SQRT5 * r).exp();
            let wij = w[i * n + j];
            // ∂K/∂ln l_d = s² (5/3)(1 + √5 r) e^{−√5 r} · (x_d − x'_d)² / l_d².
            let c = wij * signal * 5.0 / 3.0 * (1.0 + SQRT5 * r) * e;
            for d in 0..m {
                let diff = xi[d] - xj[d];
                grad[d] += c * diff * diff * inv_l2[d];
            }
            // ∂K/∂ln s² = K (signal part).
            grad[m] += wij * signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * e;
        }
    }
    let noise_excess = theta[m + 1].exp();
    for i in 0..n {
        let wii = w[i * n + i];
        grad[m] += 0.5 * wii * signal;
        grad[m + 1] += 0.5 * wii * noise_excess;
    }
    Ok((lml, grad))
}

/// Weight of the quadratic penalty outside the hyperparameter box.
const BOX_PENALTY: f64 = 1e3;

/// Box of admissible `θ`: length scales in [5e-3, 200] (inputs live in the unit cube),
/// signal variance in [1e-2, 1e2] (outputs are standardised), noise excess in [1e-12, 10].
fn theta_bounds(i: usize, m: usize) -> (f64, f64) {
    if i < m {
        (5e-3_f64.ln(), 200.0_f64.ln())
    } else if i == m {
        (1e-2_f64.ln(), 1e2_f64.ln())
    } else {
        (1e-12_f64.ln(), 10.0_f64.ln())
    }
}

/// `θ` moved to the nearest point of the box.
fn clamp_theta(theta: &[f64], m: usize) -> Vec<f64> {
    theta
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (lo, hi) = theta_bounds(i, m);
            t.clamp(lo, hi)
        })
        .collect()
}

/// Log density of the hyperparameter priors (up to a constant) and its gradient.
pub(crate) fn log_prior(theta: &[f64]) -> (f64, Vec<f64>) {
    let m = theta.len() - 2;
    let mut lp = 0.0;
    let mut grad = vec![0.0; theta.len()];
    let mut term = |i: usize, mean: f64, sd: f64| {
        let u = (theta[i] - mean) / sd;
        lp -= 0.5 * u * u;
        grad[i] = -u / sd;
    };
    for i in 0..m {
        term(i, PRIOR_LN_LENGTHSCALE_MEAN, PRIOR_LN_LENGTHSCALE_SD);
    }
    term(m, 0.0, PRIOR_LN_SIGNAL_SD);
    term(m + 1, PRIOR_NOISE_MEAN, PRIOR_NOISE_SD);
    (lp, grad)
}

/// `(θ, cost, gradient)` of the last evaluation.
type Evaluation = (Vec<f64>, f64, Vec<f64>);

/// argmin problem: negative log posterior of `θ`. Cost and gradient come from one
/// factorisation, cached for the last `θ` (argmin asks for them separately).
struct NegLogPosterior<'a> {
    x: &'a [f64],
    n: usize,
    m: usize,
    z: &'a [f64],
    floor: f64,
    cache: RefCell<Option<Evaluation>>,
}

impl NegLogPosterior<'_> {
    fn evaluate(&self, theta: &[f64]) -> Result<(f64, Vec<f64>)> {
        if let Some((t, c, g)) = self.cache.borrow().as_ref() {
            if t.as_slice() == theta {
                return Ok((*c, g.clone()));
            }
        }
        if theta.iter().any(|t| !t.is_finite()) {
            return Err(Error::InvalidParam {
                name: "theta",
                value: format!("{theta:?}"),
                reason: "kernel hyperparameters must be finite",
            });
        }
        // Outside the box the posterior is evaluated at the nearest point of the box and a
        // quadratic penalty pulls back: the cost stays finite and continuous, so L-BFGS's
        // line search can backtrack from an overlong first step instead of failing.
        let inside = clamp_theta(theta, self.m);
        let (lml, g_lml) =
            log_marginal_likelihood(self.x, self.n, self.m, self.z, &inside, self.floor)?;
        let (lp, g_lp) = log_prior(&inside);
        let mut cost = -(lml + lp);
        let mut grad: Vec<f64> = g_lml.iter().zip(&g_lp).map(|(a, b)| -(a + b)).collect();
        for ((g, t), c) in grad.iter_mut().zip(theta).zip(&inside) {
            let out = t - c;
            if out.abs() > 0.0 {
                cost += 0.5 * BOX_PENALTY * out * out;
                *g = BOX_PENALTY * out;
            }
        }
        *self.cache.borrow_mut() = Some((theta.to_vec(), cost, grad.clone()));
        Ok((cost, grad))
    }
}

impl CostFunction for NegLogPosterior<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, theta: &Self::Param) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.evaluate(theta)?.0)
    }
}

impl Gradient for NegLogPosterior<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, theta: &Self::Param) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        Ok(self.evaluate(theta)?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matern52(r: f64) -> f64 {
        (1.0 + SQRT5 * r + 5.0 / 3.0 * r * r) * (-SQRT5 * r).exp()
    }

    #[test]
    fn posterior_matches_closed_form_two_points() {
        // Two observations; with θ fixed the posterior is, by the textbook formulas
        // (Rasmussen & Williams 2006, eqs. 2.25–2.26), computed here with an explicit
        // 2×2 inverse: μ = k*ᵀ K⁻¹ z, σ² = s² − k*ᵀ K⁻¹ k*.
        let (l, s2, noise) = (0.7_f64, 1.3_f64, 0.01_f64);
        let floor = 1e-6;
        let theta = vec![l.ln(), s2.ln(), (noise - floor).ln()];
        let x = vec![0.2, 0.9];
        let y = [3.0, 5.0]; // standardised: mean 4, std 1 -> z = [-1, 1]
        let gp = Gp::with_theta(x.clone(), 1, &y, theta, floor).unwrap();

        let k01 = s2 * matern52((0.9_f64 - 0.2).abs() / l);
        let (a, b, d) = (s2 + noise, k01, s2 + noise);
        let det = a * d - b * b;
        let kinv = [d / det, -b / det, -b / det, a / det];
        let xs = 0.5;
        let ks = [
            s2 * matern52((xs - 0.2_f64).abs() / l),
            s2 * matern52((xs - 0.9_f64).abs() / l),
        ];
        let z = [-1.0, 1.0];
        let kz = [
            kinv[0] * z[0] + kinv[1] * z[1],
            kinv[2] * z[0] + kinv[3] * z[1],
        ];
        let mu = ks[0] * kz[0] + ks[1] * kz[1];
        let kk = [
            kinv[0] * ks[0] + kinv[1] * ks[1],
            kinv[2] * ks[0] + kinv[3] * ks[1],
        ];
        let var = s2 - (ks[0] * kk[0] + ks[1] * kk[1]);

        let p = gp.predict(&[xs]).unwrap();
        assert!(
            (p.mean - (4.0 + mu)).abs() < 1e-10,
            "{} vs {}",
            p.mean,
            4.0 + mu
        );
        assert!((p.variance - var).abs() < 1e-10, "{} vs {var}", p.variance);
        // At a training input the mean nearly interpolates (noise is small).
        assert!((gp.predict(&[0.2]).unwrap().mean - 3.0).abs() < 0.05);
    }

    fn toy_data() -> (Vec<f64>, usize, usize, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (n, m) = (12, 3);
        let x: Vec<f64> = (0..n * m).map(|_| rng.random::<f64>()).collect();
        let z: Vec<f64> = (0..n)
            .map(|i| (3.0 * x[i * m]).sin() + x[i * m + 1] * x[i * m + 2])
            .collect();
        (x, n, m, z)
    }

    #[test]
    fn lml_gradient_matches_finite_differences() {
        let (x, n, m, z) = toy_data();
        let theta = vec![-0.5, 0.3, -1.0, 0.2, -4.0];
        let floor = 1e-6;
        let (_, grad) = log_marginal_likelihood(&x, n, m, &z, &theta, floor).unwrap();
        let (_, grad_prior) = log_prior(&theta);
        let h = 1e-6;
        for p in 0..theta.len() {
            let (mut tp, mut tm) = (theta.clone(), theta.clone());
            tp[p] += h;
            tm[p] -= h;
            // Central differences of the likelihood …
            let fp = log_marginal_likelihood(&x, n, m, &z, &tp, floor).unwrap().0;
            let fm = log_marginal_likelihood(&x, n, m, &z, &tm, floor).unwrap().0;
            let fd = (fp - fm) / (2.0 * h);
            assert!(
                (fd - grad[p]).abs() < 1e-5 * (1.0 + fd.abs()),
                "θ{p}: {fd} vs {}",
                grad[p]
            );
            // … and of the prior.
            let fd = (log_prior(&tp).0 - log_prior(&tm).0) / (2.0 * h);
            assert!((fd - grad_prior[p]).abs() < 1e-6, "prior θ{p}");
        }
    }

    #[test]
    fn posterior_gradient_matches_finite_differences() {
        let (x, n, m, z) = toy_data();
        let theta = vec![-0.5, 0.3, -1.0, 0.2, -4.0];
        let gp = Gp::with_theta(x, m, &z, theta, 1e-6).unwrap();
        let mut s = Scratch::new(n);
        let at = [0.31, 0.62, 0.45];
        let dims = [0, 1, 2];
        let (mut dmu, mut dvar) = ([0.0; 3], [0.0; 3]);
        gp.posterior(&at, &mut s, Some((&dims, &mut dmu, &mut dvar)));
        let h = 1e-6;
        for d in 0..3 {
            let (mut p, mut q) = (at, at);
            p[d] += h;
            q[d] -= h;
            let (mp, vp) = gp.posterior(&p, &mut s, None);
            let (mq, vq) = gp.posterior(&q, &mut s, None);
            assert!(((mp - mq) / (2.0 * h) - dmu[d]).abs() < 1e-5, "dμ/dx{d}");
            assert!(((vp - vq) / (2.0 * h) - dvar[d]).abs() < 1e-5, "dσ²/dx{d}");
        }
    }

    #[test]
    fn fit_learns_relevance_and_predicts() {
        // y depends on x0 only; ARD must give x1 a longer length scale, and the fit must
        // beat the prior-mean start in log posterior.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x: Vec<Vec<f64>> = (0..25).map(|_| vec![rng.random(), rng.random()]).collect();
        let y: Vec<f64> = x.iter().map(|r| (6.0 * r[0]).sin()).collect();
        let gp = GpParams::new().check().unwrap().fit(&x, &y).unwrap();
        let h = gp.hyperparameters();
        assert!(h.lengthscales[1] > 2.0 * h.lengthscales[0], "{h:?}");
        assert!(h.noise_variance >= 1e-6);
        let r = gp.fit_report();
        assert_eq!(r.starts, 3);
        assert!(r.converged >= 1, "{r:?}");
        // The fit must improve on the starting point (the prior means) in log posterior.
        let flat: Vec<f64> = x.iter().flatten().copied().collect();
        let start = Gp::with_theta(flat, 2, &y, default_theta(2), 1e-6).unwrap();
        let post = |g: &Gp| g.log_marginal_likelihood() + log_prior(g.theta()).0;
        assert!(
            post(&gp) > post(&start) + 1.0,
            "{} vs {}",
            post(&gp),
            post(&start)
        );
        let p = gp.predict(&[0.3, 0.5]).unwrap();
        assert!((p.mean - (1.8_f64).sin()).abs() < 0.1, "{p:?}");
        assert!(gp.predict(&[0.3]).is_err());
    }

    #[test]
    fn fit_rejects_bad_data_and_params() {
        let p = GpParams::new().check().unwrap();
        assert!(p.fit(&[], &[]).is_err());
        assert!(p.fit(&[vec![0.0], vec![1.0, 2.0]], &[1.0, 2.0]).is_err());
        assert!(p.fit(&[vec![0.0]], &[1.0, 2.0]).is_err());
        assert!(p.fit(&[vec![f64::NAN]], &[1.0]).is_err());
        assert!(GpParams::new().noise_floor(0.0).check().is_err());
        assert!(GpParams::new().max_iters(0).check().is_err());
    }

    #[test]
    fn constant_outputs_do_not_break_the_fit() {
        // Identical outputs (std 0) and duplicated inputs: the noise floor and the jitter
        // must keep the model usable.
        let x = vec![vec![0.5], vec![0.5], vec![0.1]];
        let gp = GpParams::new()
            .check()
            .unwrap()
            .fit(&x, &[2.0, 2.0, 2.0])
            .unwrap();
        let p = gp.predict(&[0.3]).unwrap();
        assert!((p.mean - 2.0).abs() < 1e-6);
    }
}
