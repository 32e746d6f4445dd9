//! Ridge regression, the linear (TsHARP/DisTrad-style) baseline, on smartcore.

use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::ridge_regression::{
    RidgeRegression, RidgeRegressionParameters, RidgeRegressionSolverName,
};

use crate::error::{Error, Result};
use crate::forest::check_training_data;

/// Ridge-regression parameters (builder).
///
/// | field | default | meaning |
/// |---|---|---|
/// | `alpha` | 1.0 | L2 penalty on the coefficients of the standardised features |
/// | `max_samples` | 1 000 000 | training rows kept by the downscaling flows (seeded subsample) |
///
/// Features are standardised (mean 0, standard deviation 1) before the fit, the intercept is
/// not penalised, and constant features are dropped (coefficient 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RidgeParams {
    alpha: f64,
    max_samples: usize,
}

impl Default for RidgeParams {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            max_samples: 1_000_000,
        }
    }
}

/// [`RidgeParams`] that passed [`RidgeParams::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RidgeValidParams(RidgeParams);

impl RidgeParams {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The L2 penalty (≥ 0).
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Cap on the training rows the downscaling flows assemble.
    pub fn max_samples(mut self, n: usize) -> Self {
        self.max_samples = n;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a negative or non-finite `alpha` or a zero
    /// `max_samples`.
    pub fn check(self) -> Result<RidgeValidParams> {
        if self.max_samples == 0 {
            return Err(Error::InvalidParameter {
                name: "max_samples",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "alpha",
                value: self.alpha.to_string(),
                reason: "must be finite and >= 0",
            });
        }
        Ok(RidgeValidParams(self))
    }

    /// Checks the parameters and fits (see [`RidgeValidParams::fit`]).
    ///
    /// # Errors
    /// As [`RidgeParams::check`] and [`RidgeValidParams::fit`].
    pub fn fit(self, x: ArrayView2<'_, f32>, y: ArrayView1<'_, f32>) -> Result<RidgeModel> {
        self.check()?.fit(x, y)
    }
}

impl RidgeValidParams {
    /// The parameters.
    pub fn params(&self) -> &RidgeParams {
        &self.0
    }

    /// Sample cap.
    pub(crate) fn max_samples(&self) -> usize {
        self.0.max_samples
    }

    /// Fits `y ≈ x·w + b`.
    ///
    /// # Errors
    /// [`Error::SizeMismatch`] if `x` and `y` differ in rows; [`Error::TooFewSamples`] with
    /// fewer rows than non-constant features + 1; [`Error::NonFinite`]; [`Error::Model`].
    pub fn fit(&self, x: ArrayView2<'_, f32>, y: ArrayView1<'_, f32>) -> Result<RidgeModel> {
        let (n, p) = x.dim();
        check_training_data(x, y)?;
        // Constant columns cannot be standardised: leave them out (coefficient 0).
        let used: Vec<usize> = (0..p)
            .filter(|&j| {
                let c = x.column(j);
                let first = c.first().copied().unwrap_or(0.0);
                c.iter()
                    .any(|&v| (v - first).abs() > f32::EPSILON * first.abs().max(1.0))
            })
            .collect();
        let y64: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
        let mut weights = vec![0.0; p];
        if used.is_empty() {
            if n == 0 {
                return Err(Error::TooFewSamples { got: 0, needed: 1 });
            }
            let mean = y64.iter().sum::<f64>() / n as f64;
            let ss = y64.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
            return Ok(RidgeModel {
                weights,
                intercept: mean,
                residual_std: (ss / (n.max(2) - 1) as f64).sqrt(),
            });
        }
        if n <= used.len() {
            return Err(Error::TooFewSamples {
                got: n,
                needed: used.len() + 1,
            });
        }
        let mut values = Vec::with_capacity(n * used.len());
        for r in 0..n {
            values.extend(used.iter().map(|&j| f64::from(x[(r, j)])));
        }
        let m = DenseMatrix::new(n, used.len(), values, false)?;
        let params = RidgeRegressionParameters::default()
            .with_alpha(self.0.alpha)
            .with_solver(RidgeRegressionSolverName::Cholesky)
            .with_normalize(true);
        let fitted: RidgeRegression<f64, f64, DenseMatrix<f64>, Vec<f64>> =
            RidgeRegression::fit(&m, &y64, params)?;
        for (k, &j) in used.iter().enumerate() {
            weights[j] = *fitted.coefficients().get((k, 0));
        }
        let mut model = RidgeModel {
            weights,
            intercept: *fitted.intercept(),
            residual_std: 0.0,
        };
        // Residual standard deviation with the fitted coefficients' degrees of freedom.
        let sse: f64 = x
            .rows()
            .into_iter()
            .zip(&y64)
            .map(|(r, &t)| (t - f64::from(model.predict_one(r.iter()))).powi(2))
            .sum();
        model.residual_std = (sse / (n - used.len()) as f64).sqrt();
        Ok(model)
    }
}

/// A fitted linear model `y = x·w + b` in the units of the raw features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RidgeModel {
    weights: Vec<f64>,
    intercept: f64,
    /// Standard deviation of the training residuals (`√(SSE / (n − p − 1))`).
    #[serde(default)]
    residual_std: f64,
}

