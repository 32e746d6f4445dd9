//! One band of `f32` values on a grid, with nodata as a mask.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::grid::Grid;

/// What a band's values mean, which decides how it may be resampled and aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum BandKind {
    /// A continuous quantity (temperature, reflectance, elevation): mean and interpolation
    /// are meaningful.
    #[default]
    Continuous,
    /// Class codes (land cover): only nearest and mode (majority) resampling are allowed.
    Categorical,
}

/// Summary statistics over the valid pixels of a raster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Smallest valid value.
    pub min: f64,
    /// Largest valid value.
    pub max: f64,
    /// Mean of the valid values.
    pub mean: f64,
    /// Population standard deviation (as `gdalinfo -stats` reports).
    pub std: f64,
    /// Number of valid pixels.
    pub count: usize,
}

/// One band of `f32` values on a [`Grid`].
///
/// Nodata is a mask: missing pixels are stored as `NaN` and never enter statistics. The
/// `nodata` value is only the number that marks them on disk (`None`: NaN is written).
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    data: Array2<f32>,
    grid: Grid,
    nodata: Option<f64>,
    kind: BandKind,
}

impl Raster {
    /// A continuous raster from data laid out `[rows, cols]`. `NaN` marks missing pixels.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the array does not have the grid's shape.
    pub fn new(grid: Grid, data: Array2<f32>) -> Result<Self> {
        let (rows, cols) = grid.shape();
        if data.dim() != (rows, cols) {
            return Err(Error::ShapeMismatch {
                want_rows: rows,
                want_cols: cols,
                got_rows: data.nrows(),
                got_cols: data.ncols(),
            });
        }
        Ok(Self {
            data,
            grid,
            nodata: None,
            kind: BandKind::Continuous,
        })
    }

    /// A raster filled with one value.
    pub fn filled(grid: Grid, value: f32) -> Self {
        let data = Array2::from_elem(grid.shape(), value);
        Self {
            data,
            grid,
            nodata: None,
            kind: BandKind::Continuous,
        }
    }

    /// A raster whose pixel (row, col) is `f(row, col)`.
    pub fn from_fn(grid: Grid, f: impl FnMut((usize, usize)) -> f32) -> Self {
        let data = Array2::from_shape_fn(grid.shape(), f);
        Self {
            data,
            grid,
            nodata: None,
            kind: BandKind::Continuous,
        }
    }

    /// This raster with the nodata value to write to files. Pixels equal to it in the data
    /// are turned into `NaN` (missing) as well.
    pub fn with_nodata(mut self, nodata: Option<f64>) -> Self {
        if let Some(nd) = nodata {
            if !nd.is_nan() {
                let nd32 = nd as f32;
                // The nodata sentinel is matched exactly, as GDAL does.
                #[allow(clippy::float_cmp)]
                self.data
                    .mapv_inplace(|v| if v == nd32 { f32::NAN } else { v });
            }
        }
        self.nodata = nodata;
        self
    }

