//! Resampling between grids in one CRS.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::raster::{BandKind, Raster};

/// How values are computed on the target grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Resampling {
    /// The source pixel containing the target pixel centre.
    Nearest,
    /// Bilinear interpolation between the four nearest source pixel centres.
    Bilinear,
    /// Cubic convolution (Keys, a = −0.5) over 4×4 source pixels.
    Bicubic,
    /// Area-weighted mean of the source pixels overlapping the target pixel.
    Average,
    /// Most frequent value among overlapping source pixels (for categories).
    Mode,
}

/// Resamples `src` onto `target` (same CRS). Missing source pixels are left out and the
/// weights of the remaining ones renormalised; target pixels with no valid source are missing.
///
/// # Errors
/// [`Error::CrsMismatch`] if the CRSs differ; [`Error::InvalidOperation`] for an interpolating
/// method on a categorical band.
pub fn resample(src: &Raster, target: &Grid, method: Resampling) -> Result<Raster> {
    if src.grid().crs() != target.crs() {
        return Err(Error::CrsMismatch {
            left: src.grid().crs().map_or("no CRS".into(), |c| c.to_string()),
            right: target.crs().map_or("no CRS".into(), |c| c.to_string()),
        });
    }
    if src.kind() == BandKind::Categorical
        && !matches!(method, Resampling::Nearest | Resampling::Mode)
    {
        return Err(Error::InvalidOperation {
            detail: format!("{method:?} resampling of a categorical band (use Nearest or Mode)"),
        });
    }
    let data = match method {
        Resampling::Nearest => nearest(src, target),
        Resampling::Bilinear => bilinear(src, target),
        other => {
            return Err(Error::InvalidOperation {
                detail: format!("{other:?} resampling is not implemented yet"),
            })
        }
    };
    Ok(Raster::new(target.clone(), data)?
        .with_kind(src.kind())
        .with_nodata(src.nodata()))
}

/// Source pixel coordinates (continuous, pixel centres at integers) of each target column
/// and row centre.
fn source_coords(src: &Grid, target: &Grid) -> (Vec<f64>, Vec<f64>) {
    let xs = (0..target.width())
        .map(|c| {
            let (x, _) = target.pixel_center(c, 0);
            src.world_to_pixel(x, 0.0).0 - 0.5
        })
        .collect();
    let ys = (0..target.height())
        .map(|r| {
            let (_, y) = target.pixel_center(0, r);
            src.world_to_pixel(0.0, y).1 - 0.5
        })
        .collect();
    (xs, ys)
}

fn nearest(src: &Raster, target: &Grid) -> Array2<f32> {
    let (xs, ys) = source_coords(src.grid(), target);
    let (w, h) = (src.grid().width() as f64, src.grid().height() as f64);
    let d = src.data();
    Array2::from_shape_fn(target.shape(), |(r, c)| {
        let (sx, sy) = (xs[c] + 0.5, ys[r] + 0.5);
        if sx < 0.0 || sy < 0.0 || sx >= w || sy >= h {
            f32::NAN
        } else {
            d[(sy as usize, sx as usize)]
        }
    })
}

fn bilinear(src: &Raster, target: &Grid) -> Array2<f32> {
    let (xs, ys) = source_coords(src.grid(), target);
    let (w, h) = (src.grid().width() as i64, src.grid().height() as i64);
    let d = src.data();
    Array2::from_shape_fn(target.shape(), |(r, c)| {
        let (sx, sy) = (xs[c], ys[r]);
        // Outside the source extent (by pixel edges) nothing is interpolated.
        if sx < -0.5 || sy < -0.5 || sx >= w as f64 - 0.5 || sy >= h as f64 - 0.5 {
            return f32::NAN;
        }
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let (mut acc, mut wsum) = (0.0f64, 0.0f64);
        for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
            for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                let (xi, yi) = (x0 + dx, y0 + dy);
                let wgt = wx * wy;
                if wgt == 0.0 || xi < 0 || yi < 0 || xi >= w || yi >= h {
                    continue;
                }
                let v = d[(yi as usize, xi as usize)];
                if !v.is_nan() {
                    acc += wgt * f64::from(v);
                    wsum += wgt;
                }
            }
        }
        if wsum > 0.0 {
            (acc / wsum) as f32
        } else {
            f32::NAN
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_reproduces_a_plane_inside() {
        let g = Grid::geographic(0.0, 10.0, 1.0, 10, 10).unwrap();
        let r = Raster::from_fn(g.clone(), |(i, j)| 2.0 * j as f32 + 3.0 * i as f32);
        let fine = g.refine(4).unwrap();
        let out = resample(&r, &fine, Resampling::Bilinear).unwrap();
        // Fine pixel centre (c+0.5)/4 - 0.5 in source pixel units, for interior pixels.
        for (row, col) in [(10usize, 10usize), (20, 13), (30, 37)] {
            let sx = (col as f64 + 0.5) / 4.0 - 0.5;
            let sy = (row as f64 + 0.5) / 4.0 - 0.5;
            let want = 2.0 * sx + 3.0 * sy;
            assert!((f64::from(out.data()[(row, col)]) - want).abs() < 1e-5);
        }
    }

    #[test]
    fn categorical_interpolation_is_refused() {
        let g = Grid::geographic(0.0, 10.0, 1.0, 10, 10).unwrap();
        let r = Raster::filled(g.clone(), 1.0).with_kind(BandKind::Categorical);
        let fine = g.refine(2).unwrap();
        assert!(resample(&r, &fine, Resampling::Bilinear).is_err());
        let v = resample(&r, &fine, Resampling::Nearest).unwrap().data()[(5, 5)];
        assert!((v - 1.0).abs() < 1e-6, "{v}");
    }
}
