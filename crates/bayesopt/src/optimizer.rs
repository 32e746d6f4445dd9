//! The ask/tell optimiser and the [`minimize`] helper.

use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::path::Path;

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::acquisition::Acquisition;
use crate::design::InitialDesign;
use crate::error::{Error, Result};
use crate::gp::{FitReport, Gp, GpParams, Scratch};
use crate::space::{Point, SearchSpace};

/// Stream of the initial design in the seeded generator (ask number `i` uses stream `i`).
const DESIGN_STREAM: u64 = u64::MAX;
/// Iteration cap of each local polish of the acquisition function.
const POLISH_ITERS: u64 = 30;
/// Passes of the integer/categorical neighbourhood search after polishing.
const DISCRETE_PASSES: usize = 3;

/// Optimiser settings (linfa style: build, [`check`](Params::check), use).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    seed: u64,
    n_initial: usize,
    initial_design: InitialDesign,
    acquisition: Acquisition,
    n_candidates: usize,
    n_polish: usize,
    noise_floor: f64,
    n_restarts: usize,
    max_gp_iters: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            seed: 0,
            n_initial: 10,
            initial_design: InitialDesign::LatinHypercube,
            acquisition: Acquisition::default(),
            n_candidates: 1000,
            n_polish: 4,
            noise_floor: 1e-6,
            n_restarts: 1,
            max_gp_iters: 60,
        }
    }
}

impl Params {
    /// Defaults: seed 0; 10 initial points from a Latin hypercube; expected improvement with
    /// ξ = 0.01; the acquisition function scored at 1000 random points (plus 250 near the
    /// best observations), the best 4 polished locally; GP noise floor `1e-6`; 1 random
    /// restart of the kernel fit besides the warm start; at most 60 L-BFGS iterations per
    /// kernel fit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Seed of every random choice; equal seeds and tells give equal asks (default 0).
    pub fn seed(mut self, v: u64) -> Self {
        self.seed = v;
        self
    }

    /// Points taken from the initial design before the model is used (default 10).
    pub fn n_initial(mut self, v: usize) -> Self {
        self.n_initial = v;
        self
    }

    /// The initial design (default Latin hypercube).
    pub fn initial_design(mut self, v: InitialDesign) -> Self {
        self.initial_design = v;
        self
    }

    /// The acquisition function (default expected improvement, ξ = 0.01).
    pub fn acquisition(mut self, v: Acquisition) -> Self {
        self.acquisition = v;
        self
    }

    /// Random points at which the acquisition function is scored per ask (default 1000).
    pub fn n_candidates(mut self, v: usize) -> Self {
        self.n_candidates = v;
        self
    }

    /// Best candidates polished by local optimisation per ask (default 4).
    pub fn n_polish(mut self, v: usize) -> Self {
        self.n_polish = v;
        self
    }

    /// Smallest GP noise variance, standardised units (default `1e-6`).
    pub fn noise_floor(mut self, v: f64) -> Self {
        self.noise_floor = v;
        self
    }

    /// Random restarts of the kernel hyperparameter fit besides the warm start (default 1).
    pub fn n_restarts(mut self, v: usize) -> Self {
        self.n_restarts = v;
        self
    }

    /// Iteration cap of each kernel hyperparameter fit (default 60).
    pub fn max_gp_iters(mut self, v: u64) -> Self {
        self.max_gp_iters = v;
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] naming the first bad setting: `n_initial` below 2,
    /// `n_candidates` or `max_gp_iters` zero, a noise floor that is not positive and finite,
    /// or a negative or non-finite acquisition parameter.
    pub fn check(self) -> Result<ValidParams> {
        let bad = |name, value: String, reason| {
            Err(Error::InvalidParam {
                name,
                value,
                reason,
            })
        };
        if self.n_initial < 2 {
            return bad(
                "n_initial",
                self.n_initial.to_string(),
                "must be at least 2",
            );
        }
        if self.n_candidates == 0 {
            return bad("n_candidates", "0".into(), "must be at least 1");
        }
        if !self.acquisition.is_valid() {
            return bad(
                "acquisition",
                format!("{:?}", self.acquisition),
                "xi and kappa must be finite and non-negative",
            );
        }
        GpParams::new()
            .noise_floor(self.noise_floor)
            .max_iters(self.max_gp_iters)
            .check()?;
        Ok(ValidParams(self))
    }
}

