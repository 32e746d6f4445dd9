//! Slope and aspect by Horn's method, GDAL-compatible, with latitude-aware spacing on
//! geographic grids.

use amun_raster::{BandKind, Grid, Raster};
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A reference ellipsoid: semi-major axis `a` (metres) and flattening `f`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ellipsoid {
    /// Semi-major axis in metres.
    pub a: f64,
    /// Flattening (0 for a sphere).
    pub f: f64,
}

impl Ellipsoid {
    /// WGS 84: a = 6 378 137 m, 1/f = 298.257 223 563.
    pub const WGS84: Ellipsoid = Ellipsoid {
        a: 6_378_137.0,
        f: 1.0 / 298.257_223_563,
    };

    /// A sphere of radius `r` metres.
    pub const fn sphere(r: f64) -> Ellipsoid {
        Ellipsoid { a: r, f: 0.0 }
    }

    /// Metres per degree of latitude and of longitude at geodetic latitude `lat_deg`:
    /// `M(φ)·π/180` and `N(φ)·cos φ·π/180`, with the meridional radius
    /// `M = a(1−e²)/(1−e² sin²φ)^{3/2}` and the prime-vertical radius
    /// `N = a/(1−e² sin²φ)^{1/2}`, `e² = f(2−f)`.
    pub fn metres_per_degree(&self, lat_deg: f64) -> (f64, f64) {
        let e2 = self.f * (2.0 - self.f);
        let phi = lat_deg.to_radians();
        let s2 = phi.sin().powi(2);
        let w = 1.0 - e2 * s2;
        let m = self.a * (1.0 - e2) / w.powf(1.5);
        let n = self.a / w.sqrt();
        let rad = std::f64::consts::PI / 180.0;
        (m * rad, n * phi.cos() * rad)
    }
}

/// How horizontal pixel spacing is turned into the elevation's unit (metres).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum Spacing {
    /// From the CRS: geographic grids as [`Spacing::Geographic`] on WGS 84, projected grids as
    /// [`Spacing::Projected`]; an unknown or missing CRS is an error
    /// ([`Error::UnknownUnits`]). The default.
    #[default]
    Auto,
    /// Pixel sizes are in the elevation's unit (metres for a metric projection).
    Projected,
    /// Pixel sizes are degrees; each row's spacing in metres follows from its centre latitude
    /// on this ellipsoid (see [`Ellipsoid::metres_per_degree`]).
    Geographic(Ellipsoid),
    /// Pixel sizes times a constant, like `gdaldem -s` (e.g. 111 120 for degrees and metres).
    Scale(f64),
}

/// Parameters of [`slope_aspect`] (builder; every field has a documented default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlopeParams {
    spacing: Spacing,
    z_factor: f64,
    flat_aspect: f32,
    compute_edges: bool,
}

impl Default for SlopeParams {
    fn default() -> Self {
        Self {
            spacing: Spacing::Auto,
            z_factor: 1.0,
            flat_aspect: 0.0,
            compute_edges: true,
        }
    }
}

/// [`SlopeParams`] that passed [`SlopeParams::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlopeValidParams(SlopeParams);

impl SlopeParams {
    /// Defaults: [`Spacing::Auto`], z-factor 1, flat aspect 0 (like
    /// `gdaldem aspect -zero_for_flat`), edges computed (like `-compute_edges`).
    pub fn new() -> Self {
        Self::default()
    }

    /// How pixel sizes become metres (default [`Spacing::Auto`]).
    pub fn spacing(mut self, spacing: Spacing) -> Self {
        self.spacing = spacing;
        self
    }

    /// The constant-scale mode of `gdaldem -s <scale>` (shorthand for
    /// `spacing(Spacing::Scale(scale))`).
    pub fn scale(self, scale: f64) -> Self {
        self.spacing(Spacing::Scale(scale))
    }

    /// Vertical exaggeration applied to elevations (default 1).
    pub fn z_factor(mut self, z: f64) -> Self {
        self.z_factor = z;
        self
    }

    /// Aspect written where the surface is flat (both Horn gradients exactly zero). Default
    /// 0 (north), as `gdaldem -zero_for_flat`; `f32::NAN` marks flat pixels missing, as
    /// `gdaldem aspect` does by default.
    pub fn flat_aspect(mut self, value: f32) -> Self {
        self.flat_aspect = value;
        self
    }

