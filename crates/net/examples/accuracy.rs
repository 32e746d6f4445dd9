//! Accuracy run of the issue: an `amun-synth` world at 10×, the paper's setting (train on
//! some months, test on others), whole-scene tiled prediction scored against the true fine
//! LST and compared with bilinear upsampling. With `--ablation`, the paper's four module
//! variants are trained the same way.
//!
//! ```text
//! cargo run --release -p amun-net --example accuracy -- [--epochs N] [--minutes M]
//!     [--no-elevation] [--ablation] [--preset small|paper] [--size 320] [--seed 7]
//!     [--stride 32] [--lr 3e-4] [--batch 8]
//! ```

use std::time::Instant;

use amun_net::{
    Ablation, AmunConfig, LossKind, NodataPolicy, Solver, TileParams, TrainConfig, TrainEvent,
    Trainer, TrainingScene,
};
use amun_raster::{resample, Raster, Resampling, Stack};
use amun_synth::{World, WorldParams};

const K: usize = 10;
const HOUR: u32 = 13;
use amun_synth::{TEST_MONTHS, TRAIN_MONTHS};

/// The accuracy run's settings.
#[derive(clap::Parser)]
struct Args {
    /// Most epochs.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Wall-clock budget for each training (minutes).
    #[arg(long, default_value_t = 8.0)]
    minutes: f64,
    /// Leave the elevation covariate out.
    #[arg(long = "no-elevation", action = clap::ArgAction::SetFalse)]
    elevation: bool,
    /// Train the paper's four module variants too.
    #[arg(long)]
    ablation: bool,
    /// Model preset: `small` or `paper`.
    #[arg(long, default_value = "small")]
    preset: String,
    /// World side in fine pixels.
    #[arg(long, default_value_t = 320)]
    size: usize,
    /// World and training seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Patch stride.
    #[arg(long, default_value_t = 32)]
    stride: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 3e-4)]
    lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 8)]
    batch: usize,
}

fn covariates(world: &World, month: u32, elevation: bool) -> anyhow::Result<Stack> {
    let mut s = world.covariates(month)?;
    if elevation {
        s.push("elevation", world.elevation().clone())?;
    }
    Ok(s)
}

/// RMSE over pixels valid in both.
fn rmse(a: &Raster, b: &Raster) -> f64 {
    let (mut s, mut n) = (0.0, 0.0);
    for (x, y) in a.data().iter().zip(b.data().iter()) {
        if x.is_finite() && y.is_finite() {
            s += (f64::from(*x) - f64::from(*y)).powi(2);
            n += 1.0;
        }
    }
    (s / n).sqrt()
}