/// Checked [`Params`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Params", into = "Params")]
pub struct ValidParams(Params);

impl TryFrom<Params> for ValidParams {
    type Error = Error;

    fn try_from(p: Params) -> Result<Self> {
        p.check()
    }
}

impl From<ValidParams> for Params {
    fn from(p: ValidParams) -> Self {
        p.0
    }
}

impl ValidParams {
    /// The settings.
    pub fn params(&self) -> &Params {
        &self.0
    }
}

/// The result of evaluating the objective at one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The objective's (finite) value.
    Value(f64),
    /// The evaluation failed (error, NaN, diverged training); the optimiser steers away.
    Failed {
        /// Why, for the history.
        reason: String,
    },
}

impl Outcome {
    /// The value, if the evaluation succeeded.
    pub fn value(&self) -> Option<f64> {
        match self {
            Outcome::Value(v) => Some(*v),
            Outcome::Failed { .. } => None,
        }
    }

    /// A finite value stays a value; NaN and infinities become failures.
    fn normalised(self) -> Self {
        match self {
            Outcome::Value(v) if !v.is_finite() => Outcome::Failed {
                reason: format!("objective returned {v}"),
            },
            other => other,
        }
    }
}

impl From<f64> for Outcome {
    fn from(v: f64) -> Self {
        Outcome::Value(v)
    }
}

impl<E: fmt::Display> From<std::result::Result<f64, E>> for Outcome {
    fn from(r: std::result::Result<f64, E>) -> Self {
        match r {
            Ok(v) => Outcome::Value(v),
            Err(e) => Outcome::Failed {
                reason: e.to_string(),
            },
        }
    }
}

/// One evaluated point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Where the objective was evaluated.
    pub point: Point,
    /// What it returned.
    pub outcome: Outcome,
}

/// Gaussian-process Bayesian optimiser with an ask/tell interface (minimisation).
///
/// Each [`ask`](Optimizer::ask) returns the next point to evaluate: first the points of the
/// initial design, then the maximiser of the acquisition function under a Gaussian process
/// refitted to everything [`tell`](Optimizer::tell) has reported. Points asked but not yet
/// told are treated as if they had returned the best value so far ("constant liar"), so
/// several asks in a row give different points. Failed evaluations count as the worst value
/// observed, which steers the search away from them.
///
/// Everything random is drawn from a generator seeded by [`Params::seed`] and the number of
/// the ask, so equal seeds and tells give equal asks, and an optimiser saved with
/// [`save`](Optimizer::save) and reloaded continues exactly as the original would have.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Optimizer {
    space: SearchSpace,
    params: ValidParams,
    trials: Vec<Trial>,
    pending: Vec<Point>,
    n_asked: u64,
    /// Kernel hyperparameters of the last fit (warm start of the next).
    theta: Option<Vec<f64>>,
    last_fit: Option<FitReport>,
    /// Why the model could not be used at the last ask, if it could not.
    #[serde(default)]
    model_error: Option<String>,
}

impl Optimizer {
    /// A fresh optimiser over `space`.
    ///
    /// # Errors
    /// [`Error::EmptySpace`] if `space` has no dimensions.
    pub fn new(space: SearchSpace, params: ValidParams) -> Result<Self> {
        if space.is_empty() {
            return Err(Error::EmptySpace);
        }
        Ok(Self {
            space,
            params,
            trials: Vec::new(),
            pending: Vec::new(),
            n_asked: 0,
            theta: None,
            last_fit: None,
            model_error: None,
        })
    }

    /// The search space.
    pub fn space(&self) -> &SearchSpace {
        &self.space
    }

    /// The settings.
    pub fn params(&self) -> &Params {
        self.params.params()
    }

    /// Every told point with its outcome, in the order told.
    pub fn history(&self) -> &[Trial] {
        &self.trials
    }

    /// Points asked for and not yet told.
    pub fn pending(&self) -> &[Point] {
        &self.pending
    }

    /// The successful trial with the lowest value, if any.
    pub fn best(&self) -> Option<&Trial> {
        self.trials
            .iter()
            .filter_map(|t| t.outcome.value().map(|v| (v, t)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, t)| t)
    }

    /// How the last kernel hyperparameter fit ended (argmin termination status per start).
    pub fn last_fit_report(&self) -> Option<FitReport> {
        self.last_fit
    }

