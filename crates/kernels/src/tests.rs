//! The fast kernels against candle's own operators (the reference), forward and gradients,
//! and against central finite differences.

use candle_core::{DType, Device, Tensor, Var};

use super::*;

/// Deterministic pseudo-random values in [-1, 1) (SplitMix64), so failures reproduce.
fn values(n: usize, seed: u64) -> Vec<f32> {
    use rand_core::{RngCore, SeedableRng};
    let mut rng = rand_xoshiro::SplitMix64::seed_from_u64(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1),
    );
    (0..n)
        .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

fn var(dims: &[usize], seed: u64, scale: f32) -> Var {
    let n = dims.iter().product();
    let v: Vec<f32> = values(n, seed).into_iter().map(|x| x * scale).collect();
    // A freshly built CPU tensor of the right element count cannot fail.
    Var::from_tensor(&Tensor::from_vec(v, dims, &Device::Cpu).unwrap()).unwrap()
}

/// `max|a − b| / max|b|`: the error relative to the reference's magnitude.
fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    let scale = b
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    a.iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// The output and the gradients of `Σ y ⊙ r` (r fixed, pseudo-random) for each argument.
fn run(
    f: &dyn Fn(Backend, &[&Tensor]) -> Result<Tensor>,
    backend: Backend,
    args: &[&Var],
) -> (Tensor, Vec<Tensor>) {
    let ts: Vec<&Tensor> = args.iter().map(|v| v.as_tensor()).collect();
    let y = f(backend, &ts).unwrap();
    let r = Tensor::from_vec(values(y.elem_count(), 99), y.dims(), &Device::Cpu).unwrap();
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g = args.iter().map(|v| grads.get(v).unwrap().clone()).collect();
    (y, g)
}

/// Runs both backends and asserts output and gradients agree to 1e-4 relative.
fn compare(label: &str, f: &dyn Fn(Backend, &[&Tensor]) -> Result<Tensor>, args: &[&Var]) {
    let (y0, g0) = run(f, Backend::Candle, args);
    let (y1, g1) = run(f, Backend::Fast, args);
    let e = rel_err(&y1, &y0);
    assert!(e < 1e-4, "{label}: forward relative error {e}");
    for (i, (a, b)) in g1.iter().zip(&g0).enumerate() {
        let e = rel_err(a, b);
        assert!(
            e < 1e-4,
            "{label}: gradient of argument {i} relative error {e}"
        );
    }
}

