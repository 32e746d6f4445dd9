//! `amun downscale` over many scenes: the steps of a series (`--series DIR`) or several
//! `--scene` folders, one GeoTIFF per step in the `--out` folder or one multi-band GeoTIFF
//! (`--stack`), with the checkpoint loaded once, a share of the steps per task (`--shard`),
//! and finished steps skipped on rerun.

use std::path::{Path, PathBuf};

use amun_core::net::TileParams;
use amun_core::raster::WriteOptions;
use amun_core::{
    downscale_steps, join_bands, BatchOptions, BatchReport, BatchStep, ConserveParams, Shard,
    StepEvent, StreamOptions,
};
use anyhow::{bail, Context, Result};

use super::{check_covariates, load_plain_checkpoint, DownscaleArgs};
use crate::commands::Ctx;
use crate::output::check_can_create;

/// Where the steps of a `--stack` run are kept until the stack is written: `lst.tif` →
/// `lst.steps/`.
fn parts_dir(out: &Path) -> PathBuf {
    out.with_extension("steps")
}

/// Runs `amun downscale` over a series or several scenes.
pub fn run(ctx: &Ctx, a: &DownscaleArgs) -> Result<()> {
    let shard = a.shard.unwrap_or_default();
    // The output is checked before the model is loaded or any scene read.
    let Some(out_dir) = output_folder(ctx, a)? else {
        return Ok(());
    };
    check_can_create(&out_dir.join("step.tif"))?;
    let steps = match &a.series {
        Some(dir) => BatchStep::from_series(dir, &out_dir)
            .with_context(|| format!("series folder {}", dir.display()))?,
        None => BatchStep::from_scenes(&a.scene, &out_dir)?,
    };
    if steps.is_empty() {
        bail!("no step to downscale");
    }
    let ckpt = load_plain_checkpoint(
        ctx,
        a,
        "a staged checkpoint downscales one scene at a time (--scene DIR --out FILE)",
    )?;
    // The steps of a series share their covariates: a model that needs another one is
    // refused before any step runs (from the first step's scene.json; a step whose folder
    // is broken fails on its own below).
    if let Ok(m) = amun_core::SceneManifest::read(&steps[0].scene) {
        check_covariates(a, &steps[0].scene, &ckpt.config().covariates, &m.covariates)?;
    }
    let opts = BatchOptions {
        stream: StreamOptions {
            tiles: TileParams {
                tile: a.tile,
                max_memory: a.max_memory,
                margin: a.margin,
            },
            conserve: a.conserve.then(ConserveParams::default),
        },
        force: a.force,
        // The steps of a stack are joined into one file: only that one is a COG.
        cog: a.cog && !a.stack,
    };
    let mut skipped = 0usize;
    let report = downscale_steps(
        &ckpt,
        &steps,
        shard,
        &opts,
        &ctx.bars,
        |event| match event {
            StepEvent::Skipped(_) => skipped += 1,
            StepEvent::Failed(_, e) => ctx.warn(&format!("{e}")),
            StepEvent::Done(d) => {
                let dep = &d.summary.departure;
                if dep.exceeds_bilinear() {
                    ctx.warn(&format!(
                        "step {}: the network's block means depart from the coarse LST by {:.3} K RMSE, more than bilinear interpolation's {:.3} K",
                        d.label, dep.field_rmse, dep.bilinear_rmse
                    ));
                }
            }
        },
    );
    if skipped > 0 {
        ctx.say(&format!(
            "skipped {skipped} step(s) already done (their output exists; --force redoes them)"
        ));
    }
    let refused = if a.strict {
        refuse_departing(ctx, &report)?
    } else {
        0
    };
    let share = if shard.is_all() {
        String::new()
    } else if report.share.is_empty() {
        format!(" (task {shard}: no steps)")
    } else {
        format!(
            " (task {shard}: steps {}–{} of {})",
            report.share.start + 1,
            report.share.end,
            report.total
        )
    };
    let failed = report.failed.len() + refused;
    let pixels = report.pixels();
    ctx.say(&format!(
        "downscaled {} step(s), {} already done, {failed} failed, of {} steps into {}{share}: {pixels} pixels in {:.1} s ({:.0} pixels/s)",
        report.written.len() - refused,
        report.skipped.len(),
        report.total,
        out_dir.display(),
        report.seconds,
        pixels as f64 / report.seconds.max(1e-9)
    ));
    if failed > 0 {
        let first = report
            .failed
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        bail!(
            "{failed} of {} step(s) failed (rerun the same command to redo only them){first}",
            report.share.len()
        );
    }
    if a.stack {
        stack_steps(ctx, a, shard, &steps, &out_dir)?;
    }
    Ok(())
}

/// The folder that receives one GeoTIFF per step (with `--stack`, the parts folder beside
/// the stack); `None` when the stack exists already and there is nothing to do.
fn output_folder(ctx: &Ctx, a: &DownscaleArgs) -> Result<Option<PathBuf>> {
    Ok(Some(if a.stack {
        if a.out.exists() && !a.force {
            ctx.say(&format!(
                "{} already exists: nothing to do (--force redoes every step)",
                a.out.display()
            ));
            return Ok(None);
        }
        check_can_create(&a.out)?;
        let dir = parts_dir(&a.out);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        dir
    } else {
        if !a.out.is_dir() {
            bail!(
                "{}: no such folder: with --series or several --scene, --out is the folder that receives one GeoTIFF per step (create it first, or give --stack to write one multi-band file)",
                a.out.display()
            );
        }
        a.out.clone()
    }))
}

/// `--strict`: removes the written steps whose block means depart from the coarse LST more
/// than interpolation's; returns how many.
fn refuse_departing(ctx: &Ctx, report: &BatchReport) -> Result<usize> {
    let mut refused = 0;
    for d in &report.written {
        if d.summary.departure.exceeds_bilinear() {
            std::fs::remove_file(&d.out)
                .with_context(|| format!("removing {}", d.out.display()))?;
            ctx.warn(&format!(
                "step {}: {} refused (--strict): it departs from the coarse LST more than interpolation does",
                d.label,
                d.out.display()
            ));
            refused += 1;
        }
    }
    Ok(refused)
}

/// `--stack`: joins the steps into one multi-band file once every task has finished.
fn stack_steps(
    ctx: &Ctx,
    a: &DownscaleArgs,
    shard: Shard,
    steps: &[BatchStep],
    out_dir: &Path,
) -> Result<()> {
    if !shard.is_all() {
        ctx.say(&format!(
            "the steps of task {shard} are in {}; when every task has finished, run the same command without --shard to stack them into {}",
            out_dir.display(),
            a.out.display()
        ));
        return Ok(());
    }
    let parts: Vec<(String, PathBuf)> = steps
        .iter()
        .map(|s| (s.label.clone(), s.out.clone()))
        .collect();
    join_bands(&parts, &a.out, &WriteOptions::default(), a.cog)
        .with_context(|| format!("stacking the steps into {}", a.out.display()))?;
    std::fs::remove_dir_all(out_dir).with_context(|| format!("removing {}", out_dir.display()))?;
    ctx.say(&format!(
        "wrote {} ({} bands, described by the steps' times)",
        a.out.display(),
        steps.len()
    ));
    Ok(())
}
