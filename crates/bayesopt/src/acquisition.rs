//! Acquisition functions (for minimisation) and the normal-distribution helpers they need.

use serde::{Deserialize, Serialize};

/// How the next point is chosen from the surrogate's posterior (minimisation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Acquisition {
    /// Expected improvement over the best observed value, maximised in the numerically
    /// stable log form (Ament et al. 2023, "Unexpected improvements to expected improvement").
    ExpectedImprovement {
        /// Improvement margin ξ, in units of the standardised objective (`0.01` by default).
        xi: f64,
    },
    /// Lower confidence bound `μ − κσ`, minimised.
    LowerConfidenceBound {
        /// Exploration weight κ (`1.96` is a common choice).
        kappa: f64,
    },
}

impl Default for Acquisition {
    fn default() -> Self {
        Acquisition::ExpectedImprovement { xi: 0.0 }
    }
}

const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;
const SQRT_HALF_PI: f64 = 1.253_314_137_315_500_3;

/// Standard normal density φ(z).
pub fn normal_pdf(z: f64) -> f64 {
    INV_SQRT_2PI * (-0.5 * z * z).exp()
}

/// Standard normal distribution function Φ(z), accurate in the far left tail.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// Expected improvement below `best` of a normal `N(mean, std²)`, with margin `xi`:
/// `E[max(best − xi − Y, 0)] = σ (z Φ(z) + φ(z))`, `z = (best − xi − μ) / σ`.
///
/// Returns `max(best − xi − mean, 0)` when `std` is zero.
pub fn expected_improvement(mean: f64, std: f64, best: f64, xi: f64) -> f64 {
    if std <= 0.0 {
        return (best - xi - mean).max(0.0);
    }
    let z = (best - xi - mean) / std;
    std * log_h(z).0.exp()
}

/// Natural logarithm of [`expected_improvement`], finite (not `−∞`) for any finite inputs
/// with `std > 0`, even where the improvement underflows to zero.
pub fn log_expected_improvement(mean: f64, std: f64, best: f64, xi: f64) -> f64 {
    let z = (best - xi - mean) / std;
    std.ln() + log_h(z).0
}

/// `ln h(z)` with `h(z) = z Φ(z) + φ(z)`, and `d ln h / dz = Φ(z) / h(z)`.
///
/// For `z > −1` directly; below, `h(z) = φ(z) (1 − q)` with
/// `q = |z| √(π/2) erfcx(|z|/√2)`, `erfcx(x) = exp(x²) erfc(x)`; for `|z| > 25` the
/// asymptotic series `1 − q = z⁻² − 3z⁻⁴ + 15z⁻⁶ − 105z⁻⁸ + …` (relative error below 1e-8).
pub(crate) fn log_h(z: f64) -> (f64, f64) {
    if z > -1.0 {
        let cdf = normal_cdf(z);
        let h = z * cdf + normal_pdf(z);
        return (h.ln(), cdf / h);
    }
    let a = -z;
    let one_minus_q = if a <= 25.0 {
        let x = a / std::f64::consts::SQRT_2;
        let erfcx = (x * x).exp() * libm::erfc(x);
        1.0 - a * SQRT_HALF_PI * erfcx
    } else {
        let u = 1.0 / (a * a);
        u * (1.0 - u * (3.0 - u * (15.0 - 105.0 * u)))
    };
    let log_h = -0.5 * z * z - HALF_LN_2PI + one_minus_q.ln();
    // Φ(z)/h(z) = q / (|z| (1 − q)).
    let dlog_h = (1.0 - one_minus_q) / (a * one_minus_q);
    (log_h, dlog_h)
}

impl Acquisition {
    /// Value to maximise and its derivative with respect to mean and standard deviation,
    /// all in standardised units; `best` is the best (lowest) standardised observation.
    pub(crate) fn value(&self, mu: f64, sigma: f64, best: f64) -> (f64, f64, f64) {
        match *self {
            Acquisition::ExpectedImprovement { xi } => {
                let z = (best - xi - mu) / sigma;
                let (lh, dlh) = log_h(z);
                // d/dμ = dlh · (−1/σ); d/dσ = 1/σ + dlh · (−z/σ).
                (sigma.ln() + lh, -dlh / sigma, (1.0 - dlh * z) / sigma)
            }
            Acquisition::LowerConfidenceBound { kappa } => (-mu + kappa * sigma, -1.0, kappa),
        }
    }