    /// Whether edge pixels and pixels next to nodata get values (default true), like
    /// `gdaldem -compute_edges`: neighbours outside the grid are extrapolated linearly
    /// (`2·edge − inner`) and missing neighbours replaced by the centre value. As in GDAL, at
    /// the four corner pixels the column outside the grid repeats the corner column, which
    /// halves the east-west difference there. When false, such pixels are missing, as
    /// GDAL's default.
    pub fn compute_edges(mut self, yes: bool) -> Self {
        self.compute_edges = yes;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the z-factor or scale is not finite and positive, or the
    /// ellipsoid is not valid.
    pub fn check(self) -> Result<SlopeValidParams> {
        if !(self.z_factor.is_finite() && self.z_factor > 0.0) {
            return Err(Error::InvalidParameter {
                name: "z_factor",
                value: self.z_factor.to_string(),
                reason: "must be finite and positive",
            });
        }
        match self.spacing {
            Spacing::Scale(s) if !(s.is_finite() && s > 0.0) => Err(Error::InvalidParameter {
                name: "scale",
                value: s.to_string(),
                reason: "must be finite and positive",
            }),
            Spacing::Geographic(e)
                if !(e.a.is_finite() && e.a > 0.0 && (0.0..1.0).contains(&e.f)) =>
            {
                Err(Error::InvalidParameter {
                    name: "ellipsoid",
                    value: format!("a = {}, f = {}", e.a, e.f),
                    reason: "needs a > 0 and 0 <= f < 1",
                })
            }
            _ => Ok(SlopeValidParams(self)),
        }
    }
}

/// Slope and aspect of a DEM, on its grid.
#[derive(Debug, Clone, PartialEq)]
pub struct SlopeAspect {
    /// Slope in degrees (0 = flat, 90 = vertical).
    pub slope: Raster,
    /// Aspect in degrees clockwise from north (0…360), the direction the slope faces
    /// (downhill); flat pixels hold the configured flat value.
    pub aspect: Raster,
}

/// Horizontal spacing in metres (x, y) for each row.
fn row_spacing(grid: &Grid, spacing: Spacing) -> Result<Vec<(f64, f64)>> {
    let (dx, dy) = (grid.pixel_width(), grid.pixel_height());
    let spacing = match spacing {
        Spacing::Auto => match grid.crs().and_then(|c| c.is_geographic()) {
            Some(true) => Spacing::Geographic(Ellipsoid::WGS84),
            Some(false) => Spacing::Projected,
            None => {
                return Err(Error::UnknownUnits {
                    crs: grid.crs().map_or("none".into(), |c| c.to_string()),
                })
            }
        },
        other => other,
    };
    (0..grid.height())
        .map(|row| match spacing {
            Spacing::Projected | Spacing::Auto => Ok((dx, dy)),
            Spacing::Scale(s) => Ok((dx * s, dy * s)),
            Spacing::Geographic(e) => {
                let (_, lat) = grid.pixel_center(0, row);
                if !(-90.0..=90.0).contains(&lat) {
                    return Err(Error::LatitudeOutOfRange { row, lat });
                }
                let (m_lat, m_lon) = e.metres_per_degree(lat);
                Ok((dx * m_lon, dy * m_lat))
            }
        })
        .collect()
}

/// `2a − b`, missing if either is (GDAL's linear extrapolation past an edge).
fn extrapolate(a: f32, b: f32) -> f32 {
    2.0 * a - b
}

/// The 3×3 window around (r, c) in GDAL's order (0 1 2 / 3 4 5 / 6 7 8), with GDAL's
/// `-compute_edges` rules for pixels on the grid border. `None` for a border pixel when edges
/// are not computed.
fn window(v: &[f32], w: usize, h: usize, r: usize, c: usize, edges: bool) -> Option<[f32; 9]> {
    let at = |rr: usize, cc: usize| v[rr * w + cc];
    let on_border = r == 0 || c == 0 || r + 1 == h || c + 1 == w;
    if !on_border {
        return Some([
            at(r - 1, c - 1),
            at(r - 1, c),
            at(r - 1, c + 1),
            at(r, c - 1),
            at(r, c),
            at(r, c + 1),
            at(r + 1, c - 1),
            at(r + 1, c),
            at(r + 1, c + 1),
        ]);
    }
    if !edges {
        return None;
    }
    let jmin = c.saturating_sub(1);
    let jmax = if c + 1 == w { c } else { c + 1 };
    if r == 0 || r + 1 == h {
        // First or last row: the missing row is extrapolated from the two nearest rows;
        // columns past the left/right edge repeat the centre column (as GDAL does).
        let (inner, outer_first) = if r == 0 { (1, true) } else { (h - 2, false) };
        let ext = [jmin, c, jmax].map(|j| extrapolate(at(r, j), at(inner, j)));
        let own = [jmin, c, jmax].map(|j| at(r, j));
        let nb = [jmin, c, jmax].map(|j| at(inner, j));
        let (top, bottom) = if outer_first { (ext, nb) } else { (nb, ext) };
        return Some([
            top[0], top[1], top[2], own[0], own[1], own[2], bottom[0], bottom[1], bottom[2],
        ]);
    }
    // Interior row, first or last column: the missing column is extrapolated per row.
    let rows = [r - 1, r, r + 1];
    Some(if c == 0 {
        let e = rows.map(|rr| extrapolate(at(rr, 0), at(rr, 1)));
        [
            e[0],
            at(r - 1, 0),
            at(r - 1, 1),
            e[1],
            at(r, 0),
            at(r, 1),
            e[2],
            at(r + 1, 0),
            at(r + 1, 1),
        ]
    } else {
        let e = rows.map(|rr| extrapolate(at(rr, w - 1), at(rr, w - 2)));
        [
            at(r - 1, w - 2),
            at(r - 1, w - 1),
            e[0],
            at(r, w - 2),
            at(r, w - 1),
            e[1],
            at(r + 1, w - 2),
            at(r + 1, w - 1),
            e[2],
        ]
    })
}

/// Slope and aspect of one pixel from its window; `None` when missing.
fn horn(mut win: [f32; 9], ex: f64, ny: f64, p: &SlopeParams) -> Option<(f32, f32)> {
    if win[4].is_nan() {
        return None;
    }
    if win.iter().any(|v| v.is_nan()) {
        if !p.compute_edges {
            return None;
        }
        let centre = win[4];
        for v in win.iter_mut().filter(|v| v.is_nan()) {
            *v = centre;
        }
    }
    let w = win.map(f64::from);
    // Raw Horn differences: east minus west, south minus north.
    let ddx = (w[2] + 2.0 * w[5] + w[8]) - (w[0] + 2.0 * w[3] + w[6]);
    let ddy = (w[6] + 2.0 * w[7] + w[8]) - (w[0] + 2.0 * w[1] + w[2]);
    let gx = p.z_factor * ddx / (8.0 * ex);
    let gy = p.z_factor * ddy / (8.0 * ny);
    let slope = (gx.hypot(gy)).atan().to_degrees() as f32;
    let aspect = if ddx == 0.0 && ddy == 0.0 {
        p.flat_aspect
    } else {
        // Angle of the downhill direction counter-clockwise from east, then azimuth.
        let a = gy.atan2(-gx).to_degrees();
        let az = if a > 90.0 { 450.0 - a } else { 90.0 - a };
        let az = az as f32;
        if az >= 360.0 {
            0.0
        } else {
            az
        }
    };
    Some((slope, aspect))
}

/// Slope (degrees) and aspect (degrees clockwise from north) by Horn's (1981) method.
///
/// The gradient is `∂z/∂x = ((c + 2f + i) − (a + 2d + g)) / (8·Δx)`,
/// `∂z/∂y = ((g + 2h + i) − (a + 2b + c)) / (8·Δy)` over the 3×3 window `a b c / d e f /
/// g h i`; slope = `atan(z·√(∂z/∂x² + ∂z/∂y²))`; aspect is the azimuth of the downhill
/// direction, `atan2(∂z/∂y, −∂z/∂x)` turned into degrees clockwise from north. Δx and Δy in
/// metres come from [`Spacing`] — per row from the latitude on geographic grids. On square
/// pixels this equals `gdaldem slope|aspect -alg Horn` (with `-compute_edges` when edges are
/// computed); on geographic grids with `-s 111120`, use [`Spacing::Scale`].
///
/// Missing elevations give missing slope and aspect at that pixel; as neighbours they are
/// replaced by the centre value (or make the pixel missing when edges are not computed).
///
/// # Errors
/// [`Error::CategoricalInput`] for a categorical DEM; [`Error::TooSmall`] if the DEM has fewer
/// than 2 rows or columns; [`Error::UnknownUnits`] in [`Spacing::Auto`] mode without a known
/// CRS; [`Error::LatitudeOutOfRange`]; parameter errors from [`SlopeParams::check`].
pub fn slope_aspect(dem: &Raster, params: &SlopeParams) -> Result<SlopeAspect> {
    let SlopeValidParams(p) = params.check()?;
    if dem.kind() == BandKind::Categorical {
        return Err(Error::CategoricalInput {
            band: "dem".into(),
            operation: "slope and aspect",
        });
    }
    let grid = dem.grid();
    let (h, w) = grid.shape();
    if h < 2 || w < 2 {
        return Err(Error::TooSmall {
            width: w,
            height: h,
            min: 2,
            operation: "slope and aspect",
        });
    }
    let spacing = row_spacing(grid, p.spacing)?;
    let std_layout = dem.data().as_standard_layout();
    // A standard-layout array is contiguous, so `as_slice` cannot fail.
    let v = std_layout
        .as_slice()
        .expect("standard layout is contiguous");
    let mut slope = vec![f32::NAN; w * h];
    let mut aspect = vec![f32::NAN; w * h];
    slope
        .par_chunks_mut(w)
        .zip(aspect.par_chunks_mut(w))
        .enumerate()
        .for_each(|(r, (srow, arow))| {
            let (ex, ny) = spacing[r];
            for c in 0..w {
                if let Some((s, a)) =
                    window(v, w, h, r, c, p.compute_edges).and_then(|win| horn(win, ex, ny, &p))
                {
                    srow[c] = s;
                    arow[c] = a;
                }
            }
        });
    let to_raster = |data: Vec<f32>| -> Result<Raster> {
        // The buffers were allocated with rows × cols elements, so the shape always fits.
        let arr = Array2::from_shape_vec((h, w), data).expect("buffer has rows × cols values");
        Ok(Raster::new(grid.clone(), arr)?)
    };
    Ok(SlopeAspect {
        slope: to_raster(slope)?,
        aspect: to_raster(aspect)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::{Crs, GeoTransform};

    fn projected(w: usize, h: usize, res: f64) -> Grid {
        Grid::new(
            w,
            h,
            GeoTransform::new(500_000.0, 9_000_000.0, res, -res).unwrap(),
            Some(Crs::Epsg(32725)),
        )
        .unwrap()
    }

    #[test]
    fn plane_slope_and_aspect_match_the_formula() {
        // z = 0.1·x_east + 0 → rises eastwards, faces west: slope atan(0.1), aspect 270.
        let g = projected(6, 5, 10.0);
        let dem = Raster::from_fn(g, |(_, c)| c as f32);
        let sa = slope_aspect(&dem, &SlopeParams::new()).unwrap();
        let want = 0.1f64.atan().to_degrees() as f32;
        for ((r, c), &s) in sa.slope.data().indexed_iter() {
            let a = sa.aspect.data()[(r, c)];
            assert!((a - 270.0).abs() < 1e-4, "{a}");
            let corner = (r == 0 || r == 4) && (c == 0 || c == 5);
            if corner {
                // GDAL repeats the centre column at the four corners, which halves the
                // east-west difference: ddx = 4 instead of 8 → atan(0.05).
                let half = 0.05f64.atan().to_degrees() as f32;
                assert!((s - half).abs() < 1e-4, "corner {s} vs {half}");
            } else {
                // Edges extrapolate a plane exactly, so other pixels have the plane's slope.
                assert!((s - want).abs() < 1e-4, "{s} vs {want}");
            }
        }
        // z decreasing northwards (rows run south): z = row → faces north, aspect 0.
        let dem = Raster::from_fn(projected(5, 5, 1.0), |(r, _)| r as f32);
        let sa = slope_aspect(&dem, &SlopeParams::new()).unwrap();
        assert!((sa.aspect.data()[(2, 2)] - 0.0).abs() < 1e-4);
        assert!((sa.slope.data()[(2, 2)] - 45.0).abs() < 1e-4);
        // Rising to the north-east (south-west facing): aspect 225.
        let dem = Raster::from_fn(projected(5, 5, 1.0), |(r, c)| c as f32 - r as f32);
        let sa = slope_aspect(&dem, &SlopeParams::new()).unwrap();
        assert!((sa.aspect.data()[(2, 2)] - 225.0).abs() < 1e-4);
    }

    #[test]
    fn flat_value_edges_and_nodata() {
        let g = projected(4, 4, 30.0);
        let flat = Raster::filled(g.clone(), 12.0);
        let sa = slope_aspect(&flat, &SlopeParams::new().flat_aspect(-1.0)).unwrap();
        assert!(sa.aspect.data().iter().all(|&a| (a + 1.0).abs() < 1e-6));
        assert!(sa.slope.data().iter().all(|&s| s.abs() < 1e-6));
        let sa = slope_aspect(&flat, &SlopeParams::new().compute_edges(false)).unwrap();
        assert_eq!(sa.slope.valid_count(), 4, "only the 2×2 interior");
        let mut holes = Raster::from_fn(g, |(_, c)| 3.0 * c as f32);
        holes.data_mut()[(1, 1)] = f32::NAN;
        let sa = slope_aspect(&holes, &SlopeParams::new()).unwrap();
        assert!(sa.slope.data()[(1, 1)].is_nan());
        // Neighbour (1, 2): the hole to its west is replaced by the centre (6):
        // ddx = (9 + 18 + 9) - (3 + 12 + 3) = 18 → gx = 18 / (8·30).
        let want = (18.0f64 / 240.0).atan().to_degrees() as f32;
        assert!((sa.slope.data()[(1, 2)] - want).abs() < 1e-4);
        let sa = slope_aspect(&holes, &SlopeParams::new().compute_edges(false)).unwrap();
        assert!(sa.slope.data()[(1, 2)].is_nan());
        assert!(sa.slope.data()[(2, 2)].is_nan());
    }

    #[test]
    fn geographic_spacing_follows_latitude() {
        // WGS 84 at 60°: 111 412 m per degree of latitude, 55 800 m per degree of longitude
        // (standard tables, e.g. the NGA "Length of a degree" calculator).
        let (m_lat, m_lon) = Ellipsoid::WGS84.metres_per_degree(60.0);
        assert!((m_lat - 111_412.0).abs() < 5.0, "{m_lat}");
        assert!((m_lon - 55_800.0).abs() < 5.0, "{m_lon}");
        // An east-west ramp of 1 m per pixel on a 0.001° grid at 60°N: gx = 1/55.8 m.
        let g = Grid::geographic(10.0, 60.01, 0.001, 5, 20).unwrap();
        let dem = Raster::from_fn(g, |(_, c)| c as f32);
        let sa = slope_aspect(&dem, &SlopeParams::new()).unwrap();
        for r in [0usize, 10, 19] {
            let lat = 60.01 - 0.001 * (r as f64 + 0.5);
            let (_, m_lon) = Ellipsoid::WGS84.metres_per_degree(lat);
            let want = (1.0 / (0.001 * m_lon)).atan().to_degrees() as f32;
            assert!((sa.slope.data()[(r, 2)] - want).abs() < 1e-4);
        }
        // The constant scale ignores latitude: gx = 1 / (0.001·111120).
        let sa = slope_aspect(&dem, &SlopeParams::new().scale(111_120.0)).unwrap();
        let want = (1.0 / 111.12f64).atan().to_degrees() as f32;
        assert!((sa.slope.data()[(3, 3)] - want).abs() < 1e-4);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let g = projected(4, 4, 30.0);
        let dem = Raster::filled(g.clone(), 1.0);
        assert!(matches!(
            slope_aspect(&dem, &SlopeParams::new().z_factor(0.0)),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            slope_aspect(&dem, &SlopeParams::new().scale(f64::NAN)),
            Err(Error::InvalidParameter { .. })
        ));
        let nocrs = Raster::filled(g.clone().with_crs(None), 1.0);
        assert!(matches!(
            slope_aspect(&nocrs, &SlopeParams::new()),
            Err(Error::UnknownUnits { .. })
        ));
        assert!(slope_aspect(&nocrs, &SlopeParams::new().spacing(Spacing::Projected)).is_ok());
        let tiny = Raster::filled(projected(1, 4, 1.0), 1.0);
        assert!(matches!(
            slope_aspect(&tiny, &SlopeParams::new()),
            Err(Error::TooSmall { .. })
        ));
        let cat = dem.with_kind(BandKind::Categorical);
        assert!(slope_aspect(&cat, &SlopeParams::new()).is_err());
    }

    fn fixture(name: &str) -> Raster {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/indices/");
        amun_raster::read_band(format!("{path}{name}"), 1).unwrap()
    }

    /// Compares with `gdaldem` output wherever GDAL computed a value; returns the number of
    /// pixels compared. Missing pixels must agree too (flat aspect is missing in both).
    fn compare(ours: &Raster, gdal: &Raster, circular: bool) -> usize {
        assert_eq!(ours.grid().shape(), gdal.grid().shape());
        let mut n = 0;
        for ((r, c), &g) in gdal.data().indexed_iter() {
            let o = ours.data()[(r, c)];
            if g.is_nan() {
                assert!(o.is_nan(), "({r}, {c}): GDAL missing, ours {o}");
                continue;
            }
            let mut d = (f64::from(o) - f64::from(g)).abs();
            if circular {
                d = d.min(360.0 - d);
            }
            assert!(d <= 0.01, "({r}, {c}): ours {o}, GDAL {g}");
            n += 1;
        }
        n
    }

    #[test]
    fn agrees_with_gdaldem_on_a_projected_dem() {
        // Reference: `gdaldem slope|aspect -alg Horn -compute_edges` (GDAL 3.6.2) on a 64×64
        // window of the Olinda DEM (UTM 25S), see fixtures/indices/make_fixtures.sh.
        let dem = fixture("dem_utm.tif");
        assert_eq!(
            dem.grid().crs().and_then(|c| c.is_geographic()),
            Some(false)
        );
        let p = SlopeParams::new().flat_aspect(f32::NAN);
        let ours = slope_aspect(&dem, &p).unwrap();
        let n = compare(&ours.slope, &fixture("utm_slope.tif"), false);
        assert_eq!(n, 64 * 64, "every slope pixel is computed");
        let n = compare(&ours.aspect, &fixture("utm_aspect.tif"), true);
        assert!(n > 3000, "{n} aspect pixels compared");
    }

    #[test]
    fn agrees_with_gdaldem_on_a_geographic_dem_with_nodata() {
        // Reference: the Olinda DEM warped to EPSG:4326 (0.0008°, bilinear) with three
        // nodata holes (one on the border), then `gdaldem slope -s 111120 -compute_edges`
        // and `gdaldem aspect -compute_edges` (GDAL 3.6.2); see make_fixtures.sh.
        let dem = fixture("dem_geo.tif");
        assert!(dem.valid_count() < 64 * 64, "the fixture has nodata");
        let p = SlopeParams::new().scale(111_120.0).flat_aspect(f32::NAN);
        let ours = slope_aspect(&dem, &p).unwrap();
        let n = compare(&ours.slope, &fixture("geo_slope.tif"), false);
        assert_eq!(n, dem.valid_count());
        let n = compare(&ours.aspect, &fixture("geo_aspect.tif"), true);
        // Sea pixels (elevation 0) are flat: GDAL leaves their aspect missing.
        assert!(n > 2000, "{n} aspect pixels compared");
        // The latitude-aware mode differs from the constant scale by the cosine of the
        // latitude (≈ 8° S here) in the east-west spacing: slopes differ, but only slightly.
        let geo = slope_aspect(&dem, &SlopeParams::new()).unwrap();
        let (a, b) = (geo.slope.stats().unwrap(), ours.slope.stats().unwrap());
        assert!(
            (a.mean - b.mean).abs() / b.mean < 0.05,
            "{} vs {}",
            a.mean,
            b.mean
        );
    }
}
