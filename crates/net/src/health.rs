//! Training health: per level of the network, how many weights have collapsed to (near)
//! zero and how large the gradients reaching them are.
//!
//! Checkpoints trained with Adam and a coupled L2 term lost their deepest U-Net levels: the
//! bridge's weights went to subnormal values (87 % of them) while the loss still fell, carried
//! by the shallow modules (`docs/design.md` §4.8). Nothing in the loss curve shows it. The
//! trainer therefore measures each level after every epoch, keeps the last measurement in the
//! checkpoint, and the CLI warns when a level has collapsed.

use candle_core::backprop::GradStore;
use candle_core::{DType, Var};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A weight whose magnitude is below this counts as collapsed. Initial weights are of order
/// `1/√fan_in` (≥ 0.01 for every layer of the paper's network), so a weight 10⁶ times
/// smaller carries nothing; subnormal floats (< 1.2·10⁻³⁸) are far below it.
pub const NEAR_ZERO: f32 = 1e-8;

/// The share of near-zero weights at or above which a level counts as collapsed.
pub const COLLAPSED_SHARE: f64 = 0.5;

/// One level of the network after an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelHealth {
    /// The level: `unet.enc.3`, `unet.bridge`, `unet.dec.0`, `unet.out`, or a top module
    /// (`shallow`, `gmfca`, `ffrdb`, …).
    pub level: String,
    /// Weights (parameters of rank ≥ 2, i.e. not biases) in the level.
    pub weights: usize,
    /// Share of them with `|w| <` [`NEAR_ZERO`].
    pub near_zero: f64,
    /// Largest `|w|`.
    pub max_abs: f64,
    /// Root mean square of the loss gradient over the level's weights, averaged over the
    /// epoch's batches (`NaN` when no gradient was recorded).
    pub grad_rms: f64,
}

impl LevelHealth {
    /// Whether the level has collapsed: at least [`COLLAPSED_SHARE`] of its weights near
    /// zero, or none of them above 10⁻⁶.
    pub fn collapsed(&self) -> bool {
        self.near_zero >= COLLAPSED_SHARE || self.max_abs < 1e-6
    }
}

/// The level a variable belongs to: three name components under `unet` (`unet.enc.3.conv1.weight`
/// → `unet.enc.3`, `unet.bridge.conv1.weight` → `unet.bridge.conv1`… → `unet.bridge`), the
/// first component otherwise.
pub fn level_of(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        ["unet", kind @ ("enc" | "dec"), idx, ..] => format!("unet.{kind}.{idx}"),
        ["unet", part, ..] => format!("unet.{part}"),
        [first, ..] => (*first).to_string(),
        [] => String::new(),
    }
}

/// Gradient statistics gathered batch by batch over an epoch.
#[derive(Debug, Default)]
pub(crate) struct GradTally {
    /// Per variable index: sum over batches of the mean squared gradient.
    sums: Vec<f64>,
    batches: usize,
}

impl GradTally {
    /// Adds one batch's gradients of `vars` (rank ≥ 2 only; others are skipped).
    pub(crate) fn add(&mut self, vars: &[(String, Var)], grads: &GradStore) -> Result<()> {
        if self.sums.len() != vars.len() {
            self.sums = vec![0.0; vars.len()];
        }
        for (i, (_, v)) in vars.iter().enumerate() {
            if v.rank() < 2 {
                continue;
            }
            if let Some(g) = grads.get(v.as_tensor()) {
                let ms = g
                    .sqr()?
                    .mean_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?;
                self.sums[i] += ms;
            }
        }
        self.batches += 1;
        Ok(())
    }
}

