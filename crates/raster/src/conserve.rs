//! Coarse conservation: correct a fine field so that its block means equal a coarse field,
//! with a smooth (bilinear) correction, computed on the coarse grid.
//!
//! The classic procedure is iterative back-projection on the fine grid: aggregate the fine
//! field to block means over its valid pixels (`M`), take the coarse residual, spread it back
//! bilinearly (`B`), add it, repeat. Every step is linear, so with `e_n` the residual of
//! step `n` and `S_n = Σ_{j<n} e_j` the total correction spread so far,
//!
//! `e_n = P (c − M f − (M B) S_n)`,  `f_n = f + B S_n`,
//!
//! where `P` zeroes the cells left alone (coarse value missing, or no valid fine pixel).
//! `M B` is a 3×3 stencil per coarse cell (a fine pixel's bilinear taps reach its own cell
//! and the neighbouring ones), built from the fine validity mask. So one pass over the fine
//! field gathers block sums, counts and stencils ([`BlockStats::add`], window by window),
//! the iteration runs on the coarse grid ([`BlockStats::solve`]), and one more pass adds
//! `B S_n` ([`Correction::apply`]). The result is that of the fine-grid iteration — same
//! tolerance, same stopping step, same cells left alone — without holding the fine field.

use ndarray::{Array2, Array3, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::raster::Raster;
use crate::resample::{bilinear4, bilinear_taps, Taps};
use crate::window::Window;

/// Options of coarse conservation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConserveParams {
    /// Stop when every coarse block mean is within this many kelvin of the coarse input
    /// (default 1e-4).
    pub tolerance: f64,
    /// Give up (with an error) after this many back-projection steps (default 500).
    pub max_iterations: usize,
}

impl Default for ConserveParams {
    fn default() -> Self {
        Self {
            tolerance: 1e-4,
            max_iterations: 500,
        }
    }
}

/// Block sums, counts and bilinear stencils of a fine field, gathered window by window.
#[derive(Debug, Clone)]
pub struct BlockStats {
    fine: Grid,
    coarse: Grid,
    k: usize,
    /// Bilinear taps (coarse index, weight) of every fine column and row.
    taps_x: Vec<Taps>,
    taps_y: Vec<Taps>,
    sum: Array2<f64>,
    count: Array2<u32>,
    /// `[rows, cols, 9]`: Σ over the cell's valid fine pixels of the bilinear weight of the
    /// neighbour (dy, dx) ∈ {−1, 0, 1}², at index `3·(dy+1) + dx+1`.
    stencil: Array3<f32>,
}

impl BlockStats {
    /// Empty statistics of a field on `fine`, a refinement of `coarse` by an integer factor.
    ///
    /// # Errors
    /// Grid errors if `fine` does not refine `coarse`.
    pub fn new(fine: &Grid, coarse: &Grid) -> Result<Self> {
        let k = fine.refinement_of(coarse)?;
        let (taps_x, taps_y) = bilinear_taps(coarse, fine).ok_or_else(|| Error::GridMismatch {
            detail: "the fine grid does not lie inside the coarse one".into(),
        })?;
        let shape = coarse.shape();
        Ok(Self {
            fine: fine.clone(),
            coarse: coarse.clone(),
            k,
            taps_x,
            taps_y,
            sum: Array2::zeros(shape),
            count: Array2::zeros(shape),
            stencil: Array3::zeros((shape.0, shape.1, 9)),
        })
    }

