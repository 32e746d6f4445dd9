//! `amun prepare`: a coarse LST and fine covariates aligned into a scene folder.

mod series;

use std::path::PathBuf;

use amun_core::metrics::read_stations;
use amun_core::{write_atomic, SceneInputs};
use anyhow::{Context, Result};
use clap::Args;

use super::{check_file, factor_parser, Ctx};
use crate::output::check_writable;

#[derive(Args, Debug)]
pub struct PrepareArgs {
    /// Coarse LST GeoTIFF (kelvin), e.g. ERA5-Land skin temperature at 0.1°.
    #[arg(long)]
    pub lst: PathBuf,
    /// Output scene folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Coarse-to-fine factor (0.1° → 0.01° is 10; at least 1).
    #[arg(long, default_value_t = 10, value_parser = factor_parser())]
    pub factor: usize,
    /// Scene name (default: the LST file name).
    #[arg(long)]
    pub name: Option<String>,
    /// Month 1–12 of the scene.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=12))]
    pub month: Option<u32>,
    /// Hour 0–23 of the scene.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=23))]
    pub hour: Option<u32>,
    /// NDVI GeoTIFF.
    #[arg(long)]
    pub ndvi: Option<PathBuf>,
    /// Land cover (IGBP codes, MCD12Q1 LC_Type1).
    #[arg(long)]
    pub landcover: Option<PathBuf>,
    /// Surface reflectance (or albedo) GeoTIFF.
    #[arg(long)]
    pub reflectance: Option<PathBuf>,
    /// MNDWI GeoTIFF (else computed from --green and --swir).
    #[arg(long)]
    pub mndwi: Option<PathBuf>,
    /// NDBI GeoTIFF (else computed from --swir and --nir).
    #[arg(long)]
    pub ndbi: Option<PathBuf>,
    /// Slope in degrees (else computed from --dem).
    #[arg(long)]
    pub slope: Option<PathBuf>,
    /// Aspect in degrees clockwise from north (else computed from --dem).
    #[arg(long)]
    pub aspect: Option<PathBuf>,
    /// DEM (metres): slope and aspect are computed from it (Horn's method).
    #[arg(long)]
    pub dem: Option<PathBuf>,
    /// Also add the DEM as an `elevation` covariate.
    #[arg(long, requires = "dem")]
    pub elevation: bool,
    /// Green band (for MNDWI).
    #[arg(long)]
    pub green: Option<PathBuf>,
    /// Red band (for NDVI).
    #[arg(long)]
    pub red: Option<PathBuf>,
    /// Near-infrared band (for NDVI, NDBI).
    #[arg(long)]
    pub nir: Option<PathBuf>,
    /// Shortwave-infrared band (for MNDWI, NDBI).
    #[arg(long)]
    pub swir: Option<PathBuf>,
    /// Raw bands are MODIS surface reflectance (scale 0.0001, fill −28672).
    #[arg(long)]
    pub modis_scale: bool,
    /// Extra covariate as NAME=FILE (repeatable).
    #[arg(long = "extra", value_parser = parse_named_path)]
    pub extra: Vec<(String, PathBuf)>,
    /// Fine reference LST, for scoring.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Station CSV (columns id,lon,lat,value and optionally time) copied into the scene folder.
    #[arg(long)]
    pub stations: Option<PathBuf>,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub series: series::SeriesArgs,
}

pub fn parse_named_path(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_string(), PathBuf::from(p))),
        _ => Err(format!("expected NAME=FILE, got `{s}`")),
    }
}

/// Runs `amun prepare`.
pub fn run(ctx: &Ctx, a: &PrepareArgs) -> Result<()> {
    for p in [
        Some(&a.lst),
        a.ndvi.as_ref(),
        a.landcover.as_ref(),
        a.reflectance.as_ref(),
        a.mndwi.as_ref(),
        a.ndbi.as_ref(),
        a.slope.as_ref(),
        a.aspect.as_ref(),
        a.dem.as_ref(),
        a.green.as_ref(),
        a.red.as_ref(),
        a.nir.as_ref(),
        a.swir.as_ref(),
        a.reference.as_ref(),
        a.stations.as_ref(),
    ]
    .into_iter()
    .flatten()
    .chain(a.extra.iter().map(|(_, p)| p))
    {
        check_file(p)?;
    }
    check_writable(&a.out.join(amun_core::layout::MANIFEST), a.force)?;
    let inputs = SceneInputs {
        name: a.name.clone(),
        lst: a.lst.clone(),
        factor: a.factor,
        month: a.month,
        hour: a.hour,
        ndvi: a.ndvi.clone(),
        landcover: a.landcover.clone(),
        reflectance: a.reflectance.clone(),
        mndwi: a.mndwi.clone(),
        ndbi: a.ndbi.clone(),
        slope: a.slope.clone(),
        aspect: a.aspect.clone(),
        dem: a.dem.clone(),
        elevation_band: a.elevation,
        green: a.green.clone(),
        red: a.red.clone(),
        nir: a.nir.clone(),
        swir: a.swir.clone(),
        band_scaling: if a.modis_scale {
            amun_core::indices::Reflectance::modis()
        } else {
            amun_core::indices::Reflectance::unscaled()
        },
        extra: a.extra.clone(),
        reference: a.reference.clone(),
    };
    if series::wanted(a)? {
        return series::run(ctx, a, inputs);
    }
    let scene = inputs.build()?;
    // Said whether or not -v is given: resampling changes the values a model sees.
    for r in scene.resampled() {
        ctx.say(&format!("{r}"));
    }
    scene.save(&a.out)?;
    if let Some(st) = &a.stations {
        // Validate before copying, so a broken CSV is reported now.
        read_stations(st)?;
        let bytes = std::fs::read(st).with_context(|| format!("reading {}", st.display()))?;
        write_atomic(a.out.join("stations.csv"), &bytes)?;
    }
    ctx.say(&format!(
        "wrote {} ({}×{} fine pixels, factor {}, covariates: {})",
        a.out.display(),
        scene.fine_grid().width(),
        scene.fine_grid().height(),
        scene.factor(),
        scene.covariates().names().join(", ")
    ));
    Ok(())
}
