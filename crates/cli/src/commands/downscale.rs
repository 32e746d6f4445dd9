//! `amun downscale`: a checkpoint applied to a scene, streamed from the scene's files to the
//! output GeoTIFF in bounded memory.

use std::path::{Path, PathBuf};

use amun_core::net::{Amplitude, Checkpoint, DeviceSpec, HeldOutCheck, TileParams, Verdict};
use amun_core::{
    conserve, downscale_file, ConserveParams, Downscaler, SceneReader, Shard, StagedAmun,
    StreamOptions, STAGES_FILE,
};
use anyhow::{bail, Context, Result};
use clap::Args;

use super::train::report_check;
use super::{load_scene, write_geotiff, Ctx};
use crate::output::{check_can_create, check_writable};

mod rows;
mod series;

#[derive(Args, Debug)]
pub struct DownscaleArgs {
    /// Checkpoint folder (from `amun train`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Scene folder (from `amun prepare` or `amun synth`); repeat it to downscale several
    /// scenes into the --out folder, one GeoTIFF each named by the scene's folder.
    #[arg(long, required_unless_present = "series", conflicts_with = "series")]
    pub scene: Vec<PathBuf>,
    /// A series folder (from `amun prepare --series`): every step is downscaled into the
    /// --out folder as `<step folder>.tif`, with the checkpoint loaded once. Resumable: a
    /// step whose output exists is skipped (--force redoes it).
    #[arg(long, value_name = "DIR")]
    pub series: Option<PathBuf>,
    /// Output GeoTIFF; for a series or several scenes, the existing folder that receives
    /// one GeoTIFF per step (or with --stack, the multi-band GeoTIFF).
    #[arg(long)]
    pub out: PathBuf,
    /// Series: write one multi-band GeoTIFF at --out whose band descriptions are the steps'
    /// times, instead of a file per step (the steps are kept in `<out>.steps/` until every
    /// one is done, so the run is resumable too).
    #[arg(long)]
    pub stack: bool,
    /// Downscale only this task's share of the steps: I/N (task I of N, from 0), `slurm`
    /// (the task of the Slurm job array this runs in) or `slurm/N`. Shares are contiguous
    /// runs of steps; see docs/cluster.md.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// With one --scene: this task's --shard is a band of the scene's rows, written as
    /// `rows-<first>-<end>-of-<height>.tif` into the --out folder; `amun mosaic` joins the
    /// bands into what one process writes, bit for bit (not with --conserve).
    #[arg(long, conflicts_with_all = ["series", "stack"])]
    pub rows: bool,
    /// Memory to stay within, e.g. `1GB`, `512MiB`, `2GiB` (units B, KB, MB, GB in powers
    /// of 1000, KiB, MiB, GiB in powers of 1024; a plain number is bytes). The scene is cut
    /// into as few windows as fit; the result does not depend on it.
    #[arg(long, default_value = "1GB", value_parser = parse_size)]
    pub max_memory: u64,
    /// Expert: tile side in pixels (a multiple of 16) instead of the one `--max-memory`
    /// allows; memory grows with it, results do not change.
    #[arg(long)]
    pub tile: Option<usize>,
    /// Expert: reflection margin of the canonical input in pixels (a multiple of 16; it
    /// changes the result within the receptive radius of the scene's edges).
    #[arg(long, default_value_t = amun_core::net::DEFAULT_MARGIN, hide_short_help = true)]
    pub margin: usize,
    /// Make block means equal the coarse input (iterative back-projection, solved on the
    /// coarse grid).
    #[arg(long)]
    pub conserve: bool,
    /// Refuse a checkpoint that was worse than interpolation or the physical prior where it
    /// could be checked (its held-out check), instead of warning.
    #[arg(long)]
    pub strict: bool,
    /// Write Cloud-Optimized GeoTIFF: tiled, with internal overviews (2×2 averages that skip
    /// missing pixels) and GDAL's COG layout, for QGIS, GDAL's /vsicurl/ and web maps.
    #[arg(long)]
    pub cog: bool,
    /// Overwrite the output (a series: redo the steps whose output exists).
    #[arg(long)]
    pub force: bool,
    /// Where the network runs: `cpu`, `cuda` or `cuda:N` (an NVIDIA GPU; needs a build with
    /// the `cuda` feature).
    #[arg(long, default_value_t = DeviceSpec::Cpu, value_name = "DEVICE")]
    pub device: DeviceSpec,
    /// Write the bands `mean`, `std`, `q05` and `q95` (the calibrated 90 % interval) from an
    /// ensemble checkpoint (`amun train --ensemble K`); with `--conserve` the mean is
    /// conserved and the interval moves with it, its width unchanged. The scene is held in
    /// memory.
    #[arg(long)]
    pub uncertainty: bool,
}