#[test]
fn conv2d_matches_candle_over_shape_sweep() {
    // (batch, c_in, c_out, h, w, k, padding): channels 1–512, sizes 2–64, batch 1–64, 1×1 and
    // 3×3 (plus a 5×5), padded and not, square and not, chunks within and across images.
    let shapes: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
        (1, 1, 1, 2, 2, 3, 1),
        (2, 3, 5, 7, 9, 3, 1),
        (3, 8, 16, 16, 16, 3, 1),
        (2, 5, 6, 9, 9, 3, 0),
        (2, 4, 3, 8, 8, 1, 0),
        (1, 2, 3, 6, 6, 5, 2),
        (1, 2, 3, 1, 1, 5, 2),
        (64, 2, 3, 4, 4, 3, 1),
        (1, 3, 2, 64, 64, 3, 1),
        (1, 512, 4, 2, 2, 3, 1),
        (2, 4, 512, 4, 4, 1, 0),
        (5, 16, 8, 3, 5, 1, 0),
        (4, 32, 32, 32, 32, 3, 1),
        // The shifted-product path (8–48 channels, at least 16×16): no padding, 5×5, odd and
        // non-square sizes, so that chunks start and end mid-row and span images.
        (2, 12, 20, 17, 23, 3, 0),
        (3, 8, 8, 16, 18, 5, 2),
        (5, 48, 9, 19, 16, 3, 1),
        // The register tiles: more than 48 input channels into few outputs, up to 32 inputs
        // into many, output channels not a multiple of the tile, one input channel.
        (2, 96, 13, 16, 20, 3, 1),
        (1, 24, 67, 20, 18, 3, 1),
        (2, 1, 11, 17, 33, 5, 2),
        // One input or one output channel, as AMUN's shallow features, spatial weights and
        // output layer, with odd sizes and paddings.
        (3, 1, 16, 20, 32, 3, 1),
        (2, 16, 1, 32, 17, 3, 1),
        (2, 7, 1, 9, 9, 5, 2),
        (2, 1, 5, 6, 6, 3, 0),
        (4, 16, 1, 8, 8, 1, 0),
        // Several bands per image (a batch of one, as inference), odd sizes: direct loops and
        // shifted products.
        (1, 16, 1, 37, 29, 3, 1),
        (1, 1, 8, 41, 19, 3, 1),
        (1, 12, 20, 33, 21, 3, 1),
        // Chunks of several whole small images (the gathered patches): no padding and
        // non-square, 5×5 with padding 2, and 16×16 images on the im2col path.
        (6, 3, 4, 5, 7, 3, 0),
        (9, 2, 3, 8, 8, 5, 2),
        (4, 64, 8, 16, 16, 3, 1),
        // "Same" convolutions of whole images 8–16 wide (patch rows as shifted planes):
        // non-square, 7×7 with padding 3, an odd batch.
        (7, 9, 10, 8, 12, 3, 1),
        (3, 4, 6, 10, 8, 7, 3),
        // Images larger than 16×16 on the im2col path, cut into uneven bands (3×3 and 1×1).
        (3, 64, 5, 19, 23, 3, 1),
        (2, 20, 7, 23, 17, 1, 0),
    ];
    for (i, &(b, ci, co, h, w, k, p)) in shapes.iter().enumerate() {
        let s = i as u64 * 10;
        let x = var(&[b, ci, h, w], s, 1.0);
        let wt = var(&[co, ci, k, k], s + 1, 0.3);
        let bias = var(&[co], s + 2, 0.5);
        let label = format!("conv2d {:?}", shapes[i]);
        compare(
            &label,
            &|be, a| conv2d_with(be, a[0], a[1], Some(a[2]), p, false),
            &[&x, &wt, &bias],
        );
        compare(
            &label,
            &|be, a| conv2d_with(be, a[0], a[1], None, p, false),
            &[&x, &wt],
        );
        // Fused ReLU against candle's conv + bias + `relu` (random pre-activations are never
        // exactly zero, where the two gradients may differ by design).
        compare(
            &format!("{label} + relu"),
            &|be, a| conv2d_with(be, a[0], a[1], Some(a[2]), p, true),
            &[&x, &wt, &bias],
        );
    }
}

#[test]
fn conv_transpose_matches_candle_over_shape_sweep() {
    // (batch, c_in, c_out, h, w)
    let shapes: &[(usize, usize, usize, usize, usize)] = &[
        (1, 1, 1, 1, 1),
        (2, 3, 5, 3, 4),
        (64, 4, 2, 2, 2),
        (1, 512, 8, 2, 2),
        (2, 8, 512, 2, 2),
        (3, 16, 8, 16, 16),
        (1, 4, 4, 32, 32),
        (4, 64, 32, 16, 16),
    ];
    for (i, &(b, ci, co, h, w)) in shapes.iter().enumerate() {
        let s = 500 + i as u64 * 10;
        let x = var(&[b, ci, h, w], s, 1.0);
        let wt = var(&[ci, co, 2, 2], s + 1, 0.3);
        let bias = var(&[co], s + 2, 0.5);
        let label = format!("conv_transpose2x2 {:?}", shapes[i]);
        compare(
            &label,
            &|be, a| conv_transpose2x2_with(be, a[0], a[1], Some(a[2])),
            &[&x, &wt, &bias],
        );
        compare(
            &label,
            &|be, a| conv_transpose2x2_with(be, a[0], a[1], None),
            &[&x, &wt],
        );
    }
}

#[test]
fn max_pool_matches_candle_without_ties() {
    // Distinct values (a permutation scaled), so every window has a unique maximum.
    for (i, &(b, c, h, w)) in [
        (1, 1, 2, 2),
        (2, 3, 4, 6),
        (64, 2, 2, 2),
        (1, 512, 4, 4),
        (3, 4, 64, 64),
    ]
    .iter()
    .enumerate()
    {
        let n = b * c * h * w;
        let mut v: Vec<f32> = (0..n).map(|j| ((j * 7919) % n) as f32 / n as f32).collect();
        v.iter_mut()
            .zip(values(n, i as u64))
            .for_each(|(a, r)| *a -= 0.5 + r * 1e-7);
        let x =
            Var::from_tensor(&Tensor::from_vec(v, (b, c, h, w), &Device::Cpu).unwrap()).unwrap();
        compare(
            &format!("max_pool2x2 {:?}", (b, c, h, w)),
            &|be, a| max_pool2x2_with(be, a[0]),
            &[&x],
        );
    }
}

