//! The metrics table and its numerically stable accumulator.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Agreement between a prediction and a reference over the pixels (or points) valid in both.
///
/// All statistics are accumulated in `f64` with Welford/Chan updates (no cancellation for
/// temperatures around 300 K). Differences are `prediction − reference`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Root-mean-square error, in the unit of the data (K for LST).
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Mean error (prediction − reference): positive when the prediction is too warm.
    pub bias: f64,
    /// Coefficient of determination `1 − SS_res / SS_tot` (`SS_tot` about the reference
    /// mean), as scikit-learn's `r2_score(reference, prediction)`; `None` when the reference
    /// is constant.
    pub r2: Option<f64>,
    /// Pearson correlation coefficient; `None` when either side is constant.
    pub pearson_r: Option<f64>,
    /// Mean structural similarity (Wang et al. 2004; see [`crate::ssim_map`]); `None` for
    /// points, or when no pixel has a complete 11 × 11 window.
    pub ssim: Option<f64>,
    /// Number of pixels (or points) scored.
    pub n: usize,
}

impl Metrics {
    /// Metrics of paired values (`prediction[i]` against `reference[i]`); pairs where either
    /// value is `NaN` are skipped. `ssim` is `None`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if the slices differ in length; [`Error::NothingToScore`]
    /// if no pair is valid.
    pub fn from_pairs(prediction: &[f64], reference: &[f64]) -> Result<Metrics> {
        if prediction.len() != reference.len() {
            return Err(Error::LengthMismatch {
                what: "reference",
                expected: prediction.len(),
                got: reference.len(),
            });
        }
        let mut acc = Accumulator::default();
        for (&p, &r) in prediction.iter().zip(reference) {
            acc.push(p, r);
        }
        acc.finish(None)
            .ok_or(Error::NothingToScore { what: "value" })
    }
}

/// Running sums for [`Metrics`]: push pairs one at a time or merge partial accumulators.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Accumulator {
    n: usize,
    mean_p: f64,
    mean_r: f64,
    /// Σ (p − p̄)².
    m2_p: f64,
    /// Σ (r − r̄)².
    m2_r: f64,
    /// Σ (p − p̄)(r − r̄).
    c_pr: f64,
    sum_d: f64,
    sum_d2: f64,
    sum_abs: f64,
}

impl Accumulator {
    /// Adds one pair; pairs with a `NaN` (or infinite) side are ignored.
    pub(crate) fn push(&mut self, p: f64, r: f64) {
        if !p.is_finite() || !r.is_finite() {
            return;
        }
        self.n += 1;
        let n = self.n as f64;
        let dp = p - self.mean_p;
        self.mean_p += dp / n;
        let dr = r - self.mean_r;
        self.mean_r += dr / n;
        self.m2_p += dp * (p - self.mean_p);
        self.m2_r += dr * (r - self.mean_r);
        self.c_pr += dp * (r - self.mean_r);
        let d = p - r;
        self.sum_d += d;
        self.sum_d2 += d * d;
        self.sum_abs += d.abs();
    }

