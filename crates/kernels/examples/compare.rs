//! Side-by-side timings of candle's operators and this crate's kernels, printed as Markdown:
//! the machine's sgemm peak, per-layer GFLOP/s for the conv shapes of AMUN's `small` and
//! `paper` presets (batch 34, 32×32 patches), and a U-Net training step and inference.
//!
//! ```text
//! cargo run --release -p amun-kernels [--features avx512] --example compare -- [reps] [sections] [backends]
//! ```
//!
//! `sections` is a comma-separated subset of `sgemm,small,paper,unet` (default: all);
//! `backends` is `candle,fast` (the default) or one of them, the other's columns left empty;
//! `RAYON_NUM_THREADS` sets the thread count.
//!
//! Every figure is the median of `reps` (default 7) timed runs after one warm-up run, with the
//! best run in parentheses.
//! `benches/pytorch/reference.py` prints the same tables for PyTorch.

use std::time::Instant;

use amun_kernels::{
    cat_channels, conv2d, conv2d_relu, conv_transpose2x2, max_pool2x2, set_backend, Backend,
};
use candle_core::{DType, Device, Module, Result, Tensor, Var};

/// (median, best) wall time of `reps` runs of `f`, in seconds, after one warm-up run.
fn median_time(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    f()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok((t[t.len() / 2], t[0]))
}

/// `work / t` for the median and the best time, as `median (best)`, three significant digits.
fn rate(work: f64, (median, best): (f64, f64)) -> String {
    let sig = |v: f64| {
        let decimals = (2 - v.abs().max(1e-9).log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.decimals$}")
    };
    format!("{} ({})", sig(work / median), sig(work / best))
}

/// One layer shape: `(c_in, c_out, k, side)` (`k = 2` means the 2×2 stride-2 transposed conv,
/// `side` its input side).
type Layer = (usize, usize, usize, usize);

/// The distinct conv shapes of an AMUN preset at 32×32 (see `amun_net::AmunConfig`): shallow
/// features, GMFCA, FFRDB, fusion, then the U-Net.
fn preset_layers(c: usize, g: usize, widths: &[usize], bridge: usize) -> Vec<Layer> {
    let mut v = vec![
        (1, c, 3, 32),
        (c, c, 3, 32),
        (c, 1, 3, 32),
        (2 * c, c, 1, 32),
    ];
    for l in 0..3 {
        v.push((c + l * g, g, 3, 32));
    }
    v.extend([(c + 3 * g, c, 1, 32), (3 * c, c, 1, 32)]);
    let mut prev = c;
    let mut side = 32;
    for &w in widths {
        v.extend([(prev, w, 3, side), (w, w, 3, side)]);
        prev = w;
        side /= 2;
    }
    v.extend([(prev, bridge, 3, side), (bridge, bridge, 3, side)]);
    let mut below = bridge;
    for &w in widths.iter().rev() {
        v.push((below, w, 2, side));
        side *= 2;
        v.extend([(2 * w, w, 3, side), (w, w, 3, side)]);
        below = w;
    }
    v.push((widths[0], 1, 1, 32));
    let mut seen = Vec::new();
    v.retain(|l| {
        let new = !seen.contains(l);
        seen.push(*l);
        new
    });
    v
}

fn layer_flops(b: usize, (ci, co, k, side): Layer) -> f64 {
    if k == 2 {
        2.0 * (b * ci * co * 4 * side * side) as f64
    } else {
        2.0 * (b * ci * co * k * k * side * side) as f64
    }
}

fn run_layer(b: usize, l: Layer, reps: usize, dev: &Device) -> Result<(String, String)> {
    let (ci, co, k, side) = l;
    let x = Var::randn(0f32, 1.0, (b, ci, side, side), dev)?;
    let wshape = if k == 2 {
        (ci, co, 2, 2)
    } else {
        (co, ci, k, k)
    };
    let w = Var::randn(0f32, 0.1, wshape, dev)?;
    let bias = Var::zeros(co, DType::F32, dev)?;
    let fwd = || -> Result<Tensor> {
        if k == 2 {
            conv_transpose2x2(&x, &w, Some(&bias))
        } else {
            conv2d(&x, &w, Some(&bias), k / 2)
        }
    };
    let t_fwd = median_time(reps, || fwd().map(|_| ()))?;
    let t_step = median_time(reps, || {
        let y = fwd()?;
        y.sum_all()?.backward().map(|_| ())
    })?;
    let f = layer_flops(b, l) / 1e9;
    Ok((rate(f, t_fwd), rate(3.0 * f, t_step)))
}

