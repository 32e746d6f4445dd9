//! Land cover: IGBP class codes (MODIS MCD12Q1 `LC_Type1`), validation, encodings for models
//! and aggregation to coarse grids (mode, class fractions — never a mean).

use amun_raster::{BandKind, Raster, Stack};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The 17 IGBP land-cover classes of MODIS MCD12Q1 `LC_Type1` (code = discriminant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
#[allow(missing_docs)] // the variants are the IGBP class names
pub enum Igbp {
    EvergreenNeedleleafForest = 1,
    EvergreenBroadleafForest = 2,
    DeciduousNeedleleafForest = 3,
    DeciduousBroadleafForest = 4,
    MixedForest = 5,
    ClosedShrubland = 6,
    OpenShrubland = 7,
    WoodySavanna = 8,
    Savanna = 9,
    Grassland = 10,
    PermanentWetland = 11,
    Cropland = 12,
    UrbanBuiltUp = 13,
    CroplandNaturalMosaic = 14,
    SnowIce = 15,
    Barren = 16,
    Water = 17,
}

impl Igbp {
    /// Every class, in code order.
    pub const ALL: [Igbp; 17] = [
        Igbp::EvergreenNeedleleafForest,
        Igbp::EvergreenBroadleafForest,
        Igbp::DeciduousNeedleleafForest,
        Igbp::DeciduousBroadleafForest,
        Igbp::MixedForest,
        Igbp::ClosedShrubland,
        Igbp::OpenShrubland,
        Igbp::WoodySavanna,
        Igbp::Savanna,
        Igbp::Grassland,
        Igbp::PermanentWetland,
        Igbp::Cropland,
        Igbp::UrbanBuiltUp,
        Igbp::CroplandNaturalMosaic,
        Igbp::SnowIce,
        Igbp::Barren,
        Igbp::Water,
    ];

    /// The largest class code (17, water).
    pub const MAX_CODE: u8 = 17;

    /// The MCD12Q1 code (1–17).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The class of a code, `None` outside 1–17 (MCD12Q1 uses 255 for unclassified).
    pub fn from_code(code: u8) -> Option<Igbp> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// The class of a raster value, `None` unless it is an integer code 1–17.
    pub fn from_value(v: f32) -> Option<Igbp> {
        if v.fract() != 0.0 || !(1.0..=17.0).contains(&v) {
            return None;
        }
        Self::from_code(v as u8)
    }

    /// A short snake-case name, used in band names (`lc_water`, `lc_cropland`, …).
    pub fn key(self) -> &'static str {
        match self {
            Igbp::EvergreenNeedleleafForest => "evergreen_needleleaf_forest",
            Igbp::EvergreenBroadleafForest => "evergreen_broadleaf_forest",
            Igbp::DeciduousNeedleleafForest => "deciduous_needleleaf_forest",
            Igbp::DeciduousBroadleafForest => "deciduous_broadleaf_forest",
            Igbp::MixedForest => "mixed_forest",
            Igbp::ClosedShrubland => "closed_shrubland",
            Igbp::OpenShrubland => "open_shrubland",
            Igbp::WoodySavanna => "woody_savanna",
            Igbp::Savanna => "savanna",
            Igbp::Grassland => "grassland",
            Igbp::PermanentWetland => "permanent_wetland",
            Igbp::Cropland => "cropland",
            Igbp::UrbanBuiltUp => "urban",
            Igbp::CroplandNaturalMosaic => "cropland_natural_mosaic",
            Igbp::SnowIce => "snow_ice",
            Igbp::Barren => "barren",
            Igbp::Water => "water",
        }
    }

    /// The band name of this class's fraction or one-hot channel: `lc_<key>`.
    pub fn band_name(self) -> String {
        format!("lc_{}", self.key())
    }
}

/// Marks a raster of IGBP codes as categorical after checking every value.
///
/// `0` and `255` (MCD12Q1's unclassified/fill) become missing; any other value that is not an
/// integer 1–17 is an error.
///
/// # Errors
/// [`Error::InvalidClassCode`] with the first offending value and its position.
pub fn landcover_raster(raster: Raster) -> Result<Raster> {
    let mut r = raster.with_kind(BandKind::Categorical);
    for ((row, col), v) in r.data_mut().indexed_iter_mut() {
        if v.is_nan() {
            continue;
        }
        // Integer-valued codes: 0 and 255 are MCD12Q1's unclassified / fill.
        let fill = v.fract() == 0.0 && matches!(*v as i64, 0 | 255);
        if fill {
            *v = f32::NAN;
        } else if Igbp::from_value(*v).is_none() {
            return Err(Error::InvalidClassCode {
                value: *v,
                row,
                col,
            });
        }
    }
    Ok(r)
}

