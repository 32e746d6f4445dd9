//! `amun slurm-script`: a ready `sbatch` job-array script for `amun downscale` over a series
//! (or the row bands of one scene), with each task's memory and time limit worked out from
//! the memory budget and a measured throughput (docs/cluster.md, "Resources").

use std::fmt::Write as _;
use std::path::PathBuf;

use amun_core::series::SeriesIndex;
use amun_core::SceneReader;
use anyhow::{bail, Context, Result};
use clap::Args;

use super::downscale::parse_size;
use super::Ctx;
use crate::output::check_writable;

/// Fine pixels per second one task downscales with the `small` preset: 39 000, measured on 2
/// shared CPU cores under a load of about 10 (`benches/cluster/measure.sh`; docs/cluster.md,
/// "Resources"), so a slow guess that gives generous time limits. Pass your cluster's with
/// `--throughput` (the `pixels/s` of `amun downscale --series`'s summary line).
pub const MEASURED_THROUGHPUT: f64 = 39_000.0;

/// Memory a task asks Slurm for, as a multiple of `--max-memory`: the streamed downscale
/// stays under its budget (its measured peaks: 0.84 and 0.98 GB at a 10⁹-byte budget,
/// docs/benchmarks/amun-net.md), and Slurm kills a task that passes its request.
const MEMORY_HEADROOM: f64 = 1.15;

/// The time limit is the expected time times this, plus [`STARTUP_S`].
const TIME_SAFETY: f64 = 1.5;

/// Seconds for starting, loading the checkpoint and opening the series, per task.
const STARTUP_S: f64 = 300.0;

#[derive(Args, Debug)]
pub struct SlurmScriptArgs {
    /// Checkpoint folder (from `amun train`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Series folder (from `amun prepare --series`).
    #[arg(long, required_unless_present = "scene", conflicts_with = "scene")]
    pub series: Option<PathBuf>,
    /// One scene folder, split into row bands (`amun downscale --rows`; join them with
    /// `amun mosaic`).
    #[arg(long)]
    pub scene: Option<PathBuf>,
    /// The downscaled output: the folder of one GeoTIFF per step (or of the row bands).
    #[arg(long)]
    pub out: PathBuf,
    /// Tasks of the array.
    #[arg(long)]
    pub tasks: usize,
    /// CPU cores per task.
    #[arg(long, default_value_t = 2)]
    pub cpus: usize,
    /// Memory budget of each task's `amun downscale` (`--max-memory`); Slurm is asked for
    /// 15 % more.
    #[arg(long, default_value = "1GB", value_parser = parse_size)]
    pub max_memory: u64,
    /// Fine pixels per second of one task (the `pixels/s` in the summary line of a test run
    /// of one task on your cluster) [default: measured here, see docs/cluster.md].
    #[arg(long)]
    pub throughput: Option<f64>,
    /// Write Cloud-Optimized GeoTIFFs.
    #[arg(long)]
    pub cog: bool,
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// The `amun` to run [default: this one].
    #[arg(long)]
    pub amun: Option<PathBuf>,
    /// Where to write the script [default: stdout].
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// Overwrite the script.
    #[arg(long)]
    pub force: bool,
}

/// Slurm's `--time` form, `D-HH:MM:SS`, of whole minutes at least `seconds`.
fn slurm_time(seconds: f64) -> String {
    let m = (seconds / 60.0).ceil().max(1.0) as u64;
    format!("{}-{:02}:{:02}:00", m / 1440, m / 60 % 24, m % 60)
}

