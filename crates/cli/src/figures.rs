//! PNG figures: maps with a colour bar, prediction-vs-reference scatter, training curves.
//!
//! Drawn with plotters' bitmap backend and an embedded DejaVu Sans font, so no system
//! library is needed.

use std::path::Path;
use std::sync::Once;

use amun_core::raster::Raster;
use anyhow::{anyhow, Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        // The bundled font is valid TrueType; failure would only mean text is not drawn.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Draws the series' legend on a white, framed box (plotters' default place unless given).
fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    position: Option<SeriesLabelPosition>,
) -> Result<()> {
    let mut labels = chart.configure_series_labels();
    if let Some(p) = position {
        labels.position(p);
    }
    labels
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| anyhow!("{e}"))
}

/// A colour scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    /// Blue → yellow → red, for temperatures.
    Temperature,
    /// Blue → white → red around zero, for differences.
    Diverging,
}

impl Palette {
    /// The colour of `t` in 0–1 (clamped; not finite → the low end).
    pub fn color(self, t: f64) -> RGBColor {
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // Colour Brewer's RdYlBu and RdBu, reversed so that warm is high.
        let c = match self {
            Palette::Temperature => colorous::RED_YELLOW_BLUE.eval_continuous(1.0 - t),
            Palette::Diverging => colorous::RED_BLUE.eval_continuous(1.0 - t),
        };
        RGBColor(c.r, c.g, c.b)
    }
}

/// The 2nd and 98th percentiles of the valid values: a colour range robust to outliers.
pub fn robust_range(rasters: &[&Raster]) -> Option<(f64, f64)> {
    let mut v: Vec<f32> = rasters
        .iter()
        .flat_map(|r| r.data().iter().copied().filter(|x| x.is_finite()))
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    let q = |p: f64| f64::from(v[((v.len() - 1) as f64 * p).round() as usize]);
    let (lo, hi) = (q(0.02), q(0.98));
    if hi > lo {
        Some((lo, hi))
    } else {
        Some((lo - 0.5, hi + 0.5))
    }
}

/// One map panel: a raster, its title, palette and value range.
pub struct MapPanel<'a> {
    /// The data.
    pub raster: &'a Raster,
    /// Title above the map.
    pub title: String,
    /// Colour scale.
    pub palette: Palette,
    /// Values mapped to the ends of the colour scale.
    pub range: (f64, f64),
    /// Units for the colour bar label.
    pub units: &'a str,
}

fn map_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    p: &MapPanel,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let grid = p.raster.grid();
    let (xmin, ymin, xmax, ymax) = grid.bounds();
    let (w, _h) = area.dim_in_pixel();
    let (map_area, bar_area) = area.split_horizontally(w.saturating_sub(85));
    let geographic = grid.crs().and_then(|c| c.is_geographic()).unwrap_or(false);
    let (xdesc, ydesc) = if geographic {
        ("Longitude (°)", "Latitude (°)")
    } else {
        ("x", "y")
    };
    let mut chart = ChartBuilder::on(&map_area)
        .caption(&p.title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(xmin..xmax, ymin..ymax)
        .map_err(|e| anyhow!("drawing map: {e}"))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(xdesc)
        .y_desc(ydesc)
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&|v| format!("{v:.2}"))
        .y_label_formatter(&|v| format!("{v:.2}"))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| anyhow!("drawing axes: {e}"))?;
    // Paint every screen pixel of the plotting area from the raster pixel under it.
    let plot = chart.plotting_area();
    let (xr, yr) = plot.get_pixel_range();
    let pixels = plot.strip_coord_spec();
    let (pw, ph) = ((xr.end - xr.start).max(1), (yr.end - yr.start).max(1));
    let data = p.raster.data();
    let (lo, hi) = p.range;
    for sy in 0..ph {
        let row = ((f64::from(sy) + 0.5) / f64::from(ph) * grid.height() as f64) as usize;
        for sx in 0..pw {
            let col = ((f64::from(sx) + 0.5) / f64::from(pw) * grid.width() as f64) as usize;
            let v = data[(row.min(grid.height() - 1), col.min(grid.width() - 1))];
            let color = if v.is_nan() {
                RGBColor(200, 200, 200)
            } else {
                p.palette.color((f64::from(v) - lo) / (hi - lo))
            };
            pixels
                .draw_pixel((sx, sy), &color)
                .map_err(|e| anyhow!("drawing pixel: {e}"))?;
        }
    }
    // Colour bar.
    let mut bar = ChartBuilder::on(&bar_area)
        .margin_top(34)
        .margin_bottom(44)
        .margin_right(40)
        .y_label_area_size(0)
        .right_y_label_area_size(40)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(|e| anyhow!("drawing colour bar: {e}"))?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_desc(p.units)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| anyhow!("drawing colour bar axis: {e}"))?;
    let steps = 128;
    bar.draw_series((0..steps).map(|i| {
        let a = lo + (hi - lo) * i as f64 / steps as f64;
        let b = lo + (hi - lo) * (i + 1) as f64 / steps as f64;
        Rectangle::new(
            [(0.0, a), (1.0, b)],
            p.palette.color((i as f64 + 0.5) / steps as f64).filled(),
        )
    }))
    .map_err(|e| anyhow!("drawing colour bar: {e}"))?;
    Ok(())
}

