//! Times an AMUN training step (batch 34, 32×32 patches, forward, MSE, backward and a plain
//! SGD update with learning rate 1e-3) and inference on one 256×256 tile, as
//! `benches/pytorch/reference.py` does for PyTorch, so that the two print comparable lines.
//!
//! ```text
//! cargo run --release -p amun-net --example step_time -- [small|paper] [steps]
//! ```
//!
//! `RAYON_NUM_THREADS` sets the thread count; `AMUN_NO_TUNE=1` leaves the allocator as it is
//! (see `amun_kernels::tune_allocator`). Medians and best runs after one warm-up run.

use std::time::Instant;

use amun_net::{Amun, AmunConfig, Optim, OptimConfig, SeededVarMap, Solver};
use candle_core::{Device, Module, Tensor};
use candle_nn::Optimizer;

/// (median, best) seconds of `n` runs of `f` after one warm-up run.
fn time(n: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<(f64, f64)> {
    f()?;
    let mut t = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok((t[t.len() / 2], t[0]))
}

/// Times an AMUN training step and a tile's inference.
#[derive(clap::Parser)]
struct Args {
    /// The network preset: `small` or `paper`.
    #[arg(default_value = "small")]
    preset: String,
    /// Timed steps after the warm-up.
    #[arg(default_value_t = 10)]
    steps: usize,
}

fn main() -> anyhow::Result<()> {
    let Args { preset, steps } = clap::Parser::parse();
    if std::env::var_os("AMUN_NO_TUNE").is_none() {
        amun_kernels::tune_allocator();
    }
    let cfg = match preset.as_str() {
        "small" => AmunConfig::small(),
        "paper" => AmunConfig::paper(),
        other => anyhow::bail!("unknown preset `{other}` (small or paper)"),
    };
    let dev = Device::Cpu;
    let ch = 1 + cfg.n_aux();
    let x = Tensor::randn(0f32, 1.0, (34, ch, 32, 32), &dev)?;
    let y = Tensor::randn(0f32, 1.0, (34, 1, 32, 32), &dev)?;
    let vars = SeededVarMap::new(0);
    let model = Amun::new(&cfg, vars.var_builder(&dev))?;
    let mut opt = Optim::with_names(
        vars.sorted_vars(),
        OptimConfig {
            solver: Solver::Sgdm { momentum: 0.0 },
            learning_rate: 1e-3,
            l2: 0.0,
        },
    )?;
    let step = time(steps, || {
        let loss = (model.forward(&x)? - &y)?.sqr()?.mean_all()?;
        opt.backward_step(&loss)?;
        Ok(())
    })?;
    let tile = Tensor::randn(0f32, 1.0, (1, ch, 256, 256), &dev)?;
    let infer = time(steps, || {
        model.forward(&tile)?;
        Ok(())
    })?;
    let mpx = |t: f64| 256.0 * 256.0 / t / 1e6;
    println!(
        "AMUN {preset}, {ch} channels, {} threads: step {:.3} s ({:.3}), inference {:.3} Mpx/s ({:.3}), median (best) of {steps}",
        rayon::current_num_threads(),
        step.0,
        step.1,
        mpx(infer.0),
        mpx(infer.1),
    );
    Ok(())
}
