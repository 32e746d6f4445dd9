//! Coarse conservation: make the block means of a fine field equal a coarse field, with a
//! smooth correction.
//!
//! The classic way is iterative back-projection on the fine grid: aggregate the fine field to
//! the coarse grid (block mean `M`), spread the coarse residual back with bilinear
//! interpolation (`B`), add, repeat. Every step is linear, so the coarse residual evolves on
//! its own, `r_{n+1} = (I − M B) r_n`, and the total correction is `B (Σ r_n)`. This module
//! computes the coarse operator `A = M B` once (a 3×3 stencil per coarse cell, found by
//! spreading nine coarse "colour" fields whose non-zero cells are three cells apart), iterates
//! on the coarse grid — `k²` times fewer pixels than the fine grid — and spreads the summed
//! correction once. The result equals the fine-grid iteration up to rounding.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::raster::Raster;
use crate::resample::bilinear4;

/// Options of coarse conservation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConserveParams {
    /// Stop when every coarse block mean is within this many kelvin of the coarse input.
    pub tolerance: f64,
    /// Give up (with an error) after this many back-projection iterations.
    pub max_iterations: usize,
}

impl Default for ConserveParams {
    /// Tolerance 1e-4, at most 500 iterations.
    fn default() -> Self {
        Self {
            tolerance: 1e-4,
            max_iterations: 500,
        }
    }
}

/// The coarse operator `A = M B` of one fine validity mask: for each coarse cell, the block
/// mean (over the valid fine pixels of the cell) of the bilinear spread of a unit value in
/// each of its 3×3 neighbours.
#[derive(Debug, Clone)]
pub struct SpreadOperator {
    /// `[rows, cols, 3, 3]` flattened: weight of neighbour `(dr, dc)` (offsets −1..=1) of
    /// cell `(r, c)`; `NaN` for a cell without a valid fine pixel.
    weights: Array2<[f32; 9]>,
}

impl SpreadOperator {
    /// The operator for `fine_valid` (a fine field whose non-missing pixels count in the
    /// block means) refining `coarse`'s grid.
    ///
    /// # Errors
    /// Grid errors if `fine_valid`'s grid is not an integer refinement of `coarse`'s.
    pub fn new(fine_valid: &Raster, coarse: &Raster) -> Result<Self> {
        let k = fine_valid.grid().refinement_of(coarse.grid())?;
        let (rows, cols) = coarse.grid().shape();
        let mut weights = Array2::from_elem((rows, cols), [f32::NAN; 9]);
        let valid = fine_valid.data();
        for colour in 0..9usize {
            let (cr, cc) = (colour / 3, colour % 3);
            let probe = Array2::from_shape_fn((rows, cols), |(r, c)| {
                if r % 3 == cr && c % 3 == cc {
                    1.0
                } else {
                    0.0
                }
            });
            let s = spread_onto(&probe, k, fine_valid);
            for r in 0..rows {
                for c in 0..cols {
                    // The one neighbour of (r, c) with this colour.
                    let dr = (cr + 3 - r % 3) % 3; // 0, 1 or 2 ↔ offset 0, +1, −1
                    let dc = (cc + 3 - c % 3) % 3;
                    let slot = offset_slot(dr) * 3 + offset_slot(dc);
                    let (mut n, mut sum) = (0usize, 0.0f64);
                    for i in r * k..(r + 1) * k {
                        for j in c * k..(c + 1) * k {
                            if !valid[(i, j)].is_nan() && !s[(i, j)].is_nan() {
                                n += 1;
                                sum += f64::from(s[(i, j)]);
                            }
                        }
                    }
                    if n > 0 {
                        weights[(r, c)][slot] = (sum / n as f64) as f32;
                    }
                }
            }
        }
        Ok(Self { weights })
    }

