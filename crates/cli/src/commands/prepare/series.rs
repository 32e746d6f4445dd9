//! `amun prepare` in time-series mode: one scene per time step of a multi-band or NetCDF LST,
//! with covariates matched to each step by date, under one folder with an index.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use amun_core::series::{parse_time, CovariateSeries, LstSeries, Period, SeriesInputs};
use amun_core::{Progress, SceneInputs, Shard};
use anyhow::{bail, Context, Result};
use clap::Args;

use super::PrepareArgs;
use crate::commands::Ctx;

/// The time-series options of `amun prepare`.
#[derive(Args, Debug, Default)]
#[command(next_help_heading = "Time series (one scene per time step)")]
pub struct SeriesArgs {
    /// Prepare a time series: one scene folder per band of --lst (per time of --variable)
    /// under --out, with an index `series.json`. Implied by the options below and by a NetCDF
    /// --lst (.nc).
    #[arg(long)]
    pub series: bool,
    /// Times of the LST bands, comma-separated (2020-07-01T13:00,2020-07-01T14:00,…), or
    /// @FILE with one time per line [default: the band descriptions].
    #[arg(long, value_delimiter = ',')]
    pub times: Vec<String>,
    /// The variable of a NetCDF --lst, e.g. `skt` (ERA5-Land skin temperature); needs amun
    /// built with the `netcdf` feature.
    #[arg(long)]
    pub variable: Option<String>,
    /// A covariate that changes with time, `NAME[:PERIOD]=PATH` (repeatable): PATH is a folder
    /// of GeoTIFFs dated by name (ndvi_2020-07.tif, A2020183, …) or band description, or one
    /// such file; PERIOD is year, month (default) or day. E.g. ndvi=ndvi_monthly/,
    /// landcover:year=mcd12q1/. Covariates given by the usual options are the same for
    /// every step.
    #[arg(long = "covariate-series", value_name = "NAME[:PERIOD]=PATH", value_parser = parse_series_spec)]
    pub covariate_series: Vec<SeriesSpec>,
    /// Prepare only this task's share of the steps: I/N (task I of N, from 0), `slurm` (the
    /// task of the Slurm job array this runs in) or `slurm/N`. Every task writes the same
    /// index; steps already prepared are skipped.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<Shard>,
}

/// One `--covariate-series` value.
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    name: String,
    period: Period,
    path: PathBuf,
}

fn parse_series_spec(s: &str) -> Result<SeriesSpec, String> {
    let (key, path) = s
        .split_once('=')
        .filter(|(k, p)| !k.is_empty() && !p.is_empty())
        .ok_or_else(|| format!("expected NAME[:PERIOD]=PATH, got `{s}`"))?;
    let (name, period) = match key.split_once(':') {
        Some((n, p)) => (n, Period::parse(p).map_err(|e| e.to_string())?),
        None => (key, Period::Month),
    };
    Ok(SeriesSpec {
        name: name.to_string(),
        period,
        path: PathBuf::from(path),
    })
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    Shard::parse(s).map_err(|e| e.to_string())
}

fn is_netcdf(path: &Path) -> bool {
    path.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| ["nc", "nc4", "netcdf", "cdf"].contains(&x.to_ascii_lowercase().as_str()))
}

/// Whether `amun prepare` runs in series mode.
///
/// # Errors
/// If the LST is a multi-band GeoTIFF and no series option is given (one band of it would be
/// a silent choice).
pub fn wanted(a: &PrepareArgs) -> Result<bool> {
    let s = &a.series;
    if s.series
        || !s.times.is_empty()
        || s.variable.is_some()
        || !s.covariate_series.is_empty()
        || s.shard.is_some()
        || is_netcdf(&a.lst)
    {
        return Ok(true);
    }
    if let Ok(info) = amun_core::raster::inspect(&a.lst) {
        if info.bands.len() > 1 {
            bail!(
                "{} has {} bands: prepare one scene per band with --series (times from the band descriptions or --times), or pick one band first (gdal_translate -b 1)",
                a.lst.display(),
                info.bands.len()
            );
        }
    }
    Ok(false)
}

