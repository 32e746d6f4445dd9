//! The subcommands other than `demo`, one module each, and what they share.

pub mod baseline;
pub mod downscale;
pub mod evaluate;
pub mod info;
pub mod mosaic;
pub mod prepare;
pub mod slurm_script;
pub mod synth;
pub mod train;
pub mod tune;
pub mod uncertain;

use std::path::{Path, PathBuf};

use amun_core::net::AmunConfig;
use amun_core::raster::{write_raster, Raster, WriteOptions};
use amun_core::Scene;
use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use crate::output::check_writable;
use crate::progress::Bars;

/// What every command gets: verbosity and the progress bars.
pub struct Ctx {
    /// `-v` count.
    pub verbose: u8,
    /// Progress bars (hidden with `-q`).
    pub bars: Bars,
}

impl Ctx {
    /// From the global flags.
    pub fn new(verbose: u8, quiet: bool) -> Self {
        Self {
            verbose,
            bars: Bars::new(quiet),
        }
    }

    /// A status line on stderr (hidden with `-q`).
    pub fn say(&self, msg: &str) {
        self.bars.println(msg);
    }

    /// A warning on stderr: shown even with `-q`.
    pub fn warn(&self, msg: &str) {
        self.bars.warn(&format!("warning: {msg}"));
    }

    /// A detail line on stderr, shown with `-v`.
    pub fn detail(&self, msg: &str) {
        if self.verbose > 0 {
            self.bars.println(msg);
        }
    }
}

/// Reads a scene folder with an error that says how to make one.
pub fn load_scene(dir: &Path) -> Result<Scene> {
    if !dir.is_dir() {
        bail!(
            "{}: no such scene folder (make one with `amun prepare` or `amun synth`)",
            dir.display()
        );
    }
    Scene::load(dir).with_context(|| format!("scene folder {}", dir.display()))
}

pub fn load_scenes(dirs: &[PathBuf]) -> Result<Vec<Scene>> {
    dirs.iter().map(|d| load_scene(d)).collect()
}

pub fn check_file(path: &Path) -> Result<()> {
    if !path.exists() {
        bail!("{}: no such file", path.display());
    }
    Ok(())
}

/// Writes one raster as a float32 Deflate-compressed tiled GeoTIFF (atomically).
pub fn write_geotiff(path: &Path, raster: &Raster, force: bool) -> Result<()> {
    check_writable(path, force)?;
    write_raster(path, raster, &WriteOptions::default())
        .with_context(|| format!("writing {}", path.display()))
}

/// Model size preset.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// About 2 M parameters: trains on a laptop CPU.
    Small,
    /// Close to the paper's 84 MB of weights.
    Paper,
}

/// A coarse-to-fine factor: a whole number of fine pixels per coarse pixel, so at least 1.
pub fn factor_parser() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

/// The model configuration of a preset.
pub fn preset(p: Preset) -> AmunConfig {
    match p {
        Preset::Small => AmunConfig::small(),
        Preset::Paper => AmunConfig::paper(),
    }
}
