//! `amun synth`: a synthetic world written as scene folders.

use std::path::{Path, PathBuf};

use amun_core::metrics::Station;
use amun_core::raster::Raster;
use amun_core::synth::{World, WorldParams};
use amun_core::{write_atomic, Scene};
use anyhow::{anyhow, bail, Result};
use clap::Args;

use super::{factor_parser, Ctx};
use crate::output::check_writable;

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output folder (one scene folder per month inside).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fine grid side in pixels (0.01° each); a multiple of the factor.
    #[arg(long, default_value_t = 320)]
    pub size: usize,
    /// Coarse-to-fine factor (at least 1).
    #[arg(long, default_value_t = 10, value_parser = factor_parser())]
    pub factor: usize,
    /// Months to write (1–12), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,7,10")]
    pub months: Vec<u32>,
    /// Local solar hour of the LST (0–23).
    #[arg(long, default_value_t = 13)]
    pub hour: u32,
    /// Synthetic stations to write per scene (stations.csv), sampled from the truth.
    #[arg(long, default_value_t = 40)]
    pub stations: usize,
    /// The world's variant.
    #[arg(long, value_enum, default_value_t = WorldVariant::Default)]
    pub world: WorldVariant,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// A variant of the synthetic world.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorldVariant {
    /// The demo's world.
    Default,
    /// Strong relief: 5 km of relief at half the terrain wavelength.
    Relief,
}

impl WorldVariant {
    /// The variant's name in reports and folder names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Relief => "relief",
        }
    }

    /// The world's parameters for a seed and a side in fine pixels.
    pub fn params(self, seed: u64, size: usize) -> WorldParams {
        let p = WorldParams::new().seed(seed).size(size, size);
        match self {
            Self::Default => p,
            Self::Relief => p
                .relief_m(5000.0)
                .terrain_wavelength_deg(0.5)
                .snow_line_m(4600.0)
                .treeline_m(3800.0),
        }
    }
}

/// Builds the scene of one month of a synthetic world (with its fine truth).
pub fn synth_scene(world: &World, month: u32, hour: u32, factor: usize) -> Result<Scene> {
    // The paper's seven covariates plus elevation, as `amun prepare --dem … --elevation`
    // gives: temperature follows terrain, and every method should see the DEM.
    let mut covariates = world.covariates(month)?;
    covariates.push("elevation", world.elevation().clone())?;
    Ok(Scene::new(
        format!("month-{month:02}"),
        world.coarse_lst(month, hour, factor)?,
        covariates,
    )?
    .with_reference(world.lst(month, hour)?)?
    .with_time(Some(month), Some(hour))?)
}

/// Stations at pseudo-random pixel centres of the truth (deterministic for a seed).
pub fn synth_stations(truth: &Raster, n: usize, seed: u64) -> Vec<Station> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let g = truth.grid();
    let mut out = Vec::with_capacity(n);
    let mut tries = 0;
    while out.len() < n && tries < 100 * n.max(1) {
        tries += 1;
        let (c, r) = (
            rng.random_range(0..g.width()),
            rng.random_range(0..g.height()),
        );
        if let Some(v) = truth.get(r, c) {
            let (lon, lat) = g.pixel_center(c, r);
            out.push(Station {
                id: format!("S{:03}", out.len() + 1),
                lon,
                lat,
                value: Some(f64::from(v)),
                time: None,
            });
        }
    }
    out
}

/// Writes stations as `id,lon,lat,value` CSV.
pub fn write_stations(path: &Path, stations: &[Station]) -> Result<()> {
    let mut s = String::from("id,lon,lat,value\n");
    for st in stations {
        s.push_str(&format!(
            "{},{:.6},{:.6},{}\n",
            st.id,
            st.lon,
            st.lat,
            st.value.map_or(String::new(), |v| format!("{v:.3}"))
        ));
    }
    Ok(write_atomic(path, s.as_bytes())?)
}

/// Runs `amun synth`.
pub fn run(ctx: &Ctx, a: &SynthArgs) -> Result<()> {
    if !a.size.is_multiple_of(a.factor) {
        bail!(
            "--size {} is not a multiple of --factor {}",
            a.size,
            a.factor
        );
    }
    if let Some(m) = a.months.iter().find(|m| !(1..=12).contains(*m)) {
        bail!("month {m} is not in 1–12");
    }
    let params = a.world.params(a.seed, a.size);
    ctx.say(&format!(
        "generating a {0}×{0} {2} world (seed {1})",
        a.size,
        a.seed,
        a.world.name()
    ));
    let world = World::generate(&params)?;
    for &m in &a.months {
        let dir = a.out.join(format!("month-{m:02}"));
        check_writable(&dir.join(amun_core::layout::MANIFEST), a.force)?;
        let scene = synth_scene(&world, m, a.hour, a.factor)?;
        scene.save(&dir)?;
        if a.stations > 0 {
            let truth = scene.reference().ok_or_else(|| anyhow!("no truth"))?;
            write_stations(
                &dir.join("stations.csv"),
                &synth_stations(truth, a.stations, a.seed ^ u64::from(m)),
            )?;
        }
        ctx.say(&format!("wrote {}", dir.display()));
    }
    Ok(())
}
