//! Convolution, transposed-convolution and pooling layers for AMUN, with a switch between
//! candle's own operators and this crate's CPU kernels.
//!
//! Every function takes and returns NCHW `f32` tensors. On CPU, when [`Backend::Fast`] is
//! selected, the work is done by this crate's kernels; everywhere else (CUDA, other dtypes,
//! or [`Backend::Candle`]) candle's operators are used. Both give the same results to
//! floating-point rounding.

#![deny(missing_docs)]

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{Result, Tensor};

/// Which implementation the layer functions use on CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// candle's built-in operators everywhere.
    Candle,
    /// This crate's kernels on CPU, candle's on other devices.
    Fast,
}

static BACKEND: AtomicU8 = AtomicU8::new(0);

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

/// 2-D convolution, stride 1, zero padding `padding` on every side.
///
/// # Shapes
/// - `x`: `[B, C_in, H, W]`
/// - `w`: `[C_out, C_in, K, K]`
/// - `bias`: `[C_out]`
/// - returns `[B, C_out, H + 2·padding − K + 1, W + 2·padding − K + 1]`
///
/// # Errors
/// Shape or dtype mismatches, as candle reports them.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, padding: usize) -> Result<Tensor> {
    let y = x.conv2d(w, padding, 1, 1, 1)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
        None => Ok(y),
    }
}

/// 2×2 transposed convolution with stride 2 (doubles height and width).
///
/// # Shapes
/// - `x`: `[B, C_in, H, W]`
/// - `w`: `[C_in, C_out, 2, 2]` (candle's and PyTorch's layout for transposed convolutions)
/// - `bias`: `[C_out]`
/// - returns `[B, C_out, 2H, 2W]`
///
/// # Errors
/// Shape or dtype mismatches, as candle reports them.
pub fn conv_transpose2x2(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = x.conv_transpose2d(w, 0, 0, 2, 1)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
        None => Ok(y),
    }
}

/// 2×2 max pooling with stride 2, with a correct gradient.
///
/// candle 0.11.1's `max_pool2d` backward scales gradients by 1/k²; this is built from a
/// reshape and `max`, whose gradient is exact.
///
/// # Shapes
/// - `x`: `[B, C, H, W]` with even `H` and `W`
/// - returns `[B, C, H/2, W/2]`
///
/// # Errors
/// If `H` or `W` is odd, or on shape errors.
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        candle_core::bail!("max_pool2x2 needs even height and width, got {h}×{w}");
    }
    // [B, C, H/2, 2, W/2, 2] -> max over the two window axes.
    x.reshape((b, c, h / 2, 2, w / 2, 2))?.max(5)?.max(3)
}