    /// Adds the pixels of `window` of the fine field (`NaN` for missing). Each fine pixel
    /// must be added once.
    ///
    /// # Errors
    /// [`Error::WindowOutOfBounds`] or [`Error::ShapeMismatch`].
    pub fn add(&mut self, window: Window, values: ArrayView2<'_, f32>) -> Result<()> {
        window.check_inside(&self.fine)?;
        check_shape(window, values.dim())?;
        let k = self.k;
        for (i, row) in values.outer_iter().enumerate() {
            let r = window.row0 + i;
            let cr = r / k;
            let ty = self.taps_y[r];
            for (j, &v) in row.iter().enumerate() {
                if v.is_nan() {
                    continue;
                }
                let c = window.col0 + j;
                let cc = c / k;
                self.sum[(cr, cc)] += f64::from(v);
                self.count[(cr, cc)] += 1;
                let tx = self.taps_x[c];
                for &(y, wy) in &ty {
                    for &(x, wx) in &tx {
                        if wy * wx > 0.0 {
                            // Taps are the cell itself or a neighbour (k ≥ 1).
                            let at = 3 * (y + 1 - cr) + (x + 1 - cc);
                            self.stencil[(cr, cc, at)] += (wy * wx) as f32;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// How far the field's block means are from `coarse`, next to how far those of plain
    /// bilinear interpolation of `coarse` are, over the cells that have both a coarse value
    /// and a valid fine pixel. Bilinear interpolation smooths, so its block means miss the
    /// coarse field a little; a field that misses it by more has added structure the coarse
    /// field does not support — a sign, visible without any fine truth, that a learned model
    /// is outside what it was trained for.
    ///
    /// # Errors
    /// [`Error::GridMismatch`] if `coarse` is not on the coarse grid.
    pub fn departure(&self, coarse: &Raster) -> Result<Departure> {
        coarse.grid().check_same(&self.coarse)?;
        let c = coarse.data();
        let (rows, cols) = self.coarse.shape();
        let (mut field, mut bilinear, mut cells) = (0.0f64, 0.0f64, 0usize);
        for r in 0..rows {
            for cc in 0..cols {
                let n = self.count[(r, cc)];
                if n == 0 || c[(r, cc)].is_nan() {
                    continue;
                }
                let target = f64::from(c[(r, cc)]);
                let mean = self.sum[(r, cc)] / f64::from(n);
                // The block mean of the bilinear spread of `coarse`: its stencil applied to
                // the neighbourhood (a missing neighbour makes the value unknown: skipped).
                let mut spread = 0.0;
                let mut known = true;
                for dy in 0..3 {
                    for dx in 0..3 {
                        let w = self.stencil[(r, cc, 3 * dy + dx)];
                        if w > 0.0 {
                            let v = c[(r + dy - 1, cc + dx - 1)];
                            known &= !v.is_nan();
                            spread += f64::from(w) * f64::from(v);
                        }
                    }
                }
                if !known {
                    continue;
                }
                field += (mean - target).powi(2);
                bilinear += (spread / f64::from(n) - target).powi(2);
                cells += 1;
            }
        }
        let rmse = |s: f64| {
            if cells == 0 {
                f64::NAN
            } else {
                (s / cells as f64).sqrt()
            }
        };
        Ok(Departure {
            field_rmse: rmse(field),
            bilinear_rmse: rmse(bilinear),
            cells,
        })
    }

    /// The coarse correction that makes the block means equal `coarse` (on the coarse grid):
    /// the back-projection iteration of the module documentation, run on the coarse grid.
    ///
    /// # Errors
    /// [`Error::GridMismatch`] if `coarse` is not on the coarse grid; [`Error::NotConverged`]
    /// if the tolerance is not reached in `params.max_iterations` steps.
    pub fn solve(&self, coarse: &Raster, params: &ConserveParams) -> Result<Correction> {
        coarse.grid().check_same(&self.coarse)?;
        let c = coarse.data();
        let (rows, cols) = self.coarse.shape();
        // Cells that take part: a coarse value and at least one valid fine pixel.
        let active =
            Array2::from_shape_fn((rows, cols), |ix| self.count[ix] > 0 && !c[ix].is_nan());
        let mean = Array2::from_shape_fn((rows, cols), |ix| {
            if self.count[ix] > 0 {
                self.sum[ix] / f64::from(self.count[ix])
            } else {
                0.0
            }
        });
        let mut s = Array2::<f64>::zeros((rows, cols));
        let mut e = Array2::<f64>::zeros((rows, cols));
        let mut worst = f64::INFINITY;
        for it in 0..=params.max_iterations {
            worst = 0.0f64;
            for r in 0..rows {
                for cc in 0..cols {
                    if !active[(r, cc)] {
                        e[(r, cc)] = 0.0;
                        continue;
                    }
                    let mut spread = 0.0;
                    for dy in 0..3 {
                        for dx in 0..3 {
                            let w = self.stencil[(r, cc, 3 * dy + dx)];
                            if w > 0.0 {
                                // Weights only exist for neighbours inside the grid.
                                spread += f64::from(w) * s[(r + dy - 1, cc + dx - 1)];
                            }
                        }
                    }
                    let agg = mean[(r, cc)] + spread / f64::from(self.count[(r, cc)]);
                    let res = f64::from(c[(r, cc)]) - agg;
                    e[(r, cc)] = res;
                    worst = worst.max(res.abs());
                }
            }
            if worst <= params.tolerance {
                return Ok(Correction {
                    coarse: s,
                    taps_x: self.taps_x.clone(),
                    taps_y: self.taps_y.clone(),
                    fine: self.fine.clone(),
                    iterations: it,
                });
            }
            if it == params.max_iterations {
                break;
            }
            s += &e;
        }
        Err(Error::NotConverged {
            what: "coarse conservation",
            iterations: params.max_iterations,
            residual: worst,
        })
    }
}

/// What [`BlockStats::departure`] measured (kelvin for LST).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Departure {
    /// RMSE of the field's block means against the coarse field.
    pub field_rmse: f64,
    /// The same for bilinear interpolation of the coarse field.
    pub bilinear_rmse: f64,
    /// Coarse cells compared.
    pub cells: usize,
}

impl Departure {
    /// How much further than interpolation a field may depart before it counts as
    /// departing more: 1 mK, well above the rounding of a bilinear field written in `f32`
    /// (about 3·10⁻⁵ K near 300 K, which made bilinear interpolation flag itself) and well
    /// below any departure that means something.
    pub const TOLERANCE: f64 = 1e-3;

    /// Whether the field departs from the coarse field by more than interpolation does
    /// (beyond [`Departure::TOLERANCE`]).
    pub fn exceeds_bilinear(&self) -> bool {
        self.field_rmse > self.bilinear_rmse + Self::TOLERANCE
    }
}

fn check_shape(window: Window, dim: (usize, usize)) -> Result<()> {
    if dim != (window.height, window.width) {
        return Err(Error::ShapeMismatch {
            want_rows: window.height,
            want_cols: window.width,
            got_rows: dim.0,
            got_cols: dim.1,
        });
    }
    Ok(())
}

/// A solved correction: the coarse field `S` whose bilinear spread is added to the fine
/// field's valid pixels.
#[derive(Debug, Clone)]
pub struct Correction {
    coarse: Array2<f64>,
    taps_x: Vec<Taps>,
    taps_y: Vec<Taps>,
    fine: Grid,
    iterations: usize,
}

impl Correction {
    /// Back-projection steps it took (0 if the field already matched).
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// The coarse field `S` whose bilinear spread is the correction (0 on the cells left
    /// alone).
    pub fn coarse(&self) -> &Array2<f64> {
        &self.coarse
    }

    /// Adds the correction to the valid pixels of `window` of the fine field.
    ///
    /// # Errors
    /// [`Error::WindowOutOfBounds`] or [`Error::ShapeMismatch`].
    pub fn apply(&self, window: Window, mut values: ArrayViewMut2<'_, f32>) -> Result<()> {
        window.check_inside(&self.fine)?;
        check_shape(window, values.dim())?;
        for (i, mut row) in values.outer_iter_mut().enumerate() {
            let ty = self.taps_y[window.row0 + i];
            for (j, v) in row.iter_mut().enumerate() {
                if v.is_nan() {
                    continue;
                }
                let tx = self.taps_x[window.col0 + j];
                let mut add = 0.0;
                for &(y, wy) in &ty {
                    for &(x, wx) in &tx {
                        add += wy * wx * self.coarse[(y, x)];
                    }
                }
                *v = (f64::from(*v) + add) as f32;
            }
        }
        Ok(())
    }
}

/// Coarse conservation of a whole raster: `fine` corrected so that its block means (over its
/// valid pixels) equal `coarse` within the tolerance, by a bilinear correction; coarse cells
/// that are missing, or whose block has no valid fine pixel, are left alone. Returns the
/// corrected raster and the number of back-projection steps. See the module documentation.
///
/// # Errors
/// Grid errors if `fine` does not refine `coarse`; [`Error::NotConverged`].
pub fn conserve(
    fine: &Raster,
    coarse: &Raster,
    params: &ConserveParams,
) -> Result<(Raster, usize)> {
    let mut stats = BlockStats::new(fine.grid(), coarse.grid())?;
    let all = Window::of(fine.grid());
    stats.add(all, fine.data().view())?;
    let corr = stats.solve(coarse, params)?;
    let mut out = fine.clone();
    corr.apply(all, out.data_mut().view_mut())?;
    Ok((out, corr.iterations()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::{resample, Resampling};

    /// The fine-grid back-projection this module replaces (amun-core's implementation
    /// before the coarse solve), the reference of the tests. With `f64_field` the fine
    /// field is held in f64 between steps (the same algorithm without its f32 drift: each
    /// step's addition rounds a ~290 K value to an f32 step of 3e-5 K).
    fn iterative(
        fine: &Raster,
        coarse: &Raster,
        params: &ConserveParams,
        f64_field: bool,
    ) -> (Raster, usize) {
        let k = fine.grid().refinement_of(coarse.grid()).unwrap();
        let mut out = fine.clone();
        let mut wide: Vec<f64> = fine.data().iter().map(|&v| f64::from(v)).collect();
        for it in 0..=params.max_iterations {
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
            if worst <= params.tolerance {
                return (out, it);
            }
            let spread = resample(&residual, fine.grid(), Resampling::Bilinear).unwrap();
            for ((v, w), s) in out
                .data_mut()
                .iter_mut()
                .zip(wide.iter_mut())
                .zip(spread.data().iter())
            {
                if !v.is_nan() && !s.is_nan() {
                    if f64_field {
                        *w += f64::from(*s);
                        *v = *w as f32;
                    } else {
                        *v += *s;
                    }
                }
            }
        }
        panic!("reference did not converge");
    }

    fn case(k: usize, holes: bool) -> (Raster, Raster) {
        let coarse_grid = Grid::geographic(0.0, 1.0, 0.1, 9, 7).unwrap();
        let fine_grid = coarse_grid.refine(k).unwrap();
        let fine = Raster::from_fn(fine_grid, |(r, c)| {
            if holes && ((r / 3 + c) % 11 == 0 || (r < k && c < k)) {
                f32::NAN
            } else {
                290.0 + 0.05 * r as f32 - 0.03 * c as f32 + (0.7 * r as f32).sin()
            }
        });
        let mut coarse = fine.block_mean(k, 0.0).unwrap().map(|v| v + 1.5);
        coarse.data_mut()[(3, 4)] += 2.0;
        coarse.data_mut()[(0, 8)] -= 3.0;
        if holes {
            coarse.data_mut()[(5, 5)] = f32::NAN;
        }
        (fine, coarse)
    }

    /// The coarse solve gives the fine-grid iteration's result: the same number of steps,
    /// within one f32 step at 290 K (3.05e-5 K) of it with the field held in f64, and within
    /// 3e-4 K of the original f32 code, whose 20-odd additions each round the field to that
    /// step (measured: up to 2.1e-4 K).
    #[test]
    fn matches_the_fine_grid_iteration() {
        for (k, holes) in [(10, false), (10, true), (3, true), (4, false)] {
            let (fine, coarse) = case(k, holes);
            let p = ConserveParams::default();
            let (got, it_got) = conserve(&fine, &coarse, &p).unwrap();
            for (f64_field, tol) in [(true, 3.1e-5), (false, 3e-4)] {
                let (want, it_want) = iterative(&fine, &coarse, &p, f64_field);
                assert!(
                    it_want.abs_diff(it_got) <= 1,
                    "k {k}: {it_want} vs {it_got} steps"
                );
                let max = want
                    .data()
                    .iter()
                    .zip(got.data().iter())
                    .map(|(a, b)| {
                        assert_eq!(a.is_nan(), b.is_nan());
                        if a.is_nan() {
                            0.0
                        } else {
                            (a - b).abs()
                        }
                    })
                    .fold(0.0f32, f32::max);
                assert!(
                    max < tol,
                    "k {k}, holes {holes}, f64 {f64_field}: max |Δ| {max} K"
                );
            }
            // The block means now match the coarse field where it is defined.
            let agg = got.block_mean(k, 0.0).unwrap();
            for (a, c) in agg.data().iter().zip(coarse.data().iter()) {
                if !a.is_nan() && !c.is_nan() {
                    assert!((a - c).abs() < 2e-4, "{a} vs {c}");
                }
            }
        }
    }

    #[test]
    fn windows_in_any_order_give_the_same_correction() {
        let (fine, coarse) = case(10, true);
        let p = ConserveParams::default();
        let (whole, _) = conserve(&fine, &coarse, &p).unwrap();
        let mut stats = BlockStats::new(fine.grid(), coarse.grid()).unwrap();
        let mut windows = Vec::new();
        for r0 in (0..70).step_by(16) {
            for c0 in (0..90).step_by(32) {
                windows.push(Window::new(c0, r0, 32.min(90 - c0), 16.min(70 - r0)));
            }
        }
        for w in windows.iter().rev() {
            let v = fine.window(w.col0, w.row0, w.width, w.height).unwrap();
            stats.add(*w, v.data().view()).unwrap();
        }
        let corr = stats.solve(&coarse, &p).unwrap();
        for w in &windows {
            let mut v = fine.window(w.col0, w.row0, w.width, w.height).unwrap();
            corr.apply(*w, v.data_mut().view_mut()).unwrap();
            let want = whole.window(w.col0, w.row0, w.width, w.height).unwrap();
            for (a, b) in v.data().iter().zip(want.data().iter()) {
                // The stencils summed in another order: at most an f32 step at 290 K.
                assert!(
                    a.is_nan() == b.is_nan() && (a.is_nan() || (a - b).abs() <= 3.1e-5),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn no_convergence_is_an_error() {
        let (fine, coarse) = case(10, false);
        let p = ConserveParams {
            tolerance: 1e-9,
            max_iterations: 2,
        };
        let e = conserve(&fine, &coarse, &p).unwrap_err();
        assert!(
            matches!(e, Error::NotConverged { iterations: 2, .. }),
            "{e}"
        );
    }

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

    #[test]
    fn departure_of_bilinear_is_bilinear_and_noise_exceeds_it() {
        let coarse_grid = Grid::geographic(0.0, 1.0, 0.1, 8, 6).unwrap();
        let coarse = Raster::from_fn(coarse_grid, |(r, c)| {
            280.0 + (r * r) as f32 * 0.7 - (c as f32 * 1.3).sin() * 3.0
        });
        let fine_grid = coarse.grid().refine(5).unwrap();
        let bil = resample(&coarse, &fine_grid, Resampling::Bilinear).unwrap();
        let mut stats = BlockStats::new(&fine_grid, coarse.grid()).unwrap();
        stats
            .add(Window::of(&fine_grid), bil.data().view())
            .unwrap();
        let d = stats.departure(&coarse).unwrap();
        assert_eq!(d.cells, 48);
        assert!(d.bilinear_rmse > 0.01, "{d:?}");
        assert!((d.field_rmse - d.bilinear_rmse).abs() < 1e-4, "{d:?}");
        assert!(!d.exceeds_bilinear(), "bilinear flags itself: {d:?}");
        // Just beyond the tolerance counts.
        let over = Departure {
            field_rmse: d.bilinear_rmse + 1.5 * Departure::TOLERANCE,
            ..d
        };
        assert!(over.exceeds_bilinear());
        // Structure the coarse field does not hold: ±1 K stripes that do not average out
        // in the blocks.
        let noisy = Raster::from_fn(fine_grid.clone(), |(r, c)| {
            bil.data()[(r, c)] + if (r / 2 + c) % 3 == 0 { 1.0 } else { -0.2 }
        });
        let mut stats = BlockStats::new(&fine_grid, coarse.grid()).unwrap();
        stats
            .add(Window::of(&fine_grid), noisy.data().view())
            .unwrap();
        assert!(stats.departure(&coarse).unwrap().exceeds_bilinear());
    }
}
