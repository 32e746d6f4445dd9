//! Scores of probabilistic predictions: CRPS, interval coverage and width, PIT histogram,
//! reliability, and the rank correlation of the spread with the error over blocks.
//!
//! A probabilistic prediction is a per-pixel mean and standard deviation, optionally with
//! the bounds of a central interval (the `q05`/`q95` bands of `amun downscale
//! --uncertainty`). CRPS and PIT treat each pixel's prediction as the normal distribution
//! `N(mean, std²)`; coverage and width use the interval bounds when given, else the normal
//! interval `mean ± z·std`.

use amun_raster::Raster;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `z` of the standard normal's 95th percentile: the central 90 % interval of `N(μ, σ²)` is
/// `μ ± Z_90·σ` (`Φ⁻¹(0.95)`, 16 digits from R's `qnorm(0.95)`).
pub const Z_90: f64 = 1.644_853_626_951_472_2;

const INV_SQRT_PI: f64 = 0.564_189_583_547_756_3;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Standard normal density `φ(z)`.
pub fn normal_pdf(z: f64) -> f64 {
    INV_SQRT_2PI * (-0.5 * z * z).exp()
}

/// Standard normal distribution function `Φ(z)` (through `erfc`, accurate in both tails).
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// Standard normal quantile `Φ⁻¹(p)` for `0 < p < 1` (Acklam's rational approximation,
/// relative error 1.2e-9, refined by one Halley step to about 1e-15); `±∞` at 0 and 1, `NaN`
/// outside `[0, 1]`.
pub fn normal_quantile(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // One Halley step on Φ(x) − p.
    let e = normal_cdf(x) - p;
    let u = e / normal_pdf(x);
    x - u / (1.0 + 0.5 * x * u)
}

/// Continuous ranked probability score of the normal forecast `N(mean, std²)` for the
/// observation `obs`, in the unit of the data (closed form of Gneiting & Raftery 2007, eq. 5):
/// `σ [z (2Φ(z) − 1) + 2φ(z) − 1/√π]`, `z = (obs − mean)/σ`. A point forecast (`std = 0`)
/// scores `|obs − mean|`, its absolute error. `NaN` when `std` is negative or any input is
/// not finite.
pub fn crps_gaussian(mean: f64, std: f64, obs: f64) -> f64 {
    if !(mean.is_finite() && std.is_finite() && obs.is_finite()) || std < 0.0 {
        return f64::NAN;
    }
    if std <= 0.0 {
        return (obs - mean).abs();
    }
    let z = (obs - mean) / std;
    std * (z * (2.0 * normal_cdf(z) - 1.0) + 2.0 * normal_pdf(z) - INV_SQRT_PI)
}

/// CRPS of the empirical distribution of `samples` (ensemble members, trees' predictions)
/// for the observation `obs`: `E|X − y| − ½ E|X − X′|` with both expectations over the
/// samples (Gneiting & Raftery 2007, eq. 21), computed in `O(n log n)` from the sorted
/// samples. `None` when there is no finite sample or `obs` is not finite; non-finite samples
/// are ignored.
pub fn crps_samples(samples: &[f64], obs: f64) -> Option<f64> {
    if !obs.is_finite() {
        return None;
    }
    let mut x: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if x.is_empty() {
        return None;
    }
    x.sort_by(f64::total_cmp);
    let n = x.len() as f64;
    let abs_err = x.iter().map(|v| (v - obs).abs()).sum::<f64>() / n;
    // Σ_{i,j} |x_i − x_j| = 2 Σ_i (2i − n − 1) x_(i), i 1-based.
    let spread = x
        .iter()
        .enumerate()
        .map(|(i, v)| (2.0 * (i as f64 + 1.0) - n - 1.0) * v)
        .sum::<f64>()
        / (n * n);
    Some(abs_err - spread)
}

/// CRPS from `K` predictive quantiles at the levels `τ_k = (k + ½)/K`, `k = 0…K−1`, for the
/// observation `obs`: `CRPS = 2 ∫₀¹ ρ_τ(obs − q_τ) dτ` (Gneiting & Raftery 2007, eq. 22),
/// the integral by the midpoint rule over the levels, with `ρ_τ(u) = u (τ − 1{u < 0})` the
/// pinball loss. `None` when `quantiles` is empty or a value is not finite.
pub fn crps_quantiles(quantiles: &[f64], obs: f64) -> Option<f64> {
    if quantiles.is_empty() || !obs.is_finite() || quantiles.iter().any(|q| !q.is_finite()) {
        return None;
    }
    let k = quantiles.len() as f64;
    let sum: f64 = quantiles
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let tau = (i as f64 + 0.5) / k;
            let u = obs - q;
            u * (tau - if u < 0.0 { 1.0 } else { 0.0 })
        })
        .sum();
    Some(2.0 * sum / k)
}