/// A U-Net of this crate's layers (`conv2d_relu`, `cat_channels` and the rest, as
/// `amun_net::UNet`): encoder levels of two 3×3 conv + ReLU and a 2×2 max-pool,
/// a bridge, decoder levels of a 2×2 stride-2 transposed conv, concat with the skip and two
/// 3×3 convs, a 1×1 conv to one channel (the layers of `amun_net::UNet`).
struct UNet {
    vars: Vec<Var>,
    levels: usize,
}

impl UNet {
    fn new(c_in: usize, widths: &[usize], bridge: usize, dev: &Device) -> Result<Self> {
        let mut vars = Vec::new();
        let mut conv = |ci: usize, co: usize, k: usize, t: bool| -> Result<()> {
            let std = (2.0 / (ci * k * k) as f64).sqrt();
            let shape = if t { (ci, co, k, k) } else { (co, ci, k, k) };
            vars.push(Var::randn(0f32, std as f32, shape, dev)?);
            vars.push(Var::zeros(co, DType::F32, dev)?);
            Ok(())
        };
        let mut prev = c_in;
        for &w in widths {
            conv(prev, w, 3, false)?;
            conv(w, w, 3, false)?;
            prev = w;
        }
        conv(prev, bridge, 3, false)?;
        conv(bridge, bridge, 3, false)?;
        let mut below = bridge;
        for &w in widths.iter().rev() {
            conv(below, w, 2, true)?;
            conv(2 * w, w, 3, false)?;
            conv(w, w, 3, false)?;
            below = w;
        }
        conv(widths[0], 1, 1, false)?;
        Ok(Self {
            vars,
            levels: widths.len(),
        })
    }
}

impl Module for UNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let v = &self.vars;
        let c3 = |i: usize, x: &Tensor| conv2d_relu(x, &v[2 * i], Some(&v[2 * i + 1]), 1);
        let mut i = 0;
        let mut h = x.clone();
        let mut skips = Vec::new();
        for _ in 0..self.levels {
            let s = c3(i + 1, &c3(i, &h)?)?;
            i += 2;
            h = max_pool2x2(&s)?;
            skips.push(s);
        }
        h = c3(i + 1, &c3(i, &h)?)?;
        i += 2;
        for s in skips.iter().rev() {
            let u = conv_transpose2x2(&h, &v[2 * i], Some(&v[2 * i + 1]))?;
            let cat = cat_channels(&[s, &u])?; // [B, 2w, H, W]
            h = c3(i + 2, &c3(i + 1, &cat)?)?;
            i += 3;
        }
        conv2d(&h, &v[2 * i], Some(&v[2 * i + 1]), 0)
    }
}

/// Seconds per SGD training step (forward, MSE, backward, update) and per-pixel inference.
fn unet_times(net: &UNet, c_in: usize, reps: usize, dev: &Device) -> Result<(String, String)> {
    let x = Tensor::randn(0f32, 1.0, (34, c_in, 32, 32), dev)?;
    let y = Tensor::randn(0f32, 1.0, (34, 1, 32, 32), dev)?;
    let t_step = median_time(reps, || {
        let loss = (net.forward(&x)? - &y)?.sqr()?.mean_all()?;
        let grads = loss.backward()?;
        for v in &net.vars {
            if let Some(g) = grads.get(v) {
                v.set(&(v.as_tensor() - (g * 1e-3)?)?)?;
            }
        }
        Ok(())
    })?;
    let tile = Tensor::randn(0f32, 1.0, (1, c_in, 256, 256), dev)?;
    let t_inf = median_time(reps, || net.forward(&tile).map(|_| ()))?;
    Ok((
        format!("{:.3} ({:.3})", t_step.0, t_step.1),
        rate(256.0 * 256.0 / 1e6, t_inf),
    ))
}