    /// Why the surrogate model could not be fitted at the last model-driven ask (which then
    /// returned a random point instead), or `None` if it could.
    pub fn model_error(&self) -> Option<&str> {
        self.model_error.as_deref()
    }

    /// The next point to evaluate. If the surrogate model cannot be fitted (not expected in
    /// practice: the noise floor and the jitter guard against it), a random point is returned
    /// and the reason kept in [`model_error`](Optimizer::model_error).
    ///
    /// # Errors
    /// None at present; the `Result` leaves room for future failure modes.
    pub fn ask(&mut self) -> Result<Point> {
        let p = &self.params.0;
        let d = self.space.len();
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        rng.set_stream(self.n_asked);
        let n_seen = self.trials.len() + self.pending.len();
        let u = if n_seen < p.n_initial {
            let mut design_rng = ChaCha8Rng::seed_from_u64(p.seed);
            design_rng.set_stream(DESIGN_STREAM);
            let mut design = p.initial_design.sample(p.n_initial, d, &mut design_rng);
            // `n_seen < n_initial == design.len()`, so the index is in range.
            design.swap_remove(n_seen)
        } else {
            match self.propose(&mut rng) {
                Ok(Some(u)) => {
                    self.model_error = None;
                    u
                }
                Ok(None) => random_unit(d, &mut rng),
                // A model that cannot be fitted must not end a long tuning run: ask a random
                // point and keep the reason for `model_error`.
                Err(e) => {
                    self.model_error = Some(e.to_string());
                    random_unit(d, &mut rng)
                }
            }
        };
        let point = self.space.point_at_unit(&u);
        self.pending.push(point.clone());
        self.n_asked += 1;
        Ok(point)
    }

    /// Records the outcome of evaluating `point` (asked for or not). Non-finite values are
    /// recorded as failures.
    ///
    /// # Errors
    /// The errors of [`SearchSpace::validate`] if `point` does not belong to the space.
    pub fn tell(&mut self, point: Point, outcome: impl Into<Outcome>) -> Result<()> {
        self.space.validate(&point)?;
        if let Some(i) = self.pending.iter().position(|p| *p == point) {
            self.pending.remove(i);
        }
        self.trials.push(Trial {
            point,
            outcome: outcome.into().normalised(),
        });
        Ok(())
    }

    /// Runs `budget` ask–evaluate–tell rounds with `objective`.
    ///
    /// # Errors
    /// The errors of [`ask`](Optimizer::ask). Failed evaluations are not errors.
    pub fn run<F, O>(&mut self, mut objective: F, budget: usize) -> Result<()>
    where
        F: FnMut(&Point) -> O,
        O: Into<Outcome>,
    {
        for _ in 0..budget {
            let point = self.ask()?;
            let outcome = objective(&point).into();
            self.tell(point, outcome)?;
        }
        Ok(())
    }

    /// The optimiser's full state as JSON.
    ///
    /// # Errors
    /// [`Error::Json`] if serialisation fails.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// An optimiser from JSON written by [`to_json`](Optimizer::to_json) or
    /// [`save`](Optimizer::save); space, settings and history are validated.
    ///
    /// # Errors
    /// [`Error::Json`] for malformed JSON or invalid settings/space, and the errors of
    /// [`SearchSpace::validate`] for a history point outside the space.
    pub fn from_json(json: &str) -> Result<Self> {
        let opt: Optimizer = serde_json::from_str(json)?;
        if opt.space.is_empty() {
            return Err(Error::EmptySpace);
        }
        for point in opt.trials.iter().map(|t| &t.point).chain(&opt.pending) {
            opt.space.validate(point)?;
        }
        Ok(opt)
    }

