//! The prior's regression: (robust) ridge least squares on local anomalies of coarse cells.

use ndarray::{Array1, Array2};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linalg::traits::cholesky::CholeskyDecomposable;

use crate::error::{Error, Result};

/// Huber's tuning constant (95 % efficiency under normal errors).
const HUBER_C: f64 = 1.345;
/// Reweighting passes of the robust fit.
const IRLS_PASSES: usize = 30;

/// A fitted linear model `y ≈ b + Σ w_j x_j` in raw feature units.
#[derive(Debug, Clone)]
pub(crate) struct Fit {
    /// Coefficients, one per column.
    pub weights: Vec<f64>,
    /// Standard errors of the coefficients (raw units), from the weighted normal equations.
    pub std_errors: Vec<f64>,
    /// Residuals `y − ŷ` of the rows.
    pub residuals: Array1<f64>,
    /// Unweighted R² of the rows.
    pub r2: f64,
}

/// Median of a slice (sorted copy); 0 for an empty one.
pub(crate) fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Robust standard deviation: 1.4826 × the median absolute deviation from the median.
pub(crate) fn robust_std(v: &[f64]) -> f64 {
    let m = median(v);
    let dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    1.4826 * median(&dev)
}

/// Fits `y ≈ b + x·w` with an unpenalised intercept, a ridge penalty `alpha` on the
/// standardised columns flagged in `penalised`, and, when `robust`, Huber weights found by
/// iteratively reweighted least squares. Constant columns get weight 0.
pub(crate) fn fit(
    x: &Array2<f64>,
    y: &Array1<f64>,
    penalised: &[bool],
    alpha: f64,
    robust: bool,
) -> Result<Fit> {
    let (n, p) = x.dim();
    // Standardise: mean 0, sd 1 per column (constant columns are dropped).
    let mut mean = vec![0.0; p];
    let mut sd = vec![0.0; p];
    for j in 0..p {
        let c = x.column(j);
        mean[j] = c.sum() / n as f64;
        sd[j] = (c.iter().map(|v| (v - mean[j]).powi(2)).sum::<f64>() / n as f64).sqrt();
    }
    let used: Vec<usize> = (0..p)
        .filter(|&j| sd[j] > 1e-12 * (1.0 + mean[j].abs()))
        .collect();
    let q = used.len() + 1; // + intercept (last)
    let z = Array2::from_shape_fn((n, q), |(r, k)| {
        if k + 1 == q {
            1.0
        } else {
            let j = used[k];
            (x[(r, j)] - mean[j]) / sd[j]
        }
    });
    let mut w = Array1::<f64>::ones(n);
    let mut beta = vec![0.0; q];
    let mut gram_inv_diag = vec![0.0; q];
    for pass in 0..IRLS_PASSES.max(1) {
        // Normal equations (Zᵀ W Z + α P) β = Zᵀ W y.
        let mut g = vec![0.0; q * q];
        let mut b = vec![0.0; q];
        for r in 0..n {
            let wr = w[r];
            for a in 0..q {
                let za = z[(r, a)] * wr;
                b[a] += za * y[r];
                for c in 0..=a {
                    g[a * q + c] += za * z[(r, c)];
                }
            }
        }
        for a in 0..q {
            for c in 0..a {
                g[c * q + a] = g[a * q + c];
            }
        }
        let trace: f64 = (0..q).map(|a| g[a * q + a]).sum();
        for (k, &j) in used.iter().enumerate() {
            if penalised[j] {
                g[k * q + k] += alpha;
            }
        }
        // A whisper of diagonal keeps collinear nuisance columns solvable.
        for a in 0..q {
            g[a * q + a] += 1e-12 * trace.max(1.0);
        }
        let (sol, inv_diag) = solve_spd(&g, &b, q)?;
        beta = sol;
        gram_inv_diag = inv_diag;
        if !robust {
            break;
        }
        let res: Vec<f64> = (0..n)
            .map(|r| y[r] - (0..q).map(|a| z[(r, a)] * beta[a]).sum::<f64>())
            .collect();
        let scale = robust_std(&res).max(1e-9);
        let mut change = 0.0f64;
        for r in 0..n {
            let u = res[r].abs() / scale;
            let nw = if u <= HUBER_C { 1.0 } else { HUBER_C / u };
            change = change.max((nw - w[r]).abs());
            w[r] = nw;
        }
        if pass > 0 && change < 1e-6 {
            break;
        }
    }
    let fitted: Array1<f64> = (0..n)
        .map(|r| (0..q).map(|a| z[(r, a)] * beta[a]).sum::<f64>())
        .collect();
    let residuals = y - &fitted;
    let ybar = y.sum() / n as f64;
    let sst: f64 = y.iter().map(|v| (v - ybar).powi(2)).sum();
    let sse: f64 = residuals.iter().map(|v| v * v).sum();
    let r2 = if sst > 0.0 { 1.0 - sse / sst } else { 0.0 };
    // Residual variance with the weights, for standard errors.
    let wsum: f64 = w.sum();
    let dof = (wsum - q as f64).max(1.0);
    let sigma2 = residuals
        .iter()
        .zip(w.iter())
        .map(|(e, wr)| wr * e * e)
        .sum::<f64>()
        / dof;
    let mut weights = vec![0.0; p];
    let mut std_errors = vec![f64::INFINITY; p];
    for (k, &j) in used.iter().enumerate() {
        weights[j] = beta[k] / sd[j];
        std_errors[j] = (sigma2 * gram_inv_diag[k]).sqrt() / sd[j];
    }
    Ok(Fit {
        weights,
        std_errors,
        residuals,
        r2,
    })
}

