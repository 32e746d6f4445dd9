//! The acceptance experiment on a synthetic world (10× downscaling).
//!
//! Supervised mode (the paper's simulated experiment): train on fine pixels of some months,
//! predict an unseen month, score against the fine truth; compare with bilinear upsampling
//! and the ridge baseline; check that the residual-corrected output aggregates back to the
//! coarse input. Also the Hutengs & Vohland flow (fit on coarse pixels of the test scene).
//!
//! `cargo run --release -p amun-rf --example synthetic [-- <size> <trees>]`

use amun_metrics::{aggregated_back, score, Metrics};
use amun_raster::{resample, Raster, Resampling};
use amun_rf::{
    DownscaleParams, ResidualCorrection, RfParams, RidgeParams, SupervisedScene, SupervisedTarget,
};
use amun_synth::{World, WorldParams};
use std::time::Instant;

const K: usize = 10;
const HOUR: u32 = 13;

fn row(name: &str, pred: &Raster, truth: &Raster, coarse: &Raster) -> anyhow::Result<Metrics> {
    let m = score(pred, truth, None)?;
    let back = aggregated_back(pred, coarse, 0.5)?;
    println!(
        "| {name} | {:.3} | {:.3} | {:.4} | {:.3} | {:.3} |",
        m.rmse,
        m.mae,
        m.r2.unwrap_or(f64::NAN),
        m.ssim.unwrap_or(f64::NAN),
        back.rmse
    );
    Ok(m)
}

/// The forest's acceptance experiment on a synthetic world.
#[derive(clap::Parser)]
struct Args {
    /// The world's side in fine pixels.
    #[arg(default_value_t = 320)]
    size: usize,
    /// Trees in the forest.
    #[arg(default_value_t = 100)]
    trees: usize,
}

fn main() -> anyhow::Result<()> {
    let Args { size, trees } = clap::Parser::parse();
    let world = World::generate(&WorldParams::new().seed(42).size(size, size))?;
    let train_months = [1u32, 3, 5, 9, 11];
    let test_month = 7u32;
    let data: Vec<_> = train_months
        .iter()
        .map(|&m| -> anyhow::Result<_> {
            Ok((
                world.coarse_lst(m, HOUR, K)?,
                world.covariates(m)?,
                world.lst(m, HOUR)?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let scenes: Vec<SupervisedScene<'_>> = data
        .iter()
        .map(|(c, s, t)| SupervisedScene {
            coarse_lst: c,
            covariates: s,
            truth: t,
        })
        .collect();
    let coarse = world.coarse_lst(test_month, HOUR, K)?;
    let cov = world.covariates(test_month)?;
    let truth = world.lst(test_month, HOUR)?;
    println!(
        "world {size}×{size} px (seed 42), k = {K}, train months {train_months:?}, test month {test_month}, hour {HOUR}, {trees} trees, noise floor {:.2} K\n",
        world.noise_std()
    );
    println!("| method | RMSE (K) | MAE (K) | R² | SSIM | aggregated-back RMSE (K) |");
    println!("|---|---|---|---|---|---|");
    let bilinear = resample(&coarse, truth.grid(), Resampling::Bilinear)?;
    let bl = row("bilinear upsampling", &bilinear, &truth, &coarse)?;

    let rf = RfParams::new().n_trees(trees).seed(1);
    let ten = ResidualCorrection::Aggregated { iterations: 10 };
    let off = ResidualCorrection::Off;
    let supervised = [
        (
            "RF, absolute target, no correction",
            true,
            SupervisedTarget::Absolute,
            off,
        ),
        (
            "RF, absolute target, 10 aggregated passes",
            true,
            SupervisedTarget::Absolute,
            ten,
        ),
        (
            "RF, residual target, no correction",
            true,
            SupervisedTarget::Residual,
            off,
        ),
        (
            "RF, residual target, 1 aggregated pass",
            true,
            SupervisedTarget::Residual,
            ResidualCorrection::Coarse,
        ),
        (
            "RF, residual target, 10 aggregated passes (default)",
            true,
            SupervisedTarget::Residual,
            ten,
        ),
        (
            "ridge, residual target, no correction",
            false,
            SupervisedTarget::Residual,
            off,
        ),
        (
            "ridge, residual target, 10 aggregated passes",
            false,
            SupervisedTarget::Residual,
            ten,
        ),
    ];
    for (name, forest, target, corr) in supervised {
        let params = if forest {
            DownscaleParams::random_forest(rf.clone())
        } else {
            DownscaleParams::ridge(RidgeParams::new())
        };
        let t = Instant::now();
        let model = params
            .supervised_target(target)
            .residual_correction(corr)
            .fit_supervised(&scenes)?;
        let fit_s = t.elapsed().as_secs_f64();
        let pred = model.predict(&coarse, &cov)?;
        let m = row(&format!("supervised {name}"), &pred, &truth, &coarse)?;
        eprintln!(
            "{name}: {} samples, fit {fit_s:.1} s, RMSE / bilinear RMSE = {:.2}",
            model.training_samples(),
            m.rmse / bl.rmse
        );
    }
    let coarse_fit = [
        (
            "RF, coarse-model residual (H&V)",
            DownscaleParams::random_forest(rf.clone())
                .residual_correction(ResidualCorrection::Coarse),
        ),
        (
            "RF, 10 aggregated passes (default)",
            DownscaleParams::random_forest(rf.clone()),
        ),
        (
            "ridge, coarse-model residual (H&V)",
            DownscaleParams::ridge(RidgeParams::new())
                .residual_correction(ResidualCorrection::Coarse),
        ),
        (
            "ridge, 10 aggregated passes",
            DownscaleParams::ridge(RidgeParams::new()),
        ),
    ];
    for (name, params) in coarse_fit {
        let fitted = params.fit(&coarse, &cov)?;
        row(
            &format!("coarse fit {name}"),
            &fitted.predict(&cov)?,
            &truth,
            &coarse,
        )?;
    }
    Ok(())
}
