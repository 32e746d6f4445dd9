//! AMUN network benchmarks: one training step (batch 34, 32×32 patches) for the `small`
//! and `paper` presets, with candle's layers and with amun-kernels' fast CPU kernels, and
//! whole-scene tiled inference in pixels/s.
//!
//! `cargo bench -p amun-benches --bench net`

#![forbid(unsafe_code)]

use amun_kernels::Backend;
use amun_net::{
    Amun, AmunConfig, ChannelStats, Checkpoint, CheckpointMeta, Normalization, Optim, OptimConfig,
    SeededVarMap, Solver, TileParams,
};
use amun_raster::{Grid, Raster, Stack};
use candle_core::{Device, Module, Tensor};
use candle_nn::Optimizer;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const BATCH: usize = 34;
const PATCH: usize = 32;

/// Seeded pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn train_step(c: &mut Criterion) {
    // What `amun` does at start-up (the inference group runs in this same process).
    amun_kernels::tune_allocator();
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("net_train_step");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, cfg) in [
        ("small", AmunConfig::small()),
        ("paper", AmunConfig::paper()),
    ] {
        let ch = 1 + cfg.n_aux();
        let x = Tensor::from_vec(
            values(BATCH * ch * PATCH * PATCH, 1),
            (BATCH, ch, PATCH, PATCH),
            &dev,
        )
        .unwrap();
        let y = Tensor::from_vec(
            values(BATCH * PATCH * PATCH, 2),
            (BATCH, 1, PATCH, PATCH),
            &dev,
        )
        .unwrap();
        for backend in [Backend::Candle, Backend::Fast] {
            amun_kernels::set_backend(backend);
            let vars = SeededVarMap::new(0);
            let model = Amun::new(&cfg, vars.var_builder(&dev)).unwrap();
            let mut opt = Optim::with_names(
                vars.sorted_vars(),
                OptimConfig {
                    solver: Solver::RMSPROP,
                    learning_rate: 1e-4,
                    l2: 1e-4,
                },
            )
            .unwrap();
            g.bench_function(BenchmarkId::new(name, format!("{backend:?}")), |b| {
                b.iter(|| {
                    let out = model.forward(&x).unwrap();
                    let loss = (out - &y).unwrap().sqr().unwrap().mean_all().unwrap();
                    opt.backward_step(&loss).unwrap();
                })
            });
        }
    }
    g.finish();
}

fn inference(c: &mut Criterion) {
    let dev = Device::Cpu;
    // 25 coarse pixels of 0.1° → a 250×250 fine scene.
    let side = 250;
    let cfg = AmunConfig::small();
    let vars = SeededVarMap::new(0);
    Amun::new(&cfg, vars.var_builder(&dev)).unwrap();
    let st = ChannelStats {
        mean: 0.0,
        std: 1.0,
    };
    let norm = Normalization {
        lst: ChannelStats {
            mean: 290.0,
            std: 5.0,
        },
        aux: vec![st; cfg.n_aux()],
        target: st,
    };
    let meta = CheckpointMeta::new(cfg.clone(), norm, None, vec![], 0, None);
    let ck = Checkpoint::from_parts(meta, &vars.sorted_vars(), vec![], &dev).unwrap();
    let coarse_grid = Grid::geographic(100.0, 40.0, 0.1, side / 10, side / 10).unwrap();
    let fine = coarse_grid.refine(10).unwrap();
    let cv = values(coarse_grid.len(), 3);
    let cw = coarse_grid.width();
    let coarse = Raster::from_fn(coarse_grid.clone(), |(r, c)| 290.0 + 5.0 * cv[r * cw + c]);
    let mut cov = Stack::new(fine.clone());
    for (i, name) in cfg.covariates.iter().enumerate() {
        let v = values(fine.len(), 10 + i as u64);
        let scale = if name == "aspect" { 180.0 } else { 1.0 };
        let band = Raster::from_fn(fine.clone(), |(r, c)| scale * (1.0 + v[r * side + c]));
        cov.push(name, band).unwrap();
    }
    let mut g = c.benchmark_group("net_inference");
    g.sample_size(10);
    g.throughput(Throughput::Elements((side * side) as u64));
    for backend in [Backend::Candle, Backend::Fast] {
        amun_kernels::set_backend(backend);
        g.bench_function(
            BenchmarkId::new("small_250px_tile128", format!("{backend:?}")),
            |b| {
                b.iter(|| {
                    ck.predict(
                        &coarse,
                        &cov,
                        &TileParams {
                            tile: Some(128),
                            ..TileParams::default()
                        },
                        |_, _| {},
                    )
                    .unwrap()
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, train_step, inference);
criterion_main!(benches);
