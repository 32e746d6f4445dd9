//! Optimisers: SGD with momentum, Adam and RMSprop with L2 regularisation, and AdamW.
//!
//! candle-nn 0.11 has plain SGD and AdamW only. [`Optim`] implements
//! [`candle_nn::Optimizer`] for the three solvers of the paper's Bayesian search, with
//! coupled L2 regularisation (`g ← g + λ·w`, as MATLAB's `L2Regularization` and PyTorch's
//! `weight_decay` do) applied to weights (rank ≥ 2) but not biases, and for AdamW
//! (Loshchilov & Hutter), whose weight decay is decoupled from the gradient
//! (`w ← w − lr·λ·w` next to the Adam step). Its state (moment buffers, step count) can be
//! exported and restored, so training resumes exactly.
//!
//! # Why AdamW
//! Under Adam, a coupled L2 term is divided by the gradient's running RMS like the rest of the
//! gradient. For a weight whose loss gradient is small (a deep level that learns slowly), the
//! update is then about `lr·sign(w)` whatever λ is: the weight shrinks by the learning rate
//! every step and reaches zero, then subnormal values, in a few hundred steps. That is how the
//! deep U-Net levels of checkpoints trained with Adam and L2 died (`docs/design.md` §4.8).
//! AdamW's decay shrinks a weight by the factor `1 − lr·λ` per step, independent of the
//! gradient's scale, so a slow level keeps its weights.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A solver and its hyperparameters (the learning rate and L2 strength are separate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Solver {
    /// SGD with momentum: `b ← μ·b + g`, `w ← w − lr·b` (MATLAB's `sgdm`, PyTorch's `SGD`).
    Sgdm {
        /// Momentum μ (MATLAB default 0.9).
        momentum: f64,
    },
    /// Adam with bias correction (Kingma & Ba): `m ← β₁m + (1−β₁)g`,
    /// `v ← β₂v + (1−β₂)g²`, `w ← w − lr·m̂/(√v̂ + ε)`.
    Adam {
        /// β₁ (default 0.9).
        beta1: f64,
        /// β₂ (default 0.999).
        beta2: f64,
        /// ε (default 1e-8).
        eps: f64,
    },
    /// AdamW: the Adam step on the loss gradient alone, and the weight decay λ (the
    /// configuration's `l2`) decoupled from it: `w ← w − lr·(m̂/(√v̂ + ε) + λ·w)`
    /// (Loshchilov & Hutter, PyTorch's `AdamW`).
    #[serde(rename = "adamw")]
    AdamW {
        /// β₁ (default 0.9).
        beta1: f64,
        /// β₂ (default 0.999).
        beta2: f64,
        /// ε (default 1e-8).
        eps: f64,
    },
    /// RMSprop: `v ← α·v + (1−α)·g²`, `w ← w − lr·g/(√v + ε)` (MATLAB's `rmsprop` with
    /// `SquaredGradientDecayFactor` α).
    RmsProp {
        /// Squared-gradient decay α (MATLAB default 0.9).
        alpha: f64,
        /// ε (MATLAB default 1e-8).
        eps: f64,
    },
}

impl Solver {
    /// SGD with momentum 0.9.
    pub const SGDM: Solver = Solver::Sgdm { momentum: 0.9 };
    /// Adam with β = (0.9, 0.999), ε = 1e-8.
    pub const ADAM: Solver = Solver::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    /// AdamW with β = (0.9, 0.999), ε = 1e-8.
    pub const ADAMW: Solver = Solver::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    /// RMSprop with α = 0.9, ε = 1e-8 (the paper's solver, MATLAB's defaults).
    pub const RMSPROP: Solver = Solver::RmsProp {
        alpha: 0.9,
        eps: 1e-8,
    };

    /// A short name (`sgdm`, `adam`, `adamw`, `rmsprop`).
    pub fn name(&self) -> &'static str {
        match self {
            Solver::Sgdm { .. } => "sgdm",
            Solver::Adam { .. } => "adam",
            Solver::AdamW { .. } => "adamw",
            Solver::RmsProp { .. } => "rmsprop",
        }
    }

    /// Checks the hyperparameters.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a decay outside `[0, 1)` or a non-positive ε.
    pub fn validate(&self) -> Result<()> {
        let in01 = |v: f64| (0.0..1.0).contains(&v);
        let ok = match *self {
            Solver::Sgdm { momentum } => in01(momentum),
            Solver::Adam { beta1, beta2, eps } | Solver::AdamW { beta1, beta2, eps } => {
                in01(beta1) && in01(beta2) && eps > 0.0
            }
            Solver::RmsProp { alpha, eps } => in01(alpha) && eps > 0.0,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::config(
                "solver",
                format!("{self:?}: decays must lie in [0, 1) and ε be positive"),
            ))
        }
    }

    /// Names of the per-variable state buffers.
    fn buffers(&self) -> &'static [&'static str] {
        match self {
            Solver::Sgdm { .. } => &["momentum"],
            Solver::Adam { .. } | Solver::AdamW { .. } => &["m", "v"],
            Solver::RmsProp { .. } => &["square_avg"],
        }
    }
}

