//! Time series of scenes: a coarse LST with one band per time step (a multi-band GeoTIFF or,
//! with the `netcdf` feature, a NetCDF variable such as ERA5-Land `skt`), covariates matched
//! to each step by date (e.g. monthly NDVI) or the same for every step (e.g. a DEM), written as
//! one scene folder per step under one folder with an index, [`INDEX`] (`series.json`).
//!
//! A series folder:
//! ```text
//! series/
//!   series.json           the index: every step's time, scene folder, LST band, covariate files
//!   2020-07-01T1300/      a scene folder, as `amun prepare` writes one (scene.json last)
//!   2020-07-01T1400/
//!   …
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use amun_raster::{inspect, read_band, Grid, Raster, Stack};
use jiff::civil::{Date, DateTime};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::prepare::SceneInputs;
use crate::progress::Progress;
use crate::scene::{layout, Scene};
use crate::shard::Shard;

/// The index file of a series folder.
pub const INDEX: &str = "series.json";

/// The `format` of the index files this version writes and reads.
pub const INDEX_FORMAT: &str = "amun-series/1";

/// Parses a time step as users and files write it: `2020-07-01T13:00:00`, `2020-07-01 13:00`,
/// `2020-07-01T13`, `20200701T1300`, `2020-07-01` (midnight), or with an offset
/// (`2020-07-01T13:00:00Z`, `…+08:00`), which is converted to UTC. Times without an offset are
/// taken as UTC, as ERA5's are. `None` if `text` is none of these.
pub fn parse_time(text: &str) -> Option<DateTime> {
    let t = text.trim();
    // With an offset first: the civil parser would accept `…+08:00` and drop the offset.
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Some(jiff::tz::Offset::UTC.to_datetime(ts));
    }
    t.parse::<DateTime>().ok()
}

/// `2020-07-01T13:00:00`: how the index and messages show a time step.
pub fn format_time(t: DateTime) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

/// The scene folder of a time step, `2020-07-01T1300` (no `:`, which some file systems refuse).
pub fn scene_folder(t: DateTime) -> String {
    t.strftime("%Y-%m-%dT%H%M").to_string()
}

/// How finely a covariate series is dated: a step matches the file of its year, month or day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// One file per year (e.g. annual land cover).
    Year,
    /// One file per month (e.g. monthly NDVI, MOD13A3).
    Month,
    /// One file per day.
    Day,
}

impl Period {
    /// `year`, `month` or `day`.
    pub fn name(self) -> &'static str {
        match self {
            Period::Year => "year",
            Period::Month => "month",
            Period::Day => "day",
        }
    }

    /// Parses `year`, `month` or `day` (also `yearly`, `monthly`, `daily`).
    ///
    /// # Errors
    /// [`Error::Series`] for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "year" | "yearly" | "annual" => Ok(Period::Year),
            "month" | "monthly" => Ok(Period::Month),
            "day" | "daily" => Ok(Period::Day),
            other => Err(Error::Series {
                what: format!("period `{other}`"),
                detail: "expected year, month or day".into(),
            }),
        }
    }

    /// The period holding `date`, shown as `2020`, `2020-07` or `2020-07-01`.
    pub fn label(self, date: Date) -> String {
        match self {
            Period::Year => format!("{:04}", date.year()),
            Period::Month => format!("{:04}-{:02}", date.year(), date.month()),
            Period::Day => format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day()),
        }
    }
}

/// A date read from a file name, with how much of it the name gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDate {
    /// The date (first of the month or year when the name gave less).
    pub date: Date,
    /// The finest part the name gave: [`Period::Day`] for `2020-07-01`, [`Period::Month`] for
    /// `2020-07`, [`Period::Year`] for `2020`.
    pub precision: Period,
}

