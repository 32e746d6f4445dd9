//! NetCDF variables as one raster per time step (feature `netcdf`, through the system
//! libnetcdf): ERA5-Land as the Copernicus Climate Data Store ships it.
//!
//! What is understood, as CF conventions and the CDS write it:
//! - a variable over `(time, latitude, longitude)` (also `valid_time`, `lat`, `lon`; other
//!   dimensions only with one value, such as an ensemble `number`);
//! - coordinates at pixel centres, regularly spaced; latitudes descending (ERA5's order, kept)
//!   or ascending (rows flipped to north-up); longitudes in −180…180 or 0…360 (a grid wholly
//!   east of 180° is moved to −180…0, a global one is rolled to start at −180°, one that
//!   straddles 180° keeps 0…360);
//! - float coordinates stored as `float` are read as the shortest decimal that round-trips
//!   (`100.1f` is 100.1, not 100.09999847), so that 0.1° grids nest with 0.01° covariates;
//! - `scale_factor`, `add_offset` (packed shorts of the older CDS files), `_FillValue` and
//!   `missing_value`, else the netCDF default fill value of the type, as missing;
//! - time as `<seconds|minutes|hours|days> since <date-time>` in the standard, gregorian or
//!   proleptic_gregorian calendar (identical after 1582), taken as UTC.

use std::path::{Path, PathBuf};

use jiff::civil::DateTime;
use jiff::SignedDuration;
use ndarray::Array2;

use crate::error::{Error, Result};
use crate::grid::{Crs, GeoTransform, Grid};
use crate::raster::Raster;

/// A variable of a NetCDF file, read one time step at a time.
#[derive(Debug)]
pub struct NetcdfVariable {
    path: PathBuf,
    file: ::netcdf::File,
    variable: String,
    units: Option<String>,
    grid: Grid,
    times: Vec<DateTime>,
    /// Per dimension of the variable: which axis it is.
    axes: Vec<Axis>,
    /// Rows are stored south to north (flip them).
    flip_rows: bool,
    /// The first output column is stored column `roll` (0 when not rolled).
    roll: usize,
    scale: f64,
    offset: f64,
    /// Raw values that mean "missing".
    missing: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    Time,
    Lat,
    Lon,
    /// Any other dimension, of length 1.
    Other,
}

fn layout_err(path: &Path, variable: &str, detail: impl Into<String>) -> Error {
    Error::NetcdfLayout {
        path: path.to_path_buf(),
        variable: variable.to_string(),
        detail: detail.into(),
    }
}

fn nc_err(path: &Path) -> impl Fn(::netcdf::Error) -> Error + '_ {
    move |source| Error::Netcdf {
        path: path.to_path_buf(),
        source,
    }
}

const TIME_NAMES: [&str; 2] = ["time", "valid_time"];
const LAT_NAMES: [&str; 2] = ["latitude", "lat"];
const LON_NAMES: [&str; 2] = ["longitude", "lon"];

