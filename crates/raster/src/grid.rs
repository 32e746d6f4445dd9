//! Grids: size, affine geotransform and coordinate reference system.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::{Error, Result};

/// Relative tolerance used when comparing transforms (fraction of a pixel).
const ALIGN_TOL: f64 = 1e-6;

/// A north-up affine geotransform, in GDAL's convention.
///
/// World coordinates of the top-left corner of pixel (col, row) are
/// `x = origin_x + col * pixel_width`, `y = origin_y + row * pixel_height`.
/// `pixel_width > 0`; `pixel_height < 0` (rows run south). Rotation and shear are not
/// supported: [`GeoTransform::from_gdal`] rejects them with [`Error::RotatedTransform`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoTransform {
    /// x of the top-left corner of the top-left pixel.
    pub origin_x: f64,
    /// y of the top-left corner of the top-left pixel.
    pub origin_y: f64,
    /// Pixel width in CRS units (positive).
    pub pixel_width: f64,
    /// Pixel height in CRS units (negative for north-up).
    pub pixel_height: f64,
}

impl GeoTransform {
    /// A north-up transform from the top-left corner and pixel size.
    ///
    /// # Errors
    /// [`Error::InvalidGrid`] if a value is not finite, `pixel_width <= 0` or
    /// `pixel_height >= 0`.
    pub fn new(origin_x: f64, origin_y: f64, pixel_width: f64, pixel_height: f64) -> Result<Self> {
        let gt = Self {
            origin_x,
            origin_y,
            pixel_width,
            pixel_height,
        };
        gt.validate()?;
        Ok(gt)
    }

    fn validate(&self) -> Result<()> {
        let vals = [
            self.origin_x,
            self.origin_y,
            self.pixel_width,
            self.pixel_height,
        ];
        if vals.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidGrid {
                detail: format!("non-finite geotransform {self:?}"),
            });
        }
        if self.pixel_width <= 0.0 {
            return Err(Error::InvalidGrid {
                detail: format!("pixel width must be positive, got {}", self.pixel_width),
            });
        }
        if self.pixel_height >= 0.0 {
            return Err(Error::InvalidGrid {
                detail: format!(
                    "pixel height must be negative (north-up), got {}",
                    self.pixel_height
                ),
            });
        }
        Ok(())
    }

    /// From GDAL's six coefficients `[x0, dx, rx, y0, ry, dy]`.
    ///
    /// # Errors
    /// [`Error::RotatedTransform`] if `rx` or `ry` is non-zero; [`Error::InvalidGrid`] as
    /// for [`GeoTransform::new`].
    pub fn from_gdal(gt: [f64; 6]) -> Result<Self> {
        if gt[2] != 0.0 || gt[4] != 0.0 {
            return Err(Error::RotatedTransform {
                path: None,
                row_rotation: gt[2],
                col_rotation: gt[4],
            });
        }
        Self::new(gt[0], gt[3], gt[1], gt[5])
    }

    /// GDAL's six coefficients `[x0, dx, 0, y0, 0, dy]`.
    pub fn to_gdal(&self) -> [f64; 6] {
        [
            self.origin_x,
            self.pixel_width,
            0.0,
            self.origin_y,
            0.0,
            self.pixel_height,
        ]
    }
}

/// A coordinate reference system.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Crs {
    /// An EPSG code, e.g. 4326 or 32633.
    Epsg(u32),
    /// A PROJ string such as `+proj=sinu +R=6371007.181 +units=m`.
    Proj(String),
    /// OGC WKT text.
    Wkt(String),
}

impl Crs {
    /// WGS 84 geographic coordinates (EPSG:4326), longitude/latitude in degrees.
    pub const WGS84: Crs = Crs::Epsg(4326);

    /// The MODIS sinusoidal projection on its sphere.
    pub fn modis_sinusoidal() -> Crs {
        Crs::Proj("+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs".into())
    }