    /// This raster marked as continuous or categorical.
    pub fn with_kind(mut self, kind: BandKind) -> Self {
        self.kind = kind;
        self
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The data, `[rows, cols]`, with `NaN` where missing.
    pub fn data(&self) -> &Array2<f32> {
        &self.data
    }

    /// Mutable data. Write `NaN` to mark a pixel missing.
    pub fn data_mut(&mut self) -> &mut Array2<f32> {
        &mut self.data
    }

    /// The data array, consuming the raster.
    pub fn into_data(self) -> Array2<f32> {
        self.data
    }

    /// The on-disk nodata value, if any.
    pub fn nodata(&self) -> Option<f64> {
        self.nodata
    }

    /// Continuous or categorical.
    pub fn kind(&self) -> BandKind {
        self.kind
    }

    /// The value at (row, col), or `None` when outside the grid or missing.
    pub fn get(&self, row: usize, col: usize) -> Option<f32> {
        self.data.get((row, col)).copied().filter(|v| !v.is_nan())
    }

    /// `true` where a pixel has a value.
    pub fn mask(&self) -> Array2<bool> {
        self.data.mapv(|v| !v.is_nan())
    }

    /// Number of pixels with a value.
    pub fn valid_count(&self) -> usize {
        self.data.iter().filter(|v| !v.is_nan()).count()
    }

    /// Statistics over valid pixels (accumulated in f64); `None` if every pixel is missing.
    pub fn stats(&self) -> Option<Stats> {
        let (mut n, mut sum, mut min, mut max) = (0usize, 0.0f64, f64::INFINITY, f64::NEG_INFINITY);
        for &v in self.data.iter().filter(|v| !v.is_nan()) {
            let v = f64::from(v);
            n += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        if n == 0 {
            return None;
        }
        let mean = sum / n as f64;
        let var = self
            .data
            .iter()
            .filter(|v| !v.is_nan())
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        Some(Stats {
            min,
            max,
            mean,
            std: var.sqrt(),
            count: n,
        })
    }

    /// A new raster on the same grid with `f` applied to every valid value (missing stays
    /// missing).
    pub fn map(&self, f: impl Fn(f32) -> f32) -> Raster {
        let data = self.data.mapv(|v| if v.is_nan() { v } else { f(v) });
        Raster {
            data,
            grid: self.grid.clone(),
            nodata: self.nodata,
            kind: self.kind,
        }
    }

    /// The part of this raster under a window of its grid (see [`Grid::window`]).
    ///
    /// # Errors
    /// [`Error::WindowOutOfBounds`] if the window leaves the grid.
    pub fn window(&self, col0: usize, row0: usize, width: usize, height: usize) -> Result<Raster> {
        let grid = self.grid.window(col0, row0, width, height)?;
        let data = self
            .data
            .slice(ndarray::s![row0..row0 + height, col0..col0 + width])
            .to_owned();
        Ok(Raster {
            data,
            grid,
            nodata: self.nodata,
            kind: self.kind,
        })
    }

    /// Block mean over `k × k` blocks onto `grid.coarsen(k)`, ignoring missing pixels.
    ///
    /// A coarse pixel is missing when fewer than `min_coverage` (0–1) of its fine pixels have
    /// values; `0.0` keeps any block with at least one value.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`] for categorical rasters (use mode or class fractions);
    /// [`Error::InvalidGrid`] if the size is not divisible by `k`.
    pub fn block_mean(&self, k: usize, min_coverage: f64) -> Result<Raster> {
        if self.kind == BandKind::Categorical {
            return Err(Error::InvalidOperation {
                detail: "block mean of a categorical band (use mode or class fractions)".into(),
            });
        }
        let coarse = self.grid.coarsen(k)?;
        let (rows, cols) = coarse.shape();
        let need = (min_coverage.clamp(0.0, 1.0) * (k * k) as f64).max(1.0);
        let mut out = Array2::from_elem((rows, cols), f32::NAN);
        for r in 0..rows {
            for c in 0..cols {
                let block = self
                    .data
                    .slice(ndarray::s![r * k..(r + 1) * k, c * k..(c + 1) * k]);
                let (mut n, mut s) = (0usize, 0.0f64);
                for &v in block.iter().filter(|v| !v.is_nan()) {
                    n += 1;
                    s += f64::from(v);
                }
                if n as f64 >= need {
                    out[(r, c)] = (s / n as f64) as f32;
                }
            }
        }
        Ok(Raster {
            data: out,
            grid: coarse,
            nodata: self.nodata,
            kind: self.kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        Grid::geographic(0.0, 4.0, 1.0, 4, 4).unwrap()
    }

    #[test]
    fn shape_is_checked() {
        let e = Raster::new(grid(), Array2::zeros((3, 4))).unwrap_err();
        assert!(e.to_string().contains("3×4"), "{e}");
    }

    #[test]
    fn nodata_becomes_mask_and_is_ignored_by_stats() {
        let r = Raster::from_fn(grid(), |(i, j)| (i * 4 + j) as f32).with_nodata(Some(0.0));
        assert_eq!(r.valid_count(), 15);
        assert_eq!(r.get(0, 0), None);
        let s = r.stats().unwrap();
        // Values 1..=15: mean 8, population std sqrt((15^2-1)/12).
        assert!((s.mean - 8.0).abs() < 1e-12);
        assert!((s.std - ((225.0f64 - 1.0) / 12.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max, s.count), (1.0, 15.0, 15));
    }

    #[test]
    fn block_mean_ignores_missing_and_refuses_categories() {
        let r = Raster::from_fn(grid(), |(i, j)| (i * 4 + j) as f32).with_nodata(Some(0.0));
        let m = r.block_mean(2, 0.0).unwrap();
        // Top-left block {0(missing), 1, 4, 5} -> 10/3.
        assert!((m.data()[(0, 0)] - 10.0 / 3.0).abs() < 1e-6);
        assert!((m.data()[(1, 1)] - (10.0 + 11.0 + 14.0 + 15.0) / 4.0).abs() < 1e-6);
        assert!(r.block_mean(2, 1.0).unwrap().data()[(0, 0)].is_nan());
        let cat = r.with_kind(BandKind::Categorical);
        assert!(matches!(
            cat.block_mean(2, 0.0),
            Err(Error::InvalidOperation { .. })
        ));
    }
}