/// The date in a file name, by the first of these forms found (in this order of preference,
/// then leftmost):
/// 1. `2020-07-01`, `2020_07_01`, `2020.07.01` (one separator throughout);
/// 2. `20200701` (eight digits on their own);
/// 3. `A2020183` (MODIS: `A`, year, day of the year);
/// 4. `2020-07`, `2020_07`, `2020.07`;
/// 5. `202007` (six digits on their own);
/// 6. `2020` (four digits on their own).
///
/// Years outside 1800–2300 and impossible dates are not dates. `None` when nothing matches.
pub fn date_in_name(name: &str) -> Option<FileDate> {
    let b = name.as_bytes();
    // Maximal runs of ASCII digits: (start, end).
    let mut runs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let s = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((s, i));
        } else {
            i += 1;
        }
    }
    let num = |(s, e): (usize, usize)| -> i32 {
        // At most 8 ASCII digits here: always fits.
        name[s..e].parse().unwrap_or(-1)
    };
    let len = |r: (usize, usize)| r.1 - r.0;
    let year_ok = |y: i32| (1800..=2300).contains(&y);
    let ymd = |y: i32, m: i32, d: i32| -> Option<Date> {
        if !year_ok(y) {
            return None;
        }
        Date::new(y as i16, i8::try_from(m).ok()?, i8::try_from(d).ok()?).ok()
    };
    let day = |d: Date| FileDate {
        date: d,
        precision: Period::Day,
    };
    let month = |d: Date| FileDate {
        date: d,
        precision: Period::Month,
    };
    // The separator between two runs, if they are one byte apart and it is one of - _ .
    let sep = |a: (usize, usize), c: (usize, usize)| -> Option<u8> {
        (c.0 == a.1 + 1 && matches!(b[a.1], b'-' | b'_' | b'.')).then(|| b[a.1])
    };
    type Form<'a> = Box<dyn Fn(usize) -> Option<FileDate> + 'a>;
    let forms: [Form; 6] = [
        Box::new(|k| {
            let (y, m, d) = (runs[k], *runs.get(k + 1)?, *runs.get(k + 2)?);
            let s = sep(y, m)?;
            (len(y) == 4 && len(m) == 2 && len(d) == 2 && sep(m, d) == Some(s))
                .then(|| ymd(num(y), num(m), num(d)).map(day))?
        }),
        Box::new(|k| {
            let r = runs[k];
            (len(r) == 8).then(|| {
                let v = num(r);
                ymd(v / 10000, v / 100 % 100, v % 100).map(day)
            })?
        }),
        Box::new(|k| {
            let r = runs[k];
            let after_a =
                r.0 >= 1 && b[r.0 - 1] == b'A' && (r.0 == 1 || !b[r.0 - 2].is_ascii_alphanumeric());
            (len(r) == 7 && after_a).then(|| {
                let v = num(r);
                let (y, doy) = (v / 1000, v % 1000);
                let jan1 = ymd(y, 1, 1)?;
                let d = jan1.checked_add(jiff::Span::new().days(doy - 1)).ok()?;
                (doy >= 1 && d.year() == jan1.year()).then(|| day(d))
            })?
        }),
        Box::new(|k| {
            let (y, m) = (runs[k], *runs.get(k + 1)?);
            sep(y, m)?;
            (len(y) == 4 && len(m) == 2).then(|| ymd(num(y), num(m), 1).map(month))?
        }),
        Box::new(|k| {
            let r = runs[k];
            (len(r) == 6).then(|| {
                let v = num(r);
                ymd(v / 100, v % 100, 1).map(month)
            })?
        }),
        Box::new(|k| {
            let r = runs[k];
            (len(r) == 4).then(|| {
                ymd(num(r), 1, 1).map(|date| FileDate {
                    date,
                    precision: Period::Year,
                })
            })?
        }),
    ];
    forms.iter().find_map(|form| (0..runs.len()).find_map(form))
}

/// A covariate that changes over time: one file per year, month or day, each dated by its
/// name (see [`date_in_name`]) or, failing that, by the description of its band 1.
#[derive(Debug, Clone, PartialEq)]
pub struct CovariateSeries {
    name: String,
    period: Period,
    sources: Vec<PathBuf>,
    files: BTreeMap<String, PathBuf>,
}

