//! Terrain strata (plain / plateau / mountain) from elevation and local relief.

use amun_raster::{BandKind, Raster};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A terrain class, stored in class rasters as its [`TerrainClass::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TerrainClass {
    /// Low and flat: elevation below the plateau threshold and relief below the mountain
    /// threshold (includes low hills).
    Plain,
    /// High and flat: elevation at or above the plateau threshold, relief below the mountain
    /// threshold.
    Plateau,
    /// Rugged: relief at or above the mountain threshold, at any elevation.
    Mountain,
}

impl TerrainClass {
    /// All classes in code order.
    pub const ALL: [TerrainClass; 3] = [
        TerrainClass::Plain,
        TerrainClass::Plateau,
        TerrainClass::Mountain,
    ];

    /// The code written to class rasters: plain 1, plateau 2, mountain 3.
    pub fn code(self) -> i32 {
        match self {
            TerrainClass::Plain => 1,
            TerrainClass::Plateau => 2,
            TerrainClass::Mountain => 3,
        }
    }

    /// The class of a code, if it is one.
    pub fn from_code(code: i32) -> Option<TerrainClass> {
        TerrainClass::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Lower-case name (`plain`, `plateau`, `mountain`).
    pub fn name(self) -> &'static str {
        match self {
            TerrainClass::Plain => "plain",
            TerrainClass::Plateau => "plateau",
            TerrainClass::Mountain => "mountain",
        }
    }
}

/// Thresholds of [`terrain_classes`], in the unit of the elevation raster (metres).
///
/// The paper stratifies by plain, plateau and mountain without giving numbers; the defaults
/// follow the usual geomorphological convention (e.g. the Chinese 1:1 000 000 geomorphic
/// map): mountains have a local relief of at least 200 m; plateaus are flat land (relief
/// below 200 m) at least 1000 m above sea level; the rest is plain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TerrainThresholds {
    /// Minimum elevation of a plateau (default 1000 m).
    pub plateau_min_elevation: f64,
    /// Minimum local relief of a mountain (default 200 m).
    pub mountain_min_relief: f64,
}

impl Default for TerrainThresholds {
    fn default() -> Self {
        Self {
            plateau_min_elevation: 1000.0,
            mountain_min_relief: 200.0,
        }
    }
}

/// Local relief: `max − min` of the valid elevations in the `(2·radius + 1)²` window around
/// each pixel (clipped at the grid edge); missing where the elevation is missing.
///
/// Choose `radius` so that the window spans a few kilometres (relief is scale-dependent;
/// the 200 m mountain threshold is meant for windows of about 2–5 km).
///
/// # Errors
/// [`Error::InvalidParameter`] if `radius` is 0.
pub fn local_relief(elevation: &Raster, radius: usize) -> Result<Raster> {
    if radius == 0 {
        return Err(Error::InvalidParameter {
            name: "radius",
            value: "0".into(),
            reason: "must be at least 1 pixel",
        });
    }
    let z = elevation.data();
    let (rows, cols) = z.dim();
    // Separable running max/min: first along rows, then along columns (exact for a
    // rectangular window). NaN never wins a comparison thanks to the ±∞ start values.
    let mut hmax = Array2::from_elem((rows, cols), f32::NEG_INFINITY);
    let mut hmin = Array2::from_elem((rows, cols), f32::INFINITY);
    for i in 0..rows {
        for j in 0..cols {
            let (lo, hi) = (j.saturating_sub(radius), (j + radius).min(cols - 1));
            for jj in lo..=hi {
                let v = z[(i, jj)];
                if !v.is_nan() {
                    hmax[(i, j)] = hmax[(i, j)].max(v);
                    hmin[(i, j)] = hmin[(i, j)].min(v);
                }
            }
        }
    }
    let data = Array2::from_shape_fn((rows, cols), |(i, j)| {
        if z[(i, j)].is_nan() {
            return f32::NAN;
        }
        let (lo, hi) = (i.saturating_sub(radius), (i + radius).min(rows - 1));
        let (mut mx, mut mn) = (f32::NEG_INFINITY, f32::INFINITY);
        for ii in lo..=hi {
            mx = mx.max(hmax[(ii, j)]);
            mn = mn.min(hmin[(ii, j)]);
        }
        mx - mn
    });
    Ok(Raster::new(elevation.grid().clone(), data)?)
}

/// Classifies each pixel as plain, plateau or mountain (codes of [`TerrainClass::code`]) from
/// its elevation and local relief (see [`local_relief`]). The result is a categorical raster,
/// missing where either input is missing; pass it to [`crate::score_by_class`].
///
/// # Errors
/// Grid errors if the two rasters are not on the same grid.
pub fn terrain_classes(
    elevation: &Raster,
    relief: &Raster,
    thresholds: &TerrainThresholds,
) -> Result<Raster> {
    elevation.grid().check_same(relief.grid())?;
    let data = ndarray::Zip::from(elevation.data())
        .and(relief.data())
        .map_collect(|&z, &r| {
            if z.is_nan() || r.is_nan() {
                f32::NAN
            } else if f64::from(r) >= thresholds.mountain_min_relief {
                TerrainClass::Mountain.code() as f32
            } else if f64::from(z) >= thresholds.plateau_min_elevation {
                TerrainClass::Plateau.code() as f32
            } else {
                TerrainClass::Plain.code() as f32
            }
        });
    Ok(Raster::new(elevation.grid().clone(), data)?.with_kind(BandKind::Categorical))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::Grid;

    #[test]
    #[allow(clippy::float_cmp)] // small integers and class codes are exact in f32/f64
    fn relief_and_classes_on_a_hand_made_dem() {
        let g = Grid::geographic(0.0, 1.0, 0.01, 6, 3).unwrap();
        // Columns 0-1 low and flat, 2-3 high and flat, 4-5 a steep ridge.
        let dem = Raster::new(
            g,
            ndarray::array![
                [10.0, 12.0, 1500.0, 1510.0, 1200.0, 1600.0],
                [11.0, f32::NAN, 1505.0, 1502.0, 1250.0, 1650.0],
                [10.0, 13.0, 1500.0, 1500.0, 1100.0, 1700.0],
            ],
        )
        .unwrap();
        let relief = local_relief(&dem, 1).unwrap();
        // Pixel (0,0): window rows 0-1, cols 0-1, valid {10, 12, 11} -> 2.
        assert_eq!(relief.data()[(0, 0)], 2.0);
        // Pixel (1,4): all rows, cols 3-5: max 1700, min 1100 -> 600.
        assert_eq!(relief.data()[(1, 4)], 600.0);
        assert!(relief.data()[(1, 1)].is_nan());
        let t = TerrainThresholds::default();
        let flat = Raster::filled(dem.grid().clone(), 50.0);
        let c = terrain_classes(&dem, &flat, &t).unwrap();
        assert_eq!(c.kind(), BandKind::Categorical);
        assert_eq!(c.data()[(0, 0)], 1.0);
        assert_eq!(c.data()[(0, 3)], 2.0);
        let c = terrain_classes(&dem, &relief, &t).unwrap();
        assert_eq!(c.data()[(2, 5)], TerrainClass::Mountain.code() as f32);
        assert_eq!(TerrainClass::from_code(2), Some(TerrainClass::Plateau));
        assert!(local_relief(&dem, 0).is_err());
    }
}
