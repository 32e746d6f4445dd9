//! `amun`: downscale land surface temperature from the command line.

#![forbid(unsafe_code)]

mod commands;
mod demo;
mod demo_real;
mod demo_uncertainty;
mod figures;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::baseline::BaselineCommand;
use commands::downscale::DownscaleArgs;
use commands::evaluate::EvaluateArgs;
use commands::info::InfoArgs;
use commands::mosaic::MosaicArgs;
use commands::prepare::PrepareArgs;
use commands::slurm_script::SlurmScriptArgs;
use commands::synth::SynthArgs;
use commands::train::TrainArgs;
use commands::tune::TuneArgs;
use demo::DemoArgs;

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
    /// Join the row bands of one scene (`amun downscale --rows --shard …`) into one GeoTIFF,
    /// identical to a one-process run.
    #[command(
        after_help = "Example:\n  amun downscale --checkpoint model --scene big --rows --shard 0/4 --out parts   # … 3/4\n  amun mosaic parts --out lst_fine.tif --cog"
    )]
    Mosaic(MosaicArgs),
    /// Write an sbatch job-array script for `amun downscale` over a series (or the row bands
    /// of one scene), each task's memory and time from the memory budget and a measured
    /// throughput.
    #[command(
        after_help = "Example:\n  amun slurm-script --checkpoint model --series series-2020 --out lst-2020 --tasks 64 --script downscale.sh\n  sbatch downscale.sh"
    )]
    SlurmScript(SlurmScriptArgs),
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

fn main() -> ExitCode {
    // Training and tiled inference allocate and free megabyte tensors many times a second.
    amun_core::tune_allocator();
    // Subnormal weights of a trained checkpoint count as zero instead of taking the
    // processor's slow path on every multiply (x86-64; this thread and rayon's pool).
    amun_core::flush_denormals();
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
        Command::Info(a) => commands::info::run(&ctx, &a),
        Command::Synth(a) => commands::synth::run(&ctx, &a),
        Command::Prepare(a) => commands::prepare::run(&ctx, &a),
        Command::Train(a) => commands::train::run(&ctx, &a),
        Command::Downscale(a) => commands::downscale::run(&ctx, &a),
        Command::Mosaic(a) => commands::mosaic::run(&ctx, &a),
        Command::SlurmScript(a) => commands::slurm_script::run(&ctx, &a),
        Command::Evaluate(a) => commands::evaluate::run(&ctx, &a),
        Command::Tune(a) => commands::tune::run(&ctx, &a),
        Command::Baseline(c) => commands::baseline::run(&ctx, &c),
    }));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        // A reader that closed the pipe (`amun info f.tif | head -1`) ends the program
        // quietly and successfully, as ripgrep does (coreutils die of SIGPIPE, which Rust
        // programs ignore).
        Ok(Err(e)) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("amun: error: {}", one_line(&e));
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}

/// Whether an error is a write to a pipe whose reader has gone.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, without repeating a cause the message already
/// contains, and without the backtrace a library may have appended.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let c = without_backtrace(&text);
        if out.is_empty() {
            out.push_str(c);
        } else if !out.contains(c) {
            out.push_str(": ");
            out.push_str(c);
        }
    }
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A message cut before a backtrace appended to it: candle's errors carry one, printed by
/// their `Display`, whenever `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` is set. A captured
/// backtrace starts with its frame `0: …` (or says that it is disabled or unsupported).
fn without_backtrace(msg: &str) -> &str {
    let mut at = 0;
    for line in msg.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("0: ")
            || t.starts_with("stack backtrace:")
            || t.starts_with("disabled backtrace")
            || t.starts_with("unsupported backtrace")
        {
            return msg[..at].trim_end();
        }
        at += line.len();
    }
    msg.trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_backtrace_stays_out_of_the_one_line_error() {
        // What candle's `Error::WithBacktrace` displays (`"{inner}\n{backtrace}"`) when
        // RUST_BACKTRACE is set, wrapped as amun-net and the CLI wrap it.
        let candle = format!(
            "shape mismatch for conv.weight, expected [8, 7, 3, 3], got [12, 7, 3, 3]\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        assert!(candle.contains("0: "), "a captured backtrace: {candle}");
        let e = anyhow::anyhow!(candle).context("loading checkpoint model");
        let line = one_line(&e);
        assert_eq!(
            line,
            "loading checkpoint model: shape mismatch for conv.weight, expected [8, 7, 3, 3], got [12, 7, 3, 3]"
        );
    }

    #[test]
    fn causes_are_joined_once_and_newlines_flattened() {
        let e =
            anyhow::anyhow!("TOML parse error at line 1\n  |\n1 | a =\n  |    ^\ninvalid string")
                .context("reading train.toml");
        assert_eq!(
            one_line(&e),
            "reading train.toml: TOML parse error at line 1 | 1 | a = |    ^ invalid string"
        );
        let inner = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed");
        assert!(is_broken_pipe(
            &anyhow::Error::new(inner).context("printing")
        ));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
