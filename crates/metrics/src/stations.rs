//! Station (point) validation.

use std::collections::BTreeMap;
use std::path::Path;

use amun_raster::Raster;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::{Accumulator, Metrics};
use crate::score::GroupMetrics;

/// One station observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Station {
    /// Station identifier.
    pub id: String,
    /// Longitude in degrees east.
    pub lon: f64,
    /// Latitude in degrees north.
    pub lat: f64,
    /// Observed value; `None` when the field is empty or `NaN`.
    pub value: Option<f64>,
    /// Time stamp as written in the file (ISO 8601 such as `2020-07` or `2020-07-15T12:00`).
    pub time: Option<String>,
}

impl Station {
    /// The month (1–12) of an ISO 8601 time stamp (`YYYY-MM…`), if there is one.
    pub fn month(&self) -> Option<u8> {
        month_of(self.time.as_deref()?)
    }
}

/// The month of an ISO 8601 time stamp `YYYY-MM…`.
fn month_of(t: &str) -> Option<u8> {
    let m: u8 = t.get(5..7)?.parse().ok()?;
    (t.as_bytes().get(4) == Some(&b'-') && (1..=12).contains(&m)).then_some(m)
}

/// Reads stations from a CSV file with a header `id,lon,lat,value[,time]` (column order free,
/// names case-insensitive; `longitude`/`latitude` are accepted too). An empty or `NaN` value
/// is kept as `None` and counted as skipped when scoring.
///
/// # Errors
/// [`Error::Io`]/[`Error::Csv`] if the file cannot be read, [`Error::MissingColumn`] if a
/// required column is absent, [`Error::BadField`] for an unparsable coordinate or value.
pub fn read_stations(path: impl AsRef<Path>) -> Result<Vec<Station>> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let csv_err = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(file);
    let header: Vec<String> = rdr
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let find = |names: &[&str], column: &'static str| {
        header
            .iter()
            .position(|h| names.contains(&h.as_str()))
            .ok_or_else(|| Error::MissingColumn {
                path: path.to_path_buf(),
                column,
                header: header.join(","),
            })
    };
    let id = find(&["id"], "id")?;
    let lon = find(&["lon", "longitude"], "lon")?;
    let lat = find(&["lat", "latitude"], "lat")?;
    let value = find(&["value"], "value")?;
    let time = find(&["time"], "time").ok();
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(csv_err)?;
        let line = rec.position().map_or(0, |p| p.line());
        let field = |i: usize| rec.get(i).unwrap_or("");
        let number = |i: usize, column: &'static str| {
            field(i).parse::<f64>().map_err(|_| Error::BadField {
                path: path.to_path_buf(),
                line,
                column,
                value: field(i).to_string(),
            })
        };
        let v = match field(value) {
            "" => None,
            _ => Some(number(value, "value")?).filter(|v| !v.is_nan()),
        };
        out.push(Station {
            id: field(id).to_string(),
            lon: number(lon, "lon")?,
            lat: number(lat, "lat")?,
            value: v,
            time: time
                .map(field)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
        });
    }
    Ok(out)
}

/// How a raster is sampled at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sampling {
    /// The pixel containing the point.
    Nearest,
    /// Bilinear interpolation between the four nearest pixel centres; neighbours outside the
    /// grid or missing are left out and the weights renormalised (as `amun_raster::resample`).
    Bilinear,
}

/// Why a station was not scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SkipReason {
    /// The point lies outside the raster's extent.
    OutsideGrid,
    /// The pixel containing the point is missing (nodata).
    NoData,
    /// The station has no observed value.
    MissingValue,
}

/// How many stations were skipped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipCounts {
    /// Outside the grid.
    pub outside_grid: usize,
    /// On a nodata pixel.
    pub nodata: usize,
    /// Without an observed value.
    pub missing_value: usize,
}

/// A scored station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationResidual {
    /// Station identifier.
    pub id: String,
    /// Longitude.
    pub lon: f64,
    /// Latitude.
    pub lat: f64,
    /// Time stamp, if any.
    pub time: Option<String>,
    /// Observed value.
    pub observed: f64,
    /// Raster value at the station.
    pub predicted: f64,
    /// `predicted − observed`.
    pub residual: f64,
}