fn check_categorical(lc: &Raster, operation: &'static str) -> Result<()> {
    if lc.kind() != BandKind::Categorical {
        return Err(Error::NotCategorical {
            band: "landcover".into(),
            operation,
        });
    }
    Ok(())
}

/// The scaled-channel encoding for models: `code / 17`, so classes map into (0, 1] in code
/// order and a network input stays O(1). The result stays categorical so that it cannot be
/// averaged or interpolated by mistake.
///
/// # Errors
/// [`Error::NotCategorical`] unless `lc` is categorical; [`Error::InvalidClassCode`].
pub fn encode_scaled(lc: &Raster) -> Result<Raster> {
    check_categorical(lc, "the scaled land-cover encoding")?;
    let checked = landcover_raster(lc.clone())?;
    Ok(checked.map(|v| v / f32::from(Igbp::MAX_CODE)))
}

/// Fraction of each class among the valid fine pixels of every `k × k` block, one continuous
/// band per class named [`Igbp::band_name`], on `grid.coarsen(k)`. `k = 1` is the one-hot
/// encoding. A block without any valid pixel is missing in every band.
///
/// # Errors
/// [`Error::NotCategorical`]; [`Error::InvalidClassCode`]; grid errors if the size is not a
/// multiple of `k`.
pub fn class_fractions(lc: &Raster, k: usize, classes: &[Igbp]) -> Result<Stack> {
    check_categorical(lc, "class fractions")?;
    let checked = landcover_raster(lc.clone())?;
    let coarse = lc.grid().coarsen(k)?;
    let (rows, cols) = coarse.shape();
    let d = checked.data();
    let mut out: Vec<Array2<f32>> = classes
        .iter()
        .map(|_| Array2::from_elem((rows, cols), f32::NAN))
        .collect();
    let mut counts = [0usize; 18];
    for r in 0..rows {
        for c in 0..cols {
            counts.fill(0);
            let block = d.slice(ndarray::s![r * k..(r + 1) * k, c * k..(c + 1) * k]);
            let mut n = 0usize;
            for &v in block.iter().filter(|v| !v.is_nan()) {
                // Validated above: a present value is an integer code 1–17.
                counts[v as usize] += 1;
                n += 1;
            }
            if n > 0 {
                for (band, class) in out.iter_mut().zip(classes) {
                    band[(r, c)] = counts[usize::from(class.code())] as f32 / n as f32;
                }
            }
        }
    }
    let mut stack = Stack::new(coarse.clone());
    for (band, class) in out.into_iter().zip(classes) {
        stack.push(class.band_name(), Raster::new(coarse.clone(), band)?)?;
    }
    Ok(stack)
}

/// The one-hot encoding: [`class_fractions`] with `k = 1`.
///
/// # Errors
/// As [`class_fractions`].
pub fn one_hot(lc: &Raster, classes: &[Igbp]) -> Result<Stack> {
    class_fractions(lc, 1, classes)
}

/// The most frequent class of every `k × k` block (majority / mode), ignoring missing
/// pixels; ties go to the smallest code. A block with no valid pixel is missing. The result
/// is categorical.
///
/// # Errors
/// [`Error::NotCategorical`]; [`Error::InvalidClassCode`]; grid errors if the size is not a
/// multiple of `k`.
pub fn block_mode(lc: &Raster, k: usize) -> Result<Raster> {
    let fractions = class_fractions(lc, k, &Igbp::ALL)?;
    let coarse = fractions.grid().clone();
    let mut out = Array2::from_elem(coarse.shape(), f32::NAN);
    for ((r, c), o) in out.indexed_iter_mut() {
        let mut best: Option<(f32, Igbp)> = None;
        for (class, band) in Igbp::ALL.iter().zip(fractions.bands()) {
            let f = band.data()[(r, c)];
            // Strictly greater keeps the smallest code on ties.
            if !f.is_nan() && f > 0.0 && best.is_none_or(|(bf, _)| f > bf) {
                best = Some((f, *class));
            }
        }
        if let Some((_, class)) = best {
            *o = f32::from(class.code());
        }
    }
    Ok(Raster::new(coarse, out)?
        .with_kind(BandKind::Categorical)
        .with_nodata(lc.nodata()))
}

