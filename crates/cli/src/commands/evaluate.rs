//! `amun evaluate`: a prediction scored against a reference, the coarse input and stations.

use std::io::Write;
use std::path::{Path, PathBuf};

use amun_core::metrics::{
    aggregated_back, read_stations, scatter_data, score, score_by_class, score_stations,
    score_uncertainty, Metrics, Predictive, Sampling, UncertaintyMetrics, UncertaintyParams,
};
use amun_core::raster::{inspect, read_band, Raster};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::Serialize;

use super::{check_file, Ctx};
use crate::figures::{self, MapPanel, Palette, ScatterPlot};
use crate::output::check_writable;

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// The prediction GeoTIFF (fine LST).
    #[arg(long)]
    pub prediction: PathBuf,
    /// Fine reference LST on the prediction's grid.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Coarse input LST: the prediction is aggregated back onto it and scored.
    #[arg(long)]
    pub coarse: Option<PathBuf>,
    /// Stations CSV (columns id,lon,lat,value and optionally time).
    #[arg(long)]
    pub stations: Option<PathBuf>,
    /// Sample stations bilinearly instead of at the nearest pixel.
    #[arg(long)]
    pub bilinear: bool,
    /// Land-cover or terrain-class raster for per-class metrics.
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// The band (1-based) to use from multi-band inputs (prediction, reference, coarse
    /// input, classes); required when one of them has several bands. Single-band inputs
    /// use their band.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub band: Option<u64>,
    /// Write maps and a scatter plot into this folder.
    #[arg(long)]
    pub figures: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Overwrite figure files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Serialize)]
struct EvalOut {
    prediction: PathBuf,
    reference: Option<Metrics>,
    aggregated_back: Option<Metrics>,
    stations: Option<amun_core::metrics::StationReport>,
    classes: Option<Vec<amun_core::metrics::ClassMetrics>>,
    /// With `mean` and `std` bands (`amun downscale --uncertainty`) and a reference.
    uncertainty: Option<UncertaintyMetrics>,
}

/// One row of a metrics table (see [`metrics_header`]).
pub fn metrics_row(name: &str, m: &Metrics) -> String {
    let f = |v: Option<f64>| v.map_or("–".into(), |x| format!("{x:.4}"));
    format!(
        "{name:<16} {:>8.3} {:>8.3} {:>8.3} {:>8} {:>8} {:>8} {:>9}",
        m.rmse,
        m.mae,
        m.bias,
        f(m.r2),
        f(m.pearson_r),
        f(m.ssim),
        m.n
    )
}

/// The header of [`metrics_row`] tables.
pub fn metrics_header() -> String {
    format!(
        "{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "", "RMSE K", "MAE K", "bias K", "R²", "r", "SSIM", "pixels"
    )
}

/// Draws the reference / prediction / bias maps and the scatter of a prediction.
pub fn prediction_figures(
    dir: &Path,
    stem: &str,
    title: &str,
    prediction: &Raster,
    reference: &Raster,
    coarse_input: Option<&Raster>,
    force: bool,
) -> Result<()> {
    let range = figures::robust_range(&[reference, prediction])
        .ok_or_else(|| anyhow!("nothing valid to draw"))?;
    let bias = Raster::new(
        prediction.grid().clone(),
        prediction.data() - reference.data(),
    )?;
    let bmax = figures::robust_range(&[&bias]).map_or(1.0, |(a, b)| a.abs().max(b.abs()).max(0.1));
    let mut panels = vec![MapPanel {
        raster: reference,
        title: "Reference LST".into(),
        palette: Palette::Temperature,
        range,
        units: "K",
    }];
    let up;
    if let Some(c) = coarse_input {
        up = amun_core::raster::resample(
            c,
            prediction.grid(),
            amun_core::raster::Resampling::Nearest,
        )?;
        panels.push(MapPanel {
            raster: &up,
            title: "Coarse input".into(),
            palette: Palette::Temperature,
            range,
            units: "K",
        });
    }
    panels.push(MapPanel {
        raster: prediction,
        title: title.into(),
        palette: Palette::Temperature,
        range,
        units: "K",
    });
    panels.push(MapPanel {
        raster: &bias,
        title: "Prediction − reference".into(),
        palette: Palette::Diverging,
        range: (-bmax, bmax),
        units: "K",
    });
    let maps = dir.join(format!("{stem}_maps.png"));
    check_writable(&maps, force)?;
    figures::maps_png(&maps, &panels)?;
    let m = score(prediction, reference, None)?;
    let sd = scatter_data(prediction, reference, 120, Some(range))?;
    let counts: Vec<Vec<u64>> = sd.counts.outer_iter().map(|r| r.to_vec()).collect();
    let sc = dir.join(format!("{stem}_scatter.png"));
    check_writable(&sc, force)?;
    figures::scatter_png(
        &sc,
        &ScatterPlot {
            title: title.into(),
            counts: &counts,
            range: (sd.min, sd.max),
            line: sd.fit.map(|f| (f.slope, f.intercept)),
            text: vec![
                format!("R² = {}", m.r2.map_or("–".into(), |v| format!("{v:.3}"))),
                format!("RMSE = {:.3} K", m.rmse),
                format!("MAE = {:.3} K", m.mae),
                format!("bias = {:+.3} K", m.bias),
                format!("n = {}", m.n),
            ],
        },
    )?;
    Ok(())
}