/// Parses a byte size: a number with an optional unit (`B`, `KB`/`MB`/`GB`/`TB` in powers of
/// 1000, `KiB`/`MiB`/`GiB`/`TiB` in powers of 1024, case-insensitive; `K`, `M`, `G` alone are
/// binary, as in `ulimit` and `docker`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (t[..split].trim(), t[split..].trim());
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 1GiB, 512MiB, 2GB)"))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use B, KB, MB, GB, KiB, MiB or GiB)"
            ))
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{s}` is not a usable size"));
    }
    Ok(bytes as u64)
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    Shard::parse(s).map_err(|e| e.to_string())
}

impl DownscaleArgs {
    /// The one scene of a single-scene run.
    pub(super) fn the_scene(&self) -> Result<&Path> {
        match self.scene.as_slice() {
            [one] => Ok(one),
            _ => bail!("--scene: give one scene folder, or several with --out a folder"),
        }
    }
}

/// Runs `amun downscale`.
pub fn run(ctx: &Ctx, a: &DownscaleArgs) -> Result<()> {
    if a.series.is_some() || a.scene.len() > 1 {
        return series::run(ctx, a);
    }
    if a.rows {
        return rows::run(ctx, a);
    }
    if a.stack || a.shard.is_some() {
        bail!("--stack and --shard share out the steps of a series: give --series DIR or several --scene folders (or --rows to share out the rows of one scene)");
    }
    // Everything that can be checked without the model is checked first: the output's
    // folder must exist and take a file before minutes of inference are spent.
    check_writable(&a.out, a.force)?;
    check_can_create(&a.out)?;
    if !a.checkpoint.is_dir() {
        bail!("{}: no such checkpoint folder", a.checkpoint.display());
    }
    let device = a.device.device()?;
    let tiles = TileParams {
        tile: a.tile,
        max_memory: a.max_memory,
        margin: a.margin,
    };
    let scene_dir = a.the_scene()?;
    let scene = open_scene(scene_dir)?;
    if a.uncertainty || a.checkpoint.join(amun_core::ENSEMBLE_FILE).exists() {
        return super::uncertain::downscale(ctx, a, tiles, device.is_cpu());
    }
    if a.checkpoint.join(STAGES_FILE).exists() {
        // A chain of networks (`amun train --stages`): each stage's input is the previous
        // stage's output, so the scene is held in memory.
        if !device.is_cpu() {
            bail!(
                "staged checkpoints run on the CPU only (--device {})",
                a.device
            );
        }
        if a.cog {
            bail!("--cog: a staged checkpoint writes a plain GeoTIFF (make a COG of it with gdal_translate -of COG)");
        }
        let staged = StagedAmun::load(&a.checkpoint)
            .with_context(|| format!("loading staged checkpoint {}", a.checkpoint.display()))?;
        ctx.say(&format!("stages {:?}", staged.factors()));
        let covariates = staged
            .stages()
            .first()
            .map(|c| c.config().covariates.clone())
            .unwrap_or_default();
        guard(ctx, a, staged.check().as_ref())?;
        check_covariates(a, scene_dir, &covariates, scene.covariate_names())?;
        let scene = load_scene(scene_dir)?;
        let (mut out, amplitude) = staged
            .with_tiles(tiles)
            .predict_checked(&scene, &ctx.bars)?;
        amplitude_check(ctx, a, amplitude.as_ref(), false)?;
        if a.conserve {
            let (c, it) = conserve(&out, scene.coarse_lst(), &ConserveParams::default())?;
            ctx.detail(&format!("coarse conservation: {it} iterations"));
            out = c;
        }
        write_geotiff(&a.out, &out, a.force)?;
        ctx.say(&format!("wrote {}", a.out.display()));
        return Ok(());
    }
    let ckpt = Checkpoint::load_on(&a.checkpoint, &device)
        .with_context(|| format!("loading checkpoint {}", a.checkpoint.display()))?;
    guard(ctx, a, ckpt.held_out())?;
    check_covariates(
        a,
        scene_dir,
        &ckpt.config().covariates,
        scene.covariate_names(),
    )?;
    let opts = StreamOptions {
        tiles,
        conserve: a.conserve.then(ConserveParams::default),
    };
    let summary = downscale_file(&ckpt, &scene, &a.out, &opts, a.cog, &ctx.bars)
        .with_context(|| format!("downscaling scene {}", scene_dir.display()))?;
    let plan = &summary.plan;
    let (ty, tx) = plan.tiles();
    let (wh, ww) = plan.largest_window();
    let (h, w) = scene.fine_grid().shape();
    ctx.detail(&format!(
        "{h}×{w} pixels in {ty}×{tx} window(s) of at most {wh}×{ww} (halo {}, about {} MiB each), {:.2}× the scene's pixels",
        plan.halo(),
        plan.window_bytes() >> 20,
        plan.work_pixels() as f64 / (h * w) as f64
    ));
    if let Some(it) = summary.conserve_iterations {
        ctx.detail(&format!("coarse conservation: {it} iterations"));
    }
    let d = summary.departure;
    let line = format!(
        "the network's block means depart from the coarse LST by {:.3} K RMSE over {} cells (bilinear interpolation: {:.3} K)",
        d.field_rmse, d.cells, d.bilinear_rmse
    );
    if d.exceeds_bilinear() {
        ctx.warn(&format!(
            "{line}: the model adds structure the coarse field does not support, a sign that this scene is outside what it learned (in the demo's real-data experiment such a model was worse than interpolation); compare with `amun baseline prior`{}",
            if a.conserve { "" } else { ", or use --conserve" }
        ));
        if a.strict {
            std::fs::remove_file(&a.out)
                .with_context(|| format!("removing {}", a.out.display()))?;
            bail!(
                "{}: refused (--strict): the output departs from the coarse LST more than interpolation does",
                a.out.display()
            );
        }
    } else {
        ctx.say(&line);
    }
    amplitude_check(ctx, a, summary.amplitude.as_ref(), true)?;
    ctx.say(&format!("wrote {}", a.out.display()));
    Ok(())
}

/// Says how large the network's correction was next to its training residuals, warns when
/// larger, and with `--strict` refuses (removing the output when it is `written`).
fn amplitude_check(
    ctx: &Ctx,
    a: &DownscaleArgs,
    amplitude: Option<&Amplitude>,
    written: bool,
) -> Result<()> {
    let Some(amp) = amplitude else {
        return Ok(());
    };
    if !amp.exceeds_training() {
        ctx.say(&format!("the network's {}", amp.summary()));
        return Ok(());
    }
    ctx.warn(&format!(
        "the network's {}: it corrects its base by more than it ever learned to, a sign that it extrapolates to inputs unlike its training data (in the demo's real-data experiment such models were worse than the prior they corrected); compare with `amun baseline prior`",
        amp.summary()
    ));
    if a.strict {
        if written {
            std::fs::remove_file(&a.out)
                .with_context(|| format!("removing {}", a.out.display()))?;
        }
        bail!(
            "{}: refused (--strict): the network's correction is {:.2}× its training residuals",
            a.out.display(),
            amp.ratio()
        );
    }
    Ok(())
}

/// Loads a plain (not staged) checkpoint on `--device` and applies its held-out guard;
/// `staged` says why a staged chain is refused here.
fn load_plain_checkpoint(ctx: &Ctx, a: &DownscaleArgs, staged: &str) -> Result<Checkpoint> {
    if !a.checkpoint.is_dir() {
        bail!("{}: no such checkpoint folder", a.checkpoint.display());
    }
    if a.checkpoint.join(STAGES_FILE).exists() {
        bail!("{}: {staged}", a.checkpoint.display());
    }
    let device = a.device.device()?;
    let ckpt = Checkpoint::load_on(&a.checkpoint, &device)
        .with_context(|| format!("loading checkpoint {}", a.checkpoint.display()))?;
    guard(ctx, a, ckpt.held_out())?;
    Ok(ckpt)
}

/// Prints the checkpoint's held-out check, and with `--strict` refuses one that was worse
/// than a reference where it could be checked.
pub(super) fn guard(ctx: &Ctx, a: &DownscaleArgs, check: Option<&HeldOutCheck>) -> Result<()> {
    if let (true, Some(Verdict::Worse { reference, .. })) = (a.strict, check.map(|c| c.verdict())) {
        bail!(
            "checkpoint {} was worse than {reference} where it could be checked (--strict): {}",
            a.checkpoint.display(),
            check.map(|c| c.summary()).unwrap_or_default()
        );
    }
    report_check(ctx, "checkpoint", check);
    Ok(())
}

/// Refuses a scene that lacks a covariate the model was trained on.
pub(super) fn check_covariates(
    a: &DownscaleArgs,
    scene: &Path,
    wanted: &[String],
    have: &[String],
) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|c| !have.contains(c))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!(
            "checkpoint {} was trained on covariates [{}] but scene {} has [{}] (missing: {})",
            a.checkpoint.display(),
            wanted.join(", "),
            scene.display(),
            have.join(", "),
            missing.join(", ")
        );
    }
    Ok(())
}

/// Opens a scene folder with an error that says how to make one.
fn open_scene(dir: &Path) -> Result<SceneReader> {
    if !dir.is_dir() {
        bail!(
            "{}: no such scene folder (make one with `amun prepare` or `amun synth`)",
            dir.display()
        );
    }
    SceneReader::open(dir).with_context(|| format!("scene folder {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("1 parsec").unwrap_err().contains("unknown unit"));
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("0").is_err());
    }
}