    pub(crate) fn is_valid(&self) -> bool {
        match *self {
            Acquisition::ExpectedImprovement { xi } => xi.is_finite() && xi >= 0.0,
            Acquisition::LowerConfidenceBound { kappa } => kappa.is_finite() && kappa >= 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ei_matches_formula_and_integral() {
        // Closed form σ(zΦ(z) + φ(z)) (Jones et al. 1998, eq. 15) against a midpoint-rule
        // integral of max(best − xi − y, 0) N(y; μ, σ²) over μ ± 12σ.
        for &(mu, sd, best, xi) in &[(0.0, 1.0, 0.5, 0.0), (1.0, 0.3, 0.2, 0.01), (-2.0, 2.0, -1.0, 0.1)] {
            let ei = expected_improvement(mu, sd, best, xi);
            let steps = 200_000;
            let (lo, hi) = (mu - 12.0 * sd, mu + 12.0 * sd);
            let dy = (hi - lo) / steps as f64;
            let integral: f64 = (0..steps)
                .map(|i| {
                    let y = lo + (i as f64 + 0.5) * dy;
                    (best - xi - y).max(0.0) * normal_pdf((y - mu) / sd) / sd * dy
                })
                .sum();
            assert!((ei - integral).abs() < 1e-7, "{ei} vs {integral}");
            assert!((log_expected_improvement(mu, sd, best, xi) - ei.ln()).abs() < 1e-12);
        }
        // Zero variance: plain improvement.
        assert!((expected_improvement(1.0, 0.0, 3.0, 0.5) - 1.5).abs() < 1e-15);
    }

    #[test]
    fn log_h_is_continuous_and_stable() {
        // Across the branch points the two formulas must agree.
        for &z in &[-1.0, -25.0] {
            let (a, da) = log_h(z - 1e-9);
            let (b, db) = log_h(z + 1e-9);
            assert!((a - b).abs() < 1e-6, "value jump at {z}: {a} vs {b}");
            assert!((da - db).abs() < 1e-5 * da.abs(), "slope jump at {z}: {da} vs {db}");
        }
        // Far tail: h(z) ≈ φ(z)/z², so ln h ≈ −z²/2 − ln√(2π) − 2 ln|z| (Mills ratio series).
        let z = -100.0_f64;
        let want = -0.5 * z * z - HALF_LN_2PI - 2.0 * (-z).ln();
        assert!((log_h(z).0 - want).abs() < 1e-3);
        assert!(log_h(-1e4).0.is_finite());
        // Derivative against central differences, on both branches.
        for &z in &[2.0, 0.3, -0.5, -3.0, -12.0, -40.0] {
            let h = 1e-6;
            let fd = (log_h(z + h).0 - log_h(z - h).0) / (2.0 * h);
            assert!((fd - log_h(z).1).abs() < 1e-5 * (1.0 + fd.abs()), "z={z}: {fd}");
        }
    }

    #[test]
    fn acquisition_derivatives_match_finite_differences() {
        for acq in [
            Acquisition::ExpectedImprovement { xi: 0.01 },
            Acquisition::LowerConfidenceBound { kappa: 1.96 },
        ] {
            let (mu, s, best) = (0.3, 0.4, 0.1);
            let (_, dmu, ds) = acq.value(mu, s, best);
            let h = 1e-6;
            let fd_mu = (acq.value(mu + h, s, best).0 - acq.value(mu - h, s, best).0) / (2.0 * h);
            let fd_s = (acq.value(mu, s + h, best).0 - acq.value(mu, s - h, best).0) / (2.0 * h);
            assert!((fd_mu - dmu).abs() < 1e-6, "{acq:?} dμ");
            assert!((fd_s - ds).abs() < 1e-6, "{acq:?} dσ");
        }
    }
}
