//! Normalised-difference spectral indices (NDVI, NDBI, MNDWI) with nodata handling.

use amun_raster::{BandKind, Raster};
use ndarray::Zip;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How stored values become surface reflectance: `reflectance = dn · scale + offset`.
///
/// Values equal to `fill`, outside `valid_range` (compared on the stored value, before
/// scaling) or `NaN` are missing. [`Reflectance::unscaled`] (the default) takes the values as
/// reflectances already; [`Reflectance::modis`] decodes MODIS MOD09A1/MOD09GA integer bands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reflectance {
    /// Multiplier from stored value to reflectance (default 1).
    pub scale: f32,
    /// Added after scaling (default 0).
    pub offset: f32,
    /// Stored value that marks a missing pixel (default none).
    pub fill: Option<f32>,
    /// Inclusive range of valid stored values (default none: everything finite is valid).
    pub valid_range: Option<(f32, f32)>,
}

impl Default for Reflectance {
    fn default() -> Self {
        Self::unscaled()
    }
}

impl Reflectance {
    /// Values are reflectances already: scale 1, offset 0, no fill value, no range check.
    pub const fn unscaled() -> Self {
        Self {
            scale: 1.0,
            offset: 0.0,
            fill: None,
            valid_range: None,
        }
    }

    /// MODIS surface reflectance (MOD09A1 `sur_refl_b01`…`b07`): scale factor 0.0001, fill
    /// value −28672, valid range −100…16000 (MOD09 user's guide, collection 6.1).
    pub const fn modis() -> Self {
        Self {
            scale: 1e-4,
            offset: 0.0,
            fill: Some(-28672.0),
            valid_range: Some((-100.0, 16000.0)),
        }
    }

    /// Decodes one stored value; `None` when it is missing.
    pub fn decode(&self, dn: f32) -> Option<f32> {
        // Equal to the fill value up to f32 rounding (fill values are stored exactly).
        let is_fill = self
            .fill
            .is_some_and(|f| (dn - f).abs() <= f.abs() * f32::EPSILON);
        if !dn.is_finite() || is_fill {
            return None;
        }
        if let Some((lo, hi)) = self.valid_range {
            if dn < lo || dn > hi {
                return None;
            }
        }
        Some(dn * self.scale + self.offset)
    }

    /// A reflectance raster from stored values (missing pixels become `NaN`).
    ///
    /// # Errors
    /// [`Error::CategoricalInput`] for a categorical band; [`Error::InvalidParameter`] if the
    /// scale or offset is not finite or the scale is zero.
    pub fn apply(&self, raster: &Raster) -> Result<Raster> {
        self.check()?;
        check_continuous(raster, "input", "reflectance decoding")?;
        let mut out = raster.clone();
        out.data_mut()
            .mapv_inplace(|v| self.decode(v).unwrap_or(f32::NAN));
        Ok(out.with_nodata(None))
    }

    fn check(&self) -> Result<()> {
        if !self.scale.is_finite() || self.scale == 0.0 {
            return Err(Error::InvalidParameter {
                name: "scale",
                value: self.scale.to_string(),
                reason: "must be finite and non-zero",
            });
        }
        if !self.offset.is_finite() {
            return Err(Error::InvalidParameter {
                name: "offset",
                value: self.offset.to_string(),
                reason: "must be finite",
            });
        }
        Ok(())
    }
}

fn check_continuous(r: &Raster, band: &str, operation: &'static str) -> Result<()> {
    if r.kind() == BandKind::Categorical {
        return Err(Error::CategoricalInput {
            band: band.to_string(),
            operation,
        });
    }
    Ok(())
}

/// `(a − b) / (a + b)` per pixel, after decoding both bands with `opts`.
///
/// A pixel is missing (`NaN`) when either input is missing (nodata, fill value, out of the
/// valid range) or when `a + b` is zero, so the result is never ±∞. Values are not clipped:
/// with slightly negative reflectances (allowed by MODIS' valid range) the ratio can leave
/// −1…1.
///
/// # Errors
/// Grid errors if the two bands are not on one grid; [`Error::CategoricalInput`] for a
/// categorical band; [`Error::InvalidParameter`] for a bad `opts`.
pub fn normalized_difference(a: &Raster, b: &Raster, opts: &Reflectance) -> Result<Raster> {
    opts.check()?;
    check_continuous(a, "a", "a normalised difference")?;
    check_continuous(b, "b", "a normalised difference")?;
    a.grid().check_same(b.grid())?;
    let mut out = Raster::filled(a.grid().clone(), f32::NAN);
    Zip::from(out.data_mut())
        .and(a.data())
        .and(b.data())
        .for_each(|o, &va, &vb| {
            if let (Some(x), Some(y)) = (opts.decode(va), opts.decode(vb)) {
                let (x, y) = (f64::from(x), f64::from(y));
                let den = x + y;
                if den != 0.0 {
                    let v = ((x - y) / den) as f32;
                    if v.is_finite() {
                        *o = v;
                    }
                }
            }
        });
    Ok(out)
}

/// NDVI = (NIR − red) / (NIR + red), on reflectances (MODIS: b02, b01).
///
/// For stored integers (MODIS scale 0.0001, fill −28672) use
/// [`normalized_difference`] with [`Reflectance::modis`].
///
/// # Errors
/// As [`normalized_difference`].
pub fn ndvi(nir: &Raster, red: &Raster) -> Result<Raster> {
    normalized_difference(nir, red, &Reflectance::unscaled())
}

