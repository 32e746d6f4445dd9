#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
// This is the workspace's one crate with `unsafe` code (the others forbid or deny it): each
// unsafe operation sits in its own block with a `SAFETY` comment, also inside unsafe functions.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{Result, Tensor};

mod alloc;
mod cat;
mod chunks;
mod conv;
mod convt;
mod denormals;
mod dispatch;
mod error;
mod geom;
mod mm;
mod ops;
mod pool;
mod scratch;
mod shift;
mod uninit;

pub use alloc::tune_allocator;
pub use denormals::{denormals_flushed, flush_denormals};
pub use dispatch::{dispatch, Dispatch};
pub use error::Error;

/// Which implementation the layer functions use on CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// candle's built-in operators everywhere (the reference the fast kernels are tested
    /// against; several times slower on CPU).
    Candle,
    /// This crate's kernels on CPU `f32` tensors, candle's on other devices and dtypes (the
    /// default).
    Fast,
}

static BACKEND: AtomicU8 = AtomicU8::new(1);

/// Selects the implementation used by the layer functions (process-wide).
pub fn set_backend(backend: Backend) {
    BACKEND.store(
        match backend {
            Backend::Candle => 0,
            Backend::Fast => 1,
        },
        Ordering::Relaxed,
    );
}

/// The implementation currently selected.
pub fn backend() -> Backend {
    match BACKEND.load(Ordering::Relaxed) {
        1 => Backend::Fast,
        _ => Backend::Candle,
    }
}

/// Whether this crate's kernels handle these tensors ([`Dispatch::Kernels`]): [`Backend::Fast`]
/// selected, all on CPU, all `f32`. On a CUDA device candle's own operators run.
fn fast(backend: Backend, ts: &[Option<&Tensor>]) -> bool {
    dispatch::dispatch_for(backend, ts.iter().flatten().copied()) == Dispatch::Kernels
}

/// 2-D convolution, stride 1, zero padding `padding` on every side.
///
/// With [`Backend::Fast`] on CPU `f32` tensors the kernel is this crate's (im2col over
/// cache-sized chunks and a parallel `gemm`), bias fused, for square filters with
/// `padding < K`; otherwise candle's `conv2d`.
///
/// # Shapes
/// - `x`: `[B, C_in, H, W]`
/// - `w`: `[C_out, C_in, K, K]`
/// - `bias`: `[C_out]`
/// - returns `[B, C_out, H + 2·padding − K + 1, W + 2·padding − K + 1]`
///
/// # Errors
/// Shape or dtype mismatches: the filter's `C_in` differs from the input's, the filter is
/// larger than the padded input, the bias length is not `C_out`.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, padding: usize) -> Result<Tensor> {
    conv2d_with(backend(), x, w, bias, padding, false)
}

/// [`conv2d`] followed by a ReLU, `max(conv2d(x, w, bias), 0)`, as one op.
///
/// With [`Backend::Fast`] the ReLU is applied as the output is written and its gradient mask
/// (`output > 0`, as PyTorch) is applied inside the convolution's backward pass, which saves
/// the separate ReLU node and the five tensor operations of its gradient in candle. Otherwise
/// it is `conv2d(..)?.relu()`, whose gradient passes where the input is `≥ 0`; the two differ
/// only where a pre-activation is exactly zero.
///
/// # Shapes and errors
/// As [`conv2d`].
pub fn conv2d_relu(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    padding: usize,
) -> Result<Tensor> {
    conv2d_with(backend(), x, w, bias, padding, true)
}

/// [`conv2d`] (and with `relu`, [`conv2d_relu`]) with an explicit backend.
fn conv2d_with(
    backend: Backend,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    padding: usize,
    relu: bool,
) -> Result<Tensor> {
    let square_small_pad = matches!(w.dims(), [_, _, k, kw] if k == kw && padding < *k);
    if square_small_pad && fast(backend, &[Some(x), Some(w), bias]) {
        let op = ops::Conv2d { padding, relu };
        let (x, w) = (x.contiguous()?, w.contiguous()?);
        return match bias {
            Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
            None => x.apply_op2(&w, op),
        };
    }
    let y = x.conv2d(w, padding, 1, 1, 1)?;
    let y = match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?,
        None => y,
    };
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