    /// Whether coordinates are angles (longitude/latitude in degrees), if it can be told
    /// without PROJ. `None` when unknown.
    pub fn is_geographic(&self) -> Option<bool> {
        match self {
            // EPSG geographic 2D CRSs live in 4000..=4999 (e.g. 4326, 4269, 4258);
            // projected ones elsewhere (e.g. 326xx, 327xx, 3857, 31985).
            Crs::Epsg(code) => Some((4000..5000).contains(code)),
            Crs::Proj(s) => {
                let s = s.to_ascii_lowercase();
                if s.contains("+proj=longlat") || s.contains("+proj=latlong") {
                    Some(true)
                } else if s.contains("+proj=") {
                    Some(false)
                } else {
                    None
                }
            }
            Crs::Wkt(w) => {
                let w = w.trim_start().to_ascii_uppercase();
                if w.starts_with("GEOGCS") || w.starts_with("GEOGCRS") {
                    Some(true)
                } else if w.starts_with("PROJCS") || w.starts_with("PROJCRS") {
                    Some(false)
                } else {
                    None
                }
            }
        }
    }

    /// The EPSG code, if this CRS is given by one.
    pub fn epsg(&self) -> Option<u32> {
        match self {
            Crs::Epsg(c) => Some(*c),
            _ => None,
        }
    }

    /// A definition PROJ accepts: `EPSG:nnnn`, or the PROJ/WKT text.
    pub fn to_proj_definition(&self) -> String {
        match self {
            Crs::Epsg(c) => format!("EPSG:{c}"),
            Crs::Proj(s) | Crs::Wkt(s) => s.clone(),
        }
    }
}

impl fmt::Display for Crs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Crs::Epsg(c) => write!(f, "EPSG:{c}"),
            Crs::Proj(s) => write!(f, "{s}"),
            Crs::Wkt(s) => {
                let short: String = s.chars().take(60).collect();
                if s.chars().count() > 60 {
                    write!(f, "{short}…")
                } else {
                    write!(f, "{short}")
                }
            }
        }
    }
}

fn crs_name(crs: Option<&Crs>) -> String {
    crs.map_or_else(|| "no CRS".to_string(), |c| c.to_string())
}

/// A raster grid: size in pixels, north-up geotransform and optional CRS.
///
/// Pixels are areas (GDAL's `PixelIsArea`): pixel (col, row) covers
/// `[x0 + col·dx, x0 + (col+1)·dx] × [y0 + (row+1)·dy, y0 + row·dy]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    width: usize,
    height: usize,
    transform: GeoTransform,
    crs: Option<Crs>,
}

