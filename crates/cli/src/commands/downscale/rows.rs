//! `amun downscale --rows`: this task's band of the rows of one scene, for a scene too large
//! for one task; `amun mosaic` joins the bands.

use std::time::Instant;

use amun_core::net::TileParams;
use amun_core::{band_file, downscale_rows_to_file, BatchOptions, ConserveParams, StreamOptions};
use anyhow::{bail, Context, Result};

use super::{check_covariates, load_plain_checkpoint, open_scene, DownscaleArgs};
use crate::commands::Ctx;
use crate::output::check_can_create;

/// Runs `amun downscale --rows`.
pub fn run(ctx: &Ctx, a: &DownscaleArgs) -> Result<()> {
    let started = Instant::now();
    let shard = a.shard.unwrap_or_default();
    if a.conserve {
        bail!("--conserve cannot be split into row bands: coarse conservation solves one correction for the whole scene from the block means of the whole prediction, so a band alone would differ from the one-process run; downscale the bands without --conserve, or the scene in one process with it");
    }
    if !a.out.is_dir() {
        bail!(
            "{}: no such folder: with --rows, --out is the folder that receives the row bands (create it first)",
            a.out.display()
        );
    }
    check_can_create(&a.out.join("band.tif"))?;
    let scene_dir = a.the_scene()?;
    let scene = open_scene(scene_dir)?;
    let ckpt = load_plain_checkpoint(ctx, a, "a staged checkpoint cannot be split into row bands")?;
    check_covariates(
        a,
        scene_dir,
        &ckpt.config().covariates,
        scene.covariate_names(),
    )?;
    let rows = shard.rows(
        scene.fine_grid().height(),
        amun_core::band_multiple(&ckpt, &scene),
    )?;
    let height = scene.fine_grid().height();
    let out = band_file(&a.out, &rows, height);
    if !rows.is_empty() && out.exists() && !a.force {
        ctx.say(&format!(
            "{} already exists: rows {}..{} done before (--force redoes them)",
            out.display(),
            rows.start,
            rows.end
        ));
        return Ok(());
    }
    let opts = BatchOptions {
        stream: StreamOptions {
            tiles: TileParams {
                tile: a.tile,
                max_memory: a.max_memory,
                margin: a.margin,
            },
            conserve: None::<ConserveParams>,
        },
        force: a.force,
        cog: a.cog,
    };
    let summary = downscale_rows_to_file(&ckpt, &scene, shard, &a.out, &opts, &ctx.bars)
        .with_context(|| {
            format!(
                "downscaling rows {}..{} of scene {}",
                rows.start,
                rows.end,
                scene_dir.display()
            )
        })?;
    if summary.plan.is_none() {
        ctx.say(&format!(
            "task {shard}: no rows to downscale (the scene has fewer bands of whole coarse pixels than tasks)"
        ));
        return Ok(());
    }
    let pixels = rows.len() * scene.fine_grid().width();
    ctx.say(&format!(
        "wrote {} (task {shard}: rows {}..{} of {height}): {pixels} pixels in {:.1} s",
        out.display(),
        rows.start,
        rows.end,
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
