//! Times AMUN training steps (batch 34, 32×32, SGD with lr 1e-3 as in
//! `benches/pytorch/reference.py`), for profiling and side-by-side comparison.
//!
//! ```text
//! cargo run --release -p amun-net --example step_time -- [small|paper] [steps]
//! ```

use std::time::Instant;

use amun_net::{Amun, AmunConfig, Optim, OptimConfig, SeededVarMap, Solver};
use candle_core::{Device, Module, Tensor};
use candle_nn::Optimizer;

fn main() -> anyhow::Result<()> {
    let preset = std::env::args().nth(1).unwrap_or_else(|| "small".into());
    let steps: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    if std::env::var_os("AMUN_NO_TUNE").is_none() {
        amun_kernels::tune_allocator();
    }
    let cfg = match preset.as_str() {
        "paper" => AmunConfig::paper(),
        _ => AmunConfig::small(),
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
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps + 1 {
        let s = Instant::now();
        let loss = (model.forward(&x)? - &y)?.sqr()?.mean_all()?;
        opt.backward_step(&loss)?;
        times.push(s.elapsed().as_secs_f64());
    }
    times.remove(0);
    times.sort_by(f64::total_cmp);
    println!(
        "AMUN {preset}: {ch} channels in, step median {:.3} s, best {:.3} s ({steps} steps)",
        times[times.len() / 2],
        times[0],
    );
    Ok(())
}
