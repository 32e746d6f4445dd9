//! Structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004).

use amun_raster::Raster;
use ndarray::Array2;
use rayon::prelude::*;

use crate::error::Result;

/// Standard deviation of the Gaussian window (Wang et al. 2004).
pub const SSIM_SIGMA: f64 = 1.5;
/// Window radius in pixels: `int(3.5 · σ + 0.5)` as scipy's `gaussian_filter(truncate=3.5)`,
/// giving the 11 × 11 window of the paper.
pub const SSIM_RADIUS: usize = 5;
/// Stabilising constant `K1` of the paper.
pub const SSIM_K1: f64 = 0.01;
/// Stabilising constant `K2` of the paper.
pub const SSIM_K2: f64 = 0.03;

/// The normalised 1-D Gaussian weights of the window (scipy's `_gaussian_kernel1d`).
fn kernel() -> [f64; 2 * SSIM_RADIUS + 1] {
    let mut w = [0.0; 2 * SSIM_RADIUS + 1];
    for (i, wi) in w.iter_mut().enumerate() {
        let x = i as f64 - SSIM_RADIUS as f64;
        *wi = (-0.5 * (x / SSIM_SIGMA).powi(2)).exp();
    }
    let s: f64 = w.iter().sum();
    w.iter_mut().for_each(|v| *v /= s);
    w
}

/// The local SSIM of every pixel whose whole 11 × 11 window lies inside the grid and holds
/// values in both rasters; `NaN` elsewhere. Returns `None` with the map when the data range
/// is zero or not finite.
///
/// Gaussian window σ = 1.5, `K1 = 0.01`, `K2 = 0.03`, population (co)variances, `L` =
/// `data_range`. Inside the valid region this equals the map of
/// `skimage.metrics.structural_similarity(reference, prediction, gaussian_weights=True,
/// sigma=1.5, use_sample_covariance=False, data_range=L, full=True)`, and the mean of the
/// defined values equals skimage's mean SSIM (which crops the same 5-pixel border).
///
/// # Errors
/// Grid errors if the two rasters are not on the same grid.
pub fn ssim_map(prediction: &Raster, reference: &Raster, data_range: f64) -> Result<Array2<f32>> {
    prediction.grid().check_same(reference.grid())?;
    let (rows, cols) = prediction.grid().shape();
    let mut out = Array2::from_elem((rows, cols), f32::NAN);
    let r = SSIM_RADIUS;
    if rows <= 2 * r || cols <= 2 * r || !(data_range.is_finite() && data_range > 0.0) {
        return Ok(out);
    }
    let (x, y) = (prediction.data(), reference.data());
    // Summed-area table of invalid pixels: a window is usable when it holds none.
    let mut bad = Array2::<u32>::zeros((rows + 1, cols + 1));
    for i in 0..rows {
        for j in 0..cols {
            let b = u32::from(x[(i, j)].is_nan() || y[(i, j)].is_nan());
            bad[(i + 1, j + 1)] = b + bad[(i, j + 1)] + bad[(i + 1, j)] - bad[(i, j)];
        }
    }
    let w = kernel();
    let c1 = (SSIM_K1 * data_range).powi(2);
    let c2 = (SSIM_K2 * data_range).powi(2);
    let value = |a: &Array2<f32>, i: usize, j: usize| {
        let v = a[(i, j)];
        if v.is_nan() {
            0.0
        } else {
            f64::from(v)
        }
    };
    let interior: Vec<(usize, Vec<f32>)> = (r..rows - r)
        .into_par_iter()
        .map(|i| {
            // Vertical pass over the 11 rows centred on i: E[x], E[y], E[x²], E[y²], E[xy].
            let mut v = vec![[0.0f64; 5]; cols];
            for (k, &wk) in w.iter().enumerate() {
                let src = i + k - r;
                for (j, acc) in v.iter_mut().enumerate() {
                    let (a, b) = (value(x, src, j), value(y, src, j));
                    acc[0] += wk * a;
                    acc[1] += wk * b;
                    acc[2] += wk * a * a;
                    acc[3] += wk * b * b;
                    acc[4] += wk * a * b;
                }
            }
            let mut row = vec![f32::NAN; cols];
            for (j, slot) in row.iter_mut().enumerate().take(cols - r).skip(r) {
                let n_bad = bad[(i + r + 1, j + r + 1)] + bad[(i - r, j - r)]
                    - bad[(i - r, j + r + 1)]
                    - bad[(i + r + 1, j - r)];
                if n_bad > 0 {
                    continue;
                }
                let mut m = [0.0f64; 5];
                for (k, &wk) in w.iter().enumerate() {
                    let s = &v[j + k - r];
                    for q in 0..5 {
                        m[q] += wk * s[q];
                    }
                }
                let (ux, uy) = (m[0], m[1]);
                let vx = m[2] - ux * ux;
                let vy = m[3] - uy * uy;
                let vxy = m[4] - ux * uy;
                let s = ((2.0 * ux * uy + c1) * (2.0 * vxy + c2))
                    / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
                *slot = s as f32;
            }
            (i, row)
        })
        .collect();
    for (i, row) in interior {
        out.row_mut(i).assign(&ndarray::Array1::from(row));
    }
    Ok(out)
}