/// One line summing up the uncertainty scores.
pub fn uncertainty_line(u: &UncertaintyMetrics) -> String {
    format!(
        "uncertainty: {:.0} % interval covers {:.1} % (mean width {:.3} K), CRPS {:.3} K, mean std {:.3} K vs RMSE {:.3} K, Spearman(std, |error|) over {} blocks of 32² {}",
        100.0 * u.nominal,
        100.0 * u.coverage,
        u.mean_width,
        u.crps,
        u.mean_std,
        u.rmse,
        u.blocks,
        u.spread_error_spearman
            .map_or("–".into(), |r| format!("{r:+.3}"))
    )
}

/// Draws the PIT histogram, the reliability diagram and the map of the standard deviation
/// next to the absolute error of a probabilistic prediction.
#[allow(clippy::too_many_arguments)]
pub fn uncertainty_figures(
    dir: &Path,
    stem: &str,
    title: &str,
    u: &UncertaintyMetrics,
    mean: &Raster,
    std: &Raster,
    reference: &Raster,
    force: bool,
) -> Result<()> {
    let freq = u.pit.frequencies();
    let cal = [figures::Calibration {
        name: title,
        pit: &freq,
        nominal: &u.reliability.nominal,
        observed: &u.reliability.observed,
    }];
    let pit = dir.join(format!("{stem}_pit.png"));
    check_writable(&pit, force)?;
    figures::pit_png(&pit, &format!("{title}: PIT histogram"), &cal)?;
    let rel = dir.join(format!("{stem}_reliability.png"));
    check_writable(&rel, force)?;
    figures::reliability_png(&rel, &format!("{title}: reliability"), &cal)?;
    let err = Raster::new(
        mean.grid().clone(),
        (mean.data() - reference.data()).mapv(f32::abs),
    )?;
    let top = figures::robust_range(&[&err, std]).map_or(1.0, |(_, b)| b.max(0.05));
    let panels = [
        MapPanel {
            raster: std,
            title: "Predicted std".into(),
            palette: Palette::Temperature,
            range: (0.0, top),
            units: "K",
        },
        MapPanel {
            raster: &err,
            title: "|mean − reference|".into(),
            palette: Palette::Temperature,
            range: (0.0, top),
            units: "K",
        },
    ];
    let maps = dir.join(format!("{stem}_std_error.png"));
    check_writable(&maps, force)?;
    figures::maps_png(&maps, &panels)?;
    Ok(())
}

/// The band of `path` to score: its only band, or `--band` of a multi-band file (which is
/// refused without `--band` rather than scored on band 1 silently).
fn scored_band(path: &Path, band: Option<u64>, role: &str) -> Result<Raster> {
    check_file(path)?;
    let count = inspect(path)?.bands.len();
    let b = match (band, count) {
        (_, 1) => 1,
        (None, n) => bail!(
            "{}: the {role} has {n} bands; choose the one to score with --band",
            path.display()
        ),
        (Some(b), _) => usize::try_from(b).unwrap_or(usize::MAX),
    };
    Ok(read_band(path, b)?)
}

/// 1-based band indices of a prediction written by `amun downscale --uncertainty`.
struct BandIndex {
    mean: usize,
    std: usize,
    q05: Option<usize>,
    q95: Option<usize>,
}

/// The `mean`, `std`, `q05` and `q95` bands of a prediction, found by their GDAL band
/// descriptions; `None` unless `mean` and `std` are both there.
fn uncertainty_bands(path: &Path) -> Result<Option<BandIndex>> {
    check_file(path)?;
    let info = inspect(path)?;
    let find = |name: &str| {
        info.bands
            .iter()
            .position(|b| b.description.as_deref() == Some(name))
            .map(|i| i + 1)
    };
    Ok(match (find("mean"), find("std")) {
        (Some(mean), Some(std)) => Some(BandIndex {
            mean,
            std,
            q05: find("q05"),
            q95: find("q95"),
        }),
        _ => None,
    })
}

/// A probabilistic prediction read from its bands: mean, std and, when both are there, the
/// interval bounds.
struct SpreadBands {
    std: Raster,
    interval: Option<(Raster, Raster)>,
}