    /// `A x` on the coarse grid (`x` without `NaN`); cells without valid fine pixels give 0.
    fn apply(&self, x: &Array2<f32>) -> Array2<f32> {
        let (rows, cols) = x.dim();
        Array2::from_shape_fn((rows, cols), |(r, c)| {
            let w = &self.weights[(r, c)];
            if w[4].is_nan() {
                return 0.0;
            }
            let mut acc = 0.0f64;
            for (slot, &wt) in w.iter().enumerate() {
                let (dr, dc) = (slot / 3, slot % 3);
                let (rr, cc) = (r as isize + dr as isize - 1, c as isize + dc as isize - 1);
                if rr < 0 || cc < 0 || rr >= rows as isize || cc >= cols as isize {
                    continue;
                }
                acc += f64::from(wt) * f64::from(x[(rr as usize, cc as usize)]);
            }
            acc as f32
        })
    }

    /// Whether cell `(r, c)` has a valid fine pixel.
    fn covered(&self, r: usize, c: usize) -> bool {
        !self.weights[(r, c)][4].is_nan()
    }
}

/// Slot 0, 1, 2 of the offsets −1, 0, +1 from the colour distance 0 (same cell), 1 (+1) or
/// 2 (−1).
fn offset_slot(d: usize) -> usize {
    match d {
        0 => 1,
        1 => 2,
        _ => 0,
    }
}

/// Bilinear interpolation of a coarse field onto the fine pixels `rows × cols` starting at
/// fine pixel `(row0, col0)` of the grid that refines it `k` times: the values
/// [`crate::resample`] with [`crate::Resampling::Bilinear`] gives on the whole fine grid
/// (GDAL's rules: edge taps clamp, missing coarse pixels are left out, a fine pixel whose
/// centre falls in a missing coarse pixel is missing), but computed from fine pixel indices,
/// so that any window of the fine grid gets bit-identical values.
pub fn bilinear_spread(
    coarse: ArrayView2<'_, f32>,
    k: usize,
    row0: usize,
    col0: usize,
    rows: usize,
    cols: usize,
) -> Array2<f32> {
    let kf = k as f64;
    let xs: Vec<f64> = (col0..col0 + cols).map(|c| (c as f64 + 0.5) / kf).collect();
    let ys: Vec<f64> = (row0..row0 + rows).map(|r| (r as f64 + 0.5) / kf).collect();
    let d = coarse.to_owned();
    let (h, w) = d.dim();
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let (sx, sy) = (xs[j], ys[i]);
        let (cx, cy) = (sx as usize, sy as usize);
        if cy >= h || cx >= w || d[(cy, cx)].is_nan() {
            return f32::NAN;
        }
        bilinear4(&d, sx, sy)
    })
}

/// [`bilinear_spread`] onto the whole fine grid of `fine` (a refinement of `coarse`'s grid).
fn spread_onto(coarse: &Array2<f32>, k: usize, fine: &Raster) -> Array2<f32> {
    let (rows, cols) = fine.grid().shape();
    bilinear_spread(coarse.view(), k, 0, 0, rows, cols)
}

/// Solves `A s = target` for the coarse field `s` by the iteration that back-projection
/// performs (`s ← s + r`, `r = target − A s`), starting from `s = 0`, on the cells where
/// `target` is valid and the operator covers; others stay 0. Returns `s` and the number of
/// iterations.
///
/// # Errors
/// [`Error::NotConverged`] if the tolerance is not reached within `max_iterations`.
pub fn solve_spread(
    op: &SpreadOperator,
    target: &Array2<f32>,
    params: &ConserveParams,
) -> Result<(Array2<f32>, usize)> {
    let (rows, cols) = target.dim();
    let active = Array2::from_shape_fn((rows, cols), |(r, c)| {
        !target[(r, c)].is_nan() && op.covered(r, c)
    });
    let mut s = Array2::<f32>::zeros((rows, cols));
    let mut residual =
        Array2::from_shape_fn((rows, cols), |ix| if active[ix] { target[ix] } else { 0.0 });
    let mut worst = f64::INFINITY;
    for it in 0..=params.max_iterations {
        worst = residual
            .iter()
            .fold(0.0f64, |m, &v| m.max(f64::from(v.abs())));
        if worst <= params.tolerance {
            return Ok((s, it));
        }
        if it == params.max_iterations {
            break;
        }
        s += &residual;
        let a = op.apply(&s);
        for ((ix, r), &av) in residual.indexed_iter_mut().zip(a.iter()) {
            *r = if active[ix] { target[ix] - av } else { 0.0 };
        }
    }
    Err(Error::NotConverged {
        what: "coarse conservation",
        iterations: params.max_iterations,
        residual: worst,
    })
}

