//! The priors against bilinear interpolation on synthetic worlds at 10×, fitted on the
//! coarse field alone and scored against the fine truth.
//!
//! `cargo run --release -p amun-prior --example fit_synthetic [size]` (default 300 pixels a side).

use amun_prior::PriorParams;
use amun_raster::{resample, Raster, Resampling};
use amun_synth::{World, WorldParams};

fn rmse(a: &Raster, b: &Raster) -> f64 {
    let (mut n, mut s) = (0usize, 0.0f64);
    for (&x, &y) in a.data().iter().zip(b.data()) {
        if !x.is_nan() && !y.is_nan() {
            n += 1;
            s += f64::from(x - y).powi(2);
        }
    }
    (s / n as f64).sqrt()
}

/// The priors against bilinear interpolation on synthetic worlds at 10×.
#[derive(clap::Parser)]
struct Args {
    /// The worlds' side in fine pixels.
    #[arg(default_value_t = 300)]
    size: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let size = <Args as clap::Parser>::parse().size;
    println!("| world seed | month | bilinear (K) | elevation prior (K) | covariate prior (K) | fitted lapse rate (K/km) |");
    println!("|---|---|---|---|---|---|");
    for seed in [7u64, 42] {
        let world = World::generate(&WorldParams::new().seed(seed).size(size, size))?;
        for month in [1u32, 4, 7, 10] {
            let coarse = world.coarse_lst(month, 13, 10)?;
            let truth = world.lst(month, 13)?;
            let mut s = world.covariates(month)?;
            s.push("elevation", world.elevation().clone())?;
            let bil = resample(&coarse, truth.grid(), Resampling::Bilinear)?;
            let elev = PriorParams::elevation().fit(&coarse, &s)?;
            let cov = PriorParams::covariates().fit(&coarse, &s)?;
            println!(
                "| {seed} | {month} | {:.3} | {:.3} | {:.3} | {:+.2} / {:+.2} |",
                rmse(&bil, &truth),
                rmse(&elev.field(&s)?, &truth),
                rmse(&cov.field(&s)?, &truth),
                elev.report().lapse_rate.unwrap_or(f64::NAN) * 1000.0,
                cov.report().lapse_rate.unwrap_or(f64::NAN) * 1000.0,
            );
        }
    }
    Ok(())
}
