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

    /// Whether an `r × c` matrix lies inside `data` (computed without overflow).
    fn fits(&self, r: usize, c: usize) -> bool {
        r == 0 || c == 0 || last_index(r, c, self.rs, self.cs).is_some_and(|i| i < self.data.len())
    }
}

/// The index of element `(r − 1, c − 1)` of a strided matrix, `None` if it overflows.
fn last_index(r: usize, c: usize, rs: usize, cs: usize) -> Option<usize> {
    (r - 1)
        .checked_mul(rs)?
        .checked_add((c - 1).checked_mul(cs)?)
}

/// The number of threads the kernels may use (rayon's global pool).
pub(crate) fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// `dst[m×n] = lhs[m×k] · rhs[k×n]` (or `+=` when `accumulate`), `dst` row-major with `ld`
/// elements between rows. Runs on rayon's pool when `parallel`.
///
/// # Panics
/// If a view is too short for its shape, or `dst`'s rows would overlap (`ld < n`) or run past
/// its end: callers size every buffer from the same geometry, so this is an internal
/// invariant, checked in every build because the product below writes through a raw pointer
/// (from several threads when `parallel`).
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
        ld >= n && last_index(m, n, ld, 1).is_some_and(|i| i < dst.len()),
        "matmul: destination of {} with {ld} between rows cannot hold {m}×{n}",
        dst.len()
    );
    assert!(
        lhs.fits(m, k) && rhs.fits(k, n),
        "matmul: operand too short for {m}×{k}·{k}×{n}"
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
    // SAFETY: the assertions above keep every element the product reads inside `lhs` and
    // `rhs` and every element it writes inside `dst`, in rows that do not overlap (`ld ≥ n`),
    // so that the threads of a parallel product write disjoint elements; `dst` is borrowed
    // mutably, so nothing else aliases it.
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
    #[should_panic(expected = "cannot hold")]
    fn overlapping_destination_rows_are_refused() {
        // 2×4 into rows 3 apart: row 0's last element would be row 1's first.
        let (a, b) = (vec![1.0; 2], vec![1.0; 4]);
        let mut c = vec![0.0; 16];
        matmul(
            2,
            4,
            1,
            &mut c,
            3,
            false,
            View::rows(&a, 1),
            View::rows(&b, 4),
            false,
        );
    }

    #[test]
    #[should_panic(expected = "operand too short")]
    fn a_view_whose_extent_overflows_is_refused() {
        // Rows 2⁶³ apart: the last of 3 rows starts at 2·2⁶³, which wraps around to 0, so
        // that wrapping arithmetic would find the 3×2 view inside 4 values.
        let (a, b) = (vec![1.0; 4], vec![1.0; 4]);
        let mut c = vec![0.0; 6];
        let huge = View {
            data: &a,
            rs: 1 << (usize::BITS - 1),
            cs: 1,
        };
        matmul(3, 2, 2, &mut c, 2, false, huge, View::rows(&b, 2), false);
    }

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