impl CovariateSeries {
    /// The series `name` (a covariate such as `ndvi`, `reflectance`, `landcover`, a raw band
    /// `red`, `nir`, …, or any other name for an extra covariate) from `paths`: GeoTIFF files,
    /// or folders whose `.tif`/`.tiff` files are all taken.
    ///
    /// # Errors
    /// [`Error::Io`] for an unreadable folder; [`Error::Series`] naming the file when a file
    /// has no date, a date coarser than `period` (a file dated only `2020` in a monthly
    /// series), or the same period as another file, or when no file is found.
    pub fn new(name: impl Into<String>, period: Period, paths: &[PathBuf]) -> Result<Self> {
        let name = name.into();
        let mut list = Vec::new();
        for p in paths {
            if p.is_dir() {
                let entries = std::fs::read_dir(p).map_err(|source| Error::Io {
                    path: p.clone(),
                    source,
                })?;
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        f.is_file()
                            && f.extension().is_some_and(|x| {
                                x.eq_ignore_ascii_case("tif") || x.eq_ignore_ascii_case("tiff")
                            })
                    })
                    .collect();
                found.sort();
                list.extend(found);
            } else {
                list.push(p.clone());
            }
        }
        let what = || format!("covariate series `{name}`");
        if list.is_empty() {
            return Err(Error::Series {
                what: what(),
                detail: format!(
                    "no GeoTIFF in {}",
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        for f in list {
            let dated = file_date(&f)?;
            let Some(fd) = dated else {
                return Err(Error::Series {
                    what: what(),
                    detail: format!(
                        "{}: no date in the file name (e.g. ndvi_2020-07.tif, 2020-07-01, A2020183) or in its band description",
                        f.display()
                    ),
                });
            };
            if fd.precision < period {
                return Err(Error::Series {
                    what: what(),
                    detail: format!(
                        "{}: dated {} only, but the series has one file per {}",
                        f.display(),
                        fd.precision.label(fd.date),
                        period.name()
                    ),
                });
            }
            let key = period.label(fd.date);
            if let Some(other) = files.get(&key) {
                return Err(Error::Series {
                    what: what(),
                    detail: format!(
                        "{} and {} are both dated {key}",
                        other.display(),
                        f.display()
                    ),
                });
            }
            files.insert(key, f);
        }
        Ok(Self {
            name,
            period,
            sources: paths.to_vec(),
            files,
        })
    }

    /// The covariate's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One file per year, month or day.
    pub fn period(&self) -> Period {
        self.period
    }

    /// The files by period label (`2020-07` → file), in date order.
    pub fn files(&self) -> &BTreeMap<String, PathBuf> {
        &self.files
    }

    /// The file for the step at `time`.
    ///
    /// # Errors
    /// [`Error::MissingDate`] naming the series, the period the step needs and the files'
    /// first and last dates.
    pub fn file_for(&self, time: DateTime) -> Result<&Path> {
        let key = self.period.label(time.date());
        self.files
            .get(&key)
            .map(PathBuf::as_path)
            .ok_or_else(|| Error::MissingDate {
                covariate: self.name.clone(),
                date: key,
                step: format_time(time),
                files: format!(
                    "{} in {}",
                    match (self.files.keys().next(), self.files.keys().next_back()) {
                        (Some(a), Some(b)) if a == b => format!("only {a}"),
                        (Some(a), Some(b)) => format!("{} files from {a} to {b}", self.files.len()),
                        _ => "none".into(),
                    },
                    self.sources
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

/// The date of a covariate file: from its name, else from its band 1 description.
fn file_date(path: &Path) -> Result<Option<FileDate>> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(d) = date_in_name(&stem) {
        return Ok(Some(d));
    }
    let info = inspect(path)?;
    Ok(info
        .bands
        .first()
        .and_then(|b| b.description.as_deref())
        .and_then(|d| {
            parse_time(d)
                .map(|t| FileDate {
                    date: t.date(),
                    precision: Period::Day,
                })
                .or_else(|| date_in_name(d))
        }))
}

/// Where the coarse LST of each step comes from.
#[derive(Debug)]
enum Source {
    /// Band `step + 1` of a GeoTIFF.
    GeoTiff(PathBuf),
    /// Time index `step` of a NetCDF variable.
    #[cfg(feature = "netcdf")]
    Netcdf(Box<amun_raster::NetcdfVariable>),
}

/// A coarse LST with one raster per time step.
#[derive(Debug)]
pub struct LstSeries {
    source: Source,
    path: PathBuf,
    variable: Option<String>,
    grid: Grid,
    times: Vec<DateTime>,
}

impl LstSeries {
    /// A multi-band GeoTIFF, one band per time step. The times are `times` when given (one per
    /// band), else the band descriptions (see [`parse_time`]), as `gdal_translate` and
    /// `amun` write them.
    ///
    /// Each step reads one band. In a pixel-interleaved file (GDAL's default for multi-band
    /// GeoTIFFs) that decodes every band's chunks, so a long series should be band-interleaved
    /// (`gdal_translate -co INTERLEAVE=BAND`) or read from NetCDF.
    ///
    /// # Errors
    /// Raster errors reading the file; [`Error::Series`] naming the file when `times` does not
    /// have one time per band, a band description is not a time (saying to give the times),
    /// or two steps have the same time.
    pub fn geotiff(path: impl Into<PathBuf>, times: Option<Vec<DateTime>>) -> Result<Self> {
        let path = path.into();
        let info = inspect(&path)?;
        let grid = info.grid().ok_or_else(|| Error::Series {
            what: path.display().to_string(),
            detail: "no north-up georeferencing".into(),
        })?;
        let times = match times {
            Some(t) if t.len() != info.bands.len() => {
                return Err(Error::Series {
                    what: path.display().to_string(),
                    detail: format!(
                        "{} times given for {} bands (one time per band)",
                        t.len(),
                        info.bands.len()
                    ),
                })
            }
            Some(t) => t,
            None => info
                .bands
                .iter()
                .map(|b| {
                    b.description
                        .as_deref()
                        .and_then(parse_time)
                        .ok_or_else(|| Error::Series {
                            what: path.display().to_string(),
                            detail: format!(
                                "band {} has {}, not a time such as 2020-07-01T13:00: give the times of the bands (--times)",
                                b.index,
                                b.description
                                    .as_deref()
                                    .map_or("no description".into(), |d| format!("the description `{d}`"))
                            ),
                        })
                })
                .collect::<Result<_>>()?,
        };
        Self::checked(Source::GeoTiff(path.clone()), path, None, grid, times)
    }

    /// A variable of a NetCDF file (e.g. ERA5-Land `skt` as the Copernicus Climate Data Store
    /// ships it), one step per time; see [`amun_raster::NetcdfVariable`].
    ///
    /// # Errors
    /// Raster errors opening the variable; [`Error::Series`] if two steps have the same time.
    #[cfg(feature = "netcdf")]
    pub fn netcdf(path: impl Into<PathBuf>, variable: &str) -> Result<Self> {
        let path = path.into();
        let v = amun_raster::NetcdfVariable::open(&path, variable)?;
        let (grid, times) = (v.grid().clone(), v.times().to_vec());
        Self::checked(
            Source::Netcdf(Box::new(v)),
            path,
            Some(variable.to_string()),
            grid,
            times,
        )
    }

    fn checked(
        source: Source,
        path: PathBuf,
        variable: Option<String>,
        grid: Grid,
        times: Vec<DateTime>,
    ) -> Result<Self> {
        let mut seen = BTreeMap::new();
        for (i, t) in times.iter().enumerate() {
            if let Some(j) = seen.insert(scene_folder(*t), i) {
                return Err(Error::Series {
                    what: path.display().to_string(),
                    detail: format!(
                        "steps {} and {} are both at {} (to the minute)",
                        j + 1,
                        i + 1,
                        format_time(*t)
                    ),
                });
            }
        }
        Ok(Self {
            source,
            path,
            variable,
            grid,
            times,
        })
    }

    /// The time of each step, in the file's order.
    pub fn times(&self) -> &[DateTime] {
        &self.times
    }

    /// The coarse grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The file, and the variable when it is a NetCDF file.
    pub fn source(&self) -> (&Path, Option<&str>) {
        (&self.path, self.variable.as_deref())
    }

    /// The coarse LST of step `step` (0-based).
    ///
    /// # Errors
    /// Raster errors naming the file and band.
    pub fn read(&self, step: usize) -> Result<Raster> {
        match &self.source {
            Source::GeoTiff(p) => Ok(read_band(p, step + 1)?),
            #[cfg(feature = "netcdf")]
            Source::Netcdf(v) => Ok(v.read(step)?),
        }
    }
}

/// A covariate series as the index records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexedSeries {
    /// Covariate name.
    pub name: String,
    /// One file per year, month or day.
    pub period: Period,
    /// The files and folders it was made from.
    pub sources: Vec<PathBuf>,
}

/// One time step of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesStep {
    /// The time (UTC).
    pub time: DateTime,
    /// The scene folder, relative to the series folder.
    pub scene: String,
    /// The step's 1-based band (GeoTIFF) or time index (NetCDF) in the LST file.
    pub band: usize,
    /// The file each dated covariate came from for this step.
    pub covariates: BTreeMap<String, PathBuf>,
}

/// `series.json`: what a series folder holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesIndex {
    /// [`INDEX_FORMAT`].
    pub format: String,
    /// The amun version that wrote it.
    pub amun_version: String,
    /// The coarse LST file.
    pub lst: PathBuf,
    /// The NetCDF variable, when the LST is one.
    pub variable: Option<String>,
    /// Coarse-to-fine factor.
    pub factor: usize,
    /// Covariates that change with time.
    pub series: Vec<IndexedSeries>,
    /// The steps, in the LST file's order.
    pub steps: Vec<SeriesStep>,
}

impl SeriesIndex {
    /// Reads `dir/series.json`.
    ///
    /// # Errors
    /// [`Error::Io`]/[`Error::Json`] for a missing or broken file; [`Error::Series`] if it is
    /// not an index this version reads.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(INDEX);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let index: SeriesIndex = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        if index.format != INDEX_FORMAT {
            return Err(Error::Series {
                what: path.display().to_string(),
                detail: format!(
                    "format `{}`, this amun reads `{INDEX_FORMAT}`",
                    index.format
                ),
            });
        }
        Ok(index)
    }

    /// The scene folders of the steps, under `dir` (the folder holding the index).
    pub fn scene_dirs(&self, dir: &Path) -> Vec<PathBuf> {
        self.steps.iter().map(|s| dir.join(&s.scene)).collect()
    }

    /// Whether two indexes describe the same preparation (everything but the amun version).
    fn same_plan(&self, other: &SeriesIndex) -> bool {
        (
            &self.lst,
            &self.variable,
            self.factor,
            &self.series,
            &self.steps,
        ) == (
            &other.lst,
            &other.variable,
            other.factor,
            &other.series,
            &other.steps,
        )
    }
}

/// Everything a series is prepared from.
#[derive(Debug)]
pub struct SeriesInputs {
    /// The coarse LST, one raster per step.
    pub lst: LstSeries,
    /// The covariates that do not change with time (DEM, land cover, …), the factor and the
    /// band scaling, as for one scene. Its `lst`, `name`, `month` and `hour` are set for each
    /// step; it must have no `reference` (a single fine reference cannot hold for every step).
    pub statics: SceneInputs,
    /// The covariates that change with time, each matched to every step by date.
    pub series: Vec<CovariateSeries>,
}

/// What [`SeriesInputs::prepare`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesReport {
    /// The index written.
    pub index: SeriesIndex,
    /// This task's steps (indices into `index.steps`).
    pub share: std::ops::Range<usize>,
    /// Scene folders written now.
    pub written: Vec<String>,
    /// Steps of the share that were already done (their `scene.json` exists) and were skipped.
    pub skipped: Vec<String>,
    /// Seconds spent.
    pub seconds: f64,
}