/// Probability integral transform of `obs` under `N(mean, std²)`: `Φ((obs − mean)/std)`.
/// For a calibrated forecast these values are uniform on `[0, 1]`. A point forecast
/// (`std = 0`) gives 0, ½ or 1; `NaN` for a negative `std` or a non-finite input.
pub fn pit_gaussian(mean: f64, std: f64, obs: f64) -> f64 {
    if !(mean.is_finite() && std.is_finite() && obs.is_finite()) || std < 0.0 {
        return f64::NAN;
    }
    if std <= 0.0 {
        return match obs.partial_cmp(&mean) {
            Some(std::cmp::Ordering::Less) => 0.0,
            Some(std::cmp::Ordering::Greater) => 1.0,
            _ => 0.5,
        };
    }
    normal_cdf((obs - mean) / std)
}

/// Histogram of PIT values over `[0, 1]` in equal bins. Flat for a calibrated forecast;
/// U-shaped when the spread is too small, hump-shaped when it is too large, sloped when the
/// forecast is biased.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PitHistogram {
    /// Counts per bin, bin `i` covering `[i/B, (i+1)/B)` (the last bin includes 1).
    pub counts: Vec<u64>,
}

impl PitHistogram {
    /// An empty histogram of `bins` bins.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `bins` is 0.
    pub fn new(bins: usize) -> Result<Self> {
        if bins == 0 {
            return Err(Error::InvalidParameter {
                name: "bins",
                value: "0".into(),
                reason: "a PIT histogram needs at least one bin",
            });
        }
        Ok(PitHistogram {
            counts: vec![0; bins],
        })
    }

    /// Counts one PIT value; values outside `[0, 1]` or `NaN` are ignored.
    pub fn push(&mut self, pit: f64) {
        if !(0.0..=1.0).contains(&pit) {
            return;
        }
        let b = self.counts.len();
        let i = ((pit * b as f64) as usize).min(b - 1);
        self.counts[i] += 1;
    }

    /// Adds the counts of another histogram with as many bins.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if the bin counts differ.
    pub fn merge(&mut self, other: &PitHistogram) -> Result<()> {
        if other.counts.len() != self.counts.len() {
            return Err(Error::LengthMismatch {
                what: "PIT histogram bins",
                expected: self.counts.len(),
                got: other.counts.len(),
            });
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        Ok(())
    }

    /// Number of values counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Fraction of the values in each bin (all zero when empty).
    pub fn frequencies(&self) -> Vec<f64> {
        let n = self.total().max(1) as f64;
        self.counts.iter().map(|&c| c as f64 / n).collect()
    }

    /// Largest absolute difference between a bin's frequency and the uniform `1/B`, a
    /// one-number summary of miscalibration (0 when flat).
    pub fn max_deviation(&self) -> f64 {
        let u = 1.0 / self.counts.len() as f64;
        self.frequencies()
            .iter()
            .map(|f| (f - u).abs())
            .fold(0.0, f64::max)
    }

    /// Reliability diagram data: for each inner bin edge `p = i/B`, the nominal probability
    /// `p` and the observed fraction of values with PIT below `p` — the fraction of
    /// observations below the predicted `p`-quantile. Points on the diagonal are calibrated.
    pub fn reliability(&self) -> Reliability {
        let b = self.counts.len();
        let n = self.total().max(1) as f64;
        let mut cum = 0u64;
        let mut nominal = Vec::with_capacity(b.saturating_sub(1));
        let mut observed = Vec::with_capacity(b.saturating_sub(1));
        for (i, &c) in self.counts.iter().enumerate().take(b.saturating_sub(1)) {
            cum += c;
            nominal.push((i + 1) as f64 / b as f64);
            observed.push(cum as f64 / n);
        }
        Reliability { nominal, observed }
    }
}

/// Reliability diagram data (see [`PitHistogram::reliability`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reliability {
    /// Nominal probabilities (quantile levels), increasing.
    pub nominal: Vec<f64>,
    /// Observed fraction of observations below the predicted quantile at each level.
    pub observed: Vec<f64>,
}

/// Spearman rank correlation of paired values (average ranks for ties; pairs with a
/// non-finite side skipped). `None` with fewer than 3 pairs or when either side is constant.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    let (xs, ys): (Vec<f64>, Vec<f64>) = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(&a, &b)| (a, b))
        .unzip();
    if xs.len() < 3 {
        return None;
    }
    let rx = ranks(&xs);
    let ry = ranks(&ys);
    pearson(&rx, &ry)
}