#[test]
fn max_pool_gradient_goes_to_first_maximum_on_ties() {
    // A window of four equal values: PyTorch's rule sends the gradient to the first one.
    let x =
        Var::from_tensor(&Tensor::ones((1, 1, 2, 2), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let y = max_pool2x2_with(Backend::Fast, x.as_tensor()).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    let dx: Vec<f32> = g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(
        dx.iter().map(|&v| v > 0.5).collect::<Vec<_>>(),
        [true, false, false, false]
    );
}

/// Central finite differences of `L = Σ tanh(y) ⊙ r` (in f64) against the analytic gradient,
/// at a few coordinates of every argument.
fn finite_difference(
    label: &str,
    f: &dyn Fn(Backend, &[&Tensor]) -> Result<Tensor>,
    args: &[&Var],
) {
    let loss = |ts: &[&Tensor]| -> f64 {
        let y = f(Backend::Fast, ts).unwrap().to_dtype(DType::F64).unwrap();
        let r = Tensor::from_vec(values(y.elem_count(), 7), y.dims(), &Device::Cpu).unwrap();
        let r = r.to_dtype(DType::F64).unwrap();
        (y.tanh().unwrap() * r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let ts: Vec<&Tensor> = args.iter().map(|v| v.as_tensor()).collect();
    let y = f(Backend::Fast, &ts).unwrap();
    let r = Tensor::from_vec(values(y.elem_count(), 7), y.dims(), &Device::Cpu).unwrap();
    // d/dy Σ tanh(y) r = (1 − tanh²(y)) r
    let t = y.tanh().unwrap();
    let dy = ((t.sqr().unwrap().affine(-1.0, 1.0).unwrap()) * r).unwrap();
    let grads = (y * dy.detach())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let eps = 1e-2f32;
    for (ai, v) in args.iter().enumerate() {
        let analytic: Vec<f32> = grads
            .get(v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
        let scale = analytic.iter().fold(0f32, |m, g| m.max(g.abs()));
        for j in (0..base.len()).step_by((base.len() / 5).max(1)) {
            let at = |d: f32| {
                let mut p = base.clone();
                p[j] += d;
                let pt = Tensor::from_vec(p, v.dims(), &Device::Cpu).unwrap();
                let mut ts2: Vec<&Tensor> = ts.clone();
                ts2[ai] = &pt;
                loss(&ts2)
            };
            let fd = ((at(eps) - at(-eps)) / (2.0 * f64::from(eps))) as f32;
            assert!(
                (fd - analytic[j]).abs() <= 1e-2 * scale + 1e-3,
                "{label}: argument {ai}[{j}]: finite difference {fd}, analytic {}",
                analytic[j]
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let x = var(&[2, 3, 6, 6], 1, 1.0);
    let w3 = var(&[4, 3, 3, 3], 2, 0.3);
    let w1 = var(&[4, 3, 1, 1], 3, 0.3);
    let b = var(&[4], 4, 0.5);
    finite_difference(
        "conv2d 3×3",
        &|be, a| conv2d_with(be, a[0], a[1], Some(a[2]), 1, false),
        &[&x, &w3, &b],
    );
    // No finite differences through the fused ReLU: a step of `eps` moves some of the 288
    // pre-activations across its kink. Its gradient is checked against candle's conv + relu
    // in `conv2d_matches_candle_over_shape_sweep`.
    finite_difference(
        "conv2d 1×1",
        &|be, a| conv2d_with(be, a[0], a[1], Some(a[2]), 0, false),
        &[&x, &w1, &b],
    );
    let wt = var(&[3, 4, 2, 2], 5, 0.3);
    finite_difference(
        "conv_transpose2x2",
        &|be, a| conv_transpose2x2_with(be, a[0], a[1], Some(a[2])),
        &[&x, &wt, &b],
    );
    // Pooling on well-separated values (gaps of 1/n ≫ eps·…): a permutation of a grid.
    let n = 2 * 3 * 6 * 6;
    let v: Vec<f32> = (0..n).map(|j| ((j * 37) % n) as f32 * 0.05).collect();
    let xp = Var::from_tensor(&Tensor::from_vec(v, (2, 3, 6, 6), &Device::Cpu).unwrap()).unwrap();
    finite_difference("max_pool2x2", &|be, a| max_pool2x2_with(be, a[0]), &[&xp]);
}

#[test]
fn non_contiguous_inputs_are_accepted() {
    // x built as [B, C, W, H] and transposed: a strided view.
    let xt = var(&[2, 3, 5, 4], 11, 1.0);
    let x = xt.as_tensor().transpose(2, 3).unwrap();
    let w = var(&[2, 3, 3, 3], 12, 0.3);
    let fast = conv2d_with(Backend::Fast, &x, &w, None, 1, false).unwrap();
    let reference = conv2d_with(Backend::Candle, &x, &w, None, 1, false).unwrap();
    assert!(rel_err(&fast, &reference) < 1e-4);
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let x = var(&[1, 3, 4, 4], 1, 1.0);
    let w = var(&[2, 4, 3, 3], 2, 1.0);
    assert!(
        conv2d_with(Backend::Fast, &x, &w, None, 1, false).is_err(),
        "channel mismatch"
    );
    let w = var(&[2, 3, 3, 3], 2, 1.0);
    let b = var(&[3], 3, 1.0);
    assert!(
        conv2d_with(Backend::Fast, &x, &w, Some(&b), 1, false).is_err(),
        "bias length"
    );
    let big = var(&[2, 3, 7, 7], 4, 1.0);
    assert!(
        conv2d_with(Backend::Fast, &x, &big, None, 1, false).is_err(),
        "kernel larger than input"
    );
    let wt = var(&[4, 2, 2, 2], 5, 1.0);
    assert!(
        conv_transpose2x2_with(Backend::Fast, &x, &wt, None).is_err(),
        "c_in mismatch"
    );
    let odd = var(&[1, 1, 3, 4], 6, 1.0);
    assert!(max_pool2x2_with(Backend::Fast, &odd).is_err(), "odd height");
}

#[test]
fn backend_switch_round_trips() {
    // The only test touching the process-wide switch; the others pass the backend explicitly.
    let before = backend();
    assert_eq!(before, Backend::Fast, "the fast kernels are the default");
    set_backend(Backend::Fast);
    assert_eq!(backend(), Backend::Fast);
    set_backend(Backend::Candle);
    assert_eq!(backend(), Backend::Candle);
    set_backend(before);
}

#[test]
fn cat_channels_matches_candle() {
    // Two, three, four and five parts (the last two fold), channel counts 1–64, batch 1–5.
    let sets: &[&[usize]] = &[&[1, 2], &[16, 16, 32], &[3, 1, 4, 1], &[2, 64, 5, 7, 1]];
    for (i, chans) in sets.iter().enumerate() {
        let (b, h, w) = (1 + i, 3 + i, 5);
        let parts: Vec<Var> = chans
            .iter()
            .enumerate()
            .map(|(j, &c)| var(&[b, c, h, w], 100 + 10 * i as u64 + j as u64, 1.0))
            .collect();
        let refs: Vec<&Var> = parts.iter().collect();
        compare(
            &format!("cat_channels {chans:?}"),
            &|be, a| cat_channels_with(be, a),
            &refs,
        );
    }
}

#[test]
fn cat_channels_rejects_mismatched_parts() {
    let a = Tensor::zeros((2, 3, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros((2, 1, 4, 5), DType::F32, &Device::Cpu).unwrap();
    let c = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
    for bad in [&b, &c] {
        let err = cat_channels_with(Backend::Fast, &[&a, bad]).unwrap_err();
        assert!(err.to_string().contains("amun-cat-channels"), "{err}");
    }
    // One part is returned as is.
    let one = cat_channels_with(Backend::Fast, &[&a]).unwrap();
    assert_eq!(one.dims(), a.dims());
}
