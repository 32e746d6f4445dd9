//! `amun downscale --uncertainty`: an ensemble checkpoint's mean, standard deviation and
//! 90 % interval as the bands of one GeoTIFF.

use amun_core::metrics::Z_90;
use amun_core::net::TileParams;
use amun_core::raster::{write, Raster, Stack, WriteOptions};
use amun_core::{conserve, ConserveParams, Downscaler, EnsembleAmun, ENSEMBLE_FILE};
use anyhow::{anyhow, bail, Context, Result};

use super::downscale::{check_covariates, guard, DownscaleArgs};
use super::{load_scene, write_geotiff, Ctx};

/// Band names of an uncertainty output, in file order (GDAL band descriptions).
pub const BANDS: [&str; 4] = ["mean", "std", "q05", "q95"];

/// The `mean`, `std`, `q05`, `q95` bands of a prediction: the interval is
/// `mean ∓ Z_90·std`, so it moves with the mean (e.g. after conservation) and keeps its width.
pub fn uncertainty_stack(mean: &Raster, std: &Raster) -> Result<Stack> {
    let z = Z_90 as f32;
    let shifted = |sign: f32| -> Result<Raster> {
        Ok(Raster::new(
            mean.grid().clone(),
            mean.data() + &std.data().mapv(|s| sign * z * s),
        )?)
    };
    let [m, s, lo, hi] = BANDS;
    Ok(Stack::new(mean.grid().clone())
        .with(m, mean.clone())?
        .with(s, std.clone())?
        .with(lo, shifted(-1.0)?)?
        .with(hi, shifted(1.0)?)?)
}

/// Downscales with an ensemble checkpoint: all bands with `--uncertainty`, the mean alone
/// without.
pub fn downscale(ctx: &Ctx, a: &DownscaleArgs, tiles: TileParams, on_cpu: bool) -> Result<()> {
    if !a.checkpoint.join(ENSEMBLE_FILE).exists() {
        bail!(
            "{}: --uncertainty needs an ensemble checkpoint (train one with `amun train --ensemble K`); this folder has no {ENSEMBLE_FILE}",
            a.checkpoint.display()
        );
    }
    if !on_cpu {
        bail!(
            "ensemble checkpoints run on the CPU only (--device {})",
            a.device
        );
    }
    let ens = EnsembleAmun::load(&a.checkpoint)
        .with_context(|| format!("loading ensemble checkpoint {}", a.checkpoint.display()))?
        .with_tiles(tiles);
    let covariates = ens
        .members()
        .first()
        .map(|c| c.config().covariates.clone())
        .unwrap_or_default();
    let scene_dir = a.the_scene()?;
    let scene = load_scene(scene_dir)?;
    let c = ens.calibration();
    ctx.detail(&format!(
        "{} members; spread √({:.3}² + ({:.3}·σ)²) K, fitted on {} held-out pixels",
        ens.members().len(),
        c.model.floor,
        c.model.scale,
        c.pixels
    ));
    // `fitted_at` is false only where the width is known.
    if let (true, Some(width)) = (
        a.uncertainty && !c.fitted_at(scene.fine_grid()),
        c.pixel_width,
    ) {
        let msg = format!(
            "the spread was calibrated on pixels {width} wide (its training scenes') and this scene's are {} wide: a spread calibrated at another scale (one scale up, for `--scheme scale-up`) is not calibrated at the target scale (in amun's real-data experiment its 90 % interval covered 44–47 %); read std as a lower bound",
            scene.fine_grid().pixel_width().abs()
        );
        if a.strict {
            bail!("{msg} (--strict)");
        }
        ctx.warn(&msg);
    }
    guard(ctx, a, ens.check().as_ref())?;
    check_covariates(a, scene_dir, &covariates, scene.covariates().names())?;
    let u = ens
        .predict_with_spread(&scene, &ctx.bars)?
        .ok_or_else(|| anyhow!("the ensemble gave no spread"))?;
    let mut mean = u.mean;
    if a.conserve {
        let (m, it) = conserve(&mean, scene.coarse_lst(), &ConserveParams::default())?;
        ctx.detail(&format!(
            "coarse conservation of the mean: {it} iterations (the interval moves with it)"
        ));
        mean = m;
    }
    if a.uncertainty {
        let stack = uncertainty_stack(&mean, &u.std)?;
        write(&a.out, &stack, &WriteOptions::default())
            .with_context(|| format!("writing {}", a.out.display()))?;
        ctx.say(&format!(
            "wrote {} (bands {})",
            a.out.display(),
            BANDS.join(", ")
        ));
    } else {
        write_geotiff(&a.out, &mean, a.force)?;
        ctx.say(&format!(
            "wrote {} (the ensemble mean; --uncertainty adds std, q05, q95)",
            a.out.display()
        ));
    }
    Ok(())
}