    /// Writes the state to `path` as JSON, atomically: a temporary file with the umask's
    /// permissions (0644 by default), flushed and renamed into place.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let json = self.to_json()?;
        // The crate behind `amun_raster::write_atomic`, which this crate (no amun dependency)
        // uses directly.
        let mut file = atomic_write_file::AtomicWriteFile::open(path).map_err(io)?;
        file.write_all(json.as_bytes()).map_err(io)?;
        file.commit().map_err(io)
    }

    /// Reads a state written by [`save`](Optimizer::save).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read, and the errors of
    /// [`from_json`](Optimizer::from_json).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&json)
    }

    /// Maximiser of the acquisition function, in unit coordinates; `None` when the model has
    /// too little to go on (fewer than two successful evaluations, or no new point found).
    fn propose(&mut self, rng: &mut ChaCha8Rng) -> Result<Option<Vec<f64>>> {
        let p = self.params.0.clone();
        let space = &self.space;
        let successes: Vec<f64> = self
            .trials
            .iter()
            .filter_map(|t| t.outcome.value())
            .collect();
        if successes.len() < 2 {
            return Ok(None);
        }
        let worst = successes.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let best = successes.iter().copied().fold(f64::INFINITY, f64::min);

        let m = space.n_features();
        let mut units = Vec::with_capacity(self.trials.len() + self.pending.len());
        let mut y = Vec::with_capacity(units.capacity());
        for t in &self.trials {
            // Points were validated by `tell`/`from_json`, so encoding cannot fail here.
            units.push(space.to_unit(&t.point)?);
            y.push(t.outcome.value().unwrap_or(worst));
        }
        for point in &self.pending {
            units.push(space.to_unit(point)?);
            y.push(best);
        }
        let mut x = vec![0.0; units.len() * m];
        for (u, row) in units.iter().zip(x.chunks_exact_mut(m)) {
            space.features(u, row);
        }

        let gp = GpParams::new()
            .noise_floor(p.noise_floor)
            .n_restarts(p.n_restarts)
            .max_iters(p.max_gp_iters)
            .check()?
            .fit_flat(x, m, &y, self.theta.as_deref(), rng)?;
        self.theta = Some(gp.theta().to_vec());
        self.last_fit = Some(gp.fit_report());

        let scorer = Scorer::new(&gp, space, p.acquisition, gp.standardise(best));
        let d = space.len();

        // Candidates: uniform points, plus points near the best observations.
        let mut candidates: Vec<Vec<f64>> =
            (0..p.n_candidates).map(|_| random_unit(d, rng)).collect();
        let mut order: Vec<usize> = (0..self.trials.len()).collect();
        order.retain(|&i| self.trials[i].outcome.value().is_some());
        order.sort_by(|&a, &b| {
            let (va, vb) = (
                self.trials[a].outcome.value(),
                self.trials[b].outcome.value(),
            );
            va.unwrap_or(f64::INFINITY)
                .total_cmp(&vb.unwrap_or(f64::INFINITY))
        });
        let n_local = p.n_candidates / 4;
        let top = order.len().min(3);
        for k in 0..n_local {
            let centre = &units[order[k % top]];
            candidates.push(
                centre
                    .iter()
                    .map(|c| (c + 0.2 * (rng.random::<f64>() - 0.5)).clamp(0.0, 1.0))
                    .collect(),
            );
        }
        let mut scored: Vec<(f64, Vec<f64>)> = candidates
            .into_iter()
            .map(|mut u| {
                space.snap(&mut u);
                (scorer.score(&u), u)
            })
            .filter(|(s, _)| s.is_finite())
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));

        // Polish the best distinct candidates.
        let mut polished: Vec<(f64, Vec<f64>)> = Vec::new();
        for (score, u) in scored.iter().take(p.n_polish.max(1)) {
            let (s, u) = scorer.polish(u.clone(), *score);
            polished.push((s, u));
        }
        polished.extend(scored.into_iter().skip(p.n_polish.max(1)));
        polished.sort_by(|a, b| b.0.total_cmp(&a.0));

        let known: Vec<Point> = self
            .trials
            .iter()
            .map(|t| t.point.clone())
            .chain(self.pending.iter().cloned())
            .collect();
        Ok(polished
            .into_iter()
            .map(|(_, u)| u)
            .find(|u| !known.contains(&space.point_at_unit(u))))
    }
}

/// Runs `budget` evaluations of `objective` over `space` with default [`Params`] and
/// returns the optimiser (see [`Optimizer::best`] and [`Optimizer::history`]).
///
/// # Errors
/// [`Error::EmptySpace`] for a space without dimensions, and the errors of
/// [`Optimizer::ask`].
pub fn minimize<F, O>(objective: F, space: SearchSpace, budget: usize) -> Result<Optimizer>
where
    F: FnMut(&Point) -> O,
    O: Into<Outcome>,
{
    let mut opt = Optimizer::new(space, Params::new().check()?)?;
    opt.run(objective, budget)?;
    Ok(opt)
}