impl RidgeModel {
    /// Coefficients, one per feature (0 for features constant in training).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Intercept.
    pub fn intercept(&self) -> f64 {
        self.intercept
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.weights.len()
    }

    /// Standard deviation of the training residuals, `√(SSE / (n − p − 1))` with `p` the
    /// non-constant features: the linear model's spread, one number for every prediction
    /// (homoscedastic).
    pub fn residual_std(&self) -> f64 {
        self.residual_std
    }

    /// Predicts every row of `x`; rows with a `NaN` give `NaN`.
    ///
    /// # Errors
    /// [`Error::SizeMismatch`] if `x` has another number of features.
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Array1<f32>> {
        if x.ncols() != self.weights.len() {
            return Err(Error::SizeMismatch {
                what: "feature columns",
                expected: self.weights.len(),
                got: x.ncols(),
            });
        }
        Ok(x.rows()
            .into_iter()
            .map(|r| self.predict_one(r.iter()))
            .collect())
    }

    /// One prediction from an iterator over a row's features.
    pub(crate) fn predict_one<'a>(&self, row: impl Iterator<Item = &'a f32>) -> f32 {
        let s = row
            .zip(&self.weights)
            .fold(self.intercept, |acc, (&v, &w)| acc + f64::from(v) * w);
        s as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn recovers_a_plane_and_ignores_constant_columns() {
        // y = 2 + 0.5·x0 − 3·x2 exactly; x1 constant. With alpha ≈ 0 the least-squares
        // solution is exact.
        let x = Array2::from_shape_fn((50, 3), |(i, j)| match j {
            0 => i as f32,
            1 => 4.0,
            _ => ((i * 7) % 11) as f32,
        });
        let y: Array1<f32> = x
            .rows()
            .into_iter()
            .map(|r| 2.0 + 0.5 * r[0] - 3.0 * r[2])
            .collect();
        let m = RidgeParams::new()
            .alpha(1e-9)
            .fit(x.view(), y.view())
            .unwrap();
        assert!((m.weights()[0] - 0.5).abs() < 1e-6, "{:?}", m.weights());
        assert!(m.weights()[1].abs() < 1e-12);
        assert!((m.weights()[2] + 3.0).abs() < 1e-6);
        assert!((m.intercept() - 2.0).abs() < 1e-4);
        let pred = m.predict(x.view()).unwrap();
        assert!(pred.iter().zip(&y).all(|(p, t)| (p - t).abs() < 1e-3));
        // A strong penalty shrinks the slopes towards 0.
        let shrunk = RidgeParams::new()
            .alpha(1e6)
            .fit(x.view(), y.view())
            .unwrap();
        assert!(shrunk.weights()[0].abs() < 0.1);
        // The exact plane leaves no residual; ±0.3 K alternating noise leaves about 0.3 K
        // (√(SSE/(n − 3)) of 50 residuals of ±0.3 less the little the plane absorbs).
        assert!(m.residual_std() < 1e-3, "{}", m.residual_std());
        let noisy: Array1<f32> = y
            .iter()
            .enumerate()
            .map(|(i, v)| v + if i % 2 == 0 { 0.3 } else { -0.3 })
            .collect();
        let r = RidgeParams::new()
            .alpha(1e-9)
            .fit(x.view(), noisy.view())
            .unwrap()
            .residual_std();
        assert!((0.27..0.32).contains(&r), "{r}");
        assert!(RidgeParams::new().alpha(-1.0).check().is_err());
        assert!(matches!(
            RidgeParams::new().fit(x.slice(ndarray::s![..2, ..]), y.slice(ndarray::s![..2])),
            Err(Error::TooFewSamples { .. })
        ));
    }
}