/// A skipped station and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedStation {
    /// Station identifier.
    pub id: String,
    /// The reason.
    pub reason: SkipReason,
}

/// The result of [`score_stations`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationReport {
    /// The sampling used.
    pub sampling: Sampling,
    /// Scored stations in input order.
    pub residuals: Vec<StationResidual>,
    /// Skipped stations in input order.
    pub skipped: Vec<SkippedStation>,
    /// Skip counts by reason.
    pub skip_counts: SkipCounts,
    /// Summary metrics over the scored stations (`None` if none was scored; SSIM is `None`).
    pub metrics: Option<Metrics>,
}

impl StationReport {
    /// Metrics per month (1–12) of the stations' time stamps; stations without a parseable
    /// month are left out.
    pub fn by_month(&self) -> Vec<GroupMetrics<u8>> {
        let mut groups: BTreeMap<u8, Accumulator> = BTreeMap::new();
        for r in &self.residuals {
            if let Some(m) = r.time.as_deref().and_then(month_of) {
                groups.entry(m).or_default().push(r.predicted, r.observed);
            }
        }
        groups
            .into_iter()
            .filter_map(|(key, acc)| {
                acc.finish(None).map(|metrics| GroupMetrics {
                    key,
                    members: acc.count(),
                    metrics,
                })
            })
            .collect()
    }
}

/// The raster's value at a world point, or why there is none.
pub fn sample_point(
    raster: &Raster,
    x: f64,
    y: f64,
    sampling: Sampling,
) -> std::result::Result<f64, SkipReason> {
    let grid = raster.grid();
    let (col, row) = grid.pixel_at(x, y).ok_or(SkipReason::OutsideGrid)?;
    let here = raster.get(row, col).ok_or(SkipReason::NoData)?;
    match sampling {
        Sampling::Nearest => Ok(f64::from(here)),
        Sampling::Bilinear => {
            let (fc, fr) = grid.world_to_pixel(x, y);
            let (sx, sy) = (fc - 0.5, fr - 0.5);
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (mut acc, mut wsum) = (0.0f64, 0.0f64);
            for (dy, wy) in [(0.0, 1.0 - fy), (1.0, fy)] {
                for (dx, wx) in [(0.0, 1.0 - fx), (1.0, fx)] {
                    let (xi, yi) = (x0 + dx, y0 + dy);
                    if xi < 0.0 || yi < 0.0 {
                        continue;
                    }
                    if let Some(v) = raster.get(yi as usize, xi as usize) {
                        acc += wx * wy * f64::from(v);
                        wsum += wx * wy;
                    }
                }
            }
            // The containing pixel is valid, so at least one weight is positive unless the
            // point sits exactly on a far edge; fall back to the pixel itself then.
            Ok(if wsum > 0.0 {
                acc / wsum
            } else {
                f64::from(here)
            })
        }
    }
}

