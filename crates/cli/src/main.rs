//! `amun`: downscale land surface temperature from the command line.

mod commands;
mod demo;
mod figures;
mod output;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  amun demo --out demo                       # the whole job on a synthetic world
  amun info lst.tif                          # what a GeoTIFF holds (like gdalinfo -stats)
  amun synth --out world --months 1,4,7,10   # write a synthetic world as scene folders
  amun prepare --lst era5_lst.tif --ndvi ndvi.tif --landcover lc.tif --dem dem.tif --out scene
  amun train --scenes world/month-01 world/month-04 --out model
  amun downscale --checkpoint model --scene scene --out lst_fine.tif --conserve
  amun evaluate --prediction lst_fine.tif --reference truth.tif --coarse era5_lst.tif
  amun tune --scenes world/month-01 world/month-04 --trials 30 --out tuning
  amun baseline rf --train world/month-01 --scene world/month-07 --out rf.tif";

/// Downscale land surface temperature (ERA5-Land 0.1° → 0.01°) with the AMUN attention U-Net,
/// a random forest or interpolation baselines.
#[derive(Parser, Debug)]
#[command(name = "amun", version, after_help = EXAMPLES, propagate_version = true)]
struct Cli {
    /// More detail on stderr (-v, -vv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Nothing on stderr but errors (no progress bars).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole job on a built-in synthetic world: AMUN, random forest and bilinear,
    /// trained on some months and tested on others; writes GeoTIFFs, figures and a report.
    #[command(
        after_help = "Example:\n  amun demo --out demo\n  amun demo --out demo --quick   # a smaller, faster run"
    )]
    Demo(DemoArgs),
    /// Describe a GeoTIFF: grid, CRS, bands, nodata and statistics.
    #[command(after_help = "Example:\n  amun info lst.tif\n  amun info lst.tif --json")]
    Info(InfoArgs),
    /// Write a synthetic world as scene folders (one per month), with fine truth.
    #[command(
        after_help = "Example:\n  amun synth --out world --size 320 --months 1,4,7,10 --hour 13"
    )]
    Synth(SynthArgs),
    /// Align a coarse LST and fine covariates into a scene folder.
    #[command(
        after_help = "Example:\n  amun prepare --lst lst_0p1.tif --ndvi ndvi.tif --landcover lc.tif \\\n    --reflectance refl.tif --green b4.tif --nir b2.tif --swir b6.tif --modis-scale \\\n    --dem srtm.tif --factor 10 --month 7 --hour 13 --out scene-2020-07"
    )]
    Prepare(Box<PrepareArgs>),
    /// Train AMUN on scene folders that have a fine reference; writes a checkpoint.
    #[command(
        after_help = "Example:\n  amun train --scenes world/month-01 world/month-04 --out model --epochs 20\n  amun train --config train.toml --scenes s1 s2 --out model\n  amun train --resume model --scenes s1 s2 --out model --epochs 40 --force"
    )]
    Train(TrainArgs),
    /// Apply a checkpoint to a scene: a fine LST GeoTIFF, tiled without seams.
    #[command(
        after_help = "Example:\n  amun downscale --checkpoint model --scene scene --out lst_fine.tif --conserve"
    )]
    Downscale(DownscaleArgs),
    /// Score a prediction against a reference raster, the coarse input (aggregated back)
    /// and/or station points.
    #[command(
        after_help = "Example:\n  amun evaluate --prediction fine.tif --reference truth.tif --figures figs\n  amun evaluate --prediction fine.tif --coarse lst_0p1.tif --stations stations.csv --json"
    )]
    Evaluate(EvaluateArgs),
    /// Bayesian search over AMUN's training hyperparameters (solver, learning rate, epochs,
    /// batch size, L2) minimising the validation RMSE.
    #[command(
        after_help = "Example:\n  amun tune --scenes world/month-01 world/month-04 --trials 30 --out tuning"
    )]
    Tune(TuneArgs),
    /// Baseline downscalers.
    #[command(subcommand)]
    Baseline(BaselineCommand),
}