/// Ranks 1…n with ties sharing their average rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]].total_cmp(&v[idx[i]]).is_eq() {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Recalibration: the single factor `s` by which to multiply the spread so that the central
/// interval `mean ± z·s·std` of probability `nominal` covers exactly that share of the
/// held-out `obs` — the `nominal`-quantile of the standardised absolute errors
/// `|obs − mean| / std` divided by `z = Φ⁻¹(½ + nominal/2)`. Under normality every central
/// interval is then calibrated; the quantile makes it robust to a few wild errors, which a
/// variance ratio is not. Triples with a non-finite value or `std ≤ 0` are skipped.
///
/// # Errors
/// [`Error::LengthMismatch`] if the slices differ in length; [`Error::InvalidParameter`]
/// for `nominal` outside (0, 1); [`Error::NothingToScore`] if no triple is usable.
pub fn fit_spread_scale(mean: &[f64], std: &[f64], obs: &[f64], nominal: f64) -> Result<f64> {
    for (what, v) in [("std", std), ("obs", obs)] {
        if v.len() != mean.len() {
            return Err(Error::LengthMismatch {
                what,
                expected: mean.len(),
                got: v.len(),
            });
        }
    }
    if !(nominal > 0.0 && nominal < 1.0) {
        return Err(Error::InvalidParameter {
            name: "nominal",
            value: nominal.to_string(),
            reason: "the interval's probability must lie strictly between 0 and 1",
        });
    }
    let mut z: Vec<f64> = mean
        .iter()
        .zip(std)
        .zip(obs)
        .filter(|((m, s), y)| m.is_finite() && s.is_finite() && **s > 0.0 && y.is_finite())
        .map(|((m, s), y)| (y - m).abs() / s)
        .collect();
    if z.is_empty() {
        return Err(Error::NothingToScore {
            what: "pixel with a positive spread",
        });
    }
    z.sort_by(f64::total_cmp);
    // The empirical quantile with linear interpolation (R's type 7).
    let h = nominal * (z.len() - 1) as f64;
    let (lo, frac) = (h.floor() as usize, h - h.floor());
    let q = z[lo] + frac * (z[(lo + 1).min(z.len() - 1)] - z[lo]);
    Ok(q / normal_quantile(0.5 + nominal / 2.0))
}

/// Recalibration with a floor: the spread `σ′ = √(floor² + (scale·σ)²)` — a constant part
/// the raw spread does not see (the noise no model explains, which an ensemble of networks
/// trained on squared error does not spread over) plus a scaled copy of the raw spread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpreadModel {
    /// The constant part, in the unit of the data.
    pub floor: f64,
    /// The factor on the raw spread.
    pub scale: f64,
}

impl SpreadModel {
    /// The identity (`floor` 0, `scale` 1).
    pub const IDENTITY: SpreadModel = SpreadModel {
        floor: 0.0,
        scale: 1.0,
    };

    /// The recalibrated spread of a raw spread `std`.
    pub fn apply(&self, std: f64) -> f64 {
        self.floor.hypot(self.scale * std)
    }
}

/// Fits a [`SpreadModel`] on held-out triples by minimising the mean Gaussian CRPS of
/// `N(mean, σ′²)`: a grid search over `floor` and `scale` refined three times around the
/// best point (at most 20 000 triples, every `n/20 000`-th, are used). Triples with a
/// non-finite value or a negative `std` are skipped.
///
/// # Errors
/// [`Error::LengthMismatch`] if the slices differ in length; [`Error::NothingToScore`] if no
/// triple is usable.
pub fn fit_spread_model(mean: &[f64], std: &[f64], obs: &[f64]) -> Result<SpreadModel> {
    for (what, v) in [("std", std), ("obs", obs)] {
        if v.len() != mean.len() {
            return Err(Error::LengthMismatch {
                what,
                expected: mean.len(),
                got: v.len(),
            });
        }
    }
    let all: Vec<(f64, f64, f64)> = mean
        .iter()
        .zip(std)
        .zip(obs)
        .filter(|((m, s), y)| m.is_finite() && s.is_finite() && **s >= 0.0 && y.is_finite())
        .map(|((&m, &s), &y)| (m, s, y))
        .collect();
    if all.is_empty() {
        return Err(Error::NothingToScore { what: "pixel" });
    }
    let step = all.len().div_ceil(20_000).max(1);
    let t: Vec<(f64, f64, f64)> = all.iter().step_by(step).copied().collect();
    let n = t.len() as f64;
    let rmse = (t.iter().map(|(m, _, y)| (y - m).powi(2)).sum::<f64>() / n).sqrt();
    let mean_sd = t.iter().map(|(_, s, _)| s).sum::<f64>() / n;
    let cost = |f: f64, k: f64| {
        t.iter()
            .map(|&(m, s, y)| crps_gaussian(m, f.hypot(k * s), y))
            .sum::<f64>()
            / n
    };
    // Ranges: a floor up to twice the RMSE, a scale up to what alone would reach it.
    let (mut f_hi, mut k_hi) = (2.0 * rmse.max(1e-9), 2.0 * rmse / mean_sd.max(1e-12));
    if !k_hi.is_finite() {
        k_hi = 0.0;
    }
    let (mut f_lo, mut k_lo) = (0.0, 0.0);
    let mut best = (cost(0.0, 1.0), SpreadModel::IDENTITY);
    for _ in 0..4 {
        let g = 20;
        for i in 0..=g {
            for j in 0..=g {
                let f = f_lo + (f_hi - f_lo) * i as f64 / g as f64;
                let k = k_lo + (k_hi - k_lo) * j as f64 / g as f64;
                let c = cost(f, k);
                if c < best.0 {
                    best = (c, SpreadModel { floor: f, scale: k });
                }
            }
        }
        let (df, dk) = ((f_hi - f_lo) / 20.0, (k_hi - k_lo) / 20.0);
        f_lo = (best.1.floor - 2.0 * df).max(0.0);
        f_hi = best.1.floor + 2.0 * df;
        k_lo = (best.1.scale - 2.0 * dk).max(0.0);
        k_hi = best.1.scale + 2.0 * dk;
    }
    Ok(best.1)
}