/// How land cover enters a covariate stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum LandcoverEncoding {
    /// The IGBP codes as one categorical band `landcover` (the default).
    #[default]
    Codes,
    /// One categorical band `landcover` holding `code / 17` ([`encode_scaled`]).
    Scaled,
    /// One continuous 0/1 band per listed class, named `lc_<key>`, in place of `landcover`.
    OneHot(Vec<Igbp>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::Grid;
    use ndarray::array;

    fn lc(data: Array2<f32>) -> Raster {
        let (h, w) = data.dim();
        let g = Grid::geographic(0.0, 1.0, 0.1, w, h).unwrap();
        landcover_raster(Raster::new(g, data).unwrap()).unwrap()
    }

    #[test]
    fn codes_round_trip_and_are_validated() {
        for class in Igbp::ALL {
            assert_eq!(Igbp::from_code(class.code()), Some(class));
        }
        assert_eq!(Igbp::from_code(0), None);
        assert_eq!(Igbp::from_code(18), None);
        assert_eq!(Igbp::from_value(12.5), None);
        let g = Grid::geographic(0.0, 1.0, 0.5, 2, 1).unwrap();
        let bad = Raster::new(g.clone(), array![[1.0, 42.0]]).unwrap();
        assert!(matches!(
            landcover_raster(bad),
            Err(Error::InvalidClassCode { value, col: 1, .. }) if (value - 42.0).abs() < 1e-6
        ));
        let fill = landcover_raster(Raster::new(g, array![[255.0, 17.0]]).unwrap()).unwrap();
        assert_eq!(fill.valid_count(), 1);
        assert_eq!(fill.kind(), BandKind::Categorical);
    }

    #[test]
    fn mode_and_fractions_by_hand() {
        // Blocks (2×2): TL {12,12,13,17} → mode 12, frac urban 1/4;
        // TR {10, 10, 17, 17} tie → smallest code 10; BL all missing; BR {16, NaN, NaN, NaN}.
        let n = f32::NAN;
        let l = lc(array![
            [12.0, 12.0, 10.0, 17.0],
            [13.0, 17.0, 17.0, 10.0],
            [n, n, 16.0, n],
            [n, n, n, n],
        ]);
        let m = block_mode(&l, 2).unwrap();
        assert_eq!(m.kind(), BandKind::Categorical);
        assert_eq!(m.get(0, 0), Some(12.0));
        assert_eq!(m.get(0, 1), Some(10.0));
        assert_eq!(m.get(1, 0), None);
        assert_eq!(m.get(1, 1), Some(16.0));
        let f = class_fractions(&l, 2, &[Igbp::UrbanBuiltUp, Igbp::Water]).unwrap();
        assert_eq!(f.names(), ["lc_urban", "lc_water"]);
        assert!((f.band("lc_urban").unwrap().data()[(0, 0)] - 0.25).abs() < 1e-7);
        assert!((f.band("lc_water").unwrap().data()[(0, 1)] - 0.5).abs() < 1e-7);
        assert!(f.band("lc_water").unwrap().data()[(1, 0)].is_nan());
        let one = one_hot(&l, &[Igbp::Cropland]).unwrap();
        assert_eq!(one.band("lc_cropland").unwrap().get(0, 1), Some(1.0));
        assert_eq!(one.band("lc_cropland").unwrap().get(1, 0), Some(0.0));
    }

    #[test]
    fn averaging_categories_is_prevented() {
        let l = lc(array![[12.0, 13.0], [17.0, 5.0]]);
        assert!(l.block_mean(2, 0.0).is_err());
        let scaled = encode_scaled(&l).unwrap();
        assert!((scaled.data()[(1, 0)] - 1.0).abs() < 1e-7);
        assert!(scaled.block_mean(2, 0.0).is_err());
        let cont = l.clone().with_kind(BandKind::Continuous);
        assert!(matches!(
            block_mode(&cont, 2),
            Err(Error::NotCategorical { .. })
        ));
    }
}