    /// Combines two accumulators (Chan et al. 1979 pairwise update).
    pub(crate) fn merge(&mut self, other: &Accumulator) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let dp = other.mean_p - self.mean_p;
        let dr = other.mean_r - self.mean_r;
        self.mean_p += dp * nb / n;
        self.mean_r += dr * nb / n;
        self.m2_p += other.m2_p + dp * dp * na * nb / n;
        self.m2_r += other.m2_r + dr * dr * na * nb / n;
        self.c_pr += other.c_pr + dp * dr * na * nb / n;
        self.n += other.n;
        self.sum_d += other.sum_d;
        self.sum_d2 += other.sum_d2;
        self.sum_abs += other.sum_abs;
    }

    /// Number of pairs pushed.
    pub(crate) fn count(&self) -> usize {
        self.n
    }

    /// The metrics, or `None` if nothing was pushed.
    pub(crate) fn finish(&self, ssim: Option<f64>) -> Option<Metrics> {
        if self.n == 0 {
            return None;
        }
        let n = self.n as f64;
        let r2 = (self.m2_r > 0.0).then(|| 1.0 - self.sum_d2 / self.m2_r);
        let pearson_r = (self.m2_r > 0.0 && self.m2_p > 0.0)
            .then(|| (self.c_pr / (self.m2_p * self.m2_r).sqrt()).clamp(-1.0, 1.0));
        Some(Metrics {
            rmse: (self.sum_d2 / n).sqrt(),
            mae: self.sum_abs / n,
            bias: self.sum_d / n,
            r2,
            pearson_r,
            ssim,
            n: self.n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_pairs() {
        // p = [1, 2, 3, 4], r = [1, 3, 2, 5]; d = [0, -1, 1, -1].
        // RMSE = sqrt(3/4); MAE = 3/4; bias = -1/4.
        // r̄ = 2.75, SS_tot = 3.0625 + 0.0625 + 0.5625 + 5.0625 = 8.75, SS_res = 3,
        // R² = 1 - 3/8.75. Pearson: Σ(p-2.5)(r-2.75) = 2.625 - 0.125 - 0.375 + 3.375 = 5.5,
        // Σ(p-2.5)² = 5 -> r = 5.5 / sqrt(5 · 8.75).
        let m = Metrics::from_pairs(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 5.0]).unwrap();
        assert!((m.rmse - 0.75f64.sqrt()).abs() < 1e-12);
        assert!((m.mae - 0.75).abs() < 1e-12);
        assert!((m.bias + 0.25).abs() < 1e-12);
        assert!((m.r2.unwrap() - (1.0 - 3.0 / 8.75)).abs() < 1e-12);
        assert!((m.pearson_r.unwrap() - 5.5 / (5.0f64 * 8.75).sqrt()).abs() < 1e-12);
        assert_eq!((m.n, m.ssim), (4, None));
    }

    #[test]
    fn nan_pairs_are_skipped_and_constant_reference_has_no_r2() {
        let m = Metrics::from_pairs(&[1.0, f64::NAN, 3.0], &[2.0, 2.0, 2.0]).unwrap();
        assert_eq!(m.n, 2);
        assert_eq!(m.r2, None);
        assert_eq!(m.pearson_r, None);
        assert!((m.rmse - 1.0).abs() < 1e-12);
        assert!(matches!(
            Metrics::from_pairs(&[f64::NAN], &[1.0]),
            Err(Error::NothingToScore { .. })
        ));
        assert!(matches!(
            Metrics::from_pairs(&[1.0], &[1.0, 2.0]),
            Err(Error::LengthMismatch { .. })
        ));
    }

    #[test]
    fn merge_equals_one_pass_and_survives_large_offsets() {
        // Temperatures near 300 K with small spread: the two-pass formula is the reference.
        let p: Vec<f64> = (0..1000)
            .map(|i| 300.0 + ((i * 37) % 101) as f64 * 1e-3)
            .collect();
        let r: Vec<f64> = (0..1000)
            .map(|i| 300.0 + ((i * 53) % 97) as f64 * 1e-3)
            .collect();
        let mut a = Accumulator::default();
        let mut b = Accumulator::default();
        let mut all = Accumulator::default();
        for (i, (&x, &y)) in p.iter().zip(&r).enumerate() {
            all.push(x, y);
            if i < 300 {
                a.push(x, y)
            } else {
                b.push(x, y)
            }
        }
        a.merge(&b);
        let (m1, m2) = (a.finish(None).unwrap(), all.finish(None).unwrap());
        let rbar = r.iter().sum::<f64>() / 1000.0;
        let ss_tot: f64 = r.iter().map(|v| (v - rbar).powi(2)).sum();
        let ss_res: f64 = p.iter().zip(&r).map(|(x, y)| (x - y).powi(2)).sum();
        let want = 1.0 - ss_res / ss_tot;
        assert!(
            (m1.r2.unwrap() - want).abs() < 1e-9,
            "{} vs {want}",
            m1.r2.unwrap()
        );
        assert!((m2.r2.unwrap() - want).abs() < 1e-9);
        assert!((m1.pearson_r.unwrap() - m2.pearson_r.unwrap()).abs() < 1e-9);
    }
}