/// Samples `raster` at each station and scores it against the observations: per-station
/// residuals, skipped stations with the reason, and summary metrics.
///
/// Station coordinates are longitude/latitude; the raster must be in a geographic CRS (or
/// have no CRS, in which case its coordinates are taken to be longitude/latitude).
///
/// # Errors
/// [`Error::ProjectedRaster`] if the raster's CRS is known to be projected.
pub fn score_stations(
    raster: &Raster,
    stations: &[Station],
    sampling: Sampling,
) -> Result<StationReport> {
    if let Some(crs) = raster.grid().crs() {
        if crs.is_geographic() == Some(false) {
            return Err(Error::ProjectedRaster {
                crs: crs.to_string(),
            });
        }
    }
    let mut residuals = Vec::new();
    let mut skipped = Vec::new();
    let mut counts = SkipCounts::default();
    let mut acc = Accumulator::default();
    for s in stations {
        let outcome = match s.value {
            None => Err(SkipReason::MissingValue),
            Some(obs) => sample_point(raster, s.lon, s.lat, sampling).map(|p| (obs, p)),
        };
        match outcome {
            Ok((observed, predicted)) => {
                acc.push(predicted, observed);
                residuals.push(StationResidual {
                    id: s.id.clone(),
                    lon: s.lon,
                    lat: s.lat,
                    time: s.time.clone(),
                    observed,
                    predicted,
                    residual: predicted - observed,
                });
            }
            Err(reason) => {
                match reason {
                    SkipReason::OutsideGrid => counts.outside_grid += 1,
                    SkipReason::NoData => counts.nodata += 1,
                    SkipReason::MissingValue => counts.missing_value += 1,
                }
                skipped.push(SkippedStation {
                    id: s.id.clone(),
                    reason,
                });
            }
        }
    }
    Ok(StationReport {
        sampling,
        residuals,
        skipped,
        skip_counts: counts,
        metrics: acc.finish(None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::{Crs, Grid};
    use std::io::Write;

    fn raster() -> Raster {
        // 4×4 degrees from (10°E, 50°N), value = 10·row + col.
        let g = Grid::geographic(10.0, 50.0, 1.0, 4, 4).unwrap();
        let mut r = Raster::from_fn(g, |(i, j)| (10 * i + j) as f32);
        r.data_mut()[(3, 3)] = f32::NAN;
        r
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    #[allow(clippy::float_cmp)] // small integers and class codes are exact in f32/f64
    fn read_and_score_with_skip_reasons() {
        let f = write(
            "ID, Lat, Lon, Value, Time\n\
             a, 49.5, 10.5, 1.0, 2020-07-01\n\
             b, 48.25, 11.75, 20.0, 2020-01\n\
             out, 40.0, 10.5, 1.0,\n\
             nd, 46.5, 13.5, 5.0,\n\
             empty, 49.5, 10.5, ,\n",
        );
        let st = read_stations(f.path()).unwrap();
        assert_eq!(st.len(), 5);
        assert_eq!(
            (st[0].month(), st[1].month(), st[2].time.as_deref()),
            (Some(7), Some(1), None)
        );
        let rep = score_stations(&raster(), &st, Sampling::Nearest).unwrap();
        assert_eq!(
            rep.skip_counts,
            SkipCounts {
                outside_grid: 1,
                nodata: 1,
                missing_value: 1
            }
        );
        // a: pixel (row 0, col 0) = 0 vs 1 -> residual -1. b: (row 1, col 1) = 11 vs 20 -> -9.
        assert_eq!(rep.residuals[0].residual, -1.0);
        assert_eq!(rep.residuals[1].predicted, 11.0);
        let m = rep.metrics.unwrap();
        assert!((m.rmse - ((1.0 + 81.0) / 2.0f64).sqrt()).abs() < 1e-12);
        assert_eq!(rep.by_month().len(), 2);

        // Bilinear at b: pixel coordinates (1.75, 1.75) -> centres offset (1.25, 1.25),
        // the plane 10·y + x gives 10·1.25 + 1.25 = 13.75.
        let rep = score_stations(&raster(), &st, Sampling::Bilinear).unwrap();
        assert!((rep.residuals[1].predicted - 13.75).abs() < 1e-9);
    }

    #[test]
    fn bad_files_are_explained() {
        let f = write("id,lon,value\nx,1,2\n");
        let e = read_stations(f.path()).unwrap_err();
        assert!(
            matches!(e, Error::MissingColumn { column: "lat", .. }),
            "{e}"
        );
        let f = write("id,lon,lat,value\nx,1,north,2\n");
        let e = read_stations(f.path()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::BadField {
                    line: 2,
                    column: "lat",
                    ..
                }
            ),
            "{e}"
        );
        assert!(matches!(
            read_stations("/nonexistent.csv"),
            Err(Error::Io { .. })
        ));
        let utm = raster();
        let g = utm.grid().clone().with_crs(Some(Crs::Epsg(32633)));
        let utm = Raster::new(g, utm.into_data()).unwrap();
        assert!(matches!(
            score_stations(&utm, &[], Sampling::Nearest),
            Err(Error::ProjectedRaster { .. })
        ));
    }
}