/// A probabilistic prediction on one grid: per-pixel mean and standard deviation, and
/// optionally the bounds of a central interval (e.g. the `q05`/`q95` bands).
#[derive(Debug, Clone, Copy)]
pub struct Predictive<'a> {
    /// Predictive mean.
    pub mean: &'a Raster,
    /// Predictive standard deviation (≥ 0).
    pub std: &'a Raster,
    /// Lower and upper bounds of the central interval of probability
    /// [`UncertaintyParams::nominal`]; `None` to use `mean ± z·std` of the normal.
    pub interval: Option<(&'a Raster, &'a Raster)>,
}

/// Settings of [`score_uncertainty`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UncertaintyParams {
    /// Nominal probability of the central interval scored for coverage (default 0.9).
    pub nominal: f64,
    /// Number of PIT histogram bins (default 20, so the reliability levels are 0.05…0.95).
    pub pit_bins: usize,
    /// Side of the square blocks, in pixels, over which the spread and the error are
    /// averaged for their rank correlation (default 32).
    pub block: usize,
    /// Fraction of a block's pixels that must be scored for the block to count (default 0.5).
    pub min_block_coverage: f64,
}

impl Default for UncertaintyParams {
    fn default() -> Self {
        UncertaintyParams {
            nominal: 0.9,
            pit_bins: 20,
            block: 32,
            min_block_coverage: 0.5,
        }
    }
}

impl UncertaintyParams {
    fn check(&self) -> Result<()> {
        if !(self.nominal > 0.0 && self.nominal < 1.0) {
            return Err(Error::InvalidParameter {
                name: "nominal",
                value: self.nominal.to_string(),
                reason: "the interval's probability must lie strictly between 0 and 1",
            });
        }
        if self.block == 0 {
            return Err(Error::InvalidParameter {
                name: "block",
                value: "0".into(),
                reason: "blocks must be at least one pixel wide",
            });
        }
        if !(0.0..=1.0).contains(&self.min_block_coverage) {
            return Err(Error::InvalidParameter {
                name: "min_block_coverage",
                value: self.min_block_coverage.to_string(),
                reason: "a fraction between 0 and 1",
            });
        }
        PitHistogram::new(self.pit_bins).map(|_| ())
    }
}

/// How well a probabilistic prediction's spread matches its errors (see
/// [`score_uncertainty`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UncertaintyMetrics {
    /// Nominal probability of the scored interval.
    pub nominal: f64,
    /// Fraction of the reference pixels inside the interval (close to `nominal` when
    /// calibrated).
    pub coverage: f64,
    /// Mean width of the interval, in the unit of the data.
    pub mean_width: f64,
    /// Mean CRPS of `N(mean, std²)`, in the unit of the data (lower is better; equals the MAE
    /// for a zero spread).
    pub crps: f64,
    /// Mean predicted standard deviation.
    pub mean_std: f64,
    /// RMSE of the mean, for comparison with `mean_std` (their ratio is the spread's
    /// miscalibration factor under normality).
    pub rmse: f64,
    /// Spearman correlation between the block mean of `std` and the block mean of
    /// `|mean − reference|` over blocks of `block × block` pixels; `None` with fewer than 3
    /// blocks or a constant side.
    pub spread_error_spearman: Option<f64>,
    /// Number of blocks in that correlation.
    pub blocks: usize,
    /// PIT histogram of `N(mean, std²)`.
    pub pit: PitHistogram,
    /// Reliability diagram data, from the PIT histogram.
    pub reliability: Reliability,
    /// Number of pixels scored.
    pub n: usize,
    /// Block means `(std, |error|)` behind `spread_error_spearman`, kept to pool scenes.
    #[serde(skip)]
    pub block_pairs: Vec<(f64, f64)>,
}