/// Configuration of an [`Optim`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// The solver.
    pub solver: Solver,
    /// Learning rate.
    pub learning_rate: f64,
    /// L2 regularisation strength λ: the gradient term `λ·w` on weights, or for
    /// [`Solver::AdamW`] the decoupled decay `lr·λ·w`.
    pub l2: f64,
}

struct Param {
    name: String,
    var: Var,
    decay: bool,
    state: Vec<Option<Tensor>>,
}

/// SGD-with-momentum, Adam or RMSprop over a set of variables.
pub struct Optim {
    cfg: OptimConfig,
    params: Vec<Param>,
    step: u64,
}

impl Optim {
    /// An optimiser over named variables (names key the exported state).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for bad hyperparameters.
    pub fn with_names(vars: Vec<(String, Var)>, cfg: OptimConfig) -> Result<Self> {
        cfg.solver.validate()?;
        if !(cfg.learning_rate > 0.0 && cfg.learning_rate.is_finite()) {
            return Err(Error::config(
                "learning_rate",
                format!("must be positive, got {}", cfg.learning_rate),
            ));
        }
        if !(cfg.l2 >= 0.0 && cfg.l2.is_finite()) {
            return Err(Error::config("l2", format!("must be ≥ 0, got {}", cfg.l2)));
        }
        let n_buf = cfg.solver.buffers().len();
        let params = vars
            .into_iter()
            .map(|(name, var)| Param {
                decay: var.rank() >= 2,
                name,
                var,
                state: vec![None; n_buf],
            })
            .collect();
        Ok(Self {
            cfg,
            params,
            step: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimConfig {
        &self.cfg
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The state buffers as `("{var}.{buffer}", tensor)` pairs, plus the step count.
    pub fn state(&self) -> (Vec<(String, Tensor)>, u64) {
        let names = self.cfg.solver.buffers();
        let mut out = Vec::new();
        for p in &self.params {
            for (b, t) in names.iter().zip(&p.state) {
                if let Some(t) = t {
                    out.push((format!("{}.{b}", p.name), t.clone()));
                }
            }
        }
        (out, self.step)
    }

    /// Restores buffers exported by [`Optim::state`].
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a buffer's shape differs from its variable's.
    pub fn set_state(&mut self, state: &[(String, Tensor)], step: u64) -> Result<()> {
        let names = self.cfg.solver.buffers();
        for p in &mut self.params {
            for (b, slot) in names.iter().zip(p.state.iter_mut()) {
                let key = format!("{}.{b}", p.name);
                if let Some((_, t)) = state.iter().find(|(k, _)| *k == key) {
                    if t.shape() != p.var.shape() {
                        return Err(Error::ShapeMismatch {
                            what: "optimiser state",
                            expected: format!("{key} {:?}", p.var.shape()),
                            got: format!("{:?}", t.shape()),
                        });
                    }
                    *slot = Some(t.to_device(p.var.device())?);
                }
            }
        }
        self.step = step;
        Ok(())
    }

    fn update(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.step += 1;
        let lr = self.cfg.learning_rate;
        let t = self.step as i32;
        for p in &mut self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let w = p.var.as_tensor().detach();
            // candle leaves a variable's gradient attached to the forward graph (its
            // backward of conv2d builds the weight gradient from the layer input, and it
            // detaches only the gradients of intermediate nodes). The optimiser state
            // derived from it would then keep every step's graph alive: detach first.
            let g = g.detach();
            let decoupled = matches!(self.cfg.solver, Solver::AdamW { .. });
            let g = if p.decay && self.cfg.l2 > 0.0 && !decoupled {
                (g + w.affine(self.cfg.l2, 0.0)?)?
            } else {
                g
            };
            let new_w = match self.cfg.solver {
                Solver::Sgdm { momentum } => {
                    let b = match &p.state[0] {
                        Some(b) => ((b * momentum)? + &g)?,
                        None => g,
                    };
                    let nw = (&w - b.affine(lr, 0.0)?)?;
                    p.state[0] = Some(b);
                    nw
                }
                Solver::Adam { beta1, beta2, eps } | Solver::AdamW { beta1, beta2, eps } => {
                    let m = match &p.state[0] {
                        Some(m) => ((m * beta1)? + g.affine(1.0 - beta1, 0.0)?)?,
                        None => g.affine(1.0 - beta1, 0.0)?,
                    };
                    let v = match &p.state[1] {
                        Some(v) => ((v * beta2)? + g.sqr()?.affine(1.0 - beta2, 0.0)?)?,
                        None => g.sqr()?.affine(1.0 - beta2, 0.0)?,
                    };
                    let m_hat = m.affine(1.0 / (1.0 - beta1.powi(t)), 0.0)?;
                    let v_hat = v.affine(1.0 / (1.0 - beta2.powi(t)), 0.0)?;
                    let step = (m_hat / (v_hat.sqrt()? + eps)?)?;
                    let step = if decoupled && p.decay && self.cfg.l2 > 0.0 {
                        (step + w.affine(self.cfg.l2, 0.0)?)?
                    } else {
                        step
                    };
                    let nw = (&w - step.affine(lr, 0.0)?)?;
                    p.state[0] = Some(m);
                    p.state[1] = Some(v);
                    nw
                }
                Solver::RmsProp { alpha, eps } => {
                    let v = match &p.state[0] {
                        Some(v) => ((v * alpha)? + g.sqr()?.affine(1.0 - alpha, 0.0)?)?,
                        None => g.sqr()?.affine(1.0 - alpha, 0.0)?,
                    };
                    let step = (&g / (v.sqrt()? + eps)?)?;
                    let nw = (&w - step.affine(lr, 0.0)?)?;
                    p.state[0] = Some(v);
                    nw
                }
            };
            p.var.set(&new_w)?;
        }
        Ok(())
    }
}

impl candle_nn::Optimizer for Optim {
    type Config = OptimConfig;

    fn new(vars: Vec<Var>, config: OptimConfig) -> candle_core::Result<Self> {
        let named = vars
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("param{i}"), v))
            .collect();
        Optim::with_names(named, config).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.update(grads)
    }

    fn learning_rate(&self) -> f64 {
        self.cfg.learning_rate
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.learning_rate = lr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
    use candle_nn::Optimizer;

    fn vals(v: &Var) -> Vec<f64> {
        v.as_tensor().to_vec1::<f64>().unwrap()
    }

    /// Loss ½·Σ (w − c)² has gradient w − c; two RMSprop steps are checked against the
    /// update rule computed by hand in f64 (MATLAB/PyTorch formula in the module docs).
    #[test]
    fn rmsprop_matches_the_formula_and_gradient() {
        let dev = Device::Cpu;
        let w = Var::from_vec(vec![1.0f64, -2.0, 0.5], 3, &dev).unwrap();
        let c = Tensor::new(&[0.0f64, 1.0, 0.5], &dev).unwrap();
        let (lr, alpha, eps) = (0.01, 0.9, 1e-8);
        let cfg = OptimConfig {
            solver: Solver::RmsProp { alpha, eps },
            learning_rate: lr,
            l2: 0.0,
        };
        let mut opt = Optim::new(vec![w.clone()], cfg).unwrap();
        let mut want = vec![1.0f64, -2.0, 0.5];
        let cv = [0.0, 1.0, 0.5];
        let mut v = [0.0f64; 3];
        for _ in 0..2 {
            let loss = ((w.as_tensor() - &c)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                * 0.5)
                .unwrap();
            let grads = loss.backward().unwrap();
            // The autograd gradient is w − c (finite-difference free: the formula).
            let g: Vec<f64> = grads.get(w.as_tensor()).unwrap().to_vec1().unwrap();
            for i in 0..3 {
                assert!((g[i] - (want[i] - cv[i])).abs() < 1e-12);
            }
            opt.step(&grads).unwrap();
            for i in 0..3 {
                let gi = want[i] - cv[i];
                v[i] = alpha * v[i] + (1.0 - alpha) * gi * gi;
                want[i] -= lr * gi / (v[i].sqrt() + eps);
            }
            let got = vals(&w);
            for i in 0..3 {
                assert!((got[i] - want[i]).abs() < 1e-12, "{got:?} vs {want:?}");
            }
        }
    }

    /// L2 adds λ·w to the gradient of weights (rank ≥ 2) only: with the loss Σw + Σb (unit
    /// gradients), one plain SGD step gives w − lr·(1 + λw) and b − lr.
    #[test]
    fn l2_applies_to_weights_not_biases() {
        let dev = Device::Cpu;
        let w = Var::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], (2, 2), &dev).unwrap();
        let b = Var::from_vec(vec![1.0f64, 2.0], 2, &dev).unwrap();
        let cfg = OptimConfig {
            solver: Solver::Sgdm { momentum: 0.0 },
            learning_rate: 0.1,
            l2: 0.5,
        };
        let mut opt = Optim::new(vec![w.clone(), b.clone()], cfg).unwrap();
        let loss = (w.as_tensor().sum_all().unwrap() + b.as_tensor().sum_all().unwrap()).unwrap();
        opt.backward_step(&loss).unwrap();
        let got: Vec<Vec<f64>> = w.as_tensor().to_vec2().unwrap();
        assert!(
            (got[0][0] - 0.85).abs() < 1e-12 && (got[1][1] - 3.7).abs() < 1e-12,
            "{got:?}"
        );
        let gb = vals(&b);
        assert!(
            (gb[0] - 0.9).abs() < 1e-12 && (gb[1] - 1.9).abs() < 1e-12,
            "{gb:?}"
        );
    }