/// 2×2 transposed convolution with stride 2 (doubles height and width).
///
/// With [`Backend::Fast`] on CPU `f32` tensors, one matrix product per chunk of rows and a
/// pixel shuffle, bias fused; otherwise candle's `conv_transpose2d`.
///
/// # Shapes
/// - `x`: `[B, C_in, H, W]`
/// - `w`: `[C_in, C_out, 2, 2]` (candle's and PyTorch's layout for transposed convolutions)
/// - `bias`: `[C_out]`
/// - returns `[B, C_out, 2H, 2W]`
///
/// # Errors
/// Shape or dtype mismatches: the filter is not `[C_in, C_out, 2, 2]`, the bias length is not
/// `C_out`.
pub fn conv_transpose2x2(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    conv_transpose2x2_with(backend(), x, w, bias)
}

/// [`conv_transpose2x2`] with an explicit backend.
fn conv_transpose2x2_with(
    backend: Backend,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    if fast(backend, &[Some(x), Some(w), bias]) {
        let (x, w) = (x.contiguous()?, w.contiguous()?);
        return match bias {
            Some(b) => x.apply_op3(&w, &b.contiguous()?, ops::Up2x2),
            None => x.apply_op2(&w, ops::Up2x2),
        };
    }
    let y = x.conv_transpose2d(w, 0, 0, 2, 1)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
        None => Ok(y),
    }
}

/// Concatenation of NCHW tensors along the channel axis (`Tensor::cat(parts, 1)`).
///
/// With [`Backend::Fast`] on CPU `f32` tensors it is this crate's op, parallel over channel planes,
/// whose gradient hands each part a contiguous copy of its channels (candle's gives a strided
/// view, which the gradient sums then read element by element). Two or three parts are one op;
/// more are concatenated three at a time, copying the leading parts again.
///
/// # Shapes
/// `[B, C_i, H, W]` for every part → `[B, Σ C_i, H, W]`.
///
/// # Errors
/// No parts, or parts that differ in rank, batch size or image size.
pub fn cat_channels(parts: &[&Tensor]) -> Result<Tensor> {
    cat_channels_with(backend(), parts)
}

/// [`cat_channels`] with an explicit backend.
fn cat_channels_with(backend: Backend, parts: &[&Tensor]) -> Result<Tensor> {
    let all: Vec<Option<&Tensor>> = parts.iter().map(|&t| Some(t)).collect();
    if parts.len() < 2 || !fast(backend, &all) {
        return Tensor::cat(parts, 1);
    }
    let mut acc = parts[0].contiguous()?;
    let mut rest = &parts[1..];
    while !rest.is_empty() {
        acc = if let [b, c, ..] = rest {
            rest = &rest[2..];
            acc.apply_op3(&b.contiguous()?, &c.contiguous()?, ops::CatChannels)?
        } else {
            let b = rest[0].contiguous()?;
            rest = &rest[1..];
            acc.apply_op2(&b, ops::CatChannels)?
        };
    }
    Ok(acc)
}

/// 2×2 max pooling with stride 2, with a correct gradient.
///
/// candle 0.11.1's `max_pool2d` backward scales gradients by 1/k². With [`Backend::Candle`] (or
/// off CPU) this is built from a reshape and `max`, whose gradient is exact but goes to every
/// tied maximum of a window; with [`Backend::Fast`] on CPU `f32` it is this crate's kernel, whose
/// gradient goes to the first maximum of each window (row-major), as in PyTorch. The two agree
/// wherever a window's maximum is unique.
///
/// # Shapes
/// - `x`: `[B, C, H, W]` with even `H` and `W`
/// - returns `[B, C, H/2, W/2]`
///
/// # Errors
/// If `H` or `W` is odd, or on shape errors.
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    max_pool2x2_with(backend(), x)
}

/// [`max_pool2x2`] with an explicit backend.
fn max_pool2x2_with(backend: Backend, x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        return Err(Error::OddSize {
            op: "max_pool2x2",
            h,
            w,
        }
        .into());
    }
    if fast(backend, &[Some(x)]) {
        return x.contiguous()?.apply_op1(ops::MaxPool2x2);
    }
    // [B, C, H/2, 2, W/2, 2] -> max over the two window axes.
    x.reshape((b, c, h / 2, 2, w / 2, 2))?.max(5)?.max(3)
}

#[cfg(test)]
mod tests;