impl UncertaintyMetrics {
    /// Pools the scores of several scenes, weighting by pixel count (CRPS, coverage, width,
    /// mean std; RMSE from the pooled squared error), adding PIT histograms and computing the
    /// rank correlation over all scenes' blocks.
    ///
    /// # Errors
    /// [`Error::NothingToScore`] for an empty list; [`Error::LengthMismatch`] if the PIT
    /// histograms differ in bins; [`Error::InvalidParameter`] if the nominal levels differ.
    pub fn pool(parts: &[UncertaintyMetrics]) -> Result<UncertaintyMetrics> {
        let first = parts
            .first()
            .ok_or(Error::NothingToScore { what: "scene" })?;
        let mut pit = PitHistogram::new(first.pit.counts.len())?;
        let mut pairs = Vec::new();
        let (mut n, mut crps, mut cov, mut width, mut sd, mut se) =
            (0usize, 0.0, 0.0, 0.0, 0.0, 0.0);
        for p in parts {
            if (p.nominal - first.nominal).abs() > 1e-12 {
                return Err(Error::InvalidParameter {
                    name: "nominal",
                    value: p.nominal.to_string(),
                    reason: "pooled scores must share one interval probability",
                });
            }
            pit.merge(&p.pit)?;
            pairs.extend_from_slice(&p.block_pairs);
            let w = p.n as f64;
            n += p.n;
            crps += w * p.crps;
            cov += w * p.coverage;
            width += w * p.mean_width;
            sd += w * p.mean_std;
            se += w * p.rmse * p.rmse;
        }
        if n == 0 {
            return Err(Error::NothingToScore { what: "pixel" });
        }
        let nf = n as f64;
        let (s, e): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
        Ok(UncertaintyMetrics {
            nominal: first.nominal,
            coverage: cov / nf,
            mean_width: width / nf,
            crps: crps / nf,
            mean_std: sd / nf,
            rmse: (se / nf).sqrt(),
            spread_error_spearman: spearman(&s, &e),
            blocks: pairs.len(),
            reliability: pit.reliability(),
            pit,
            n,
            block_pairs: pairs,
        })
    }
}

