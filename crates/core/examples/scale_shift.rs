//! How different the covariates a network trained one scale up sees are from those it is
//! applied to: for each covariate, the standard deviation of its anomalies inside the
//! coarse blocks — at the training scale (0.1° pixels inside 1° blocks, the scene
//! [`Scene::coarsened`]) and at the target scale (0.01° pixels inside 0.1° blocks).
//!
//! ```sh
//! cargo run --release -p amun-core --example scale_shift -- --size 640 --seed 42 --months 2,8
//! ```

use amun_core::prelude::*;
use amun_core::synth::{World, WorldParams};

#[derive(clap::Parser)]
struct Args {
    /// Side of the synthetic world in fine pixels.
    #[arg(long, default_value_t = 640)]
    size: usize,
    /// Seed of the world.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Months to look at.
    #[arg(long, value_delimiter = ',', default_values_t = [2, 8])]
    months: Vec<u32>,
}

/// RMS of `v − mean of its k × k block` over the pixels of whole blocks (NaN skipped).
fn anomaly_std(r: &Raster, k: usize) -> f64 {
    let d = r.data();
    let (h, w) = d.dim();
    let (mut ss, mut n) = (0.0f64, 0usize);
    for br in 0..h / k {
        for bc in 0..w / k {
            let block: Vec<f64> = (0..k)
                .flat_map(|i| (0..k).map(move |j| (br * k + i, bc * k + j)))
                .map(|p| f64::from(d[p]))
                .filter(|v| !v.is_nan())
                .collect();
            if block.is_empty() {
                continue;
            }
            let m = block.iter().sum::<f64>() / block.len() as f64;
            ss += block.iter().map(|v| (v - m).powi(2)).sum::<f64>();
            n += block.len();
        }
    }
    (ss / n.max(1) as f64).sqrt()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = <Args as clap::Parser>::parse();
    let world = World::generate(&WorldParams::new().seed(a.seed).size(a.size, a.size))?;
    // ERA5-Land's 0.1° over 0.01° covariates.
    let k = 10;
    println!("| month | band | anomaly std, training scale (0.1° in 1°) | target scale (0.01° in 0.1°) | ratio |");
    println!("|---|---|---|---|---|");
    for &m in &a.months {
        let mut cov = world.covariates(m)?;
        cov.push("elevation", world.elevation().clone())?;
        let scene = Scene::new(format!("month-{m:02}"), world.coarse_lst(m, 13, k)?, cov)?
            .with_reference(world.lst(m, 13)?)?;
        let up = scene.coarsened()?;
        let mut bands: Vec<(String, &Raster, &Raster)> = scene
            .covariates()
            .names()
            .iter()
            .map(|n| {
                Ok((
                    n.clone(),
                    up.covariates().band(n)?,
                    scene.covariates().band(n)?,
                ))
            })
            .collect::<Result<_, amun_core::raster::Error>>()?;
        // The target too: what a residual network learns to reproduce, at each scale.
        let (truth_up, truth) = (
            up.require_reference("lst")?,
            scene.require_reference("lst")?,
        );
        bands.push(("LST (the truth)".into(), truth_up, truth));
        for (name, train, target) in bands {
            let (s_train, s_target) = (anomaly_std(train, k), anomaly_std(target, k));
            println!(
                "| {m} | {name} | {s_train:.4} | {s_target:.4} | {:.2} |",
                s_target / s_train
            );
        }
    }
    Ok(())
}