impl NetcdfVariable {
    /// Opens `variable` of the NetCDF file at `path` and reads its coordinates and times.
    ///
    /// # Errors
    /// [`Error::Netcdf`] if libnetcdf cannot read the file; [`Error::NetcdfLayout`] naming the
    /// variable when it is missing (listing those present), lacks a time, latitude or
    /// longitude dimension, has another dimension with more than one value, irregular
    /// coordinates, or time units or a calendar not understood.
    pub fn open(path: impl AsRef<Path>, variable: &str) -> Result<Self> {
        let path = path.as_ref();
        let file = ::netcdf::open(path).map_err(nc_err(path))?;
        let bad = |d: String| layout_err(path, variable, d);
        let var = file.variable(variable).ok_or_else(|| {
            let names: Vec<String> = file.variables().map(|v| v.name()).collect();
            bad(format!(
                "no such variable (the file has: {})",
                names.join(", ")
            ))
        })?;
        let dims: Vec<(String, usize)> = var
            .dimensions()
            .iter()
            .map(|d| (d.name(), d.len()))
            .collect();
        let axes: Vec<Axis> = dims
            .iter()
            .map(|(n, len)| {
                let n = n.to_ascii_lowercase();
                if TIME_NAMES.contains(&n.as_str()) {
                    Ok(Axis::Time)
                } else if LAT_NAMES.contains(&n.as_str()) {
                    Ok(Axis::Lat)
                } else if LON_NAMES.contains(&n.as_str()) {
                    Ok(Axis::Lon)
                } else if *len == 1 {
                    Ok(Axis::Other)
                } else {
                    Err(bad(format!(
                        "dimension `{n}` has {len} values; only time, latitude and longitude may have more than one (select one {n}, e.g. with cdo or xarray, first)"
                    )))
                }
            })
            .collect::<Result<_>>()?;
        let find = |a: Axis, what: &str| {
            axes.iter().position(|&x| x == a).ok_or_else(|| {
                bad(format!(
                    "no {what} dimension (dimensions: {})",
                    dims.iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        };
        let (t_ax, lat_ax, lon_ax) = (
            find(Axis::Time, "time (time, valid_time)")?,
            find(Axis::Lat, "latitude (latitude, lat)")?,
            find(Axis::Lon, "longitude (longitude, lon)")?,
        );
        if lat_ax > lon_ax {
            return Err(bad(
                "longitude varies slower than latitude (dimensions (…, longitude, latitude)); transpose the file first".into(),
            ));
        }
        let coords = |ax: usize| coordinate(&file, path, &dims[ax].0, dims[ax].1);
        let lats = coords(lat_ax)?;
        let mut lons = coords(lon_ax)?;
        let (ny, nx) = (lats.len(), lons.len());
        let dlat = spacing(&lats).map_err(|d| bad(format!("latitude: {d}")))?;
        let mut dlon = spacing(&lons).map_err(|d| bad(format!("longitude: {d}")))?;
        if dlon < 0.0 {
            return Err(bad(
                "longitudes decrease; only increasing longitudes are read".into(),
            ));
        }
        // 0…360 longitudes: see the module documentation.
        let mut roll = 0;
        let west = lons[0] - dlon / 2.0;
        if west >= 180.0 - dlon / 2.0 {
            lons.iter_mut().for_each(|x| *x -= 360.0);
        } else if lons[nx - 1] > 180.0 && (nx as f64 * dlon - 360.0).abs() < dlon / 2.0 {
            roll = lons.iter().position(|&x| x >= 180.0).unwrap_or(0);
            lons.rotate_left(roll);
            lons[..nx - roll].iter_mut().for_each(|x| *x -= 360.0);
            dlon = spacing(&lons).map_err(|d| bad(format!("longitude after rolling: {d}")))?;
        }
        let flip_rows = dlat > 0.0;
        let north = if flip_rows { lats[ny - 1] } else { lats[0] };
        let transform = GeoTransform::new(
            round_sig(lons[0] - dlon / 2.0),
            round_sig(north + dlat.abs() / 2.0),
            round_sig(dlon),
            -round_sig(dlat.abs()),
        )?;
        let grid = Grid::new(nx, ny, transform, Some(Crs::WGS84))?;
        let times = read_times(&file, path, &dims[t_ax].0, dims[t_ax].1)
            .map_err(|d| bad(format!("time `{}`: {d}", dims[t_ax].0)))?;

        let num = |name: &str| -> Result<Option<Vec<f64>>> {
            match var.attribute_value(name) {
                None => Ok(None),
                Some(v) => Ok(numbers(v.map_err(nc_err(path))?)),
            }
        };
        let first =
            |name: &str| -> Result<Option<f64>> { Ok(num(name)?.and_then(|v| v.first().copied())) };
        let scale = first("scale_factor")?.unwrap_or(1.0);
        let offset = first("add_offset")?.unwrap_or(0.0);
        let mut missing = Vec::new();
        match num("_FillValue")? {
            Some(v) => missing.extend(v),
            None => missing.extend(default_fill(&var.vartype())),
        }
        missing.extend(num("missing_value")?.unwrap_or_default());
        let units = match var.attribute_value("units") {
            Some(Ok(::netcdf::AttributeValue::Str(s))) => Some(s),
            _ => None,
        };
        drop(var);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            variable: variable.to_string(),
            units,
            grid,
            times,
            axes,
            flip_rows,
            roll,
            scale,
            offset,
            missing,
        })
    }

    /// The grid (EPSG:4326), north-up.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The time of each step (UTC).
    pub fn times(&self) -> &[DateTime] {
        &self.times
    }

    /// Number of time steps.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether the variable has no time step.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The variable's name.
    pub fn variable(&self) -> &str {
        &self.variable
    }

    /// The variable's `units` attribute (ERA5 `skt`: `K`), if any.
    pub fn units(&self) -> Option<&str> {
        self.units.as_deref()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raster of time step `step` (0-based), unpacked (`raw · scale_factor + add_offset`),
    /// missing values as `NaN`.
    ///
    /// # Errors
    /// [`Error::BandOutOfRange`] (1-based) if `step` is past the last time; [`Error::Netcdf`]
    /// if libnetcdf cannot read the values.
    pub fn read(&self, step: usize) -> Result<Raster> {
        if step >= self.times.len() {
            return Err(Error::BandOutOfRange {
                path: self.path.clone(),
                band: step + 1,
                count: self.times.len(),
            });
        }
        let (ny, nx) = (self.grid.height(), self.grid.width());
        let (start, count): (Vec<usize>, Vec<usize>) = self
            .axes
            .iter()
            .map(|a| match a {
                Axis::Time => (step, 1),
                Axis::Lat => (0, ny),
                Axis::Lon => (0, nx),
                Axis::Other => (0, 1),
            })
            .unzip();
        let var = self
            .file
            .variable(&self.variable)
            .ok_or_else(|| layout_err(&self.path, &self.variable, "the variable disappeared"))?;
        let raw: Vec<f64> = var
            .get_values::<f64, _>((start, count))
            .map_err(nc_err(&self.path))?;
        if raw.len() != ny * nx {
            return Err(Error::Corrupt {
                path: self.path.clone(),
                what: "NetCDF time step",
                index: step,
                detail: format!("{} values read for {ny}×{nx} pixels", raw.len()),
            });
        }
        let data = Array2::from_shape_fn((ny, nx), |(r, c)| {
            let r = if self.flip_rows { ny - 1 - r } else { r };
            let c = (c + self.roll) % nx;
            let v = raw[r * nx + c];
            // Missing values are compared exactly: they are the stored values themselves.
            let missing = v.is_nan() || self.missing.contains(&v);
            if missing {
                f32::NAN
            } else {
                (v * self.scale + self.offset) as f32
            }
        });
        Raster::new(self.grid.clone(), data)
    }
}

/// The values of a 1-D coordinate variable named like its dimension. Values stored as `float`
/// become the shortest decimal that round-trips (see the module documentation).
fn coordinate(file: &::netcdf::File, path: &Path, name: &str, len: usize) -> Result<Vec<f64>> {
    let var = file
        .variable(name)
        .ok_or_else(|| layout_err(path, name, "no coordinate variable for this dimension"))?;
    let values: Vec<f64> = match var.vartype() {
        ::netcdf::types::NcVariableType::Float(::netcdf::types::FloatType::F32) => var
            .get_values::<f32, _>(..)
            .map_err(nc_err(path))?
            .into_iter()
            .map(|v| v.to_string().parse().unwrap_or(f64::from(v)))
            .collect(),
        _ => var.get_values::<f64, _>(..).map_err(nc_err(path))?,
    };
    if values.len() != len {
        return Err(layout_err(
            path,
            name,
            format!(
                "{} coordinate values for a dimension of {len}",
                values.len()
            ),
        ));
    }
    if len < 2 {
        return Err(layout_err(
            path,
            name,
            "at least two values are needed to know the pixel size",
        ));
    }
    Ok(values)
}

/// The spacing of regularly spaced values (signed), or what is irregular.
fn spacing(v: &[f64]) -> std::result::Result<f64, String> {
    let n = v.len();
    let d = (v[n - 1] - v[0]) / (n - 1) as f64;
    if d == 0.0 || !d.is_finite() {
        return Err(format!(
            "values from {} to {} have no spacing",
            v[0],
            v[n - 1]
        ));
    }
    for (i, w) in v.windows(2).enumerate() {
        let step = w[1] - w[0];
        if (step - d).abs() > 1e-6 * d.abs() + 1e-9 {
            return Err(format!(
                "irregular: values {} → {} ({} to {}) step {step}, the mean step is {d}",
                i,
                i + 1,
                w[0],
                w[1]
            ));
        }
    }
    Ok(d)
}

/// `v` rounded to 12 significant digits: removes the 1e-15 residue of differences of decimal
/// coordinates (0.10000000000000142 → 0.1).
fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    format!("{v:.11e}").parse().unwrap_or(v)
}

/// Numbers of an attribute value (`None` for strings).
fn numbers(v: ::netcdf::AttributeValue) -> Option<Vec<f64>> {
    use ::netcdf::AttributeValue as A;
    Some(match v {
        A::Uchar(x) => vec![f64::from(x)],
        A::Uchars(x) => x.into_iter().map(f64::from).collect(),
        A::Schar(x) => vec![f64::from(x)],
        A::Schars(x) => x.into_iter().map(f64::from).collect(),
        A::Ushort(x) => vec![f64::from(x)],
        A::Ushorts(x) => x.into_iter().map(f64::from).collect(),
        A::Short(x) => vec![f64::from(x)],
        A::Shorts(x) => x.into_iter().map(f64::from).collect(),
        A::Uint(x) => vec![f64::from(x)],
        A::Uints(x) => x.into_iter().map(f64::from).collect(),
        A::Int(x) => vec![f64::from(x)],
        A::Ints(x) => x.into_iter().map(f64::from).collect(),
        A::Ulonglong(x) => vec![x as f64],
        A::Ulonglongs(x) => x.into_iter().map(|x| x as f64).collect(),
        A::Longlong(x) => vec![x as f64],
        A::Longlongs(x) => x.into_iter().map(|x| x as f64).collect(),
        A::Float(x) => vec![f64::from(x)],
        A::Floats(x) => x.into_iter().map(f64::from).collect(),
        A::Double(x) => vec![x],
        A::Doubles(x) => x,
        A::Str(_) | A::Strs(_) => return None,
    })
}

/// The netCDF default fill value of a type (`NC_FILL_SHORT`, `NC_FILL_FLOAT`, … in netcdf.h),
/// which CF treats as missing when no `_FillValue` is given.
fn default_fill(t: &::netcdf::types::NcVariableType) -> Option<f64> {
    use ::netcdf::types::{FloatType as F, IntType as I, NcVariableType as T};
    Some(match t {
        T::Int(I::I8) => -127.0,
        T::Int(I::U8) => 255.0,
        T::Int(I::I16) => -32767.0,
        T::Int(I::U16) => 65535.0,
        T::Int(I::I32) => -2_147_483_647.0,
        T::Int(I::U32) => 4_294_967_295.0,
        T::Float(F::F32) => f64::from(9.969_21e36_f32),
        T::Float(F::F64) => 9.969_209_968_386_869e36,
        _ => return None,
    })
}

/// The times of the time coordinate: `<unit> since <date-time>` plus each value.
fn read_times(
    file: &::netcdf::File,
    path: &Path,
    name: &str,
    len: usize,
) -> std::result::Result<Vec<DateTime>, String> {
    let var = file
        .variable(name)
        .ok_or("no coordinate variable for this dimension")?;
    let text = |a: &str| match var.attribute_value(a) {
        Some(Ok(::netcdf::AttributeValue::Str(s))) => Some(s),
        _ => None,
    };
    let units =
        text("units").ok_or("no `units` attribute (expected e.g. `hours since 1900-01-01`)")?;
    if let Some(cal) = text("calendar") {
        let c = cal.to_ascii_lowercase();
        if !["standard", "gregorian", "proleptic_gregorian"].contains(&c.as_str()) {
            return Err(format!(
                "calendar `{cal}` is not read (only standard, gregorian, proleptic_gregorian)"
            ));
        }
    }
    let (unit, since) = units
        .split_once(" since ")
        .ok_or_else(|| format!("units `{units}` are not `<unit> since <date-time>`"))?;
    let seconds = match unit.trim().to_ascii_lowercase().as_str() {
        "seconds" | "second" | "secs" | "sec" | "s" => 1.0,
        "minutes" | "minute" | "mins" | "min" => 60.0,
        "hours" | "hour" | "hrs" | "hr" | "h" => 3600.0,
        "days" | "day" | "d" => 86400.0,
        other => {
            return Err(format!(
                "time unit `{other}` is not read (seconds, minutes, hours, days)"
            ))
        }
    };
    let epoch = parse_epoch(since.trim())
        .ok_or_else(|| format!("reference time `{since}` in `{units}` is not a date-time"))?;
    let values: Vec<f64> = var
        .get_values::<f64, _>(..)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if values.len() != len {
        return Err(format!("{} times for a dimension of {len}", values.len()));
    }
    values
        .iter()
        .map(|&v| {
            let secs = v * seconds;
            if !secs.is_finite() || secs.abs() > 1e13 {
                return Err(format!("time value {v} is out of range"));
            }
            // To the nearest second (hourly data has whole seconds anyway).
            epoch
                .checked_add(SignedDuration::from_secs(secs.round() as i64))
                .map_err(|e| format!("time value {v}: {e}"))
        })
        .collect()
}

/// `1900-01-01 00:00:00.0`, `1970-01-01`, `1970-01-01T00:00:00Z`, `1900-01-01 00:00:0.0 0:00`.
fn parse_epoch(s: &str) -> Option<DateTime> {
    // With an offset first: the civil parser would accept `…+08:00` and drop the offset.
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Some(jiff::tz::Offset::UTC.to_datetime(ts));
    }
    if let Ok(t) = s.parse::<DateTime>() {
        return Some(t);
    }
    let mut parts = s.split_whitespace();
    let date = parts.next()?;
    match parts.next() {
        Some(time) => {
            // `0:0:0` style times: pad each field to two digits.
            let fields: Vec<String> = time
                .split(':')
                .map(|f| match f.split_once('.') {
                    Some((w, frac)) => format!("{w:0>2}.{frac}"),
                    None => format!("{f:0>2}"),
                })
                .collect();
            format!("{date}T{}", fields.join(":"))
                .parse()
                .ok()
                .or_else(|| date.parse().ok())
        }
        None => date.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `fixtures/netcdf/` (made by its `make_fixtures.sh`: ncgen for the NetCDF
    /// files, `gdal_translate -unscale -ot Float32` for the `_gdal.tif` references, `ncdump -t`
    /// for the `_times.txt` references).
    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/netcdf")
            .join(name)
    }

    fn ncdump_times(name: &str) -> Vec<DateTime> {
        std::fs::read_to_string(fixture(name))
            .unwrap()
            .lines()
            .map(|l| l.trim().parse::<DateTime>().unwrap())
            .collect()
    }

    #[test]
    #[allow(clippy::float_cmp)] // exact: both sides compute f32(raw · scale + offset)
    fn packed_era5_matches_gdal() {
        let v = NetcdfVariable::open(fixture("era5_skt.nc"), "skt").unwrap();
        let gdal = crate::read(fixture("era5_skt_gdal.tif")).unwrap();
        assert_eq!(v.units(), Some("K"));
        assert_eq!((v.len(), gdal.len()), (4, 4));
        // Times: as libnetcdf's `ncdump -t` decodes them.
        assert_eq!(v.times(), ncdump_times("era5_skt_times.txt"));
        // Grid: GDAL 3.6 reports origin (99.95, 30.449999570846558) and pixel size
        // (0.1, −0.099999904632568) from the float32 coordinates; we read them as the decimals
        // they were written as, so the two agree to 1e-6°, and ours is the exact 0.1° grid.
        let (g, r) = (v.grid(), gdal.grid());
        assert_eq!(g.shape(), r.shape());
        let (a, b) = (g.transform().to_gdal(), r.transform().to_gdal());
        for k in 0..6 {
            assert!((a[k] - b[k]).abs() < 1e-6, "{a:?} vs {b:?}");
        }
        assert_eq!(a, [99.95, 0.1, 0.0, 30.45, 0.0, -0.1]);
        assert_eq!(g.crs(), Some(&Crs::WGS84));
        for (t, band) in gdal.bands().iter().enumerate() {
            let ours = v.read(t).unwrap();
            for ((rc, &x), &y) in ours.data().indexed_iter().zip(band.data().iter()) {
                if (t, rc) == (2, (0, 5)) {
                    // `missing_value` (−32766): missing for CF and for us; GDAL 3.6 honours
                    // only `_FillValue` and unpacks it to 290 − 32.766 = 257.234.
                    assert!(x.is_nan());
                    assert!((y - 257.234).abs() < 1e-3, "{y}");
                } else if (t, rc) == (1, (2, 3)) {
                    assert!(x.is_nan() && y.is_nan(), "_FillValue: {x} {y}");
                } else {
                    assert_eq!(x, y, "step {t} pixel {rc:?}");
                }
            }
        }
        // By hand: step 0, row 0, column 0 is −9000 · 0.001 + 290 = 281 K.
        assert!((v.read(0).unwrap().data()[[0, 0]] - 281.0).abs() < 1e-4);
        assert!(matches!(
            v.read(4),
            Err(Error::BandOutOfRange {
                band: 5,
                count: 4,
                ..
            })
        ));
    }

    #[test]
    #[allow(clippy::float_cmp)] // float32 values pass through unchanged on both sides
    fn global_grid_is_flipped_and_rolled() {
        let v = NetcdfVariable::open(fixture("era5_global.nc"), "skt").unwrap();
        let gdal = crate::read(fixture("era5_global_gdal.tif")).unwrap();
        assert_eq!((v.len(), gdal.len()), (2, 2));
        assert_eq!(v.times(), ncdump_times("era5_global_times.txt"));
        // GDAL flips the ascending latitudes too but keeps longitudes 0…315: origin
        // (−22.5, 90). We roll the columns so the grid starts at −180°: origin −202.5, and
        // our column c is GDAL's column (c + 4) mod 8.
        assert_eq!(
            gdal.grid().transform().to_gdal(),
            [-22.5, 45.0, 0.0, 90.0, 0.0, -45.0]
        );
        assert_eq!(
            v.grid().transform().to_gdal(),
            [-202.5, 45.0, 0.0, 90.0, 0.0, -45.0]
        );
        for (t, band) in gdal.bands().iter().enumerate() {
            let ours = v.read(t).unwrap();
            for ((r, c), &x) in ours.data().indexed_iter() {
                let y = band.data()[[r, (c + 4) % 8]];
                assert!(
                    x == y || (x.is_nan() && y.is_nan()),
                    "step {t} ({r}, {c}): {x} vs {y}"
                );
            }
        }
        // By hand: the NaN written at step 0, latitude index 3 (67.5°, the top row after the
        // flip), longitude 45° (rolled to column 5).
        let s0 = v.read(0).unwrap();
        assert!(s0.data()[[0, 5]].is_nan());
        assert_eq!(s0.valid_count(), 31);
        // Step 1, latitude −67.5° (bottom row), longitude 0° (column 4): 250 + 10 = 260.
        assert_eq!(v.read(1).unwrap().data()[[3, 4]], 260.0);
    }

    #[test]
    fn layouts_it_cannot_read_are_named() {
        let err = |file: &str, var: &str| {
            NetcdfVariable::open(fixture(file), var)
                .unwrap_err()
                .to_string()
        };
        let e = err("era5_skt.nc", "t2m");
        assert!(e.contains("variable `t2m`: no such variable"), "{e}");
        assert!(e.contains("skt"), "{e}");
        let e = err("bad_expver.nc", "skt");
        assert!(e.contains("dimension `expver` has 2 values"), "{e}");
        let e = err("bad_irregular.nc", "skt");
        assert!(e.contains("latitude: irregular"), "{e}");
        let e = err("bad_calendar.nc", "skt");
        assert!(e.contains("calendar `noleap`"), "{e}");
        let e = err("no_such_file.nc", "skt");
        assert!(e.contains("no_such_file.nc"), "{e}");
        // A GeoTIFF is not a NetCDF file.
        let tif = fixture("era5_skt_gdal.tif");
        let e = NetcdfVariable::open(&tif, "skt").unwrap_err();
        assert!(matches!(e, Error::Netcdf { .. }), "{e}");
    }

    #[test]
    fn epochs_as_cf_files_write_them() {
        let t = |s: &str| parse_epoch(s).map(|d| d.to_string());
        assert_eq!(
            t("1900-01-01 00:00:00.0").as_deref(),
            Some("1900-01-01T00:00:00")
        );
        assert_eq!(t("1970-01-01").as_deref(), Some("1970-01-01T00:00:00"));
        assert_eq!(
            t("1970-01-01T00:00:00Z").as_deref(),
            Some("1970-01-01T00:00:00")
        );
        assert_eq!(t("1900-1-1 0:0:0").as_deref(), None);
        assert_eq!(
            t("1900-01-01 0:0:0").as_deref(),
            Some("1900-01-01T00:00:00")
        );
        assert_eq!(
            t("1970-01-01T08:00:00+08:00").as_deref(),
            Some("1970-01-01T00:00:00")
        );
        assert_eq!(t("yesterday"), None);
    }

    #[test]
    #[allow(clippy::float_cmp)] // the rounding must give these exact decimals
    fn spacing_and_rounding() {
        assert!((spacing(&[30.1, 30.0, 29.9]).unwrap() + 0.1).abs() < 1e-12);
        assert!(spacing(&[0.0, 0.1, 0.3]).unwrap_err().contains("irregular"));
        assert!(spacing(&[1.0, 1.0]).unwrap_err().contains("no spacing"));
        assert_eq!(round_sig(0.100_000_000_000_001_42), 0.1);
        assert_eq!(round_sig(99.950_000_000_000_01), 99.95);
    }
}
