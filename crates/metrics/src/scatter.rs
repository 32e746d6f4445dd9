//! Data for "predicted vs reference" scatter plots: a 2-D histogram and a regression line.

use amun_raster::Raster;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A least-squares line `y = slope · x + intercept`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    /// Slope.
    pub slope: f64,
    /// Intercept.
    pub intercept: f64,
}

/// A binned 2-D histogram of (reference, prediction) pairs on one square range, so that the
/// 1:1 line is the diagonal. Same convention as `numpy.histogram2d(x, y, bins, range)`:
/// `counts[[i, j]]` counts pairs with `x` (reference) in bin `i` and `y` (prediction) in bin
/// `j`; bins are half-open except the last, which includes the upper edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScatterData {
    /// Lower edge of the first bin (both axes).
    pub min: f64,
    /// Upper edge of the last bin (both axes).
    pub max: f64,
    /// Number of bins per axis.
    pub bins: usize,
    /// Counts, `[reference bin, prediction bin]`.
    pub counts: Array2<u64>,
    /// Least-squares line of prediction on reference; `None` if the reference is constant.
    pub fit: Option<LinearFit>,
    /// Pairs counted (pairs outside `[min, max]` are not).
    pub n: usize,
}

impl ScatterData {
    /// Bin edges of either axis (`bins + 1` values).
    pub fn edges(&self) -> Vec<f64> {
        let w = (self.max - self.min) / self.bins as f64;
        (0..=self.bins).map(|i| self.min + w * i as f64).collect()
    }
}

/// Builds [`ScatterData`] from paired values (`NaN` pairs skipped). With `range = None` the
/// range spans all valid values of both sides.
///
/// # Errors
/// [`Error::LengthMismatch`] for slices of different lengths; [`Error::InvalidParameter`]
/// for `bins == 0` or an empty/non-finite range; [`Error::NothingToScore`] with no valid pair.
pub fn histogram2d(
    reference: &[f64],
    prediction: &[f64],
    bins: usize,
    range: Option<(f64, f64)>,
) -> Result<ScatterData> {
    if reference.len() != prediction.len() {
        return Err(Error::LengthMismatch {
            what: "prediction",
            expected: reference.len(),
            got: prediction.len(),
        });
    }
    if bins == 0 {
        return Err(Error::InvalidParameter {
            name: "bins",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    let pairs = || {
        reference
            .iter()
            .zip(prediction)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(&x, &y)| (x, y))
    };
    let (min, max) = match range {
        Some(r) => r,
        None => pairs().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, y)| {
            (lo.min(x).min(y), hi.max(x).max(y))
        }),
    };
    if pairs().next().is_none() {
        return Err(Error::NothingToScore { what: "value" });
    }
    if !(min.is_finite() && max.is_finite() && min <= max) {
        return Err(Error::InvalidParameter {
            name: "range",
            value: format!("({min}, {max})"),
            reason: "must be finite with min <= max",
        });
    }
    // A degenerate range (all values equal) gets a unit width so that every pair is counted.
    let (min, max) = if max > min {
        (min, max)
    } else {
        (min - 0.5, max + 0.5)
    };
    let width = (max - min) / bins as f64;
    let bin = |v: f64| (((v - min) / width) as usize).min(bins - 1);
    let mut counts = Array2::<u64>::zeros((bins, bins));
    let mut n = 0usize;
    let (mut mx, mut my, mut sxx, mut sxy, mut k) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (x, y) in pairs() {
        // Regression over all valid pairs (Welford updates), histogram over the range.
        k += 1.0;
        let dx = x - mx;
        mx += dx / k;
        my += (y - my) / k;
        sxx += dx * (x - mx);
        sxy += dx * (y - my);
        if x < min || x > max || y < min || y > max {
            continue;
        }
        counts[(bin(x), bin(y))] += 1;
        n += 1;
    }
    let fit = (sxx > 0.0).then(|| {
        let slope = sxy / sxx;
        LinearFit {
            slope,
            intercept: my - slope * mx,
        }
    });
    Ok(ScatterData {
        min,
        max,
        bins,
        counts,
        fit,
        n,
    })
}

/// [`histogram2d`] of a prediction raster against its reference over the pixels valid in
/// both.
///
/// # Errors
/// Grid errors if the rasters are not on one grid; otherwise as [`histogram2d`].
pub fn scatter_data(
    prediction: &Raster,
    reference: &Raster,
    bins: usize,
    range: Option<(f64, f64)>,
) -> Result<ScatterData> {
    prediction.grid().check_same(reference.grid())?;
    let r: Vec<f64> = reference.data().iter().map(|&v| f64::from(v)).collect();
    let p: Vec<f64> = prediction.data().iter().map(|&v| f64::from(v)).collect();
    histogram2d(&r, &p, bins, range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_line_match_numpy_conventions() {
        // numpy.histogram2d([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], bins=2, range=[[0,4],[0,4]])
        // gives [[2, 0], [0, 3]]: edges 0, 2, 4; 4 falls into the closed last bin.
        let x = [0.0, 1.0, 2.0, 3.0, 4.0];
        let h = histogram2d(&x, &x, 2, Some((0.0, 4.0))).unwrap();
        assert_eq!(h.counts, ndarray::array![[2, 0], [0, 3]]);
        assert_eq!(h.edges(), vec![0.0, 2.0, 4.0]);
        let fit = h.fit.unwrap();
        assert!((fit.slope - 1.0).abs() < 1e-12 && fit.intercept.abs() < 1e-12);
        // y = 2x + 1 exactly; NaN pair skipped; out-of-range pairs not binned.
        let y: Vec<f64> = x.iter().map(|v| 2.0 * v + 1.0).collect();
        let h = histogram2d(
            &[0.0, 1.0, 2.0, 3.0, 4.0, f64::NAN],
            &[y, vec![0.0]].concat(),
            4,
            Some((0.0, 4.0)),
        )
        .unwrap();
        assert_eq!(h.n, 2, "only (0, 1) and (1, 3) lie inside [0, 4]²");
        let fit = h.fit.unwrap();
        assert!((fit.slope - 2.0).abs() < 1e-12 && (fit.intercept - 1.0).abs() < 1e-12);
        assert!(histogram2d(&x, &x, 0, None).is_err());
        assert!(histogram2d(&x, &x[..2], 3, None).is_err());
    }
}