fn times(values: &[String]) -> Result<Option<Vec<amun_core::jiff::civil::DateTime>>> {
    let lines: Vec<String> = match values {
        [] => return Ok(None),
        [one] if one.starts_with('@') => {
            let file = &one[1..];
            std::fs::read_to_string(file)
                .with_context(|| format!("reading the times from {file}"))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect()
        }
        many => many.to_vec(),
    };
    lines
        .iter()
        .enumerate()
        .map(|(i, t)| {
            parse_time(t).with_context(|| {
                format!(
                    "--times: time {} `{t}` is not a date-time such as 2020-07-01T13:00",
                    i + 1
                )
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

fn lst_series(a: &PrepareArgs) -> Result<LstSeries> {
    let s = &a.series;
    if is_netcdf(&a.lst) || s.variable.is_some() {
        if !s.times.is_empty() {
            bail!("--times: a NetCDF file carries its own times");
        }
        let Some(variable) = s.variable.as_deref() else {
            bail!(
                "{}: a NetCDF LST needs --variable (e.g. --variable skt for ERA5-Land skin temperature)",
                a.lst.display()
            );
        };
        netcdf_series(&a.lst, variable)
    } else {
        Ok(LstSeries::geotiff(a.lst.clone(), times(&s.times)?)?)
    }
}

#[cfg(feature = "netcdf")]
fn netcdf_series(path: &Path, variable: &str) -> Result<LstSeries> {
    Ok(LstSeries::netcdf(path, variable)?)
}

#[cfg(not(feature = "netcdf"))]
fn netcdf_series(path: &Path, _variable: &str) -> Result<LstSeries> {
    bail!(
        "{}: this amun was built without NetCDF support: rebuild with `--features netcdf` (needs libnetcdf, Debian `libnetcdf-dev`), or convert it to a multi-band GeoTIFF first (gdal_translate -unscale -ot Float32 NETCDF:file.nc:skt lst.tif)",
        path.display()
    )
}

/// Runs `amun prepare` in series mode; `statics` holds the covariates given by the usual
/// options (the same for every step).
pub fn run(ctx: &Ctx, a: &PrepareArgs, statics: SceneInputs) -> Result<()> {
    for (given, flag) in [
        (a.name.is_some(), "--name"),
        (a.month.is_some(), "--month"),
        (a.hour.is_some(), "--hour"),
        (a.reference.is_some(), "--reference"),
        (a.stations.is_some(), "--stations"),
    ] {
        if given {
            bail!("{flag} is for one scene; in series mode each step's name, month and hour come from its time");
        }
    }
    let lst = lst_series(a)?;
    // One series per name, its paths in the order given.
    let mut specs: Vec<(String, Period, Vec<PathBuf>)> = Vec::new();
    for s in &a.series.covariate_series {
        match specs.iter_mut().find(|(n, _, _)| *n == s.name) {
            Some((_, p, paths)) if *p == s.period => paths.push(s.path.clone()),
            Some((n, p, _)) => bail!(
                "--covariate-series {n}: given with periods {} and {}",
                p.name(),
                s.period.name()
            ),
            None => specs.push((s.name.clone(), s.period, vec![s.path.clone()])),
        }
    }
    let series = specs
        .into_iter()
        .map(|(n, p, paths)| CovariateSeries::new(n, p, &paths))
        .collect::<amun_core::Result<Vec<_>>>()?;
    let inputs = SeriesInputs {
        lst,
        statics,
        series,
    };
    let shard = a.series.shard.unwrap_or_default();
    let lines = StepLines::new(ctx);
    let progress: &dyn Progress = if std::io::stderr().is_terminal() {
        &ctx.bars
    } else {
        &lines
    };
    let report = inputs.prepare(&a.out, shard, a.force, progress)?;
    let total = report.index.steps.len();
    let share = if shard.is_all() {
        String::new()
    } else if report.share.is_empty() {
        format!(" (task {shard}: no steps)")
    } else {
        format!(
            " (task {shard}: steps {}–{} of {total})",
            report.share.start + 1,
            report.share.end
        )
    };
    ctx.say(&format!(
        "prepared {} scene(s), {} already done, of {total} steps into {}{share} in {:.1} s",
        report.written.len(),
        report.skipped.len(),
        a.out.display(),
        report.seconds
    ));
    Ok(())
}

/// One line per step on stderr, with an ETA, for logs (Slurm output files, CI) where
/// progress bars are not drawn.
struct StepLines<'a> {
    ctx: &'a Ctx,
    state: Mutex<(String, u64, u64, Option<Instant>)>,
}

impl<'a> StepLines<'a> {
    fn new(ctx: &'a Ctx) -> Self {
        Self {
            ctx,
            state: Mutex::new((String::new(), 0, 0, None)),
        }
    }
}

impl Progress for StepLines<'_> {
    fn start(&self, stage: &str, total: u64) {
        if let Ok(mut s) = self.state.lock() {
            *s = (stage.to_string(), total, 0, Some(Instant::now()));
        }
    }

    fn message(&self, msg: &str) {
        if let Ok(s) = self.state.lock() {
            // The message comes when a step is finished, before `advance`.
            let (stage, total, done, started) = &*s;
            let done = done + 1;
            let eta = match started {
                Some(t) => {
                    let per = t.elapsed().as_secs_f64() / done as f64;
                    format!(", eta {:.0} s", per * total.saturating_sub(done) as f64)
                }
                None => String::new(),
            };
            self.ctx.say(&format!("{stage} {done}/{total}: {msg}{eta}"));
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.2 += n;
        }
    }
}