#[derive(Subcommand, Debug)]
enum BaselineCommand {
    /// Random-forest downscaling: supervised on training scenes (paper-style) or fitted on
    /// the coarse pixels of the scene itself (Hutengs & Vohland) with residual correction.
    #[command(
        after_help = "Example:\n  amun baseline rf --train world/month-01 world/month-04 --scene world/month-07 --out rf.tif\n  amun baseline rf --scene scene --out rf.tif   # per-scene (no training scenes)"
    )]
    Rf(RfArgs),
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "amun-demo")]
    out: PathBuf,
    /// Overwrite the output folder's files.
    #[arg(long)]
    force: bool,
    /// A smaller world and shorter training (about a minute).
    #[arg(long)]
    quick: bool,
    /// Seed of the synthetic world and of training.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Training epochs for AMUN (default: 20, or 6 with --quick).
    #[arg(long)]
    epochs: Option<usize>,
    /// Side of the world in fine pixels, a multiple of 10, at least 80 (default: 320, or 160
    /// with --quick).
    #[arg(long)]
    size: Option<usize>,
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// The GeoTIFF.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct SynthArgs {
    /// Output folder (one scene folder per month inside).
    #[arg(long)]
    out: PathBuf,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Fine grid side in pixels (0.01° each); a multiple of the factor.
    #[arg(long, default_value_t = 320)]
    size: usize,
    /// Coarse-to-fine factor (at least 1).
    #[arg(long, default_value_t = 10, value_parser = factor_parser())]
    factor: usize,
    /// Months to write (1–12), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,7,10")]
    months: Vec<u32>,
    /// Local solar hour of the LST (0–23).
    #[arg(long, default_value_t = 13)]
    hour: u32,
    /// Synthetic stations to write per scene (stations.csv), sampled from the truth.
    #[arg(long, default_value_t = 40)]
    stations: usize,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct PrepareArgs {
    /// Coarse LST GeoTIFF (kelvin), e.g. ERA5-Land skin temperature at 0.1°.
    #[arg(long)]
    lst: PathBuf,
    /// Output scene folder.
    #[arg(long)]
    out: PathBuf,
    /// Coarse-to-fine factor (0.1° → 0.01° is 10; at least 1).
    #[arg(long, default_value_t = 10, value_parser = factor_parser())]
    factor: usize,
    /// Scene name (default: the LST file name).
    #[arg(long)]
    name: Option<String>,
    /// Month 1–12 of the scene.
    #[arg(long)]
    month: Option<u32>,
    /// Hour 0–23 of the scene.
    #[arg(long)]
    hour: Option<u32>,
    /// NDVI GeoTIFF.
    #[arg(long)]
    ndvi: Option<PathBuf>,
    /// Land cover (IGBP codes, MCD12Q1 LC_Type1).
    #[arg(long)]
    landcover: Option<PathBuf>,
    /// Surface reflectance (or albedo) GeoTIFF.
    #[arg(long)]
    reflectance: Option<PathBuf>,
    /// MNDWI GeoTIFF (else computed from --green and --swir).
    #[arg(long)]
    mndwi: Option<PathBuf>,
    /// NDBI GeoTIFF (else computed from --swir and --nir).
    #[arg(long)]
    ndbi: Option<PathBuf>,
    /// Slope in degrees (else computed from --dem).
    #[arg(long)]
    slope: Option<PathBuf>,
    /// Aspect in degrees clockwise from north (else computed from --dem).
    #[arg(long)]
    aspect: Option<PathBuf>,
    /// DEM (metres): slope and aspect are computed from it (Horn's method).
    #[arg(long)]
    dem: Option<PathBuf>,
    /// Also add the DEM as an `elevation` covariate.
    #[arg(long, requires = "dem")]
    elevation: bool,
    /// Green band (for MNDWI).
    #[arg(long)]
    green: Option<PathBuf>,
    /// Red band (for NDVI).
    #[arg(long)]
    red: Option<PathBuf>,
    /// Near-infrared band (for NDVI, NDBI).
    #[arg(long)]
    nir: Option<PathBuf>,
    /// Shortwave-infrared band (for MNDWI, NDBI).
    #[arg(long)]
    swir: Option<PathBuf>,
    /// Raw bands are MODIS surface reflectance (scale 0.0001, fill −28672).
    #[arg(long)]
    modis_scale: bool,
    /// Extra covariate as NAME=FILE (repeatable).
    #[arg(long = "extra", value_parser = parse_named_path)]
    extra: Vec<(String, PathBuf)>,
    /// Fine reference LST, for scoring.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Station CSV (columns id,lon,lat,value and optionally time) copied into the scene folder.
    #[arg(long)]
    stations: Option<PathBuf>,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

fn parse_named_path(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_string(), PathBuf::from(p))),
        _ => Err(format!("expected NAME=FILE, got `{s}`")),
    }
}

/// Model size preset.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Preset {
    /// About 2 M parameters: trains on a laptop CPU.
    Small,
    /// Close to the paper's 84 MB of weights.
    Paper,
}