impl SeriesInputs {
    /// Matches every step to its covariate files: the index, before any pixel is read.
    ///
    /// # Errors
    /// [`Error::MissingDate`] for the first step a covariate series has no file for;
    /// [`Error::Series`] if a covariate is given both as a series and as a single file, or
    /// the statics have a reference.
    pub fn plan(&self) -> Result<SeriesIndex> {
        if self.statics.reference.is_some() {
            return Err(Error::Series {
                what: "series".into(),
                detail: "a fine reference LST cannot be one file for every step".into(),
            });
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &self.series {
            if !names.insert(s.name()) {
                return Err(Error::Series {
                    what: format!("covariate series `{}`", s.name()),
                    detail: "given twice".into(),
                });
            }
            if statics_have(&self.statics, s.name()) {
                return Err(Error::Series {
                    what: format!("covariate `{}`", s.name()),
                    detail: "given both as a series and as one file for every step".into(),
                });
            }
        }
        let steps = self
            .lst
            .times()
            .iter()
            .enumerate()
            .map(|(i, &time)| {
                let covariates = self
                    .series
                    .iter()
                    .map(|s| Ok((s.name().to_string(), s.file_for(time)?.to_path_buf())))
                    .collect::<Result<_>>()?;
                Ok(SeriesStep {
                    time,
                    scene: scene_folder(time),
                    band: i + 1,
                    covariates,
                })
            })
            .collect::<Result<_>>()?;
        let (lst, variable) = self.lst.source();
        Ok(SeriesIndex {
            format: INDEX_FORMAT.into(),
            amun_version: env!("CARGO_PKG_VERSION").into(),
            lst: lst.to_path_buf(),
            variable: variable.map(str::to_string),
            factor: self.statics.factor,
            series: self
                .series
                .iter()
                .map(|s| IndexedSeries {
                    name: s.name().to_string(),
                    period: s.period(),
                    sources: s.sources.clone(),
                })
                .collect(),
            steps,
        })
    }

    /// Prepares this task's share of the steps (all of them with [`Shard::ALL`]) into `out`:
    /// writes the index (every task writes the same one), then one scene folder per step.
    /// A step whose `scene.json` exists is skipped (scene folders are written file by file,
    /// each atomically, `scene.json` last), so a rerun after a kill or a failed array task
    /// redoes only what is missing. Covariates are built once for consecutive steps that use
    /// the same files (e.g. every hour of a month with monthly NDVI).
    ///
    /// `out` may hold an earlier run of the same preparation (it is resumed); if it holds
    /// another, it is refused unless `force`, which also redoes finished steps.
    ///
    /// # Errors
    /// As [`SeriesInputs::plan`], before anything is written; [`Error::Series`] if `out` holds
    /// another series and not `force`; then the first step that fails, naming its time and
    /// the file at fault (the steps before it stay written).
    pub fn prepare(
        &self,
        out: &Path,
        shard: Shard,
        force: bool,
        progress: &dyn Progress,
    ) -> Result<SeriesReport> {
        let started = Instant::now();
        let index = self.plan()?;
        let factor = self.statics.factor;
        if factor < 2 {
            return Err(Error::Series {
                what: "series".into(),
                detail: format!("factor must be at least 2, got {factor}"),
            });
        }
        let fine = self.lst.grid().refine(factor)?;
        if out.join(INDEX).exists() && !force {
            let old = SeriesIndex::load(out)?;
            if !old.same_plan(&index) {
                return Err(Error::Series {
                    what: out.display().to_string(),
                    detail: "holds a series prepared from other inputs (use --force to overwrite it, or another folder)".into(),
                });
            }
        }
        std::fs::create_dir_all(out).map_err(|source| Error::Io {
            path: out.to_path_buf(),
            source,
        })?;
        crate::report::write_json(&out.join(INDEX), &index)?;

        let share = shard.range(index.steps.len());
        progress.start("prepare", share.len() as u64);
        let (mut written, mut skipped) = (Vec::new(), Vec::new());
        // The covariates of the last step, by the files they came from.
        let mut cached: Option<(
            &BTreeMap<String, PathBuf>,
            Stack,
            Vec<crate::scene::Resampled>,
        )> = None;
        for step in &index.steps[share.clone()] {
            let dir = out.join(&step.scene);
            let label = format_time(step.time);
            if !force && dir.join(layout::MANIFEST).exists() {
                skipped.push(step.scene.clone());
                progress.message(&format!("{label} done before"));
                progress.advance(1);
                continue;
            }
            let at = |e: Error| Error::Step {
                step: format!("{label} (band {} of {})", step.band, index.lst.display()),
                source: Box::new(e),
            };
            let lst = self.lst.read(step.band - 1).map_err(at)?;
            if lst.valid_count() == 0 {
                return Err(at(Error::Scene {
                    scene: label.clone(),
                    detail: "every coarse LST pixel is nodata".into(),
                }));
            }
            lst.grid()
                .check_same(self.lst.grid())
                .map_err(|e| at(e.into()))?;
            let (covariates, resampled) = match &cached {
                Some((files, stack, resampled)) if *files == &step.covariates => {
                    (stack.clone(), resampled.clone())
                }
                _ => {
                    let mut inputs = self.statics.clone();
                    for (name, file) in &step.covariates {
                        set_covariate(&mut inputs, name, file.clone());
                    }
                    let log = std::cell::RefCell::new(Vec::new());
                    let stack = inputs.covariate_stack(&label, &fine, &log).map_err(at)?;
                    let resampled = log.into_inner();
                    cached = Some((&step.covariates, stack.clone(), resampled.clone()));
                    (stack, resampled)
                }
            };
            let time = step.time;
            let scene = Scene::new(label.clone(), lst, covariates)
                .map_err(at)?
                .with_time(
                    Some(u32::from(time.month().unsigned_abs())),
                    Some(u32::from(time.hour().unsigned_abs())),
                )
                .map_err(at)?
                .with_resampled(resampled);
            scene.save(&dir).map_err(at)?;
            written.push(step.scene.clone());
            progress.message(&label);
            progress.advance(1);
        }
        progress.finish();
        Ok(SeriesReport {
            index,
            share,
            written,
            skipped,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Whether the static inputs already give the covariate `name`.
fn statics_have(s: &SceneInputs, name: &str) -> bool {
    match name {
        "ndvi" => s.ndvi.is_some(),
        "landcover" => s.landcover.is_some(),
        "reflectance" => s.reflectance.is_some(),
        "mndwi" => s.mndwi.is_some(),
        "ndbi" => s.ndbi.is_some(),
        "slope" => s.slope.is_some(),
        "aspect" => s.aspect.is_some(),
        "dem" => s.dem.is_some(),
        "green" => s.green.is_some(),
        "red" => s.red.is_some(),
        "nir" => s.nir.is_some(),
        "swir" => s.swir.is_some(),
        other => s.extra.iter().any(|(n, _)| n == other),
    }
}

/// Gives the covariate `name` of one step: a known input of [`SceneInputs`] or an extra band.
fn set_covariate(s: &mut SceneInputs, name: &str, file: PathBuf) {
    let slot = match name {
        "ndvi" => &mut s.ndvi,
        "landcover" => &mut s.landcover,
        "reflectance" => &mut s.reflectance,
        "mndwi" => &mut s.mndwi,
        "ndbi" => &mut s.ndbi,
        "slope" => &mut s.slope,
        "aspect" => &mut s.aspect,
        "dem" => &mut s.dem,
        "green" => &mut s.green,
        "red" => &mut s.red,
        "nir" => &mut s.nir,
        "swir" => &mut s.swir,
        other => {
            s.extra.push((other.to_string(), file));
            return;
        }
    };
    *slot = Some(file);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;
    use amun_raster::{write, write_raster, WriteOptions};

    fn dt(s: &str) -> DateTime {
        s.parse().unwrap()
    }

    #[test]
    fn dates_in_file_names() {
        let d = |name: &str| date_in_name(name).map(|f| (f.date.to_string(), f.precision));
        let day = |s: &str| Some((s.to_string(), Period::Day));
        let month = |s: &str| Some((s.to_string(), Period::Month));
        assert_eq!(d("ndvi_2020-07-01"), day("2020-07-01"));
        assert_eq!(d("ndvi_2020_07_01_v2"), day("2020-07-01"));
        assert_eq!(d("ndvi.2020.07.01"), day("2020-07-01"));
        assert_eq!(d("ndvi_20200701"), day("2020-07-01"));
        // MODIS: A + year + day of the year; day 183 of 2020 (a leap year) is 1 July. The
        // production date 2020215… is a longer digit run and not read.
        assert_eq!(
            d("MOD13A3.A2020183.h27v05.061.2020215123456"),
            day("2020-07-01")
        );
        assert_eq!(d("MOD13A3.A2021365.h27v05"), day("2021-12-31"));
        assert_eq!(d("ndvi_2020-07"), month("2020-07-01"));
        assert_eq!(d("ndvi_202007"), month("2020-07-01"));
        assert_eq!(d("lc_2019"), Some(("2019-01-01".to_string(), Period::Year)));
        // A full date wins over an earlier year-month, wherever it is.
        assert_eq!(d("v2021-01_ndvi_2020-07-15"), day("2020-07-15"));
        // A bad month leaves the year; a 13-digit run, no digits are no date; mixed
        // separators give the year-month.
        assert_eq!(d("ndvi_2020-13").map(|x| x.1), Some(Period::Year));
        assert_eq!(d("x_2020215123456"), None);
        assert_eq!(d("ndvi"), None);
        assert_eq!(d("ndvi_2020-07_01").map(|x| x.1), Some(Period::Month));
        assert_eq!(d("h27v05"), None);
    }

    #[test]
    fn times_as_users_write_them() {
        let t = |s: &str| parse_time(s).map(format_time);
        for s in [
            "2020-07-01T13:00:00",
            "2020-07-01 13:00",
            "2020-07-01T13",
            "20200701T1300",
            "2020-07-01T13:00:00Z",
            "2020-07-01T21:00:00+08:00",
        ] {
            assert_eq!(t(s).as_deref(), Some("2020-07-01T13:00:00"), "{s}");
        }
        assert_eq!(t("2020-07-01").as_deref(), Some("2020-07-01T00:00:00"));
        assert_eq!(t("band_1"), None);
        assert_eq!(scene_folder(dt("2020-07-01T13:00")), "2020-07-01T1300");
    }

    /// A coarse 8×8 grid at 0.1° and its 4× refinement.
    fn grids() -> (Grid, Grid) {
        let coarse = Grid::geographic(100.0, 30.0, 0.1, 8, 8).unwrap();
        let fine = coarse.refine(4).unwrap();
        (coarse, fine)
    }

    fn put(path: &Path, r: &Raster) {
        write_raster(path, r, &WriteOptions::default()).unwrap();
    }

    /// Inputs of a 4-step series: LST bands described by their times (2020-07-31T12, T18,
    /// 08-01T00, T06), monthly NDVI for July and August, a static DEM.
    fn inputs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let (coarse, fine) = grids();
        let times = [
            "2020-07-31T12:00:00",
            "2020-07-31T18:00:00",
            "2020-08-01T00:00:00",
            "2020-08-01T06:00:00",
        ];
        let mut lst = Stack::new(coarse.clone());
        for (t, name) in times.iter().enumerate() {
            let band = Raster::from_fn(coarse.clone(), |(r, c)| {
                280.0 + t as f32 + 0.5 * r as f32 + 0.25 * c as f32
            });
            lst.push(*name, band).unwrap();
        }
        let lst_path = dir.join("lst.tif");
        write(&lst_path, &lst, &WriteOptions::default()).unwrap();
        let ndvi = dir.join("ndvi");
        std::fs::create_dir_all(&ndvi).unwrap();
        for (m, base) in [(7, 0.3_f32), (8, 0.6)] {
            let r = Raster::from_fn(fine.clone(), |(r, c)| base + 0.001 * (r + c) as f32);
            put(&ndvi.join(format!("ndvi_2020-{m:02}.tif")), &r);
        }
        let dem = dir.join("dem.tif");
        put(
            &dem,
            &Raster::from_fn(fine, |(r, c)| 100.0 + 3.0 * r as f32 + 2.0 * c as f32),
        );
        (lst_path, ndvi, dem)
    }

    fn series_inputs(lst: &Path, ndvi: &Path, dem: &Path) -> SeriesInputs {
        SeriesInputs {
            lst: LstSeries::geotiff(lst, None).unwrap(),
            statics: SceneInputs {
                factor: 4,
                dem: Some(dem.to_path_buf()),
                ..SceneInputs::default()
            },
            series: vec![
                CovariateSeries::new("ndvi", Period::Month, &[ndvi.to_path_buf()]).unwrap(),
            ],
        }
    }

    /// Every file under `dir` (relative path → bytes).
    fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(dir).unwrap().to_path_buf();
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn a_series_is_prepared_matched_by_month_and_resumed() {
        let tmp = tempfile::tempdir().unwrap();
        let (lst, ndvi, dem) = inputs(tmp.path());
        let inputs = series_inputs(&lst, &ndvi, &dem);
        let out = tmp.path().join("series");
        let report = inputs
            .prepare(&out, Shard::ALL, false, &NoProgress)
            .unwrap();
        assert_eq!(report.written.len(), 4);
        assert!(report.skipped.is_empty());

        let index = SeriesIndex::load(&out).unwrap();
        assert_eq!(index, report.index);
        let scenes: Vec<_> = index.steps.iter().map(|s| s.scene.as_str()).collect();
        assert_eq!(
            scenes,
            [
                "2020-07-31T1200",
                "2020-07-31T1800",
                "2020-08-01T0000",
                "2020-08-01T0600"
            ]
        );
        // July steps take the July file, August steps the August one.
        let month_of = |i: usize| index.steps[i].covariates["ndvi"].clone();
        assert_eq!(month_of(1), ndvi.join("ndvi_2020-07.tif"));
        assert_eq!(month_of(2), ndvi.join("ndvi_2020-08.tif"));

        let july = read_band(ndvi.join("ndvi_2020-07.tif"), 1).unwrap();
        let august = read_band(ndvi.join("ndvi_2020-08.tif"), 1).unwrap();
        for (i, dir) in index.scene_dirs(&out).iter().enumerate() {
            let scene = Scene::load(dir).unwrap();
            assert_eq!(scene.factor(), 4);
            assert_eq!(scene.month(), Some(if i < 2 { 7 } else { 8 }));
            assert_eq!(scene.hour(), Some([12, 18, 0, 6][i]));
            assert_eq!(scene.covariates().names(), ["ndvi", "slope", "aspect"]);
            // The step's LST is band i + 1 of the file, unchanged; the NDVI is the month's
            // file, unchanged (already on the fine grid).
            assert_eq!(
                scene.coarse_lst().data(),
                read_band(&lst, i + 1).unwrap().data()
            );
            let want = if i < 2 { &july } else { &august };
            assert_eq!(scene.covariates().get("ndvi").unwrap().data(), want.data());
        }

        // A rerun skips every finished step; a step whose scene.json is gone is redone.
        let again = inputs
            .prepare(&out, Shard::ALL, false, &NoProgress)
            .unwrap();
        assert_eq!((again.written.len(), again.skipped.len()), (0, 4));
        std::fs::remove_file(out.join("2020-08-01T0000").join(layout::MANIFEST)).unwrap();
        let again = inputs
            .prepare(&out, Shard::ALL, false, &NoProgress)
            .unwrap();
        assert_eq!(again.written, ["2020-08-01T0000"]);

        // Another preparation into the same folder is refused without force.
        let mut other = series_inputs(&lst, &ndvi, &dem);
        other.statics.factor = 2;
        let e = other
            .prepare(&out, Shard::ALL, false, &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(e.contains("prepared from other inputs"), "{e}");
    }

    #[test]
    fn shards_together_write_what_one_process_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let (lst, ndvi, dem) = inputs(tmp.path());
        let inputs = series_inputs(&lst, &ndvi, &dem);
        let one = tmp.path().join("one");
        inputs
            .prepare(&one, Shard::ALL, false, &NoProgress)
            .unwrap();
        let split = tmp.path().join("split");
        // Three tasks over four steps: ⌊i·4/3⌋ = 0, 1, 2, 4 → shares of 1, 1 and 2 steps.
        let mut shares = Vec::new();
        for i in [2, 0, 1] {
            let r = inputs
                .prepare(&split, Shard::new(i, 3).unwrap(), false, &NoProgress)
                .unwrap();
            shares.push((i, r.share, r.written.len()));
        }
        assert_eq!(shares, [(2, 2..4, 2), (0, 0..1, 1), (1, 1..2, 1)]);
        let (a, b) = (files(&one), files(&split));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        assert!(
            a == b,
            "bytes differ between the one-process and the sharded run"
        );
    }

    #[test]
    fn a_missing_date_names_the_date_and_the_files_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let (lst, ndvi, dem) = inputs(tmp.path());
        std::fs::remove_file(ndvi.join("ndvi_2020-08.tif")).unwrap();
        let inputs = series_inputs(&lst, &ndvi, &dem);
        let out = tmp.path().join("series");
        let e = inputs
            .prepare(&out, Shard::ALL, false, &NoProgress)
            .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::MissingDate { .. }), "{msg}");
        assert!(msg.contains("`ndvi`"), "{msg}");
        assert!(msg.contains("no file for 2020-08"), "{msg}");
        assert!(msg.contains("2020-08-01T00:00:00"), "{msg}");
        assert!(msg.contains(&ndvi.display().to_string()), "{msg}");
        assert!(msg.contains("only 2020-07"), "{msg}");
        assert!(!out.exists());
    }

    #[test]
    fn covariate_series_errors_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, fine) = grids();
        let r = Raster::filled(fine.clone(), 0.5);
        let d = tmp.path();
        put(&d.join("ndvi_2020-07-01.tif"), &r);
        put(&d.join("ndvi_2020-07-15.tif"), &r);
        put(&d.join("ndvi_2020.tif"), &r);
        put(&d.join("ndvi_undated.tif"), &r);
        let err = |files: &[&str], period| {
            let paths: Vec<PathBuf> = files.iter().map(|f| d.join(f)).collect();
            CovariateSeries::new("ndvi", period, &paths)
                .unwrap_err()
                .to_string()
        };
        let e = err(
            &["ndvi_2020-07-01.tif", "ndvi_2020-07-15.tif"],
            Period::Month,
        );
        assert!(
            e.contains("ndvi_2020-07-01.tif and") && e.contains("both dated 2020-07"),
            "{e}"
        );
        let e = err(&["ndvi_2020.tif"], Period::Month);
        assert!(e.contains("ndvi_2020.tif: dated 2020 only"), "{e}");
        let e = err(&["ndvi_undated.tif"], Period::Month);
        assert!(e.contains("ndvi_undated.tif: no date"), "{e}");
        // Daily periods keep the two July files apart.
        let paths = [d.join("ndvi_2020-07-01.tif"), d.join("ndvi_2020-07-15.tif")];
        let s = CovariateSeries::new("ndvi", Period::Day, &paths).unwrap();
        assert_eq!(s.file_for(dt("2020-07-15T13:00")).unwrap(), paths[1]);
        // A file without a date in its name, dated by its band description.
        let mut described = Stack::new(fine);
        described.push("2020-09-01", r).unwrap();
        let f = d.join("ndvi_september.tif");
        write(&f, &described, &WriteOptions::default()).unwrap();
        let s = CovariateSeries::new("ndvi", Period::Month, std::slice::from_ref(&f)).unwrap();
        assert_eq!(s.file_for(dt("2020-09-30T23:00")).unwrap(), f);
    }

    #[test]
    fn lst_times_from_descriptions_or_given() {
        let tmp = tempfile::tempdir().unwrap();
        let (lst, _, _) = inputs(tmp.path());
        let s = LstSeries::geotiff(&lst, None).unwrap();
        assert_eq!(s.times()[3], dt("2020-08-01T06:00"));
        let given: Vec<_> = (0..4)
            .map(|h| dt(&format!("2021-01-01T{h:02}:00")))
            .collect();
        let s = LstSeries::geotiff(&lst, Some(given.clone())).unwrap();
        assert_eq!(s.times(), given);
        let e = LstSeries::geotiff(&lst, Some(given[..3].to_vec())).unwrap_err();
        assert!(e.to_string().contains("3 times given for 4 bands"), "{e}");
        let e = LstSeries::geotiff(&lst, Some(vec![given[0]; 4])).unwrap_err();
        assert!(
            e.to_string()
                .contains("steps 1 and 2 are both at 2021-01-01T00:00:00"),
            "{e}"
        );
        // Bands without times.
        let (coarse, _) = grids();
        let plain = tmp.path().join("plain.tif");
        let mut st = Stack::new(coarse.clone());
        st.push("day", Raster::filled(coarse.clone(), 280.0))
            .unwrap();
        st.push("night", Raster::filled(coarse, 270.0)).unwrap();
        write(&plain, &st, &WriteOptions::default()).unwrap();
        let e = LstSeries::geotiff(&plain, None).unwrap_err().to_string();
        assert!(
            e.contains("band 1 has the description `day`, not a time"),
            "{e}"
        );
        assert!(e.contains("--times"), "{e}");
    }
}