/// The data range `max − min` of a raster's valid pixels (the `L` of SSIM), or `None` when
/// it has no valid pixel.
pub(crate) fn data_range(reference: &Raster) -> Option<f64> {
    reference.stats().map(|s| s.max - s.min)
}

/// Mean SSIM of `prediction` against `reference` with the data range of the reference; see
/// [`ssim_map`]. `None` when no pixel has a complete window or the reference is constant.
///
/// # Errors
/// Grid errors if the two rasters are not on the same grid.
pub fn ssim(prediction: &Raster, reference: &Raster) -> Result<Option<f64>> {
    let range = data_range(reference).unwrap_or(f64::NAN);
    let map = ssim_map(prediction, reference, range)?;
    Ok(mean_defined(map.iter().copied()))
}

/// Mean of the non-`NaN` values, `None` if there is none.
pub(crate) fn mean_defined(values: impl Iterator<Item = f32>) -> Option<f64> {
    let (mut n, mut s) = (0usize, 0.0f64);
    for v in values.filter(|v| !v.is_nan()) {
        n += 1;
        s += f64::from(v);
    }
    (n > 0).then(|| s / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::Grid;

    fn raster(rows: usize, cols: usize, f: impl Fn(usize, usize) -> f32) -> Raster {
        let g = Grid::geographic(0.0, 1.0, 0.01, cols, rows).unwrap();
        Raster::from_fn(g, |(i, j)| f(i, j))
    }

    #[test]
    fn identical_images_score_one_and_kernel_is_normalised() {
        assert!((kernel().iter().sum::<f64>() - 1.0).abs() < 1e-15);
        let a = raster(20, 25, |i, j| ((i * 7 + j * 3) % 11) as f32);
        let s = ssim(&a, &a).unwrap().unwrap();
        assert!((s - 1.0).abs() < 1e-9, "{s}");
        let map = ssim_map(&a, &a, 10.0).unwrap();
        // Only pixels with a complete window are defined: (20-10) × (25-10).
        assert_eq!(map.iter().filter(|v| !v.is_nan()).count(), 10 * 15);
    }

    #[test]
    fn nodata_blanks_every_window_that_touches_it() {
        let a = raster(30, 30, |i, j| (i + j) as f32);
        let mut b = a.map(|v| v + 0.5);
        b.data_mut()[(15, 15)] = f32::NAN;
        let map = ssim_map(&a, &b, 58.0).unwrap();
        assert!(map[(15, 15)].is_nan() && map[(10, 20)].is_nan());
        assert!(!map[(9, 9)].is_nan() && !map[(21, 15)].is_nan());
        // 20×20 interior minus the 11×11 windows touching (15,15).
        assert_eq!(map.iter().filter(|v| !v.is_nan()).count(), 400 - 121);
    }
}