/// Runs `amun evaluate`.
pub fn run(ctx: &Ctx, a: &EvaluateArgs) -> Result<()> {
    let (pred, spread) = read_prediction(a)?;
    if pred.valid_count() == 0 {
        bail!("{}: every pixel is nodata", a.prediction.display());
    }
    if a.reference.is_none() && a.coarse.is_none() && a.stations.is_none() {
        bail!("nothing to evaluate against: give --reference, --coarse and/or --stations");
    }
    let reference = match &a.reference {
        Some(p) => Some(scored_band(p, a.band, "reference")?),
        None => None,
    };
    let coarse = match &a.coarse {
        Some(p) => Some(scored_band(p, a.band, "coarse input")?),
        None => None,
    };
    let mut out = EvalOut {
        prediction: a.prediction.clone(),
        reference: None,
        aggregated_back: None,
        stations: None,
        classes: None,
        uncertainty: None,
    };
    if let Some(r) = &reference {
        out.reference = Some(score(&pred, r, None).with_context(|| {
            format!(
                "scoring {} against {}",
                a.prediction.display(),
                a.reference.as_deref().unwrap_or(Path::new("")).display()
            )
        })?);
        if let Some(cp) = &a.classes {
            let classes = scored_band(cp, a.band, "class raster")?;
            out.classes = Some(score_by_class(&pred, r, &classes)?);
        }
        if let Some(sb) = &spread {
            let p = Predictive {
                mean: &pred,
                std: &sb.std,
                interval: sb.interval.as_ref().map(|(l, h)| (l, h)),
            };
            out.uncertainty = Some(
                score_uncertainty(&p, r, None, &UncertaintyParams::default()).with_context(
                    || {
                        format!(
                            "scoring the uncertainty bands of {}",
                            a.prediction.display()
                        )
                    },
                )?,
            );
        }
    }
    if let Some(c) = &coarse {
        out.aggregated_back = Some(aggregated_back(&pred, c, 0.5).with_context(|| {
            format!(
                "aggregating {} back onto the coarse grid",
                a.prediction.display()
            )
        })?);
    }
    if let Some(sp) = &a.stations {
        check_file(sp)?;
        let st = read_stations(sp)?;
        let sampling = if a.bilinear {
            Sampling::Bilinear
        } else {
            Sampling::Nearest
        };
        out.stations = Some(score_stations(&pred, &st, sampling)?);
    }
    if let (Some(dir), Some(r)) = (&a.figures, &reference) {
        write_figures(a, dir, &out, &pred, spread.as_ref(), r, coarse.as_ref())?;
        ctx.say(&format!("wrote figures into {}", dir.display()));
    }
    print_scores(a, &out)
}

/// The scored band of the prediction and, when it has them, its uncertainty bands.
fn read_prediction(a: &EvaluateArgs) -> Result<(Raster, Option<SpreadBands>)> {
    // A prediction with uncertainty bands is scored on its `mean` unless --band says otherwise.
    let bands = match a.band {
        None => uncertainty_bands(&a.prediction)?,
        Some(_) => None,
    };
    Ok(match bands {
        Some(BandIndex {
            mean: m,
            std: sd,
            q05,
            q95,
        }) => {
            let interval = match (q05, q95) {
                (Some(l), Some(h)) => {
                    Some((read_band(&a.prediction, l)?, read_band(&a.prediction, h)?))
                }
                _ => None,
            };
            (
                read_band(&a.prediction, m)?,
                Some(SpreadBands {
                    std: read_band(&a.prediction, sd)?,
                    interval,
                }),
            )
        }
        None => (scored_band(&a.prediction, a.band, "prediction")?, None),
    })
}

/// The prediction's figures against the reference (and its uncertainty's, if scored).
fn write_figures(
    a: &EvaluateArgs,
    dir: &Path,
    out: &EvalOut,
    pred: &Raster,
    spread: Option<&SpreadBands>,
    reference: &Raster,
    coarse: Option<&Raster>,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    prediction_figures(
        dir,
        "evaluation",
        "Prediction",
        pred,
        reference,
        coarse,
        a.force,
    )?;
    if let (Some(u), Some(sb)) = (&out.uncertainty, spread) {
        uncertainty_figures(
            dir,
            "evaluation",
            "Prediction",
            u,
            pred,
            &sb.std,
            reference,
            a.force,
        )?;
    }
    Ok(())
}

/// Prints the scores: a table, or JSON with `--json`.
fn print_scores(a: &EvaluateArgs, out: &EvalOut) -> Result<()> {
    // Written with `?`, so that a closed pipe ends the program quietly (see `main`).
    let mut w = std::io::stdout().lock();
    if a.json {
        writeln!(w, "{}", serde_json::to_string_pretty(out)?)?;
        return Ok(());
    }
    writeln!(w, "{}", metrics_header())?;
    if let Some(m) = &out.reference {
        writeln!(w, "{}", metrics_row("reference", m))?;
    }
    if let Some(m) = &out.aggregated_back {
        writeln!(w, "{}", metrics_row("aggregated back", m))?;
    }
    if let Some(s) = &out.stations {
        match &s.metrics {
            Some(m) => writeln!(w, "{}", metrics_row("stations", m))?,
            None => writeln!(w, "stations: none scored")?,
        }
        writeln!(
            w,
            "stations skipped: {} outside the grid, {} on nodata, {} without a value",
            s.skip_counts.outside_grid, s.skip_counts.nodata, s.skip_counts.missing_value
        )?;
    }
    if let Some(u) = &out.uncertainty {
        writeln!(w, "\n{}", uncertainty_line(u))?;
    }
    if let Some(cl) = &out.classes {
        writeln!(w, "\nper class:")?;
        for c in cl {
            writeln!(
                w,
                "{}",
                metrics_row(&format!("class {}", c.class), &c.metrics)
            )?;
        }
    }
    Ok(())
}