/// Quotes a word for bash when it needs it.
fn sh(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Runs `amun slurm-script`.
pub fn run(ctx: &Ctx, a: &SlurmScriptArgs) -> Result<()> {
    if a.tasks == 0 || a.cpus == 0 {
        bail!("--tasks and --cpus must be at least 1");
    }
    if let Some(s) = &a.script {
        check_writable(s, a.force)?;
    }
    let throughput = a.throughput.unwrap_or(MEASURED_THROUGHPUT);
    if !(throughput.is_finite() && throughput > 0.0) {
        bail!("--throughput must be a positive number of pixels per second");
    }
    // What one task does: its steps and their pixels.
    let (what, per_task_pixels, input): (String, f64, Vec<String>) = match (&a.series, &a.scene) {
        (Some(dir), _) => {
            let index = SeriesIndex::load(dir)
                .with_context(|| format!("series folder {}", dir.display()))?;
            let Some(first) = index.steps.first() else {
                bail!("{}: the series has no step", dir.display());
            };
            let scene = SceneReader::open(&dir.join(&first.scene))
                .with_context(|| format!("scene folder {}", dir.join(&first.scene).display()))?;
            let (h, w) = scene.fine_grid().shape();
            let steps = index.steps.len();
            let per_task = steps.div_ceil(a.tasks);
            (
                format!("{steps} steps of {h}×{w} fine pixels, at most {per_task} per task"),
                (per_task * h * w) as f64,
                vec!["--series".into(), dir.display().to_string()],
            )
        }
        (None, Some(dir)) => {
            let scene = SceneReader::open(dir)
                .with_context(|| format!("scene folder {}", dir.display()))?;
            let (h, w) = scene.fine_grid().shape();
            (
                format!("one scene of {h}×{w} fine pixels in {} row bands", a.tasks),
                (h.div_ceil(a.tasks) * w) as f64,
                vec!["--scene".into(), dir.display().to_string(), "--rows".into()],
            )
        }
        (None, None) => bail!("give --series DIR or --scene DIR"),
    };
    let expected = per_task_pixels / throughput;
    let limit = expected * TIME_SAFETY + STARTUP_S;
    let mem_mib = ((a.max_memory as f64 * MEMORY_HEADROOM) / f64::from(1 << 20)).ceil() as u64;
    let amun = match &a.amun {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("finding this amun's path")?,
    };
    let mut cmd = vec![
        amun.display().to_string(),
        "downscale".into(),
        "--checkpoint".into(),
        a.checkpoint.display().to_string(),
    ];
    cmd.extend(input);
    cmd.extend([
        "--out".into(),
        a.out.display().to_string(),
        "--shard".into(),
        format!("slurm/{}", a.tasks),
        "--max-memory".into(),
        format!("{}", a.max_memory),
    ]);
    if a.cog {
        cmd.push("--cog".into());
    }
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(
        s,
        "# Written by `amun slurm-script` (amun {}): {what}.",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        s,
        "# Time per task: {per_task_pixels:.0} pixels / {throughput:.0} pixels/s = {expected:.0} s, × {TIME_SAFETY} + {STARTUP_S:.0} s to start."
    );
    let _ = writeln!(
        s,
        "# Memory per task: --max-memory {} bytes (amun stays under it) + {:.0} %.",
        a.max_memory,
        (MEMORY_HEADROOM - 1.0) * 100.0
    );
    let _ = writeln!(
        s,
        "# Rerun the same script after a failure: finished outputs are skipped. To redo some\n# tasks only: sbatch --array=3,5 THIS_SCRIPT (the shard is fixed to slurm/{}).",
        a.tasks
    );
    let _ = writeln!(s, "#SBATCH --job-name=amun-downscale");
    let _ = writeln!(s, "#SBATCH --array=0-{}", a.tasks - 1);
    let _ = writeln!(s, "#SBATCH --cpus-per-task={}", a.cpus);
    let _ = writeln!(s, "#SBATCH --mem={mem_mib}M");
    let _ = writeln!(s, "#SBATCH --time={}", slurm_time(limit));
    let _ = writeln!(s, "#SBATCH --output=amun-downscale-%A_%a.log");
    if let Some(p) = &a.partition {
        let _ = writeln!(s, "#SBATCH --partition={p}");
    }
    let _ = writeln!(s, "set -uo pipefail");
    let _ = writeln!(s, "mkdir -p {}", sh(&a.out.display().to_string()));
    let words: Vec<String> = cmd.iter().map(|w| sh(w)).collect();
    let _ = writeln!(s, "exec {}", words.join(" "));
    match &a.script {
        Some(path) => {
            amun_core::write_atomic(path, s.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            ctx.say(&format!(
                "wrote {} ({} tasks, --mem={mem_mib}M, --time={}): submit with sbatch {}",
                path.display(),
                a.tasks,
                slurm_time(limit),
                path.display()
            ));
        }
        None => print!("{s}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_up_to_minutes_in_slurm_form() {
        assert_eq!(slurm_time(1.0), "0-00:01:00");
        assert_eq!(slurm_time(61.0), "0-00:02:00");
        assert_eq!(slurm_time(3600.0 * 25.0 + 1.0), "1-01:01:00");
        assert_eq!(sh("a/b.tif"), "a/b.tif");
        assert_eq!(sh("it's here"), "'it'\\''s here'");
    }
}