/// Side-by-side timings of candle's operators and this crate's kernels.
#[derive(clap::Parser)]
struct Args {
    /// Repetitions per measurement.
    #[arg(default_value_t = 7)]
    reps: usize,
    /// A comma-separated subset of `sgemm,small,paper,unet`.
    #[arg(default_value = "sgemm,small,paper,unet")]
    sections: String,
    /// `candle,fast` or one of them (the other's columns left empty).
    #[arg(default_value = "candle,fast")]
    backends: String,
}

fn main() -> Result<()> {
    let Args {
        reps,
        sections,
        backends,
    } = clap::Parser::parse();
    let want = |s: &str| sections.split(',').any(|x| x == s);
    let candle = backends.split(',').any(|b| b == "candle");
    let fast = backends.split(',').any(|b| b == "fast");
    // Runs `f` with `backend` selected if that backend was asked for; "—" otherwise.
    let timed = |on: bool, backend: Backend, f: &dyn Fn() -> Result<(String, String)>| {
        if !on {
            return Ok(("—".to_string(), "—".to_string()));
        }
        set_backend(backend);
        f()
    };
    amun_kernels::tune_allocator();
    let dev = Device::Cpu;
    println!("threads: {}", rayon::current_num_threads());

    if want("sgemm") {
        let n = 2048;
        let a = Tensor::randn(0f32, 1.0, (n, n), &dev)?;
        let t = median_time(reps, || a.matmul(&a).map(|_| ()))?;
        let flops = 2.0 * (n * n * n) as f64 / 1e9;
        println!(
            "\nsgemm peak (candle matmul = gemm crate, {n}³): {} GFLOP/s, median (best)",
            rate(flops, t)
        );
    }

    let presets: [(&str, usize, usize, &[usize], usize); 2] = [
        ("small", 16, 16, &[16, 32, 64, 128], 256),
        ("paper", 64, 32, &[52, 104, 208, 416], 832),
    ];
    for (name, c, g, widths, bridge) in presets {
        if !want(name) {
            continue;
        }
        println!("\n### `{name}` preset, batch 34, GFLOP/s, median (best)\n");
        println!("| layer (c_in→c_out, k, side) | candle fwd | fast fwd | candle f+b | fast f+b |");
        println!("|---|---|---|---|---|");
        for l in preset_layers(c, g, widths, bridge) {
            let (cf, cb) = timed(candle, Backend::Candle, &|| run_layer(34, l, reps, &dev))?;
            let (ff, fb) = timed(fast, Backend::Fast, &|| run_layer(34, l, reps, &dev))?;
            let kind = if l.2 == 2 {
                "up2×2".to_string()
            } else {
                format!("{0}×{0}", l.2)
            };
            println!(
                "| {}→{}, {kind}, {} | {cf} | {ff} | {cb} | {fb} |",
                l.0, l.1, l.3
            );
        }
    }

    if !want("unet") {
        return Ok(());
    }
    println!("\n### U-Net training step (batch 34, 32×32, SGD) and inference (1×256×256), median (best)\n");
    println!("| U-Net (c_in; widths + bridge) | candle step (s) | fast step (s) | candle inference (Mpx/s) | fast inference (Mpx/s) |");
    println!("|---|---|---|---|---|");
    let nets: [(usize, &[usize], usize); 3] = [
        (8, &[32, 64, 128, 256], 512),
        (16, &[16, 32, 64, 128], 256),
        (64, &[52, 104, 208, 416], 832),
    ];
    for (c_in, widths, bridge) in nets {
        let net = UNet::new(c_in, widths, bridge, &dev)?;
        let (cs, ci) = timed(candle, Backend::Candle, &|| {
            unet_times(&net, c_in, reps, &dev)
        })?;
        let (fs, fi) = timed(fast, Backend::Fast, &|| unet_times(&net, c_in, reps, &dev))?;
        println!("| {c_in}; {widths:?} + {bridge} | {cs} | {fs} | {ci} | {fi} |");
    }
    Ok(())
}