/// NDBI = (SWIR − NIR) / (SWIR + NIR), on reflectances (Zha et al. 2003; MODIS: b06, b02
/// as in the AMUN paper).
///
/// # Errors
/// As [`normalized_difference`].
pub fn ndbi(swir: &Raster, nir: &Raster) -> Result<Raster> {
    normalized_difference(swir, nir, &Reflectance::unscaled())
}

/// MNDWI = (green − SWIR) / (green + SWIR), on reflectances (Xu 2006; MODIS: b04, b06 as in
/// the AMUN paper).
///
/// # Errors
/// As [`normalized_difference`].
pub fn mndwi(green: &Raster, swir: &Raster) -> Result<Raster> {
    normalized_difference(green, swir, &Reflectance::unscaled())
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::Grid;
    use ndarray::array;

    fn grid() -> Grid {
        Grid::geographic(0.0, 2.0, 1.0, 3, 2).unwrap()
    }

    fn r(data: ndarray::Array2<f32>) -> Raster {
        Raster::new(grid(), data).unwrap()
    }

    #[test]
    fn ndvi_matches_hand_computed_values() {
        // Hand-computed: (0.5-0.1)/(0.5+0.1) = 2/3; (0.3-0.3)/0.6 = 0; (0.1-0.4)/0.5 = -0.6.
        let nir = r(array![[0.5, 0.3, 0.1], [0.2, 0.0, f32::NAN]]);
        let red = r(array![[0.1, 0.3, 0.4], [0.0, 0.0, 0.1]]);
        let v = ndvi(&nir, &red).unwrap();
        let d = v.data();
        assert!((d[(0, 0)] - 2.0 / 3.0).abs() < 1e-6);
        assert!(d[(0, 1)].abs() < 1e-7);
        assert!((d[(0, 2)] + 0.6).abs() < 1e-6);
        // Red = 0, NIR = 0.2: (0.2 - 0)/0.2 = 1.
        assert!((d[(1, 0)] - 1.0).abs() < 1e-7);
        // 0/0 is missing, never NaN-by-accident or ±inf; a missing input is missing.
        assert!(d[(1, 1)].is_nan());
        assert!(d[(1, 2)].is_nan());
        assert!(d.iter().all(|x| !x.is_infinite()));
    }

    #[test]
    fn ndbi_and_mndwi_use_the_documented_band_order() {
        // NDBI = (swir - nir)/(swir + nir) = (0.3 - 0.1)/0.4 = 0.5.
        // MNDWI = (green - swir)/(green + swir) = (0.1 - 0.3)/0.4 = -0.5.
        let swir = r(ndarray::Array2::from_elem((2, 3), 0.3));
        let nir = r(ndarray::Array2::from_elem((2, 3), 0.1));
        let green = nir.clone();
        assert!((ndbi(&swir, &nir).unwrap().data()[(0, 0)] - 0.5).abs() < 1e-6);
        assert!((mndwi(&green, &swir).unwrap().data()[(1, 2)] + 0.5).abs() < 1e-6);
    }

    #[test]
    fn zero_denominator_with_opposite_signs_is_missing() {
        // a = 0.01, b = -0.01 (valid MODIS values -100..16000 scaled): a + b = 0.
        let a = r(ndarray::Array2::from_elem((2, 3), 100.0));
        let b = r(ndarray::Array2::from_elem((2, 3), -100.0));
        let out = normalized_difference(&a, &b, &Reflectance::modis()).unwrap();
        assert_eq!(out.valid_count(), 0);
    }

    #[test]
    fn modis_fill_and_range_are_missing() {
        // NIR 3000 and red 1000 (scaled 0.3, 0.1): NDVI = 0.2/0.4 = 0.5 — the scale cancels.
        let nir = r(array![
            [3000.0, -28672.0, 3000.0],
            [3000.0, 20000.0, 3000.0]
        ]);
        let red = r(array![[1000.0, 1000.0, -28672.0], [1000.0, 1000.0, -101.0]]);
        let out = normalized_difference(&nir, &red, &Reflectance::modis()).unwrap();
        let d = out.data();
        assert!((d[(0, 0)] - 0.5).abs() < 1e-6);
        assert!((d[(1, 0)] - 0.5).abs() < 1e-6);
        assert!(d[(0, 1)].is_nan(), "fill in NIR");
        assert!(d[(0, 2)].is_nan(), "fill in red");
        assert!(d[(1, 1)].is_nan(), "above the valid range");
        assert!(d[(1, 2)].is_nan(), "below the valid range");
        // Decoding: 2500 -> 0.25; fill -> missing.
        let refl = Reflectance::modis().apply(&nir).unwrap();
        assert!((refl.data()[(0, 0)] - 0.3).abs() < 1e-6);
        assert!(refl.data()[(0, 1)].is_nan());
    }

    #[test]
    fn grids_and_kinds_are_checked() {
        let a = r(ndarray::Array2::zeros((2, 3)));
        let other = Raster::filled(Grid::geographic(0.0, 2.0, 0.5, 3, 2).unwrap(), 0.1);
        assert!(matches!(ndvi(&a, &other), Err(Error::Raster(_))));
        let cat = a.clone().with_kind(BandKind::Categorical);
        assert!(matches!(
            ndvi(&cat, &a),
            Err(Error::CategoricalInput { .. })
        ));
        let bad = Reflectance {
            scale: 0.0,
            ..Reflectance::modis()
        };
        assert!(matches!(
            normalized_difference(&a, &a, &bad),
            Err(Error::InvalidParameter { .. })
        ));
    }
}