fn random_unit(d: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..d).map(|_| rng.random::<f64>()).collect()
}

/// Scores unit vectors with the acquisition function under a fitted GP.
struct Scorer<'a> {
    gp: &'a Gp,
    space: &'a SearchSpace,
    acquisition: Acquisition,
    best: f64,
    /// `(dimension index, feature index)` of the real dimensions.
    real: Vec<(usize, usize)>,
    scratch: RefCell<(Scratch, Vec<f64>)>,
}

impl<'a> Scorer<'a> {
    fn new(gp: &'a Gp, space: &'a SearchSpace, acquisition: Acquisition, best: f64) -> Self {
        let real = space
            .real_feature_indices()
            .into_iter()
            .enumerate()
            .filter_map(|(i, f)| f.map(|f| (i, f)))
            .collect();
        Self {
            gp,
            space,
            acquisition,
            best,
            real,
            scratch: RefCell::new((
                Scratch::new(gp.n_observations()),
                vec![0.0; space.n_features()],
            )),
        }
    }

    fn score(&self, u: &[f64]) -> f64 {
        let mut guard = self.scratch.borrow_mut();
        let (scratch, feat) = &mut *guard;
        self.space.features(u, feat);
        let (mu, var) = self.gp.posterior(feat, scratch, None);
        self.acquisition
            .value(mu, var.max(1e-12).sqrt(), self.best)
            .0
    }

    /// Score and gradient with respect to the real coordinates of `u`.
    fn score_grad(&self, u: &[f64]) -> (f64, Vec<f64>) {
        let mut guard = self.scratch.borrow_mut();
        let (scratch, feat) = &mut *guard;
        self.space.features(u, feat);
        let dims: Vec<usize> = self.real.iter().map(|&(_, f)| f).collect();
        let (mut dmu, mut dvar) = (vec![0.0; dims.len()], vec![0.0; dims.len()]);
        let (mu, var) = self
            .gp
            .posterior(feat, scratch, Some((&dims, &mut dmu, &mut dvar)));
        let (sigma, clamped) = if var > 1e-12 {
            (var.sqrt(), false)
        } else {
            (1e-6, true)
        };
        let (a, da_dmu, da_dsigma) = self.acquisition.value(mu, sigma, self.best);
        let grad = dmu
            .iter()
            .zip(&dvar)
            .map(|(gm, gv)| {
                let ds = if clamped { 0.0 } else { gv / (2.0 * sigma) };
                da_dmu * gm + da_dsigma * ds
            })
            .collect();
        (a, grad)
    }

    /// Local ascent from `u`: L-BFGS over the real coordinates in logit space (which keeps
    /// them inside the box), then a neighbourhood search over integer and categorical values.
    fn polish(&self, u: Vec<f64>, score: f64) -> (f64, Vec<f64>) {
        let (mut best_s, mut best_u) = (score, u);
        if !self.real.is_empty() {
            let problem = PolishProblem {
                scorer: self,
                base: best_u.clone(),
            };
            let start: Vec<f64> = self.real.iter().map(|&(i, _)| logit(best_u[i])).collect();
            let run = LBFGS::new(MoreThuenteLineSearch::new(), 5)
                .with_tolerance_grad(1e-6)
                .and_then(|s| s.with_tolerance_cost(1e-10))
                .and_then(|solver| {
                    Executor::new(problem, solver)
                        .configure(|s| s.param(start).max_iters(POLISH_ITERS))
                        .run()
                });
            // Any termination reason is acceptable here: the best point seen is kept only if
            // it beats the start, and a failed run leaves the start in place.
            if let Ok(res) = run {
                let state = res.state();
                if let Some(z) = state.get_best_param() {
                    let s = -state.get_best_cost();
                    if s.is_finite() && s > best_s {
                        best_s = s;
                        for (&(i, _), zi) in self.real.iter().zip(z) {
                            best_u[i] = sigmoid(*zi);
                        }
                    }
                }
            }
        }
        for _ in 0..DISCRETE_PASSES {
            let mut improved = false;
            for n in self.space.discrete_neighbours(&best_u) {
                let s = self.score(&n);
                if s > best_s {
                    best_s = s;
                    best_u = n;
                    improved = true;
                }
            }
            if !improved {
                break;
            }
        }
        (best_s, best_u)
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn logit(u: f64) -> f64 {
    let u = u.clamp(1e-6, 1.0 - 1e-6);
    (u / (1.0 - u)).ln()
}

/// argmin problem: negative acquisition over the logits of the real coordinates, the other
/// coordinates held at `base`.
struct PolishProblem<'a, 'b> {
    scorer: &'b Scorer<'a>,
    base: Vec<f64>,
}

impl PolishProblem<'_, '_> {
    fn unit(&self, z: &[f64]) -> Vec<f64> {
        let mut u = self.base.clone();
        for (&(i, _), zi) in self.scorer.real.iter().zip(z) {
            u[i] = sigmoid(*zi);
        }
        u
    }
}

impl CostFunction for PolishProblem<'_, '_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, z: &Self::Param) -> std::result::Result<f64, argmin::core::Error> {
        Ok(-self.scorer.score(&self.unit(z)))
    }
}

