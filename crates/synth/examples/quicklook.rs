//! Writes a PNG quicklook of one synthetic world: elevation, land cover, NDVI (July), the
//! fine LST truth and the 10× coarse LST (July, 13:00), and the fine detail the coarse field
//! misses (truth − bilinear of the coarse field).
//!
//! `cargo run --release -p amun-synth --example quicklook -- [out.png] [seed]`
//! (default `crates/synth/docs/quicklook.png`, seed 42). The committed file was then
//! reduced to a 128-colour palette: `python3 -c "from PIL import Image; im = Image.open('crates/synth/docs/quicklook.png'); im.convert('RGB').quantize(128).save('crates/synth/docs/quicklook.png', optimize=True)"`.

use amun_indices::Igbp;
use amun_raster::{resample, Raster, Resampling};
use amun_synth::{World, WorldParams};
use plotters::prelude::*;
use plotters::style::FontStyle;

const MAP: u32 = 160;
const PANEL_W: u32 = MAP + 20;
const PANEL_H: u32 = MAP + 70;

/// Linear interpolation between colour stops spread evenly over 0–1.
fn ramp(stops: &[(u8, u8, u8)], t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (t.floor() as usize).min(stops.len() - 2);
    let f = t - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |x: u8, y: u8| (f64::from(x) + f * (f64::from(y) - f64::from(x))).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

const TERRAIN: [(u8, u8, u8); 5] = [
    (40, 110, 60),
    (150, 180, 90),
    (220, 200, 130),
    (150, 110, 80),
    (250, 250, 250),
];
const NDVI: [(u8, u8, u8); 4] = [(120, 90, 60), (220, 200, 140), (120, 180, 70), (20, 90, 30)];
const HEAT: [(u8, u8, u8); 5] = [
    (40, 20, 90),
    (60, 100, 200),
    (120, 200, 160),
    (250, 200, 60),
    (200, 40, 30),
];
const DIVERGING: [(u8, u8, u8); 3] = [(40, 80, 200), (245, 245, 245), (200, 40, 30)];

fn class_colour(code: f32) -> RGBColor {
    match Igbp::from_value(code) {
        Some(Igbp::Water) => RGBColor(50, 100, 200),
        Some(Igbp::SnowIce) => RGBColor(250, 250, 250),
        Some(Igbp::Barren) => RGBColor(190, 170, 140),
        Some(Igbp::UrbanBuiltUp) => RGBColor(200, 30, 30),
        Some(Igbp::Cropland) => RGBColor(240, 220, 80),
        Some(Igbp::Grassland) => RGBColor(160, 210, 100),
        Some(_) => RGBColor(30, 110, 50),
        None => RGBColor(0, 0, 0),
    }
}

/// Draws one map panel (nearest-neighbour scaled to `MAP` pixels) with a title and a
/// colour bar labelled with its range.
fn panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    r: &Raster,
    colour: &dyn Fn(f64) -> RGBColor,
    range: Option<(f64, f64, &str)>,
) -> anyhow::Result<()> {
    area.fill(&WHITE)?;
    area.draw_text(title, &("sans-serif", 14).into_text_style(area), (10, 4))?;
    let (h, w) = r.grid().shape();
    for y in 0..MAP {
        for x in 0..MAP {
            let (row, col) = (y as usize * h / MAP as usize, x as usize * w / MAP as usize);
            let v = r.data()[(row, col)];
            let c = if v.is_nan() {
                BLACK
            } else {
                colour(f64::from(v))
            };
            area.draw_pixel((10 + x as i32, 22 + y as i32), &c)?;
        }
    }
    if let Some((lo, hi, unit)) = range {
        let y0 = 22 + MAP as i32 + 6;
        for x in 0..MAP as i32 {
            let v = lo + (hi - lo) * f64::from(x) / f64::from(MAP - 1);
            area.draw(&Rectangle::new(
                [(10 + x, y0), (11 + x, y0 + 10)],
                colour(v).filled(),
            ))?;
        }
        let style = ("sans-serif", 12).into_text_style(area);
        area.draw_text(&format!("{lo:.1}"), &style, (10, y0 + 13))?;
        let right = format!("{hi:.1} {unit}");
        area.draw_text(
            &right,
            &style,
            (MAP as i32 - 6 * right.len() as i32 + 10, y0 + 13),
        )?;
    }
    Ok(())
}

fn range(r: &Raster) -> (f64, f64) {
    let s = r.stats().expect("the world has valid pixels");
    (s.min, s.max)
}

/// Writes a PNG quicklook of one synthetic world.
#[derive(clap::Parser)]
struct Args {
    /// The PNG to write.
    #[arg(default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/quicklook.png"))]
    out: String,
    /// The world's seed.
    #[arg(default_value_t = 42)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let Args { out, seed } = clap::Parser::parse();
    plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow::anyhow!("cannot load the DejaVu font"))?;

    let world = World::generate(&WorldParams::new().seed(seed))?;
    let (month, hour, k) = (7, 13, 10);
    let cov = world.covariates(month)?;
    let fine = world.lst(month, hour)?;
    let coarse = world.coarse_lst(month, hour, k)?;
    let up = resample(&coarse, world.grid(), Resampling::Bilinear)?;
    let mut detail = fine.clone();
    ndarray::Zip::from(detail.data_mut())
        .and(up.data())
        .for_each(|a, &b| *a -= b);

    let root = BitMapBackend::new(&out, (3 * PANEL_W, 2 * PANEL_H)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((2, 3));
    let (zlo, zhi) = range(world.elevation());
    panel(
        &panels[0],
        "elevation",
        world.elevation(),
        &|v| ramp(&TERRAIN, (v - zlo) / (zhi - zlo)),
        Some((zlo, zhi, "m")),
    )?;
    panel(
        &panels[1],
        "land cover (IGBP)",
        world.landcover(),
        &|v| class_colour(v as f32),
        None,
    )?;
    panel(
        &panels[2],
        "NDVI, July",
        cov.band("ndvi")?,
        &|v| ramp(&NDVI, (v + 0.2) / 1.2),
        Some((-0.2, 1.0, "")),
    )?;
    let (tlo, thi) = range(&fine);
    let heat = |v: f64| ramp(&HEAT, (v - tlo) / (thi - tlo));
    panel(
        &panels[3],
        "LST 0.01°, July 13:00",
        &fine,
        &heat,
        Some((tlo, thi, "K")),
    )?;
    panel(
        &panels[4],
        "LST 0.1° (10× block mean)",
        &coarse,
        &heat,
        Some((tlo, thi, "K")),
    )?;
    panel(
        &panels[5],
        "truth − bilinear(coarse)",
        &detail,
        &|v| ramp(&DIVERGING, (v + 6.0) / 12.0),
        Some((-6.0, 6.0, "K")),
    )?;
    root.present()?;
    println!(
        "wrote {out} (world {}×{}, seed {seed})",
        world.grid().width(),
        world.grid().height()
    );
    Ok(())
}