/// Makes the block means of `fine` equal `coarse` (within the tolerance) by adding a smooth
/// correction: the result of iterative back-projection (block-mean residual spread
/// bilinearly, repeated), computed on the coarse grid.
///
/// Coarse pixels that are missing, or whose block has no valid fine pixel, are left alone;
/// missing fine pixels stay missing. Returns the corrected field and the number of
/// back-projection iterations the tolerance needed.
///
/// # Errors
/// Grid errors if `fine` does not refine `coarse`; [`Error::NotConverged`] if the tolerance
/// is not reached within `max_iterations`.
pub fn conserve(
    fine: &Raster,
    coarse: &Raster,
    params: &ConserveParams,
) -> Result<(Raster, usize)> {
    let k = fine.grid().refinement_of(coarse.grid())?;
    let op = SpreadOperator::new(fine, coarse)?;
    let agg = fine.block_mean(k, 0.0)?;
    let target = ndarray::Zip::from(coarse.data())
        .and(agg.data())
        .map_collect(|&c, &a| if a.is_nan() { f32::NAN } else { c - a });
    let (s, iterations) = solve_spread(&op, &target, params)?;
    let correction = spread_onto(&s, k, fine);
    let mut out = fine.clone();
    ndarray::Zip::from(out.data_mut())
        .and(&correction)
        .for_each(|v, &s| {
            if !v.is_nan() && !s.is_nan() {
                *v += s;
            }
        });
    Ok((out, iterations))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::Grid;
    use crate::resample::{resample, Resampling};

    #[test]
    fn spread_equals_resample_and_windows_are_exact() {
        let coarse_grid = Grid::geographic(10.0, 50.0, 0.1, 7, 5).unwrap();
        let mut coarse = Raster::from_fn(coarse_grid, |(r, c)| (r * 7 + c * c) as f32 * 0.37);
        coarse.data_mut()[(2, 3)] = f32::NAN;
        let fine_grid = coarse.grid().refine(4).unwrap();
        let whole = bilinear_spread(coarse.data().view(), 4, 0, 0, 20, 28);
        let reference = resample(&coarse, &fine_grid, Resampling::Bilinear).unwrap();
        for (a, b) in whole.iter().zip(reference.data()) {
            assert_eq!(a.is_nan(), b.is_nan());
            if !a.is_nan() {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
        let win = bilinear_spread(coarse.data().view(), 4, 3, 5, 9, 11);
        for ((i, j), v) in win.indexed_iter() {
            let w = whole[(3 + i, 5 + j)];
            assert!(v.to_bits() == w.to_bits(), "({i}, {j}): {v} vs {w}");
        }
    }

    /// The fine-grid back-projection this module replaces, kept as the reference.
    fn iterate_on_fine(fine: &Raster, coarse: &Raster, tol: f64) -> Raster {
        let k = fine.grid().refinement_of(coarse.grid()).unwrap();
        let mut out = fine.clone();
        for _ in 0..2000 {
            let agg = out.block_mean(k, 0.0).unwrap();
            let mut residual = coarse.clone();
            let mut worst = 0.0f64;
            for (r, a) in residual.data_mut().iter_mut().zip(agg.data().iter()) {
                if r.is_nan() || a.is_nan() {
                    *r = 0.0;
                } else {
                    *r -= *a;
                    worst = worst.max(f64::from(r.abs()));
                }
            }
            if worst <= tol {
                return out;
            }
            let spread = resample(&residual, fine.grid(), Resampling::Bilinear).unwrap();
            for (v, s) in out.data_mut().iter_mut().zip(spread.data().iter()) {
                if !v.is_nan() && !s.is_nan() {
                    *v += *s;
                }
            }
        }
        panic!("reference did not converge");
    }

    fn case() -> (Raster, Raster) {
        let coarse_grid = Grid::geographic(0.0, 1.0, 0.1, 9, 7).unwrap();
        let fine_grid = coarse_grid.refine(5).unwrap();
        let mut fine = Raster::from_fn(fine_grid, |(r, c)| {
            290.0 + 0.05 * r as f32 - 0.03 * c as f32 + ((r * 7 + c * 3) % 5) as f32 * 0.2
        });
        // Missing fine pixels, one fully missing block, one missing coarse cell.
        fine.data_mut()[(3, 4)] = f32::NAN;
        for i in 10..15 {
            for j in 20..25 {
                fine.data_mut()[(i, j)] = f32::NAN;
            }
        }
        let mut coarse = fine.block_mean(5, 0.0).unwrap().map(|v| v + 1.5);
        coarse.data_mut()[(3, 4)] += 2.0;
        coarse.data_mut()[(5, 1)] = f32::NAN;
        coarse.data_mut()[(6, 8)] -= 3.0;
        (fine, coarse)
    }

    #[test]
    fn matches_back_projection_on_the_fine_grid() {
        let (fine, coarse) = case();
        let params = ConserveParams {
            tolerance: 1e-5,
            ..ConserveParams::default()
        };
        let (ours, iterations) = conserve(&fine, &coarse, &params).unwrap();
        let reference = iterate_on_fine(&fine, &coarse, 1e-5);
        assert!(iterations > 1);
        let mut worst = 0.0f32;
        for (a, b) in ours.data().iter().zip(reference.data()) {
            assert_eq!(a.is_nan(), b.is_nan());
            if !a.is_nan() {
                worst = worst.max((a - b).abs());
            }
        }
        // Both stop within 1e-5 K of the block means; the fine values differ by the order of
        // f32 rounding at 290 K (one ulp is 3e-5 K) accumulated over the iterations.
        assert!(worst < 3e-4, "max difference {worst} K");
        // Block means match where the coarse cell and the block are valid.
        let agg = ours.block_mean(5, 0.0).unwrap();
        for ((ix, &c), &a) in coarse.data().indexed_iter().zip(agg.data()) {
            if !c.is_nan() && !a.is_nan() {
                assert!((c - a).abs() < 1e-4, "cell {ix:?}: {a} vs {c}");
            }
        }
        // The missing coarse cell's block keeps its block mean + what neighbours spread.
        assert!(agg.data()[(2, 4)].is_nan());
    }

    #[test]
    fn reports_non_convergence() {
        let (fine, coarse) = case();
        let e = conserve(
            &fine,
            &coarse,
            &ConserveParams {
                tolerance: 1e-9,
                max_iterations: 3,
            },
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::NotConverged { iterations: 3, .. }),
            "{e}"
        );
    }

    #[test]
    fn block_means_match_and_no_blocks_appear() {
        let coarse_grid = Grid::geographic(0.0, 1.0, 0.1, 8, 8).unwrap();
        let fine_grid = coarse_grid.refine(10).unwrap();
        // A smooth fine field and a coarse target that differs from its block means by a
        // smooth offset field.
        let fine = Raster::from_fn(fine_grid, |(r, c)| {
            290.0 + 0.05 * r as f32 - 0.03 * c as f32
        });
        let mut coarse = fine.block_mean(10, 0.0).unwrap().map(|v| v + 1.5);
        coarse.data_mut()[(3, 4)] += 2.0;
        let (out, iters) = conserve(&fine, &coarse, &ConserveParams::default()).unwrap();
        let agg = out.block_mean(10, 0.0).unwrap();
        let max_err = agg
            .data()
            .iter()
            .zip(coarse.data().iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            max_err < 1e-3,
            "max block error {max_err} after {iters} iterations"
        );
        // No block artefact: the jump across a block edge is not larger than the largest
        // jump inside blocks by more than a small margin.
        let d = out.data();
        let (mut edge, mut inner) = (0.0f32, 0.0f32);
        for r in 0..80 {
            for c in 0..79 {
                let jump = (d[(r, c + 1)] - d[(r, c)]).abs();
                if (c + 1) % 10 == 0 {
                    edge = edge.max(jump);
                } else {
                    inner = inner.max(jump);
                }
            }
        }
        assert!(
            edge < 1.5 * inner + 1e-3,
            "edge jump {edge} vs interior {inner}"
        );
    }
}