impl Grid {
    /// A grid of `width × height` pixels.
    ///
    /// # Errors
    /// [`Error::InvalidGrid`] if the grid is empty or the transform is invalid.
    pub fn new(
        width: usize,
        height: usize,
        transform: GeoTransform,
        crs: Option<Crs>,
    ) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::InvalidGrid {
                detail: format!("empty grid {width}×{height}"),
            });
        }
        transform.validate()?;
        Ok(Self {
            width,
            height,
            transform,
            crs,
        })
    }

    /// A geographic (EPSG:4326) grid with its top-left corner at (`west`, `north`) and square
    /// pixels of `res_deg` degrees.
    ///
    /// # Errors
    /// As [`Grid::new`].
    pub fn geographic(
        west: f64,
        north: f64,
        res_deg: f64,
        width: usize,
        height: usize,
    ) -> Result<Self> {
        Self::new(
            width,
            height,
            GeoTransform::new(west, north, res_deg, -res_deg)?,
            Some(Crs::WGS84),
        )
    }

    /// Width in pixels (columns).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels (rows).
    pub fn height(&self) -> usize {
        self.height
    }

    /// `(rows, cols)`, the shape of the data arrays on this grid.
    pub fn shape(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// Number of pixels.
    pub fn len(&self) -> usize {
        self.width * self.height
    }

    /// Always false: grids are never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The geotransform.
    pub fn transform(&self) -> &GeoTransform {
        &self.transform
    }

    /// The CRS, if known.
    pub fn crs(&self) -> Option<&Crs> {
        self.crs.as_ref()
    }

    /// This grid with another CRS (coordinates unchanged).
    pub fn with_crs(mut self, crs: Option<Crs>) -> Self {
        self.crs = crs;
        self
    }

    /// Pixel width in CRS units.
    pub fn pixel_width(&self) -> f64 {
        self.transform.pixel_width
    }

    /// Pixel height in CRS units (positive number).
    pub fn pixel_height(&self) -> f64 {
        -self.transform.pixel_height
    }

    /// `(xmin, ymin, xmax, ymax)` of the grid's outer edges.
    pub fn bounds(&self) -> (f64, f64, f64, f64) {
        let t = &self.transform;
        let xmax = t.origin_x + self.width as f64 * t.pixel_width;
        let ymin = t.origin_y + self.height as f64 * t.pixel_height;
        (t.origin_x, ymin, xmax, t.origin_y)
    }

    /// World coordinates of a (fractional) pixel position; `(0, 0)` is the top-left corner
    /// of the top-left pixel, `(0.5, 0.5)` its centre.
    pub fn pixel_to_world(&self, col: f64, row: f64) -> (f64, f64) {
        let t = &self.transform;
        (
            t.origin_x + col * t.pixel_width,
            t.origin_y + row * t.pixel_height,
        )
    }

    /// World coordinates of the centre of pixel (col, row).
    pub fn pixel_center(&self, col: usize, row: usize) -> (f64, f64) {
        self.pixel_to_world(col as f64 + 0.5, row as f64 + 0.5)
    }

    /// Fractional pixel position `(col, row)` of a world point (inverse of
    /// [`Grid::pixel_to_world`]).
    pub fn world_to_pixel(&self, x: f64, y: f64) -> (f64, f64) {
        let t = &self.transform;
        (
            (x - t.origin_x) / t.pixel_width,
            (y - t.origin_y) / t.pixel_height,
        )
    }

    /// The pixel `(col, row)` containing a world point, or `None` outside the grid.
    pub fn pixel_at(&self, x: f64, y: f64) -> Option<(usize, usize)> {
        let (c, r) = self.world_to_pixel(x, y);
        if c >= 0.0 && r >= 0.0 && c < self.width as f64 && r < self.height as f64 {
            Some((c as usize, r as usize))
        } else {
            None
        }
    }

    /// A grid `k` times coarser covering the same area.
    ///
    /// # Errors
    /// [`Error::InvalidGrid`] if `k == 0` or the size is not divisible by `k`.
    pub fn coarsen(&self, k: usize) -> Result<Grid> {
        if k == 0 || !self.width.is_multiple_of(k) || !self.height.is_multiple_of(k) {
            return Err(Error::InvalidGrid {
                detail: format!(
                    "cannot coarsen a {}×{} grid by {k}: size must be a multiple of the factor",
                    self.width, self.height
                ),
            });
        }
        let t = &self.transform;
        Grid::new(
            self.width / k,
            self.height / k,
            GeoTransform::new(
                t.origin_x,
                t.origin_y,
                t.pixel_width * k as f64,
                t.pixel_height * k as f64,
            )?,
            self.crs.clone(),
        )
    }

    /// A grid `k` times finer covering the same area.
    ///
    /// # Errors
    /// [`Error::InvalidGrid`] if `k == 0` or the result would overflow.
    pub fn refine(&self, k: usize) -> Result<Grid> {
        let (w, h) = match (self.width.checked_mul(k), self.height.checked_mul(k)) {
            (Some(w), Some(h)) if k > 0 => (w, h),
            _ => {
                return Err(Error::InvalidGrid {
                    detail: format!("cannot refine a {}×{} grid by {k}", self.width, self.height),
                })
            }
        };
        let t = &self.transform;
        Grid::new(
            w,
            h,
            GeoTransform::new(
                t.origin_x,
                t.origin_y,
                t.pixel_width / k as f64,
                t.pixel_height / k as f64,
            )?,
            self.crs.clone(),
        )
    }

    /// The sub-grid of `width × height` pixels whose top-left pixel is (col0, row0).
    ///
    /// # Errors
    /// [`Error::WindowOutOfBounds`] if the window is empty or leaves the grid.
    pub fn window(&self, col0: usize, row0: usize, width: usize, height: usize) -> Result<Grid> {
        let oob = || Error::WindowOutOfBounds {
            col0,
            col1: col0.saturating_add(width),
            row0,
            row1: row0.saturating_add(height),
            width: self.width,
            height: self.height,
        };
        if width == 0
            || height == 0
            || col0.checked_add(width).is_none_or(|c| c > self.width)
            || row0.checked_add(height).is_none_or(|r| r > self.height)
        {
            return Err(oob());
        }
        let (x, y) = self.pixel_to_world(col0 as f64, row0 as f64);
        Grid::new(
            width,
            height,
            GeoTransform::new(
                x,
                y,
                self.transform.pixel_width,
                self.transform.pixel_height,
            )?,
            self.crs.clone(),
        )
    }

    fn check_crs(&self, other: &Grid) -> Result<()> {
        if self.crs != other.crs {
            return Err(Error::CrsMismatch {
                left: crs_name(self.crs()),
                right: crs_name(other.crs()),
            });
        }
        Ok(())
    }

    /// Checks that `other` is the same grid (size, transform within 1e-6 pixel, CRS).
    ///
    /// # Errors
    /// [`Error::CrsMismatch`] or [`Error::GridMismatch`] saying what differs.
    pub fn check_same(&self, other: &Grid) -> Result<()> {
        self.check_crs(other)?;
        if (self.width, self.height) != (other.width, other.height) {
            return Err(Error::GridMismatch {
                detail: format!(
                    "size {}×{} vs {}×{}",
                    self.width, self.height, other.width, other.height
                ),
            });
        }
        let (a, b) = (&self.transform, &other.transform);
        let tol_x = ALIGN_TOL * a.pixel_width.abs();
        let tol_y = ALIGN_TOL * a.pixel_height.abs();
        if (a.pixel_width - b.pixel_width).abs() > tol_x
            || (a.pixel_height - b.pixel_height).abs() > tol_y
        {
            return Err(Error::GridMismatch {
                detail: format!(
                    "pixel size {}×{} vs {}×{}",
                    a.pixel_width, -a.pixel_height, b.pixel_width, -b.pixel_height
                ),
            });
        }
        if (a.origin_x - b.origin_x).abs() > tol_x || (a.origin_y - b.origin_y).abs() > tol_y {
            return Err(Error::GridMismatch {
                detail: format!(
                    "origin ({}, {}) vs ({}, {})",
                    a.origin_x, a.origin_y, b.origin_x, b.origin_y
                ),
            });
        }
        Ok(())
    }

    /// True if the two grids share a CRS and pixel edges: one pixel size is an integer
    /// multiple of the other and the origins differ by a whole number of the finer pixels.
    pub fn is_aligned_with(&self, other: &Grid) -> bool {
        self.check_aligned(other).is_ok()
    }

    /// Like [`Grid::is_aligned_with`], but says what differs.
    ///
    /// # Errors
    /// [`Error::CrsMismatch`] or [`Error::NotAligned`].
    pub fn check_aligned(&self, other: &Grid) -> Result<()> {
        self.check_crs(other)?;
        let (a, b) = (&self.transform, &other.transform);
        for (axis, pa, pb, oa, ob) in [
            (
                "x",
                a.pixel_width.abs(),
                b.pixel_width.abs(),
                a.origin_x,
                b.origin_x,
            ),
            (
                "y",
                a.pixel_height.abs(),
                b.pixel_height.abs(),
                a.origin_y,
                b.origin_y,
            ),
        ] {
            let (fine, coarse) = if pa <= pb { (pa, pb) } else { (pb, pa) };
            let ratio = coarse / fine;
            if (ratio - ratio.round()).abs() > ALIGN_TOL * ratio.max(1.0) {
                return Err(Error::NotAligned {
                    detail: format!(
                        "{axis} pixel sizes {pa} and {pb} are not integer multiples (ratio {ratio})"
                    ),
                });
            }
            let shift = (oa - ob) / fine;
            if (shift - shift.round()).abs() > 1e-4 {
                return Err(Error::NotAligned {
                    detail: format!(
                        "{axis} origins {oa} and {ob} differ by {shift:.6} pixels of {fine}, not a whole number"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The integer factor `k` by which this grid refines `coarse` (`self == coarse.refine(k)`),
    /// covering exactly the same area.
    ///
    /// # Errors
    /// [`Error::CrsMismatch`], [`Error::NotAligned`] or [`Error::GridMismatch`] saying how the
    /// grids fail to nest.
    pub fn refinement_of(&self, coarse: &Grid) -> Result<usize> {
        self.check_crs(coarse)?;
        let ratio = coarse.pixel_width() / self.pixel_width();
        let ratio_y = coarse.pixel_height() / self.pixel_height();
        let k = ratio.round();
        if k < 1.0 || (ratio - k).abs() > ALIGN_TOL * k || (ratio_y - k).abs() > ALIGN_TOL * k {
            return Err(Error::NotAligned {
                detail: format!(
                    "fine pixel {}×{} does not divide coarse pixel {}×{} by one integer factor",
                    self.pixel_width(),
                    self.pixel_height(),
                    coarse.pixel_width(),
                    coarse.pixel_height()
                ),
            });
        }
        let k = k as usize;
        let expect = coarse.refine(k)?;
        expect.check_same(self).map_err(|e| match e {
            Error::GridMismatch { detail } => Error::GridMismatch {
                detail: format!(
                    "fine grid is not the {k}× refinement of the coarse grid: {detail}"
                ),
            },
            other => other,
        })?;
        Ok(k)
    }
}

impl fmt::Display for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (xmin, ymin, xmax, ymax) = self.bounds();
        write!(
            f,
            "{}×{} px, pixel {}×{}, bounds [{}, {}, {}, {}], {}",
            self.width,
            self.height,
            short(self.pixel_width()),
            short(self.pixel_height()),
            short(xmin),
            short(ymin),
            short(xmax),
            short(ymax),
            crs_name(self.crs())
        )
    }
}

/// A coordinate with at most nine decimals and no trailing zeros, so that sums such as
/// 106.4 + 320 × 0.01 print as `109.6`, not `109.60000000000001`.
fn short(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_rounds_away_float_noise() {
        let g = Grid::geographic(106.4, 35.6, 0.01, 320, 320).unwrap();
        let text = g.to_string();
        assert!(
            text.contains("pixel 0.01×0.01, bounds [106.4, 32.4, 109.6, 35.6]"),
            "{text}"
        );
        assert_eq!(short(-0.0000000001), "0");
        assert_eq!(short(-2.5), "-2.5");
    }

    fn g() -> Grid {
        Grid::geographic(10.0, 50.0, 0.1, 20, 30).unwrap()
    }

    #[test]
    fn rotated_transform_is_rejected() {
        let e = GeoTransform::from_gdal([0.0, 1.0, 0.1, 0.0, 0.0, -1.0]).unwrap_err();
        assert!(matches!(e, Error::RotatedTransform { .. }), "{e}");
        assert!(GeoTransform::new(0.0, 0.0, 1.0, 1.0).is_err());
    }

    #[test]
    fn pixel_world_round_trip() {
        let grid = g();
        let (x, y) = grid.pixel_center(3, 4);
        assert!((x - 10.35).abs() < 1e-12 && (y - 49.55).abs() < 1e-12);
        let (c, r) = grid.world_to_pixel(x, y);
        assert!((c - 3.5).abs() < 1e-9 && (r - 4.5).abs() < 1e-9);
        assert_eq!(grid.pixel_at(x, y), Some((3, 4)));
        assert_eq!(grid.pixel_at(9.0, 49.0), None);
    }

    #[test]
    fn coarsen_refine_nest() {
        let fine = g().refine(10).unwrap();
        assert_eq!(fine.shape(), (300, 200));
        assert_eq!(fine.refinement_of(&g()).unwrap(), 10);
        assert!(fine.is_aligned_with(&g()));
        let back = fine.coarsen(10).unwrap();
        back.check_same(&g()).unwrap();
        assert!(g().coarsen(7).is_err());
    }

    #[test]
    fn misalignment_is_explained() {
        let other = Grid::geographic(10.05, 50.0, 0.1, 20, 30).unwrap();
        let e = g().refine(3).unwrap().check_aligned(&other);
        assert!(e.is_err());
        let msg = g().check_aligned(&other).unwrap_err().to_string();
        assert!(msg.contains("origins"), "{msg}");
        let utm = g().with_crs(Some(Crs::Epsg(32633)));
        assert!(matches!(
            g().check_aligned(&utm),
            Err(Error::CrsMismatch { .. })
        ));
    }

    #[test]
    fn window_bounds_checked() {
        let w = g().window(2, 3, 5, 5).unwrap();
        assert!((w.transform().origin_x - 10.2).abs() < 1e-12);
        assert!((w.transform().origin_y - 49.7).abs() < 1e-12);
        assert!(g().window(18, 0, 5, 5).is_err());
        assert!(g().window(0, 0, 0, 5).is_err());
    }

    #[test]
    fn crs_kinds() {
        assert_eq!(Crs::WGS84.is_geographic(), Some(true));
        assert_eq!(Crs::Epsg(31985).is_geographic(), Some(false));
        assert_eq!(Crs::modis_sinusoidal().is_geographic(), Some(false));
        assert_eq!(
            Crs::Wkt("GEOGCS[\"WGS 84\"]".into()).is_geographic(),
            Some(true)
        );
    }
}