/// Solves the symmetric positive definite system `g x = b` (`q × q`, row-major) with
/// smartcore's Cholesky factor `L` (`g = L Lᵀ`) and two triangular substitutions, and returns
/// the diagonal of `g⁻¹` too (from `L⁻¹`: `(g⁻¹)_aa = Σ_c (L⁻¹)_ca²`).
fn solve_spd(g: &[f64], b: &[f64], q: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let singular = |e: smartcore::error::Failed| Error::Singular {
        detail: e.to_string(),
    };
    let m = DenseMatrix::new(q, q, g.to_vec(), false).map_err(singular)?;
    let l = m.cholesky().map_err(singular)?.L();
    let l = |a: usize, c: usize| *l.get((a, c));
    // L⁻¹ column by column (forward substitution on the unit vectors), then
    // x = L⁻ᵀ (L⁻¹ b).
    let mut linv = vec![0.0; q * q];
    for col in 0..q {
        for a in col..q {
            let mut s = if a == col { 1.0 } else { 0.0 };
            for c in col..a {
                s -= l(a, c) * linv[c * q + col];
            }
            linv[a * q + col] = s / l(a, a);
        }
    }
    let y: Vec<f64> = (0..q)
        .map(|a| (0..=a).map(|c| linv[a * q + c] * b[c]).sum())
        .collect();
    let x: Vec<f64> = (0..q)
        .map(|a| (a..q).map(|c| linv[c * q + a] * y[c]).sum())
        .collect();
    let inv_diag: Vec<f64> = (0..q)
        .map(|a| (a..q).map(|c| linv[c * q + a].powi(2)).sum())
        .collect();
    if x.iter().chain(&inv_diag).any(|v| !v.is_finite()) {
        return Err(Error::Singular {
            detail: "non-finite solution".into(),
        });
    }
    Ok((x, inv_diag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_linear_data_is_recovered() {
        // y = 2 + 3 x0 − 0.5 x1, no noise.
        let x = Array2::from_shape_fn((50, 2), |(r, j)| {
            if j == 0 {
                r as f64 * 0.1
            } else {
                ((r * 7) % 11) as f64
            }
        });
        let y: Array1<f64> = (0..50)
            .map(|r| 2.0 + 3.0 * x[(r, 0)] - 0.5 * x[(r, 1)])
            .collect();
        for robust in [false, true] {
            let f = fit(&x, &y, &[false, false], 0.0, robust).unwrap();
            assert!((f.weights[0] - 3.0).abs() < 1e-9, "{:?}", f.weights);
            assert!((f.weights[1] + 0.5).abs() < 1e-9, "{:?}", f.weights);
            assert!((f.r2 - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn huber_resists_outliers_that_move_least_squares() {
        let x = Array2::from_shape_fn((60, 1), |(r, _)| r as f64);
        let mut y: Array1<f64> = (0..60).map(|r| 1.0 + 0.2 * r as f64).collect();
        for r in [55, 57, 59] {
            y[r] += 40.0;
        }
        let ols = fit(&x, &y, &[false], 0.0, false).unwrap();
        let hub = fit(&x, &y, &[false], 0.0, true).unwrap();
        assert!((ols.weights[0] - 0.2).abs() > 0.05, "{:?}", ols.weights);
        assert!((hub.weights[0] - 0.2).abs() < 0.01, "{:?}", hub.weights);
    }

    #[test]
    fn constant_columns_get_zero_and_ridge_shrinks() {
        let x = Array2::from_shape_fn((30, 2), |(r, j)| if j == 0 { 5.0 } else { r as f64 });
        let y: Array1<f64> = (0..30).map(|r| r as f64).collect();
        let f = fit(&x, &y, &[true, true], 0.0, false).unwrap();
        assert!(f.weights[0].abs() < 1e-15);
        assert!((f.weights[1] - 1.0).abs() < 1e-9);
        let shrunk = fit(&x, &y, &[true, true], 100.0, false).unwrap();
        assert!(shrunk.weights[1] < 0.5, "{:?}", shrunk.weights);
        assert!((median(&[3.0, 1.0, 2.0, 10.0]) - 2.5).abs() < 1e-15);
    }
}
