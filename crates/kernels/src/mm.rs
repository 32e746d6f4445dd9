//! A bounds-checked front to the `gemm` crate's single-precision matrix product.

use gemm::Parallelism;

/// A read-only strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A row-major view with `ld` elements between rows.
    pub fn rows(data: &'a [f32], ld: usize) -> Self {
        Self {
            data,
            rs: ld,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `ld` elements between rows.
    pub fn rows_t(data: &'a [f32], ld: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: ld,
        }
    }

    fn fits(&self, r: usize, c: usize) -> bool {
        r == 0 || c == 0 || (r - 1) * self.rs + (c - 1) * self.cs < self.data.len()
    }
}

/// The number of threads the kernels may use (rayon's global pool).
pub(crate) fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// `dst[m×n] = lhs[m×k] · rhs[k×n]` (or `+=` when `accumulate`), `dst` row-major with `ld`
/// elements between rows. Runs on rayon's pool when `parallel`.
///
/// # Panics
/// If a view is too short for its shape: callers size every buffer from the same geometry, so
/// this is an internal invariant, checked because the product below uses raw pointers.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    ld: usize,
    accumulate: bool,
    lhs: View<'_>,
    rhs: View<'_>,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        lhs.fits(m, k) && rhs.fits(k, n) && (m - 1) * ld + n <= dst.len(),
        "matmul: buffer too short for {m}×{k}·{k}×{n}"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * ld..r * ld + n].fill(0.0);
            }
        }
        return;
    }
    let par = if parallel && threads() > 1 {
        Parallelism::Rayon(threads())
    } else {
        Parallelism::None
    };
    // SAFETY: the assertion above keeps every element the product touches inside the three
    // slices; `dst` is borrowed mutably, so nothing else aliases it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ld as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_naive_product() {
        // Reference: the textbook triple loop.
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32).sin()).collect();
        let mut c = vec![1.0; m * n];
        matmul(
            m,
            n,
            k,
            &mut c,
            n,
            true,
            View::rows(&a, k),
            View::rows(&b, n),
            false,
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f32>();
                assert!((c[i * n + j] - want).abs() < 1e-5, "{i},{j}");
            }
        }
        // The transpose view: c = aᵀ·aᵀᵀ-ish shapes, (k×m)ᵀ read from a.
        let mut d = vec![0.0; k * k];
        matmul(
            k,
            k,
            m,
            &mut d,
            k,
            false,
            View::rows_t(&a, k),
            View::rows(&a, k),
            true,
        );
        for i in 0..k {
            for j in 0..k {
                let want: f32 = (0..m).map(|p| a[p * k + i] * a[p * k + j]).sum();
                assert!((d[i * k + j] - want).abs() < 1e-4);
            }
        }
    }
}