/// Training-data construction (DESIGN §5).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    /// Learn from the scenes' fine reference at the target scale (paper-style simulation).
    Supervised,
    /// Learn one scale up (coarse LST aggregated again, covariates aggregated): what real
    /// data without fine truth allows.
    ScaleUp,
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Training scene folders.
    #[arg(long, num_args = 1.., required = true)]
    scenes: Vec<PathBuf>,
    /// Checkpoint folder to write.
    #[arg(long)]
    out: PathBuf,
    /// TOML file with `[model]` (AmunConfig) and `[train]` (TrainConfig) tables; flags
    /// override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Resume from this checkpoint (its model and optimiser state).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Model preset when no config is given.
    #[arg(long, value_enum, default_value_t = Preset::Small)]
    preset: Preset,
    /// How training pairs are made.
    #[arg(long, value_enum, default_value_t = Scheme::Supervised)]
    scheme: Scheme,
    /// Epochs (total, counting resumed ones).
    #[arg(long)]
    epochs: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Batch size.
    #[arg(long)]
    batch: Option<usize>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Overwrite an existing checkpoint folder.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct DownscaleArgs {
    /// Checkpoint folder (from `amun train`).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Scene folder (from `amun prepare` or `amun synth`).
    #[arg(long)]
    scene: PathBuf,
    /// Output GeoTIFF.
    #[arg(long)]
    out: PathBuf,
    /// Tile side in pixels (a multiple of 16); memory grows with it, results do not change.
    #[arg(long, default_value_t = 256)]
    tile: usize,
    /// Make block means equal the coarse input (iterative back-projection).
    #[arg(long)]
    conserve: bool,
    /// Overwrite the output.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct EvaluateArgs {
    /// The prediction GeoTIFF (fine LST).
    #[arg(long)]
    prediction: PathBuf,
    /// Fine reference LST on the prediction's grid.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Coarse input LST: the prediction is aggregated back onto it and scored.
    #[arg(long)]
    coarse: Option<PathBuf>,
    /// Stations CSV (columns id,lon,lat,value and optionally time).
    #[arg(long)]
    stations: Option<PathBuf>,
    /// Sample stations bilinearly instead of at the nearest pixel.
    #[arg(long)]
    bilinear: bool,
    /// Land-cover or terrain-class raster for per-class metrics.
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Write maps and a scatter plot into this folder.
    #[arg(long)]
    figures: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Overwrite figure files.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct TuneArgs {
    /// Training scene folders (with fine reference).
    #[arg(long, num_args = 1.., required = true)]
    scenes: Vec<PathBuf>,
    /// Output folder (history.json, results.md).
    #[arg(long)]
    out: PathBuf,
    /// Number of trials.
    #[arg(long, default_value_t = 30)]
    trials: usize,
    /// Upper bound on the epochs a trial may use (the paper's range is 10–150).
    #[arg(long, default_value_t = 150)]
    max_epochs: i64,
    /// Model preset.
    #[arg(long, value_enum, default_value_t = Preset::Small)]
    preset: Preset,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue a previous search in the output folder.
    #[arg(long)]
    resume: bool,
    /// Print the results table as JSON.
    #[arg(long)]
    json: bool,
    /// Overwrite the output folder's files.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct RfArgs {
    /// Training scene folders (with fine reference); none: fit on the scene's own coarse
    /// pixels (Hutengs & Vohland).
    #[arg(long, num_args = 0..)]
    train: Vec<PathBuf>,
    /// Scene folder to downscale.
    #[arg(long)]
    scene: PathBuf,
    /// Output GeoTIFF.
    #[arg(long)]
    out: PathBuf,
    /// Number of trees.
    #[arg(long, default_value_t = 100)]
    trees: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Overwrite the output.
    #[arg(long)]
    force: bool,
}

/// A coarse-to-fine factor: a whole number of fine pixels per coarse pixel, so at least 1.
fn factor_parser() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

fn main() -> ExitCode {
    // Training and tiled inference allocate and free megabyte tensors many times a second.
    amun_core::tune_allocator();
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        eprintln!("amun: internal error: {msg} (this is a bug; please report it)");
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let ctx = commands::Ctx::new(cli.verbose, cli.quiet);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match cli.command {
        Command::Demo(a) => demo::run(&ctx, &a),
        Command::Info(a) => commands::info(&ctx, &a),
        Command::Synth(a) => commands::synth(&ctx, &a),
        Command::Prepare(a) => commands::prepare(&ctx, &a),
        Command::Train(a) => commands::train(&ctx, &a),
        Command::Downscale(a) => commands::downscale(&ctx, &a),
        Command::Evaluate(a) => commands::evaluate(&ctx, &a),
        Command::Tune(a) => commands::tune(&ctx, &a),
        Command::Baseline(BaselineCommand::Rf(a)) => commands::baseline_rf(&ctx, &a),
    }));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("amun: error: {}", one_line(&e));
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}

/// The error and its causes on one line, without repeating a cause the message already
/// contains.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out.replace('\n', " ")
}
