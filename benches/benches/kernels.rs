//! amun-kernels: candle's operators against this crate's CPU kernels.
//!
//! - `kernels/sgemm`: the machine's single-precision GEMM peak (a 2048³ candle matmul, which
//!   is the `gemm` crate the kernels are built on); throughput in FLOP/s ("elem/s").
//! - `kernels/layer/{preset}/...`: every conv shape of the AMUN `small` and `paper` presets at
//!   batch 34 on 32×32 patches, forward and forward+backward, both backends; FLOP/s.
//! - `kernels/amun/{preset}`: an AMUN training step (batch 34, 32×32: forward, MSE, backward,
//!   SGD update) and inference on a 1×256×256 tile (pixels/s), both backends.
//!
//! `cargo bench -p amun-benches --bench kernels`; results and the PyTorch comparison are in
//! `docs/benchmarks/amun-kernels.md`.

#![forbid(unsafe_code)]

use std::time::Duration;

use amun_kernels::{conv2d, conv_transpose2x2, set_backend, Backend};
use amun_net::{Amun, AmunConfig};
use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Optimizer, VarBuilder, VarMap, SGD};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const BACKENDS: [(&str, Backend); 2] = [("candle", Backend::Candle), ("fast", Backend::Fast)];

fn sgemm(c: &mut Criterion) {
    // What `amun` does at start-up; the benches below run in this same process.
    amun_kernels::tune_allocator();
    let n = 2048;
    let a = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu).unwrap();
    let mut g = c.benchmark_group("kernels/sgemm");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(2 * (n * n * n) as u64));
    g.bench_function("2048", |b| b.iter(|| a.matmul(&a).unwrap()));
    g.finish();
}

/// `(c_in, c_out, k, side)`; `k = 2` is the 2×2 stride-2 transposed conv (side = input side).
type Layer = (usize, usize, usize, usize);

/// The distinct conv shapes of an AMUN preset at 32×32 (mirrors `amun_net::Amun`): shallow
/// features, GMFCA, FFRDB, fusion, U-Net.
fn preset_layers(cfg: &AmunConfig) -> Vec<Layer> {
    let (c, g) = (cfg.channels, cfg.rdb_growth);
    let mut v = vec![
        (1, c, 3, 32),
        (c, c, 3, 32),
        (c, 1, 3, 32),
        (2 * c, c, 1, 32),
    ];
    v.extend((0..cfg.rdb_layers).map(|l| (c + l * g, g, 3, 32)));
    v.extend([
        (c + cfg.rdb_layers * g, c, 1, 32),
        (cfg.rdb_count * c, c, 1, 32),
    ]);
    let (mut prev, mut side) = (c, 32);
    for &w in &cfg.unet_widths {
        v.extend([(prev, w, 3, side), (w, w, 3, side)]);
        (prev, side) = (w, side / 2);
    }
    v.extend([
        (prev, cfg.unet_bridge, 3, side),
        (cfg.unet_bridge, cfg.unet_bridge, 3, side),
    ]);
    let mut below = cfg.unet_bridge;
    for &w in cfg.unet_widths.iter().rev() {
        v.push((below, w, 2, side));
        side *= 2;
        v.extend([(2 * w, w, 3, side), (w, w, 3, side)]);
        below = w;
    }
    v.push((cfg.unet_widths[0], 1, 1, 32));
    let mut out: Vec<Layer> = Vec::new();
    for l in v {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

fn layers(c: &mut Criterion) {
    let dev = Device::Cpu;
    let b = 34;
    for (preset, cfg) in [
        ("small", AmunConfig::small()),
        ("paper", AmunConfig::paper()),
    ] {
        let mut g = c.benchmark_group(format!("kernels/layer/{preset}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for (ci, co, k, side) in preset_layers(&cfg) {
            let x = Var::randn(0f32, 1.0, (b, ci, side, side), &dev).unwrap();
            let wshape = if k == 2 {
                (ci, co, 2, 2)
            } else {
                (co, ci, k, k)
            };
            let w = Var::randn(0f32, 0.1, wshape, &dev).unwrap();
            let bias = Var::zeros(co, DType::F32, &dev).unwrap();
            let fwd = || {
                if k == 2 {
                    conv_transpose2x2(&x, &w, Some(&bias)).unwrap()
                } else {
                    conv2d(&x, &w, Some(&bias), k / 2).unwrap()
                }
            };
            let kk = if k == 2 { 4 } else { k * k };
            let flops = 2 * (b * ci * co * kk * side * side) as u64;
            let name = format!("{ci}to{co}_k{k}_{side}");
            for (bname, backend) in BACKENDS {
                set_backend(backend);
                g.throughput(Throughput::Elements(flops));
                g.bench_function(BenchmarkId::new(format!("fwd/{bname}"), &name), |bn| {
                    bn.iter(fwd)
                });
                g.throughput(Throughput::Elements(3 * flops));
                g.bench_function(BenchmarkId::new(format!("fwd+bwd/{bname}"), &name), |bn| {
                    bn.iter(|| fwd().sum_all().unwrap().backward().unwrap())
                });
            }
        }
        g.finish();
    }
}

fn amun(c: &mut Criterion) {
    let dev = Device::Cpu;
    for (preset, cfg) in [
        ("small", AmunConfig::small()),
        ("paper", AmunConfig::paper()),
    ] {
        let vm = VarMap::new();
        let net = Amun::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        let mut opt = SGD::new(vm.all_vars(), 1e-4).unwrap();
        let c_in = 1 + cfg.n_aux();
        let x = Tensor::randn(0f32, 1.0, (34, c_in, 32, 32), &dev).unwrap();
        let y = Tensor::randn(0f32, 1.0, (34, 1, 32, 32), &dev).unwrap();
        let tile = Tensor::randn(0f32, 1.0, (1, c_in, 256, 256), &dev).unwrap();
        let mut g = c.benchmark_group(format!("kernels/amun/{preset}"));
        g.sample_size(10).measurement_time(Duration::from_secs(5));
        for (bname, backend) in BACKENDS {
            set_backend(backend);
            g.throughput(Throughput::Elements(34 * 32 * 32));
            g.bench_function(BenchmarkId::new("train_step", bname), |b| {
                b.iter(|| {
                    let loss = (net.forward(&x).unwrap() - &y)
                        .unwrap()
                        .sqr()
                        .unwrap()
                        .mean_all()
                        .unwrap();
                    opt.backward_step(&loss).unwrap();
                })
            });
            g.throughput(Throughput::Elements(256 * 256));
            g.bench_function(BenchmarkId::new("inference_256", bname), |b| {
                b.iter(|| net.forward(&tile).unwrap())
            });
        }
        g.finish();
    }
}

criterion_group!(benches, sgemm, layers, amun);
criterion_main!(benches);
