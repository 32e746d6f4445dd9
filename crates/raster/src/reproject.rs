//! Reprojection through PROJ (feature `proj`): warp a raster onto a target grid in another
//! CRS by inverse-mapping target pixel centres (and, for average and mode, footprints) into
//! the source grid, row chunk by row chunk, then sampling with the kernels of
//! [`crate::resample`].

use ndarray::Array2;
use proj::Proj;

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::raster::{BandKind, Raster};
use crate::resample::{
    area_mean, bicubic4, bilinear4, convolve, cubic, gdal_scale, mode, overlap, resample, taps,
    tent, Resampling,
};

/// Rows of target pixels transformed per PROJ call batch.
const CHUNK_ROWS: usize = 64;

/// Warps `src` onto `target`, which may be in another CRS.
///
/// Each target pixel centre is transformed into the source CRS with PROJ and sampled with
/// `method`; average and mode use the source box spanned by the target pixel's top-left and
/// bottom-right corners (as `gdalwarp` does). Interpolating kernels are widened when the
/// target is coarser than the source, with GDAL's scale (target size over the source extent
/// it covers). When both grids share a CRS this is [`resample`].
///
/// # Errors
/// [`Error::InvalidOperation`] if either grid has no CRS or a categorical band is
/// interpolated; [`Error::Projection`] if PROJ cannot build the transformation.
pub fn reproject(src: &Raster, target: &Grid, method: Resampling) -> Result<Raster> {
    let (Some(from), Some(to)) = (src.grid().crs(), target.crs()) else {
        return Err(Error::InvalidOperation {
            detail: "reprojection needs a CRS on both grids".into(),
        });
    };
    if from == to {
        return resample(src, target, method);
    }
    if src.kind() == BandKind::Categorical
        && !matches!(method, Resampling::Nearest | Resampling::Mode)
    {
        return Err(Error::InvalidOperation {
            detail: format!("{method:?} resampling of a categorical band (use Nearest or Mode)"),
        });
    }
    let proj_err = |detail: String| Error::Projection {
        from: to.to_string(),
        to: from.to_string(),
        detail,
    };
    // Target CRS -> source CRS (inverse mapping), axis order normalised to x = east.
    let pj = Proj::new_known_crs(&to.to_proj_definition(), &from.to_proj_definition(), None)
        .map_err(|e| proj_err(e.to_string()))?;
    let sg = src.grid();
    let st = sg.transform();
    // GDAL's inverse geotransform arithmetic (see `resample`).
    let (ix0, ix1) = (-st.origin_x / st.pixel_width, 1.0 / st.pixel_width);
    let (iy0, iy1) = (-st.origin_y / st.pixel_height, 1.0 / st.pixel_height);
    let to_src_px = |col: f64, row: f64| -> (f64, f64) {
        let (x, y) = target.pixel_to_world(col, row);
        match pj.convert((x, y)) {
            Ok((sx, sy)) if sx.is_finite() && sy.is_finite() => (ix0 + sx * ix1, iy0 + sy * iy1),
            _ => (f64::NAN, f64::NAN),
        }
    };

    // GDAL's kernel scale: target size over the source extent of the target's outline.
    let (tw, th) = (target.width(), target.height());
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let steps = 20;
    for k in 0..=steps {
        let f = k as f64 / steps as f64;
        for (c, r) in [
            (f * tw as f64, 0.0),
            (f * tw as f64, th as f64),
            (0.0, f * th as f64),
            (tw as f64, f * th as f64),
        ] {
            let (x, y) = to_src_px(c, r);
            if x.is_finite() && y.is_finite() {
                (xmin, xmax, ymin, ymax) = (xmin.min(x), xmax.max(x), ymin.min(y), ymax.max(y));
            }
        }
    }
    let (sw, sh) = (sg.width(), sg.height());
    let scale_x = gdal_scale(tw, xmin, xmax, sw);
    let scale_y = gdal_scale(th, ymin, ymax, sh);
    let four = scale_x >= 0.95 && scale_y >= 0.95;

    let d = src.data();
    let mut out = Array2::from_elem((th, tw), f32::NAN);
    let mut r0 = 0;
    while r0 < th {
        let r1 = (r0 + CHUNK_ROWS).min(th);
        for r in r0..r1 {
            for c in 0..tw {
                let (sx, sy) = to_src_px(c as f64 + 0.5, r as f64 + 0.5);
                out[(r, c)] = match method {
                    Resampling::Average | Resampling::Mode => {
                        let (ax, ay) = to_src_px(c as f64, r as f64);
                        let (bx, by) = to_src_px(c as f64 + 1.0, r as f64 + 1.0);
                        if [ax, ay, bx, by].iter().any(|v| !v.is_finite()) {
                            f32::NAN
                        } else {
                            let tx = overlap(ax.min(bx), ax.max(bx), sw).0;
                            let ty = overlap(ay.min(by), ay.max(by), sh).0;
                            if method == Resampling::Average {
                                area_mean(d, &tx, &ty).0
                            } else {
                                mode(d, &tx, &ty)
                            }
                        }
                    }
                    _ => {
                        let inside = sx >= 0.0 && sy >= 0.0 && sx < sw as f64 && sy < sh as f64;
                        let centre = inside.then(|| d[(sy as usize, sx as usize)]);
                        match (centre, method) {
                            (None, _) => f32::NAN,
                            (Some(v), Resampling::Nearest) => v,
                            // GDAL skips pixels whose centre falls on a missing source pixel.
                            (Some(v), _) if v.is_nan() => f32::NAN,
                            (Some(_), Resampling::Bilinear) if four => bilinear4(d, sx, sy),
                            (Some(_), Resampling::Bicubic) if four => bicubic4(d, sx, sy),
                            (Some(_), _) => {
                                let (radius, f, odd): (f64, fn(f64) -> f64, bool) =
                                    if method == Resampling::Bilinear {
                                        (1.0, tent, true)
                                    } else {
                                        (2.0, cubic, false)
                                    };
                                convolve(
                                    d,
                                    &taps(sx, sw, scale_x, radius, f, odd),
                                    &taps(sy, sh, scale_y, radius, f, odd),
                                )
                            }
                        }
                    }
                };
            }
        }
        r0 = r1;
    }
    Ok(Raster::new(target.clone(), out)?
        .with_kind(src.kind())
        .with_nodata(src.nodata()))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::{read_band, Crs};

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/raster")
            .join(name)
    }

    /// Compares with a `gdalwarp -t_srs … -ts 30 24` reference (commands in
    /// `fixtures/raster/make_fixtures.sh`); returns the largest absolute difference and the
    /// number of pixels where one side is missing and the other not.
    fn against_gdal(reference: &str, src: &str, method: Resampling) -> (f32, usize) {
        let src = read_band(fixture(src), 1).unwrap();
        let want = read_band(fixture(reference), 1).unwrap();
        let got = reproject(&src, want.grid(), method).unwrap();
        let (mut worst, mut mismatched) = (0.0f32, 0);
        for (a, b) in got.data().iter().zip(want.data().iter()) {
            match (a.is_nan(), b.is_nan()) {
                (false, false) => worst = worst.max((a - b).abs()),
                (true, true) => {}
                _ => mismatched += 1,
            }
        }
        (worst, mismatched)
    }

    #[test]
    fn utm_to_geographic_matches_gdalwarp() {
        let (worst, mismatched) = against_gdal(
            "ref_proj_4326_bilinear.tif",
            "dem_nodata.tif",
            Resampling::Bilinear,
        );
        assert!(
            worst < 1e-3 && mismatched == 0,
            "max diff {worst}, {mismatched} NaN mismatches"
        );
    }

    #[test]
    fn geographic_to_utm_matches_gdalwarp() {
        let (worst, mismatched) = against_gdal(
            "ref_proj_4326_to_31985_bilinear.tif",
            "ref_proj_4326_bilinear.tif",
            Resampling::Bilinear,
        );
        assert!(
            worst < 1e-3 && mismatched == 0,
            "max diff {worst}, {mismatched} NaN mismatches"
        );
    }

    #[test]
    fn modis_sinusoidal_matches_gdalwarp() {
        let want = read_band(fixture("ref_proj_sinu_near.tif"), 1).unwrap();
        assert_eq!(want.grid().crs(), Some(&Crs::modis_sinusoidal()));
        for (reference, m) in [
            ("ref_proj_sinu_near.tif", Resampling::Nearest),
            ("ref_proj_sinu_bilinear.tif", Resampling::Bilinear),
        ] {
            let (worst, mismatched) = against_gdal(reference, "dem_nodata.tif", m);
            assert!(
                worst < 1e-3 && mismatched == 0,
                "{reference}: max diff {worst}, {mismatched} NaN mismatches"
            );
        }
    }

    #[test]
    fn missing_crs_is_an_error() {
        let g = Grid::geographic(0.0, 1.0, 0.1, 10, 10).unwrap();
        let r = Raster::filled(g.clone().with_crs(None), 1.0);
        assert!(matches!(
            reproject(&r, &g, Resampling::Nearest),
            Err(Error::InvalidOperation { .. })
        ));
        let bad = g.clone().with_crs(Some(Crs::Proj("+proj=nonsense".into())));
        let r = Raster::filled(bad, 1.0);
        assert!(matches!(
            reproject(&r, &g, Resampling::Nearest),
            Err(Error::Projection { .. })
        ));
    }
}