/// Scores a probabilistic prediction against `reference` over the pixels where the
/// reference, the mean, the std (and the interval bounds, if given) are all valid and `mask`
/// (if given) is `true`: coverage and mean width of the central interval, mean Gaussian
/// CRPS, PIT histogram, reliability data and the block rank correlation of spread and error.
///
/// # Errors
/// Grid errors if the rasters are not on one grid; [`Error::ShapeMismatch`] for a mask of
/// another shape; [`Error::InvalidParameter`] for bad `params`;
/// [`Error::NegativeSpread`] for a negative standard deviation or an interval whose lower
/// bound exceeds its upper bound; [`Error::NothingToScore`] if no pixel is valid.
pub fn score_uncertainty(
    prediction: &Predictive<'_>,
    reference: &Raster,
    mask: Option<&Array2<bool>>,
    params: &UncertaintyParams,
) -> Result<UncertaintyMetrics> {
    params.check()?;
    let grid = reference.grid();
    prediction.mean.grid().check_same(grid)?;
    prediction.std.grid().check_same(grid)?;
    if let Some((lo, hi)) = prediction.interval {
        lo.grid().check_same(grid)?;
        hi.grid().check_same(grid)?;
    }
    let (rows, cols) = grid.shape();
    if let Some(m) = mask {
        if m.dim() != (rows, cols) {
            return Err(Error::ShapeMismatch {
                what: "mask",
                want_rows: rows,
                want_cols: cols,
                got_rows: m.nrows(),
                got_cols: m.ncols(),
            });
        }
    }
    let z = normal_quantile(0.5 + params.nominal / 2.0);
    let b = params.block;
    let (brows, bcols) = (rows.div_ceil(b), cols.div_ceil(b));
    // Per block: scored pixel count, Σ std, Σ |error|.
    let mut blocks = vec![(0usize, 0.0f64, 0.0f64); brows * bcols];
    let mut pit = PitHistogram::new(params.pit_bins)?;
    let (mut n, mut inside, mut width, mut crps, mut sd, mut se) =
        (0usize, 0usize, 0.0, 0.0, 0.0, 0.0);
    let (mean, std, refd) = (
        prediction.mean.data(),
        prediction.std.data(),
        reference.data(),
    );
    for ((r, c), &y) in refd.indexed_iter() {
        if mask.is_some_and(|m| !m[(r, c)]) {
            continue;
        }
        let (m, s) = (mean[(r, c)], std[(r, c)]);
        if !(y.is_finite() && m.is_finite() && s.is_finite()) {
            continue;
        }
        if s < 0.0 {
            return Err(Error::NegativeSpread {
                band: "std",
                row: r,
                col: c,
                value: f64::from(s),
            });
        }
        let (y, m, s) = (f64::from(y), f64::from(m), f64::from(s));
        let (lo, hi) = match prediction.interval {
            Some((lo, hi)) => {
                let (l, h) = (lo.data()[(r, c)], hi.data()[(r, c)]);
                if !(l.is_finite() && h.is_finite()) {
                    continue;
                }
                if l > h {
                    return Err(Error::NegativeSpread {
                        band: "interval (lower bound above upper bound)",
                        row: r,
                        col: c,
                        value: f64::from(h - l),
                    });
                }
                (f64::from(l), f64::from(h))
            }
            None => (m - z * s, m + z * s),
        };
        n += 1;
        if (lo..=hi).contains(&y) {
            inside += 1;
        }
        width += hi - lo;
        crps += crps_gaussian(m, s, y);
        pit.push(pit_gaussian(m, s, y));
        sd += s;
        se += (m - y) * (m - y);
        let blk = &mut blocks[(r / b) * bcols + c / b];
        blk.0 += 1;
        blk.1 += s;
        blk.2 += (m - y).abs();
    }
    if n == 0 {
        return Err(Error::NothingToScore { what: "pixel" });
    }
    let mut block_pairs = Vec::new();
    for (i, &(k, s, e)) in blocks.iter().enumerate() {
        let (br, bc) = (i / bcols, i % bcols);
        let area = (b.min(rows - br * b) * b.min(cols - bc * b)) as f64;
        if k > 0 && k as f64 >= params.min_block_coverage * area {
            block_pairs.push((s / k as f64, e / k as f64));
        }
    }
    let (s, e): (Vec<f64>, Vec<f64>) = block_pairs.iter().copied().unzip();
    let nf = n as f64;
    Ok(UncertaintyMetrics {
        nominal: params.nominal,
        coverage: inside as f64 / nf,
        mean_width: width / nf,
        crps: crps / nf,
        mean_std: sd / nf,
        rmse: (se / nf).sqrt(),
        spread_error_spearman: spearman(&s, &e),
        blocks: block_pairs.len(),
        reliability: pit.reliability(),
        pit,
        n,
        block_pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::Grid;

    /// Deterministic standard-normal draws: SplitMix64 uniforms through Box–Muller.
    struct Normals(rand_xoshiro::SplitMix64);
    impl Normals {
        fn uniform(&mut self) -> f64 {
            use rand_core::RngCore;
            ((self.0.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn next(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }
    }

    /// CRPS by its definition `∫ (F(x) − 1{x ≥ y})² dx`, trapezoidal rule on fine grids over
    /// `[lo, y]` and `[y, hi]` separately (the integrand jumps at `y`).
    fn crps_integral(cdf: impl Fn(f64) -> f64, y: f64, lo: f64, hi: f64) -> f64 {
        let trapezoid = |a: f64, b: f64, f: &dyn Fn(f64) -> f64| {
            let steps = 100_000;
            let h = (b - a) / steps as f64;
            (1..steps).map(|i| f(a + i as f64 * h)).sum::<f64>() * h + 0.5 * h * (f(a) + f(b))
        };
        let below = |x: f64| cdf(x).powi(2);
        let above = |x: f64| (1.0 - cdf(x)).powi(2);
        trapezoid(lo, y, &below) + trapezoid(y, hi, &above)
    }

    #[test]
    fn normal_cdf_and_quantile_match_tables() {
        // Φ(1.96) = 0.9750021048517795 and Φ⁻¹(0.975) = 1.959963984540054 (R: pnorm, qnorm).
        assert!((normal_cdf(1.96) - 0.975_002_104_851_779_5).abs() < 1e-14);
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-12);
        assert!((normal_quantile(0.95) - Z_90).abs() < 1e-12);
        for p in [1e-10, 0.001, 0.02, 0.3, 0.5, 0.77, 0.99, 1.0 - 1e-9] {
            assert!((normal_cdf(normal_quantile(p)) - p).abs() < 1e-12 * p.max(1e-3));
        }
        assert!(normal_quantile(1.5).is_nan());
    }

    #[test]
    fn gaussian_crps_matches_known_values_and_the_integral() {
        // For y = μ: CRPS = σ (2φ(0) − 1/√π) = σ (√2 − 1)/√π.
        let at_mean = (2f64.sqrt() - 1.0) / std::f64::consts::PI.sqrt();
        assert!((crps_gaussian(300.0, 2.0, 300.0) - 2.0 * at_mean).abs() < 1e-12);
        for (m, s, y) in [(0.0, 1.0, 0.3), (290.0, 1.5, 293.2), (5.0, 0.2, 4.1)] {
            let closed = crps_gaussian(m, s, y);
            let numeric = crps_integral(|x| normal_cdf((x - m) / s), y, m - 12.0 * s, m + 12.0 * s);
            assert!(
                (closed - numeric).abs() < 1e-6,
                "{m} {s} {y}: {closed} vs {numeric}"
            );
        }
        // Zero spread: the absolute error; negative spread: NaN.
        assert!((crps_gaussian(1.0, 0.0, 3.5) - 2.5).abs() < 1e-15);
        assert!(crps_gaussian(1.0, -0.1, 3.5).is_nan());
    }

    #[test]
    fn sample_and_quantile_crps_converge_to_the_closed_form() {
        let (m, s, y) = (1.0, 2.0, 2.5);
        let closed = crps_gaussian(m, s, y);
        let k = 400;
        let q: Vec<f64> = (0..k)
            .map(|i| m + s * normal_quantile((i as f64 + 0.5) / k as f64))
            .collect();
        let from_q = crps_quantiles(&q, y).unwrap();
        assert!(
            (from_q - closed).abs() < 2e-3 * closed,
            "{from_q} vs {closed}"
        );
        // The quantiles taken as equally weighted samples: the same distribution.
        let from_s = crps_samples(&q, y).unwrap();
        assert!(
            (from_s - closed).abs() < 2e-3 * closed,
            "{from_s} vs {closed}"
        );
        // Two samples {0, 2}, y = 0.5: E|X − y| = 1, ½E|X − X′| = ½·(2·2/4) = 0.5.
        assert!((crps_samples(&[2.0, 0.0], 0.5).unwrap() - 0.5).abs() < 1e-15);
        assert!(crps_samples(&[f64::NAN], 0.5).is_none());
        assert!(crps_quantiles(&[], 0.5).is_none());
    }

    fn raster(rows: usize, cols: usize, v: &[f64]) -> Raster {
        let grid = Grid::geographic(0.0, 1.0, 0.01, cols, rows).unwrap();
        Raster::from_fn(grid, |(r, c)| v[r * cols + c] as f32)
    }

    #[test]
    fn coverage_and_pit_on_draws_from_the_predicted_distribution() {
        // Reference drawn from N(mean, std²) with a std varying in space: the 90 % interval
        // covers 90 % (binomial sd 0.3 % for n = 9216) and the PIT is flat.
        let (rows, cols) = (96, 96);
        let mut g = Normals(rand_core::SeedableRng::seed_from_u64(7));
        let mean: Vec<f64> = (0..rows * cols).map(|i| 290.0 + (i % 17) as f64).collect();
        let std: Vec<f64> = (0..rows * cols)
            .map(|i| 0.5 + 2.0 * ((i / cols) / 32) as f64 + 0.3 * ((i % cols) / 32) as f64)
            .collect();
        let obs: Vec<f64> = mean
            .iter()
            .zip(&std)
            .map(|(m, s)| m + s * g.next())
            .collect();
        let (m, s, y) = (
            raster(rows, cols, &mean),
            raster(rows, cols, &std),
            raster(rows, cols, &obs),
        );
        let p = Predictive {
            mean: &m,
            std: &s,
            interval: None,
        };
        let u = score_uncertainty(&p, &y, None, &UncertaintyParams::default()).unwrap();
        assert_eq!(u.n, rows * cols);
        assert!((u.coverage - 0.9).abs() < 0.01, "coverage {}", u.coverage);
        // 20 bins of ~461 expected: a bin 4 sd off would be 0.0094 off in frequency.
        assert!(u.pit.max_deviation() < 0.01, "{:?}", u.pit);
        for (a, b) in u.reliability.nominal.iter().zip(&u.reliability.observed) {
            assert!((a - b).abs() < 0.015, "{a} vs {b}");
        }
        let mean_sd = std.iter().sum::<f64>() / std.len() as f64;
        assert!((u.mean_width - 2.0 * Z_90 * mean_sd).abs() < 1e-3);
        // Nine 32×32 blocks whose spread grows with the error: a positive rank correlation.
        assert_eq!(u.blocks, 9);
        assert!(u.spread_error_spearman.unwrap() > 0.8);

        // The same draws against a spread half as large: under-covered, U-shaped PIT.
        let half = raster(rows, cols, &std.iter().map(|v| v / 2.0).collect::<Vec<_>>());
        let p = Predictive {
            mean: &m,
            std: &half,
            interval: None,
        };
        let u2 = score_uncertainty(&p, &y, None, &UncertaintyParams::default()).unwrap();
        assert!(
            (u2.coverage - 0.59).abs() < 0.02,
            "coverage {}",
            u2.coverage
        );
        let f = u2.pit.frequencies();
        assert!(f[0] > 0.1 && f[19] > 0.1 && f[10] < 0.05);
        assert!(u2.crps > u.crps);

        // Explicit bounds are used as given.
        let lo = raster(rows, cols, &vec![0.0; rows * cols]);
        let p = Predictive {
            mean: &m,
            std: &s,
            interval: Some((&lo, &lo)),
        };
        let u3 = score_uncertainty(&p, &y, None, &UncertaintyParams::default()).unwrap();
        assert!(u3.coverage.abs() < 1e-12 && u3.mean_width.abs() < 1e-12);

        // Pooling a scene with itself changes nothing but the counts.
        let pooled = UncertaintyMetrics::pool(&[u.clone(), u.clone()]).unwrap();
        assert_eq!(pooled.n, 2 * u.n);
        assert!(
            (pooled.crps - u.crps).abs() < 1e-12 && (pooled.coverage - u.coverage).abs() < 1e-12
        );
        assert_eq!(pooled.blocks, 18);
    }

    #[test]
    fn bad_spread_and_nothing_to_score_are_errors() {
        let m = raster(2, 2, &[1.0, 2.0, 3.0, 4.0]);
        let s = raster(2, 2, &[1.0, -1.0, 1.0, 1.0]);
        let p = Predictive {
            mean: &m,
            std: &s,
            interval: None,
        };
        let e = score_uncertainty(&p, &m, None, &UncertaintyParams::default()).unwrap_err();
        assert!(
            matches!(e, Error::NegativeSpread { row: 0, col: 1, .. }),
            "{e}"
        );
        let nan = raster(2, 2, &[f64::NAN; 4]);
        let p = Predictive {
            mean: &m,
            std: &nan,
            interval: None,
        };
        assert!(matches!(
            score_uncertainty(&p, &m, None, &UncertaintyParams::default()),
            Err(Error::NothingToScore { .. })
        ));
        let bad = UncertaintyParams {
            nominal: 1.0,
            ..Default::default()
        };
        assert!(score_uncertainty(&p, &m, None, &bad).is_err());
    }

    #[test]
    fn spread_scale_restores_coverage() {
        // Draws from N(m, (2σ)²) predicted with σ: the factor is 2 (within the sampling
        // error of a 90 % quantile of 20 000 draws, about 1 %), and the scaled interval
        // covers 90 %.
        let mut g = Normals(rand_core::SeedableRng::seed_from_u64(11));
        let n = 20_000;
        let mean: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
        let std: Vec<f64> = (0..n).map(|i| 0.5 + (i % 5) as f64 * 0.25).collect();
        let obs: Vec<f64> = mean
            .iter()
            .zip(&std)
            .map(|(m, s)| m + 2.0 * s * g.next())
            .collect();
        let s = fit_spread_scale(&mean, &std, &obs, 0.9).unwrap();
        assert!((s - 2.0).abs() < 0.04, "{s}");
        let inside = (0..n)
            .filter(|&i| (obs[i] - mean[i]).abs() <= Z_90 * s * std[i])
            .count();
        assert!((inside as f64 / n as f64 - 0.9).abs() < 1e-3);
        assert!(fit_spread_scale(&mean, &std[..3], &obs, 0.9).is_err());
        assert!(fit_spread_scale(&[1.0], &[0.0], &[1.0], 0.9).is_err());
        assert!(fit_spread_scale(&mean, &std, &obs, 1.0).is_err());
    }

    #[test]
    fn spread_model_recovers_floor_and_scale() {
        // Errors drawn from N(0, 0.5² + (2σ)²) with σ varying 0.1…1.3: the CRPS-optimal model
        // is floor 0.5, scale 2 (the true distribution minimises the expected CRPS); 20 000
        // draws pin it to a few per cent.
        let mut g = Normals(rand_core::SeedableRng::seed_from_u64(3));
        let n = 20_000;
        let std: Vec<f64> = (0..n).map(|i| 0.1 + 1.2 * (i % 97) as f64 / 96.0).collect();
        let mean = vec![280.0; n];
        let obs: Vec<f64> = std
            .iter()
            .map(|s| 280.0 + 0.5f64.hypot(2.0 * s) * g.next())
            .collect();
        let m = fit_spread_model(&mean, &std, &obs).unwrap();
        assert!((m.floor - 0.5).abs() < 0.1, "{m:?}");
        assert!((m.scale - 2.0).abs() < 0.1, "{m:?}");
        assert!((m.apply(1.0) - 0.5f64.hypot(2.0)).abs() < 0.1);
        // It scores no worse than the identity and the plain scale.
        let crps = |f: &dyn Fn(f64) -> f64| {
            (0..n)
                .map(|i| crps_gaussian(mean[i], f(std[i]), obs[i]))
                .sum::<f64>()
                / n as f64
        };
        let k = fit_spread_scale(&mean, &std, &obs, 0.9).unwrap();
        assert!(crps(&|s| m.apply(s)) <= crps(&|s| k * s));
        assert!(crps(&|s| m.apply(s)) < crps(&|s| s));
        assert!(fit_spread_model(&[1.0], &[f64::NAN], &[1.0]).is_err());
        assert!(fit_spread_model(&[1.0], &[1.0, 2.0], &[1.0]).is_err());
    }

    #[test]
    fn spearman_uses_average_ranks() {
        // x ranks 1,2.5,2.5,4; y ranks 1,2,3,4: Pearson of the ranks = 0.9486832980505138.
        let r = spearman(&[1.0, 2.0, 2.0, 5.0], &[0.1, 0.2, 0.3, 0.4]).unwrap();
        assert!((r - 0.948_683_298_050_513_8).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, -1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none());
    }
}