fn main() -> anyhow::Result<()> {
    amun_net::tune_allocator();
    let args = <Args as clap::Parser>::parse();
    let t0 = Instant::now();
    let world = World::generate(
        &WorldParams::new()
            .seed(args.seed)
            .size(args.size, args.size),
    )?;
    let mut scenes = Vec::new();
    for m in TRAIN_MONTHS {
        scenes.push(TrainingScene {
            coarse_lst: world.coarse_lst(m, HOUR, K)?,
            covariates: covariates(&world, m, args.elevation)?,
            label: Some(world.lst(m, HOUR)?),
            fit_prior_on_label: false,
        });
    }
    println!(
        "world {0}×{0} px, k = {K}, train months {TRAIN_MONTHS:?}, test months {TEST_MONTHS:?}, built in {1:.1} s",
        args.size,
        t0.elapsed().as_secs_f64()
    );
    let mut base = match args.preset.as_str() {
        "paper" => AmunConfig::paper(),
        _ => AmunConfig::small(),
    };
    if args.elevation {
        let mut cov = base.covariates.clone();
        cov.push("elevation".into());
        base = base.with_covariates(&cov);
    }
    let tc = TrainConfig {
        solver: Solver::ADAM,
        learning_rate: args.lr,
        lr_drop_every: (args.epochs / 3).max(1),
        epochs: args.epochs,
        batch_size: args.batch,
        l2: 1e-4,
        loss: LossKind::Mse,
        seed: args.seed,
        patch: 32,
        stride: args.stride,
        split_block: 64,
        nodata: NodataPolicy::Drop,
        augment: true,
        keep_best: true,
        ..TrainConfig::paper()
    };
    let variants: Vec<Ablation> = if args.ablation {
        Ablation::ALL.to_vec()
    } else {
        vec![Ablation::Full]
    };
    let budget = args.minutes * 60.0 / variants.len() as f64;
    let mut rows = Vec::new();
    for ab in variants {
        let cfg = base.clone().with_ablation(ab);
        let start = Instant::now();
        let mut trainer = Trainer::new(&cfg, &tc, &scenes)?;
        let (n_tr, n_val) = trainer.patch_counts();
        println!(
            "[{}] {n_tr} training / {n_val} validation patches",
            ab.label()
        );
        while trainer.epochs_done() < args.epochs {
            let rec = trainer.run_epoch(&mut |p| {
                if let TrainEvent::Epoch(r) = p {
                    println!(
                        "[{}] epoch {:>3} lr {:.1e} loss {:.4} train RMSE {:.3} K val RMSE {:.3} K ({:.1} s)",
                        ab.label(),
                        r.epoch,
                        r.learning_rate,
                        r.train_loss,
                        r.train_rmse_k,
                        r.val_rmse_k,
                        r.seconds
                    );
                }
            })?;
            let per_epoch = start.elapsed().as_secs_f64() / (rec.epoch + 1) as f64;
            if start.elapsed().as_secs_f64() + per_epoch > budget {
                println!(
                    "[{}] time budget reached after {} epochs",
                    ab.label(),
                    rec.epoch + 1
                );
                break;
            }
        }
        let best = trainer
            .history()
            .iter()
            .map(|r| r.val_rmse_k)
            .fold(f64::INFINITY, f64::min);
        // keep_best: the weights of the best validation epoch.
        let ck = trainer.finish()?;
        let train_s = start.elapsed().as_secs_f64();
        let (mut s_net, mut s_bil) = (0.0, 0.0);
        // The whole scene in one window (the default budget holds it).
        let tiles = TileParams::default();
        let pt = Instant::now();
        for m in TEST_MONTHS {
            let coarse = world.coarse_lst(m, HOUR, K)?;
            let cov = covariates(&world, m, args.elevation)?;
            let truth = world.lst(m, HOUR)?;
            let pred = ck.predict(&coarse, &cov, &tiles, |_, _| {})?;
            let bil = resample(&coarse, truth.grid(), Resampling::Bilinear)?;
            let (rn, rb) = (rmse(&pred, &truth), rmse(&bil, &truth));
            println!(
                "[{}] month {m:>2}: AMUN RMSE {rn:.3} K, bilinear {rb:.3} K, ratio {:.3}",
                ab.label(),
                rn / rb
            );
            s_net += rn * rn;
            s_bil += rb * rb;
        }
        let (rn, rb) = ((s_net / 4.0).sqrt(), (s_bil / 4.0).sqrt());
        println!(
            "[{}] TEST months: AMUN RMSE {rn:.3} K, bilinear {rb:.3} K, ratio {:.3}; best val {best:.3} K; train {train_s:.0} s, predict {:.1} s",
            ab.label(),
            rn / rb,
            pt.elapsed().as_secs_f64()
        );
        rows.push((ab, rn, rb, best, train_s, ck.meta().epochs_done));
    }
    println!(
        "\n| variant | epochs | train s | val RMSE (K) | test RMSE (K) | bilinear (K) | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (ab, rn, rb, best, s, ep) in rows {
        println!(
            "| {} | {ep} | {s:.0} | {best:.3} | {rn:.3} | {rb:.3} | {:.3} |",
            ab.label(),
            rn / rb
        );
    }
    println!("total {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}