/// Measures every level of `vars` (sorted by name), with the epoch's gradients from `tally`.
///
/// # Errors
/// Tensor errors while reading the weights.
pub(crate) fn measure(vars: &[(String, Var)], tally: &GradTally) -> Result<Vec<LevelHealth>> {
    let mut out: Vec<LevelHealth> = Vec::new();
    let mut grad_sq: Vec<(f64, usize)> = Vec::new();
    for (i, (name, v)) in vars.iter().enumerate() {
        if v.rank() < 2 {
            continue;
        }
        let w: Vec<f32> = v
            .as_tensor()
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1()?;
        let level = level_of(name);
        let idx = match out.iter().position(|h| h.level == level) {
            Some(j) => j,
            None => {
                out.push(LevelHealth {
                    level,
                    weights: 0,
                    near_zero: 0.0,
                    max_abs: 0.0,
                    grad_rms: f64::NAN,
                });
                grad_sq.push((0.0, 0));
                out.len() - 1
            }
        };
        let h = &mut out[idx];
        let zeros = w.iter().filter(|x| x.abs() < NEAR_ZERO).count();
        // `near_zero` holds a count until the division below.
        h.near_zero += zeros as f64;
        h.weights += w.len();
        h.max_abs = w.iter().fold(h.max_abs, |m, x| m.max(f64::from(x.abs())));
        if tally.batches > 0 {
            if let Some(s) = tally.sums.get(i) {
                let (sq, n) = &mut grad_sq[idx];
                *sq += s / tally.batches as f64 * w.len() as f64;
                *n += w.len();
            }
        }
    }
    for (h, (sq, n)) in out.iter_mut().zip(grad_sq) {
        h.near_zero /= h.weights.max(1) as f64;
        if n > 0 {
            h.grad_rms = (sq / n as f64).sqrt();
        }
    }
    Ok(out)
}

/// The collapsed levels of a measurement, as `unet.bridge (87 % near zero, max |w| 1.2e-5)`.
pub fn collapsed_levels(health: &[LevelHealth]) -> Vec<String> {
    health
        .iter()
        .filter(|h| h.collapsed())
        .map(|h| {
            format!(
                "{} ({:.0} % near zero, max |w| {:.1e})",
                h.level,
                100.0 * h.near_zero,
                h.max_abs
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn levels_group_the_unet_by_depth_and_the_rest_by_module() {
        assert_eq!(level_of("unet.enc.3.conv1.weight"), "unet.enc.3");
        assert_eq!(level_of("unet.dec.0.up.weight"), "unet.dec.0");
        assert_eq!(level_of("unet.bridge.conv2.weight"), "unet.bridge");
        assert_eq!(level_of("unet.out.weight"), "unet.out");
        assert_eq!(level_of("gmfca.cwe_a.3.weight"), "gmfca");
        assert_eq!(level_of("shallow.lst.weight"), "shallow");
    }

    /// Counts by hand: a level of 8 weights with 5 below 1e-8 (one subnormal, one exact zero)
    /// has collapsed; a healthy level next to it has not; biases are not counted; the gradient
    /// RMS is the weights' mean over two batches.
    #[test]
    fn measure_counts_near_zero_weights_and_gradients() {
        let dev = Device::Cpu;
        let dead = Var::from_vec(
            vec![0.0f32, 1e-40, 1e-9, -1e-9, 5e-9, 0.01, -0.02, 0.03],
            (2, 4),
            &dev,
        )
        .unwrap();
        let live = Var::from_vec(vec![0.1f32, -0.2, 0.3, 0.4], (2, 2), &dev).unwrap();
        let bias = Var::from_vec(vec![0.0f32; 3], 3, &dev).unwrap();
        let vars = vec![
            ("unet.bridge.conv1.weight".to_string(), dead.clone()),
            ("unet.bridge.conv1.bias".to_string(), bias.clone()),
            ("unet.enc.0.conv1.weight".to_string(), live.clone()),
        ];
        let mut tally = GradTally::default();
        for scale in [1.0f64, 3.0] {
            // Loss scale·Σ live: gradient `scale` on every live weight, none on the dead.
            let loss = (live.as_tensor().sum_all().unwrap() * scale).unwrap();
            let grads = loss.backward().unwrap();
            tally.add(&vars, &grads).unwrap();
        }
        let h = measure(&vars, &tally).unwrap();
        assert_eq!(h.len(), 2, "{h:?}");
        let bridge = &h[0];
        assert_eq!((bridge.level.as_str(), bridge.weights), ("unet.bridge", 8));
        assert!((bridge.near_zero - 5.0 / 8.0).abs() < 1e-12, "{bridge:?}");
        assert!((bridge.max_abs - 0.03).abs() < 1e-6);
        assert!(bridge.collapsed());
        let enc = &h[1];
        assert!(!enc.collapsed() && enc.near_zero == 0.0, "{enc:?}");
        // Mean squared gradient per batch: 1 and 9, averaged 5: RMS √5.
        assert!((enc.grad_rms - 5f64.sqrt()).abs() < 1e-6, "{enc:?}");
        assert_eq!(collapsed_levels(&h).len(), 1);
        assert!(collapsed_levels(&h)[0].starts_with("unet.bridge (62 % near zero"));
        // The loss does not reach the dead level: a zero gradient.
        assert!(bridge.grad_rms.abs() < 1e-12, "{bridge:?}");
    }
}