    /// AdamW's decay is decoupled: two steps on ½·Σ(w − c)² (a rank-2 weight, so it decays)
    /// against the formula by hand, `w ← w − lr·(m̂/(√v̂ + ε) + λ·w)` with m, v of the loss
    /// gradient alone.
    #[test]
    fn adamw_matches_the_formula() {
        let dev = Device::Cpu;
        let w0 = [1.0f64, -2.0, 0.5, 3.0];
        let cv = [0.0, 1.0, 0.5, 2.0];
        let w = Var::from_vec(w0.to_vec(), (2, 2), &dev).unwrap();
        let c = Tensor::from_vec(cv.to_vec(), (2, 2), &dev).unwrap();
        let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.999, 1e-8, 0.1);
        let cfg = OptimConfig {
            solver: Solver::AdamW {
                beta1: b1,
                beta2: b2,
                eps,
            },
            learning_rate: lr,
            l2: wd,
        };
        let mut opt = Optim::new(vec![w.clone()], cfg).unwrap();
        let (mut want, mut m, mut v) = (w0, [0.0f64; 4], [0.0f64; 4]);
        for t in 1..=2 {
            let loss = ((w.as_tensor() - &c)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                * 0.5)
                .unwrap();
            opt.backward_step(&loss).unwrap();
            for i in 0..4 {
                let g = want[i] - cv[i];
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let mh = m[i] / (1.0 - b1.powi(t));
                let vh = v[i] / (1.0 - b2.powi(t));
                want[i] -= lr * (mh / (vh.sqrt() + eps) + wd * want[i]);
            }
            let got: Vec<f64> = w.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            for i in 0..4 {
                assert!((got[i] - want[i]).abs() < 1e-12, "{got:?} vs {want:?}");
            }
        }
    }

    /// The mechanism that killed the deep U-Net levels: a weight with a small loss gradient
    /// under Adam with coupled L2 moves by about `lr` per step towards zero, whatever λ is,
    /// and is gone after `|w|/lr` steps; AdamW's decay shrinks it by `1 − lr·λ` per step. The
    /// loss gradient here is a zero-mean ±10⁻⁶ alternation, far below λ·w = 10⁻⁵.
    #[test]
    fn coupled_l2_under_adam_kills_a_slow_weight_and_adamw_does_not() {
        let dev = Device::Cpu;
        let run = |solver: Solver| -> f64 {
            let w = Var::from_vec(vec![0.1f64; 4], (2, 2), &dev).unwrap();
            let cfg = OptimConfig {
                solver,
                learning_rate: 1e-3,
                l2: 1e-4,
            };
            let mut opt = Optim::new(vec![w.clone()], cfg).unwrap();
            for step in 0..300 {
                let sign = if step % 2 == 0 { 1e-6 } else { -1e-6 };
                let loss = (w.as_tensor().sum_all().unwrap() * sign).unwrap();
                opt.backward_step(&loss).unwrap();
            }
            let got: Vec<f64> = w.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            got.iter().fold(0.0f64, |a, v| a.max(v.abs()))
        };
        let adam = run(Solver::ADAM);
        let adamw = run(Solver::ADAMW);
        // 300 steps of about lr = 1e-3 each from 0.1: Adam has driven it to (near) zero.
        assert!(adam < 0.01, "Adam with coupled L2 kept |w| = {adam}");
        // AdamW: 0.1·(1 − 1e-7)^300 plus the Adam steps of a zero-mean gradient.
        assert!(adamw > 0.09, "AdamW lost the weight: |w| = {adamw}");
    }

    /// The optimiser state never holds a training step's graph. candle's conv2d backward
    /// gives the weight a gradient attached to the forward graph; keeping it in the moment
    /// buffers made every step's activations live forever (hundreds of MB per batch).
    #[test]
    fn state_is_detached_from_the_graph() {
        let dev = Device::Cpu;
        let w = Var::from_vec(vec![0.1f32; 2 * 2 * 3 * 3], (2, 2, 3, 3), &dev).unwrap();
        let a = Var::from_vec(vec![0.5f32; 2 * 4 * 4], (1, 2, 4, 4), &dev).unwrap();
        for solver in [
            Solver::ADAM,
            Solver::ADAMW,
            Solver::RMSPROP,
            Solver::Sgdm { momentum: 0.9 },
        ] {
            let cfg = OptimConfig {
                solver,
                learning_rate: 1e-2,
                l2: 1e-4,
            };
            let mut opt = Optim::new(vec![w.clone(), a.clone()], cfg).unwrap();
            for _ in 0..2 {
                // The conv input is an intermediate node, as inside the network.
                let x = a.as_tensor().sqr().unwrap();
                let y = x.conv2d(w.as_tensor(), 1, 1, 1, 1).unwrap();
                opt.backward_step(&y.sqr().unwrap().sum_all().unwrap())
                    .unwrap();
            }
            for p in &opt.params {
                for t in p.state.iter().flatten() {
                    assert!(!t.track_op(), "{solver:?}: optimiser state tracks a graph");
                }
            }
        }
    }

    /// All three solvers minimise a quadratic; Adam's first step has size lr per coordinate
    /// (bias-corrected m̂/√v̂ = sign(g)).
    #[test]
    fn solvers_descend_and_adam_first_step() {
        let dev = Device::Cpu;
        for solver in [Solver::SGDM, Solver::ADAM, Solver::RMSPROP] {
            let w = Var::from_vec(vec![3.0f64, -4.0], 2, &dev).unwrap();
            let cfg = OptimConfig {
                solver,
                learning_rate: 0.05,
                l2: 0.0,
            };
            let mut opt = Optim::new(vec![w.clone()], cfg).unwrap();
            for i in 0..300 {
                let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
                opt.backward_step(&loss).unwrap();
                if i == 0 && matches!(solver, Solver::Adam { .. }) {
                    let v = vals(&w);
                    assert!((v[0] - 2.95).abs() < 1e-6 && (v[1] + 3.95).abs() < 1e-6);
                }
            }
            let v = vals(&w);
            assert!(v[0].abs() < 0.2 && v[1].abs() < 0.2, "{solver:?}: {v:?}");
        }
    }

    #[test]
    fn state_round_trip_resumes_identically() {
        let dev = Device::Cpu;
        let run = |split: bool| {
            let w = Var::from_vec(vec![3.0f64, -4.0], 2, &dev).unwrap();
            let cfg = OptimConfig {
                solver: Solver::ADAM,
                learning_rate: 0.1,
                l2: 0.0,
            };
            let mut opt = Optim::with_names(vec![("w".into(), w.clone())], cfg).unwrap();
            for i in 0..6 {
                if split && i == 3 {
                    let (state, step) = opt.state();
                    assert_eq!(state.len(), 2);
                    opt = Optim::with_names(vec![("w".into(), w.clone())], cfg).unwrap();
                    opt.set_state(&state, step).unwrap();
                }
                let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
                opt.backward_step(&loss).unwrap();
            }
            vals(&w)
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn bad_hyperparameters_are_refused() {
        let dev = Device::Cpu;
        let w = Var::from_vec(vec![0.0f32], 1, &dev).unwrap();
        let cfg = OptimConfig {
            solver: Solver::RmsProp {
                alpha: 1.5,
                eps: 1e-8,
            },
            learning_rate: 0.1,
            l2: 0.0,
        };
        assert!(Optim::new(vec![w.clone()], cfg).is_err());
        let cfg = OptimConfig {
            solver: Solver::ADAM,
            learning_rate: -1.0,
            l2: 0.0,
        };
        assert!(Optim::new(vec![w], cfg).is_err());
    }
}
