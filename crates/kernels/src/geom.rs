//! The geometry of a stride-1 convolution and the writer of its output rows, shared by its two
//! implementations: im2col and `gemm` ([`crate::conv`]) and the loops on band planes
//! ([`crate::shift`]).

use std::mem::MaybeUninit;

use crate::error::{Error, Result};

/// Sizes of one stride-1 convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub b: usize,
    pub ci: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub k: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvGeom {
    /// Checks the input `[B, C_in, H, W]` and filter `[C_out, C_in, K, K]` dimensions.
    ///
    /// # Errors
    /// [`Error::Dim`] when the channel counts disagree, [`Error::Kernel`] when the filter is
    /// not square or larger than the padded input.
    pub fn new(op: &'static str, x: [usize; 4], wt: [usize; 4], pad: usize) -> Result<Self> {
        let [b, ci, h, w] = x;
        let [co, wci, kh, kw] = wt;
        if wci != ci {
            return Err(Error::Dim {
                op,
                arg: "w",
                dim: 1,
                expected: ci,
                got: wci,
            });
        }
        if kh != kw || kh == 0 || h + 2 * pad < kh || w + 2 * pad < kw {
            return Err(Error::Kernel {
                op,
                kh,
                kw,
                h,
                w,
                padding: pad,
            });
        }
        Ok(Self {
            b,
            ci,
            h,
            w,
            co,
            k: kh,
            pad,
            ho: h + 2 * pad - kh + 1,
            wo: w + 2 * pad - kw + 1,
        })
    }

    /// Rows of the im2col matrix: `C_in·K·K`.
    pub fn kdim(&self) -> usize {
        self.ci * self.k * self.k
    }

    /// Output pixels per image.
    pub fn opix(&self) -> usize {
        self.ho * self.wo
    }

    /// The input geometry of the input-gradient convolution: `dX = conv(dY, flip(W)ᵀ)` with
    /// padding `K − 1 − pad` (needs `pad < K`).
    pub fn transposed(&self) -> Option<Self> {
        let pad = (self.k - 1).checked_sub(self.pad)?;
        Some(Self {
            b: self.b,
            ci: self.co,
            h: self.ho,
            w: self.wo,
            co: self.ci,
            k: self.k,
            pad,
            ho: self.h,
            wo: self.w,
        })
    }
}

/// `dst = src + bias`, or `max(src + bias, 0)` with `relu` (`max` as candle's `relu`: a NaN
/// becomes 0): output values of a convolution, written into a buffer that may not be
/// initialised yet.
///
/// # Panics
/// If the lengths differ (an element of `dst` would stay unwritten).
pub(crate) fn write_output(dst: &mut [MaybeUninit<f32>], src: &[f32], bias: f32, relu: bool) {
    assert_eq!(dst.len(), src.len(), "write_output: lengths differ");
    if relu {
        for (d, s) in dst.iter_mut().zip(src) {
            d.write((s + bias).max(0.0));
        }
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            d.write(s + bias);
        }
    }
}
