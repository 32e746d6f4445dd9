//! Downscale LST with AMUN: load scenes, train, downscale, write a GeoTIFF, print metrics.
//!
//! ```sh
//! amun synth --out world --months 1,4,7          # or `amun prepare` on your own data
//! cargo run --release -p amun-core --example downscale -- world/month-01 world/month-04 world/month-07
//! ```
//! The last folder is downscaled; the others are training scenes (with a fine reference).
//! Without arguments a small synthetic world is used.

use amun_core::prelude::*;
use amun_core::{metrics, net::Solver, raster, synth};

/// Trains AMUN on all scene folders but the last and downscales the last.
#[derive(clap::Parser)]
struct Args {
    /// Scene folders: training scenes (with a fine reference), then the one to downscale
    /// (none: a small synthetic world).
    scenes: Vec<std::path::PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    amun_core::tune_allocator(); // megabyte tensors, allocated and freed many times a second
    let dirs = <Args as clap::Parser>::parse().scenes;
    let mut scenes = if dirs.len() >= 2 {
        dirs.iter()
            .map(|d| Scene::load(d))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let world = synth::World::generate(&synth::WorldParams::new().size(160, 160))?;
        let scene = |m: u32| -> Result<Scene, amun_core::Error> {
            Scene::new(
                format!("month {m}"),
                world.coarse_lst(m, 13, 10)?,
                world.covariates(m)?,
            )?
            .with_reference(world.lst(m, 13)?)
        };
        vec![scene(1)?, scene(4)?, scene(7)?]
    };
    let target = scenes.pop().ok_or("no scene")?;

    // Train the small AMUN preset on the scenes' own covariates.
    let config = AmunConfig::small().with_covariates(target.covariates().names());
    let training = TrainConfig {
        solver: Solver::ADAM,
        learning_rate: 1e-3,
        epochs: 15,
        ..TrainConfig::paper()
    };
    let mut amun = AmunDownscaler::new(config, training);
    amun.fit(&scenes, &NoProgress)?;

    // Downscale, make the block means equal the coarse input, write a GeoTIFF.
    let fine = amun.predict(&target, &NoProgress)?;
    let (fine, _) = conserve(&fine, target.coarse_lst(), &ConserveParams::default())?;
    raster::write_raster("lst_fine.tif", &fine, &raster::WriteOptions::default())?;
    println!("wrote lst_fine.tif ({})", fine.grid());

    // Score against the reference when there is one, next to bilinear interpolation.
    if let Some(truth) = target.reference() {
        let bilinear = target.interpolated_lst(Resampling::Bilinear)?;
        for (name, pred) in [("bilinear", &bilinear), ("amun", &fine)] {
            let m = metrics::score(pred, truth, None)?;
            println!(
                "{name:>8}: RMSE {:.3} K, MAE {:.3} K, R² {:.3}",
                m.rmse,
                m.mae,
                m.r2.unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}