/// Writes a row of map panels (e.g. reference / input / prediction / bias) to a PNG.
///
/// # Errors
/// If drawing or writing the file fails.
pub fn maps_png(path: &Path, panels: &[MapPanel]) -> Result<()> {
    register_font();
    if panels.is_empty() {
        return Err(anyhow!("no map to draw"));
    }
    let panel_w = 460u32;
    let aspect = {
        let g = panels[0].raster.grid();
        (g.height() as f64 * g.pixel_height()) / (g.width() as f64 * g.pixel_width())
    };
    let panel_h = ((panel_w - 140) as f64 * aspect.clamp(0.3, 3.0)) as u32 + 90;
    let width = panel_w * panels.len() as u32;
    crate::output::write_png_atomic(path, |tmp| {
        let root = BitMapBackend::new(tmp, (width, panel_h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let areas = root.split_evenly((1, panels.len()));
        for (area, p) in areas.iter().zip(panels) {
            map_panel(area, p)?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// A density scatter of prediction against reference, binned.
pub struct ScatterPlot<'a> {
    /// Title.
    pub title: String,
    /// Bin counts `[ny][nx]`: y is the prediction, x the reference.
    pub counts: &'a [Vec<u64>],
    /// Range of the reference (x) and prediction (y) axes; equal for a square plot.
    pub range: (f64, f64),
    /// Least-squares line `y = slope·x + intercept`.
    pub line: Option<(f64, f64)>,
    /// Lines of text drawn in the upper-left corner (metrics).
    pub text: Vec<String>,
}

/// Writes a density scatter with the 1:1 line, the regression line and the metrics.
///
/// # Errors
/// If drawing or writing the file fails.
pub fn scatter_png(path: &Path, s: &ScatterPlot) -> Result<()> {
    register_font();
    crate::output::write_png_atomic(path, |tmp| {
        let root = BitMapBackend::new(tmp, (560, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let (lo, hi) = s.range;
        let mut chart = ChartBuilder::on(&root)
            .caption(&s.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(lo..hi, lo..hi)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("Reference LST (K)")
            .y_desc("Predicted LST (K)")
            .label_style(("sans-serif", 12))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        let ny = s.counts.len();
        let nx = s.counts.first().map_or(0, Vec::len);
        let max = s.counts.iter().flatten().copied().max().unwrap_or(0).max(1);
        let lmax = (max as f64).ln_1p();
        let (dx, dy) = ((hi - lo) / nx.max(1) as f64, (hi - lo) / ny.max(1) as f64);
        chart
            .draw_series(s.counts.iter().enumerate().flat_map(|(j, row)| {
                row.iter()
                    .enumerate()
                    .filter(|(_, &c)| c > 0)
                    .map(move |(i, &c)| {
                        let t = (c as f64).ln_1p() / lmax;
                        let x0 = lo + i as f64 * dx;
                        let y0 = lo + j as f64 * dy;
                        Rectangle::new(
                            [(x0, y0), (x0 + dx, y0 + dy)],
                            Palette::Temperature.color(0.15 + 0.85 * t).filled(),
                        )
                    })
            }))
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.stroke_width(1)))
            .map_err(|e| anyhow!("{e}"))?
            .label("1:1")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
        if let Some((a, b)) = s.line {
            let red = RGBColor(200, 30, 30);
            chart
                .draw_series(LineSeries::new(
                    [(lo, a * lo + b), (hi, a * hi + b)],
                    red.stroke_width(2),
                ))
                .map_err(|e| anyhow!("{e}"))?
                .label(format!(
                    "fit y = {a:.3}x {} {:.2}",
                    if b < 0.0 { '-' } else { '+' },
                    b.abs()
                ))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], red.stroke_width(2)));
        }
        draw_legend(&mut chart, Some(SeriesLabelPosition::LowerRight))?;
        let plot = chart.plotting_area().strip_coord_spec();
        for (i, line) in s.text.iter().enumerate() {
            plot.draw_text(
                line,
                &("sans-serif", 13).into_text_style(&plot),
                (10, 10 + 17 * i as i32),
            )
            .map_err(|e| anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// Writes training curves (train and validation RMSE per epoch, kelvin).
///
/// # Errors
/// If drawing or writing the file fails.
pub fn curves_png(path: &Path, title: &str, train: &[f64], val: &[f64]) -> Result<()> {
    lines_png(
        path,
        title,
        "Epoch",
        "RMSE (K)",
        &[("train", train), ("validation", val)],
    )
}

/// One forecast's calibration data for [`pit_png`] and [`reliability_png`].
pub struct Calibration<'a> {
    /// Legend name.
    pub name: &'a str,
    /// PIT histogram frequencies (equal bins over [0, 1]).
    pub pit: &'a [f64],
    /// Reliability diagram: nominal levels and observed frequencies.
    pub nominal: &'a [f64],
    /// Observed fraction below each nominal quantile.
    pub observed: &'a [f64],
}

/// The colour of the `i`-th line of a chart: Tableau's ten categorical colours, which stay
/// apart for the demo's five or six methods.
fn series_colour(i: usize) -> RGBColor {
    let c = colorous::TABLEAU10[i % colorous::TABLEAU10.len()];
    RGBColor(c.r, c.g, c.b)
}

/// Writes PIT histograms (one outlined histogram per forecast, as densities, with the flat
/// line of a calibrated forecast).
///
/// # Errors
/// If drawing or writing the file fails.
pub fn pit_png(path: &Path, title: &str, series: &[Calibration]) -> Result<()> {
    register_font();
    crate::output::write_png_atomic(path, |tmp| {
        let root = BitMapBackend::new(tmp, (640, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let ymax = series
            .iter()
            .flat_map(|s| s.pit.iter().map(move |f| f * s.pit.len() as f64))
            .fold(1.5f64, f64::max)
            * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..1.0, 0.0..ymax)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("PIT")
            .y_desc("Density")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(LineSeries::new([(0.0, 1.0), (1.0, 1.0)], BLACK.mix(0.6)))
            .map_err(|e| anyhow!("{e}"))?;
        for (k, s) in series.iter().enumerate() {
            let color = series_colour(k);
            let b = s.pit.len().max(1) as f64;
            // A step outline: each bin's density across its width.
            let pts: Vec<(f64, f64)> = s
                .pit
                .iter()
                .enumerate()
                .flat_map(|(i, f)| [(i as f64 / b, f * b), ((i + 1) as f64 / b, f * b)])
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| anyhow!("{e}"))?
                .label(s.name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        draw_legend(&mut chart, None)?;
        root.present().map_err(|e| anyhow!("{e}"))?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// Writes a reliability diagram: observed frequency below each predicted quantile against
/// its nominal level, with the diagonal of a calibrated forecast.
///
/// # Errors
/// If drawing or writing the file fails.
pub fn reliability_png(path: &Path, title: &str, series: &[Calibration]) -> Result<()> {
    register_font();
    crate::output::write_png_atomic(path, |tmp| {
        let root = BitMapBackend::new(tmp, (480, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("Nominal probability")
            .y_desc("Observed frequency")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.6)))
            .map_err(|e| anyhow!("{e}"))?;
        for (i, s) in series.iter().enumerate() {
            let color = series_colour(i);
            let pts: Vec<(f64, f64)> = s
                .nominal
                .iter()
                .copied()
                .zip(s.observed.iter().copied())
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| anyhow!("{e}"))?
                .label(s.name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(|e| anyhow!("{e}"))?;
        }
        draw_legend(&mut chart, Some(SeriesLabelPosition::UpperLeft))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// Writes a line chart of named series over 1, 2, … (`x_desc` on the x axis, `y_desc` on the
/// y axis, from zero); non-finite values are left out of the lines.
pub fn lines_png(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(&str, &[f64])],
) -> Result<()> {
    register_font();
    crate::output::write_png_atomic(path, |tmp| {
        let root = BitMapBackend::new(tmp, (640, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let n = series.iter().map(|s| s.1.len()).max().unwrap_or(0).max(2);
        let finite = || {
            series
                .iter()
                .flat_map(|s| s.1.iter().copied())
                .filter(|v| v.is_finite())
        };
        let ymax = finite().fold(0.0f64, f64::max).max(1e-3) * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(1.0..n as f64, 0.0..ymax)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (i, (name, values)) in series.iter().enumerate() {
            let color = series_colour(i);
            chart
                .draw_series(LineSeries::new(
                    values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(i, &v)| ((i + 1) as f64, v)),
                    color.stroke_width(2),
                ))
                .map_err(|e| anyhow!("{e}"))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        draw_legend(&mut chart, None)?;
        root.present().map_err(|e| anyhow!("{e}"))?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}