impl Gradient for PolishProblem<'_, '_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, z: &Self::Param) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        let u = self.unit(z);
        let (_, g) = self.scorer.score_grad(&u);
        // du/dz = u (1 − u) for u = sigmoid(z).
        Ok(self
            .scorer
            .real
            .iter()
            .zip(&g)
            .map(|(&(i, _), gi)| -gi * u[i] * (1.0 - u[i]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Scale;
    use crate::test_functions;

    fn branin_space() -> SearchSpace {
        SearchSpace::new()
            .real("x1", -5.0, 10.0, Scale::Linear)
            .unwrap()
            .real("x2", 0.0, 15.0, Scale::Linear)
            .unwrap()
    }

    fn branin(p: &Point) -> f64 {
        test_functions::branin(p.real("x1").unwrap_or(0.0), p.real("x2").unwrap_or(0.0))
    }

    #[test]
    fn params_are_checked() {
        assert!(Params::new().n_initial(1).check().is_err());
        assert!(Params::new().n_candidates(0).check().is_err());
        assert!(Params::new().noise_floor(-1.0).check().is_err());
        assert!(Params::new()
            .acquisition(Acquisition::ExpectedImprovement { xi: f64::NAN })
            .check()
            .is_err());
        assert!(Optimizer::new(SearchSpace::new(), Params::new().check().unwrap()).is_err());
    }

    #[test]
    fn minimize_finds_branin_basin() {
        // 20 evaluations, few candidates to keep the test fast: the best value must be far
        // below what the 8-point initial design alone reaches typically (Branin's global
        // minimum is 0.397887, mean over the box is about 54).
        let params = Params::new()
            .n_initial(8)
            .n_candidates(300)
            .check()
            .unwrap();
        let mut opt = Optimizer::new(branin_space(), params).unwrap();
        opt.run(branin, 20).unwrap();
        assert_eq!(opt.history().len(), 20);
        assert!(opt.pending().is_empty());
        let best = opt.best().unwrap().outcome.value().unwrap();
        assert!(best < 1.5, "best {best}");
        let report = opt.last_fit_report().unwrap();
        assert_eq!(report.starts, 2);
    }

    #[test]
    fn resumed_run_continues_identically() {
        let params = Params::new()
            .n_initial(5)
            .n_candidates(200)
            .seed(11)
            .check()
            .unwrap();
        let mut a = Optimizer::new(branin_space(), params).unwrap();
        a.run(branin, 8).unwrap();
        // Leave one point pending across the save, too.
        let pending = a.ask().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        a.save(&path).unwrap();
        let mut b = Optimizer::load(&path).unwrap();
        assert_eq!(b.pending(), a.pending());
        let v = branin(&pending);
        a.tell(pending.clone(), v).unwrap();
        b.tell(pending, v).unwrap();
        for _ in 0..4 {
            let (pa, pb) = (a.ask().unwrap(), b.ask().unwrap());
            assert_eq!(pa, pb);
            let v = branin(&pa);
            a.tell(pa, v).unwrap();
            b.tell(pb, v).unwrap();
        }
        assert_eq!(a.history(), b.history());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn saved_state_gets_the_umask_mode() {
        // tempfile's 0600 hid the state from other users; 0o666 less the umask is what
        // GDAL and `File::create` give (0644 with the usual umask 022).
        use std::os::unix::fs::PermissionsExt;
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let umask = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
            .unwrap();
        let params = Params::new().n_initial(2).seed(1).check().unwrap();
        let opt = Optimizer::new(branin_space(), params).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        opt.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask, "mode {mode:o}, umask {umask:o}");
    }

    #[test]
    fn same_seed_same_run_and_pending_points_differ() {
        let params = Params::new()
            .n_initial(4)
            .n_candidates(100)
            .seed(5)
            .check()
            .unwrap();
        let mut a = Optimizer::new(branin_space(), params.clone()).unwrap();
        let mut b = Optimizer::new(branin_space(), params).unwrap();
        a.run(branin, 6).unwrap();
        b.run(branin, 6).unwrap();
        assert_eq!(a.history(), b.history());
        // Two asks without tells: the constant liar makes them differ.
        let (p, q) = (a.ask().unwrap(), a.ask().unwrap());
        assert_ne!(p, q);
        assert_eq!(a.pending().len(), 2);
    }

    #[test]
    fn failures_are_recorded_and_avoided() {
        // The objective fails on the left half of the box (x1 < 2.5). The search must not
        // crash, must record the failures, and once the model is in charge most proposals
        // must land in the region that works.
        let objective = |p: &Point| -> std::result::Result<f64, String> {
            let x1 = p.real("x1").unwrap_or(0.0);
            if x1 < 2.5 {
                Err(format!("diverged at x1 = {x1}"))
            } else {
                Ok(branin(p))
            }
        };
        let params = Params::new()
            .n_initial(6)
            .n_candidates(200)
            .seed(2)
            .check()
            .unwrap();
        let mut opt = Optimizer::new(branin_space(), params).unwrap();
        opt.run(objective, 18).unwrap();
        let failures = opt
            .history()
            .iter()
            .filter(|t| t.outcome.value().is_none())
            .count();
        assert!(failures >= 1);
        let late_failures = opt.history()[6..]
            .iter()
            .filter(|t| t.outcome.value().is_none())
            .count();
        assert!(
            late_failures <= 4,
            "{late_failures} of 12 model-driven points failed"
        );
        // NaN is a failure too.
        opt.tell(opt.history()[0].point.clone(), f64::NAN).unwrap();
        assert!(matches!(
            opt.history().last().unwrap().outcome,
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn lower_confidence_bound_also_descends() {
        // Same budget as `minimize_finds_branin_basin`, with the LCB acquisition.
        let params = Params::new()
            .n_initial(8)
            .n_candidates(300)
            .acquisition(Acquisition::LowerConfidenceBound { kappa: 1.96 })
            .check()
            .unwrap();
        let mut opt = Optimizer::new(branin_space(), params).unwrap();
        opt.run(branin, 20).unwrap();
        let design_best = opt.history()[..8]
            .iter()
            .filter_map(|t| t.outcome.value())
            .fold(f64::INFINITY, f64::min);
        let best = opt.best().unwrap().outcome.value().unwrap();
        assert!(
            best < design_best && best < 3.0,
            "best {best}, design {design_best}"
        );
    }

    #[test]
    fn mixed_space_asks_admissible_points() {
        let space = SearchSpace::amun_paper();
        let params = Params::new()
            .n_initial(5)
            .n_candidates(200)
            .check()
            .unwrap();
        let mut opt = Optimizer::new(space.clone(), params).unwrap();
        // A synthetic validation error: best with adam, lr ≈ 1e-3, about 100 epochs.
        let objective = |p: &Point| {
            let lr = p.real("learning_rate").unwrap_or(1.0).log10();
            let epochs = p.integer("epochs").unwrap_or(0) as f64;
            let solver = match p.category("solver") {
                Some("adam") => 0.0,
                Some("rmsprop") => 0.3,
                _ => 1.0,
            };
            (lr + 3.0).powi(2) + ((epochs - 100.0) / 50.0).powi(2) + solver
        };
        opt.run(objective, 14).unwrap();
        for t in opt.history() {
            space.validate(&t.point).unwrap();
        }
        let json = opt.to_json().unwrap();
        let back = Optimizer::from_json(&json).unwrap();
        assert_eq!(back.history(), opt.history());
        assert!(Optimizer::from_json("{\"space\": []}").is_err());
        // A point from another space is rejected.
        assert!(opt.tell(Point::new().with("x", 1.0), 1.0).is_err());
    }
}
