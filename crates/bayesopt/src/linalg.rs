//! Dense symmetric positive-definite linear algebra on row-major `n × n` slices.
//!
//! The matrices here are small (one row per observation, a few hundred at most), so plain
//! loops over contiguous rows are fast enough and keep the crate free of a BLAS dependency.

use crate::error::{Error, Result};

/// Lower Cholesky factor `L` (row-major, upper triangle zero) of `a + jitter·I`, where the
/// jitter starts at zero and grows tenfold from `1e-10 · mean(diag)` until the factorisation
/// succeeds. Returns the factor and the jitter used.
///
/// # Errors
/// [`Error::NotPositiveDefinite`] if even a jitter of `1e-2 · mean(diag)` fails.
pub(crate) fn cholesky_jittered(a: &[f64], n: usize) -> Result<(Vec<f64>, f64)> {
    let mean_diag = (0..n).map(|i| a[i * n + i]).sum::<f64>() / n.max(1) as f64;
    let scale = if mean_diag.is_finite() && mean_diag > 0.0 {
        mean_diag
    } else {
        1.0
    };
    let mut jitter = 0.0;
    let mut l = vec![0.0; n * n];
    loop {
        if cholesky_into(a, n, jitter, &mut l) {
            return Ok((l, jitter));
        }
        jitter = if jitter == 0.0 {
            1e-10 * scale
        } else {
            jitter * 10.0
        };
        if jitter > 1e-2 * scale {
            return Err(Error::NotPositiveDefinite { size: n, jitter });
        }
    }
}

/// Cholesky–Banachiewicz on `a + jitter·I`; `false` if a pivot is not positive and finite.
fn cholesky_into(a: &[f64], n: usize, jitter: f64, l: &mut [f64]) -> bool {
    l.fill(0.0);
    for i in 0..n {
        for j in 0..=i {
            let (ri, rj) = (&l[i * n..i * n + j], &l[j * n..j * n + j]);
            let dot: f64 = ri.iter().zip(rj).map(|(x, y)| x * y).sum();
            if i == j {
                let d = a[i * n + i] + jitter - dot;
                if !(d > 0.0 && d.is_finite()) {
                    return false;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - dot) / l[j * n + j];
            }
        }
    }
    true
}

/// Solves `L x = b` in place (forward substitution).
pub(crate) fn solve_lower(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let row = &l[i * n..i * n + i];
        let dot: f64 = row.iter().zip(&b[..i]).map(|(x, y)| x * y).sum();
        b[i] = (b[i] - dot) / l[i * n + i];
    }
}

/// Solves `Lᵀ x = b` in place (back substitution).
pub(crate) fn solve_upper_t(l: &[f64], n: usize, b: &mut [f64]) {
    for i in (0..n).rev() {
        let xi = b[i] / l[i * n + i];
        b[i] = xi;
        // Column i of Lᵀ above the diagonal is row i of L left of the diagonal.
        for (bk, lik) in b[..i].iter_mut().zip(&l[i * n..i * n + i]) {
            *bk -= lik * xi;
        }
    }
}

/// `(L Lᵀ)⁻¹` from the Cholesky factor, as a full symmetric row-major matrix.
pub(crate) fn inverse_from_cholesky(l: &[f64], n: usize) -> Vec<f64> {
    // M = L⁻¹ (lower triangular), built column by column as rows of Mᵀ.
    let mut minv_t = vec![0.0; n * n]; // row j = column j of L⁻¹
    for j in 0..n {
        let col = &mut minv_t[j * n..(j + 1) * n];
        col[j] = 1.0;
        for i in j..n {
            let row = &l[i * n..i * n + i];
            let dot: f64 = row[j..].iter().zip(&col[j..i]).map(|(x, y)| x * y).sum();
            let rhs = if i == j { 1.0 } else { 0.0 };
            col[i] = (rhs - dot) / l[i * n + i];
        }
    }
    // K⁻¹ = L⁻ᵀ L⁻¹: entry (a, b) = Σ_k M[k][a] M[k][b] = dot of columns a and b of M.
    let mut inv = vec![0.0; n * n];
    for a in 0..n {
        for b in 0..=a {
            let start = a.max(b);
            let ca = &minv_t[a * n + start..(a + 1) * n];
            let cb = &minv_t[b * n + start..(b + 1) * n];
            let v: f64 = ca.iter().zip(cb).map(|(x, y)| x * y).sum();
            inv[a * n + b] = v;
            inv[b * n + a] = v;
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed SPD matrix: B Bᵀ + I with B = [[1,2,0],[0,1,3],[2,0,1]].
    fn spd() -> Vec<f64> {
        vec![6.0, 2.0, 2.0, 2.0, 11.0, 3.0, 2.0, 3.0, 6.0]
    }

    #[test]
    fn cholesky_reconstructs_and_inverts() {
        let a = spd();
        let (l, jitter) = cholesky_jittered(&a, 3).unwrap();
        assert!(jitter.abs() < f64::MIN_POSITIVE);
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| l[i * 3 + k] * l[j * 3 + k]).sum();
                assert!((v - a[i * 3 + j]).abs() < 1e-12);
            }
        }
        let inv = inverse_from_cholesky(&l, 3);
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| a[i * 3 + k] * inv[k * 3 + j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-12);
            }
        }
        // Solve A x = b through the two triangular solves and check the residual.
        let b = [1.0, -2.0, 0.5];
        let mut x = b;
        solve_lower(&l, 3, &mut x);
        solve_upper_t(&l, 3, &mut x);
        for i in 0..3 {
            let v: f64 = (0..3).map(|k| a[i * 3 + k] * x[k]).sum();
            assert!((v - b[i]).abs() < 1e-12);
        }
    }

    #[test]
    fn jitter_rescues_singular_matrix() {
        // Rank-one matrix [[1,1],[1,1]]: singular, needs jitter.
        let a = vec![1.0, 1.0, 1.0, 1.0];
        let (_, jitter) = cholesky_jittered(&a, 2).unwrap();
        assert!(jitter > 0.0 && jitter <= 1e-2);
        // Negative definite: hopeless.
        let a = vec![-1.0, 0.0, 0.0, -1.0];
        assert!(matches!(
            cholesky_jittered(&a, 2),
            Err(Error::NotPositiveDefinite { .. })
        ));
    }
}
