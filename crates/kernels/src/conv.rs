//! Stride-1 2-D convolution on NCHW `f32` buffers: forward, input gradient and filter gradient,
//! by im2col over cache-sized chunks of output rows and the `gemm` crate.
//!
//! The output pixels of the whole batch are seen as one long axis of `B·H_out` rows of `W_out`
//! pixels. It is cut into chunks of whole rows; each chunk's im2col matrix
//! `[C_in·K·K, rows·W_out]` lives in a per-thread scratch buffer small enough for the L2 cache,
//! and one matrix product with the `[C_out, C_in·K·K]` filter gives the chunk's outputs. Chunks
//! run in parallel on rayon's pool; when there are too few of them, the product itself is
//! parallel instead.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::chunks::{sum_chunks, write_chunks, Split};
use crate::geom::write_output;
pub(crate) use crate::geom::ConvGeom;
use crate::mm::{matmul, threads, View};
use crate::scratch::with_scratch;
use crate::uninit::SharedMut;
use crate::{shift, uninit};

/// Output pixels of an image up to which a chunk holds whole images (16×16).
const SMALL_IMAGE: usize = 256;

impl ConvGeom {
    /// Output rows per chunk: about `budget` floats of im2col matrix, at least `min_cols`
    /// columns, and enough chunks to keep every thread busy when the batch allows it.
    ///
    /// Images of at most [`SMALL_IMAGE`] pixels are never split: their chunks are whole images,
    /// so that patches, gradient rows and outputs move as whole planes ([`im2col_small`],
    /// [`rows_view`]) instead of rows of a few values.
    fn rows_per_chunk(&self, budget: usize, min_cols: usize) -> usize {
        let units = self.b * self.ho;
        let cols = (budget / self.kdim().max(1)).max(min_cols);
        let by_cache = (cols / self.wo.max(1)).max(1);
        let by_threads = units.div_ceil(2 * threads()).max(1);
        let rows = by_cache.min(by_threads).max(1);
        if self.whole_images() {
            return (rows / self.ho).max(1) * self.ho;
        }
        rows
    }

    /// The chunks of output rows: whole images for small images, else bands within one image
    /// (see [`Self::rows_per_chunk`]), so that a 1×1 convolution's input and a filter
    /// gradient's output-gradient rows are views of one image rather than copies.
    fn split(&self, budget: usize, min_cols: usize) -> Split {
        let rows = self.rows_per_chunk(budget, min_cols);
        if self.whole_images() {
            Split::blocks(self.b * self.ho, self.ho, rows)
        } else {
            Split::within(self.b * self.ho, self.ho, rows)
        }
    }

    /// Whether chunks are whole images (see [`Self::rows_per_chunk`]).
    fn whole_images(&self) -> bool {
        self.opix() <= SMALL_IMAGE && self.ho > 0
    }
}

/// Fills `col` (`[C_in·K·K, (u1 − u0)·W_out]`, row-major) with the input patches of output
/// rows `u0..u1` (row `u` is image `u / H_out`, output row `u % H_out`); zero outside the image.
fn im2col(x: &[f32], g: &ConvGeom, u0: usize, u1: usize, col: &mut [f32]) {
    let nc = (u1 - u0) * g.wo;
    let (k, pad) = (g.k, g.pad);
    for ci in 0..g.ci {
        for kh in 0..k {
            for kw in 0..k {
                let r = (ci * k + kh) * k + kw;
                let row = &mut col[r * nc..(r + 1) * nc];
                // Output columns whose input column `ow + kw − pad` lies inside the image.
                let lo = pad.saturating_sub(kw).min(g.wo);
                let hi = (g.w + pad).saturating_sub(kw).clamp(lo, g.wo);
                for (t, u) in (u0..u1).enumerate() {
                    let (b, oh) = (u / g.ho, u % g.ho);
                    let dst = &mut row[t * g.wo..(t + 1) * g.wo];
                    let ih = (oh + kh).wrapping_sub(pad);
                    if ih >= g.h {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &x[((b * g.ci + ci) * g.h + ih) * g.w..][..g.w];
                    dst[..lo].fill(0.0);
                    if lo < hi {
                        // Here `lo + kw ≥ pad` and `hi + kw − pad ≤ W`: the range is inside `src`.
                        dst[lo..hi].copy_from_slice(&src[lo + kw - pad..hi + kw - pad]);
                    }
                    dst[hi..].fill(0.0);
                }
            }
        }
    }
}

/// [`im2col`] for chunks of whole images of at most 8×8 output pixels, where rows of the
/// patch matrix would be copied a few values at a time: each patch row of an image is gathered
/// through a table of source pixels per filter tap (the pixel count standing for a zero).
fn im2col_small(x: &[f32], g: &ConvGeom, u0: usize, u1: usize, col: &mut [f32]) {
    let (hw, opix, taps) = (g.h * g.w, g.opix(), g.k * g.k);
    let (b0, b1) = (u0 / g.ho, u1 / g.ho);
    let nc = (b1 - b0) * opix;
    let mut table = Vec::with_capacity(taps * opix);
    for t in 0..taps {
        let (kh, kw) = (t / g.k, t % g.k);
        for p in 0..opix {
            let ih = (p / g.wo + kh).wrapping_sub(g.pad);
            let iw = (p % g.wo + kw).wrapping_sub(g.pad);
            table.push(if ih < g.h && iw < g.w {
                ih * g.w + iw
            } else {
                hw
            });
        }
    }
    let mut plane = [0f32; SMALL_PATCH_IMAGE + 1];
    for ci in 0..g.ci {
        for b in b0..b1 {
            plane[..hw].copy_from_slice(&x[(b * g.ci + ci) * hw..][..hw]);
            plane[hw] = 0.0;
            for (t, idx) in table.chunks_exact(opix).enumerate() {
                let dst = &mut col[(ci * taps + t) * nc + (b - b0) * opix..][..opix];
                for (d, &i) in dst.iter_mut().zip(idx) {
                    *d = plane[i];
                }
            }
        }
    }
}

/// Input pixels of an image up to which [`im2col_small`] gathers its patches (8×8).
const SMALL_PATCH_IMAGE: usize = 64;

/// [`im2col`] for chunks of whole images of a "same" convolution (`K = 2·pad + 1`, output as
/// large as the input): the patch row of a filter tap is the image plane shifted by the tap's
/// offset, so it is copied whole from a copy of the plane between zero margins, and only the
/// output columns whose input column falls outside the image are zeroed after the copy (a
/// vertical overflow reads the margins). Up to 16×16 images, rows would otherwise be copied a
/// few values at a time, or gathered through a table (which stays faster at 4×4 and 2×2).
fn im2col_planes(x: &[f32], g: &ConvGeom, u0: usize, u1: usize, col: &mut [f32]) {
    assert!(
        same_conv(g),
        "im2col_planes: not a same convolution of small images"
    );
    let (hw, w, pad) = (g.h * g.w, g.w, g.pad);
    let (b0, b1) = (u0 / g.ho, u1 / g.ho);
    let nc = (b1 - b0) * hw;
    let margin = pad * w + pad;
    let mut ext = [0f32; SMALL_IMAGE + 2 * (MAX_SAME_PAD * MAX_PLANE_WIDTH + MAX_SAME_PAD)];
    let ext = &mut ext[..hw + 2 * margin];
    for ci in 0..g.ci {
        for b in b0..b1 {
            ext[margin..margin + hw].copy_from_slice(&x[(b * g.ci + ci) * hw..][..hw]);
            for kh in 0..g.k {
                for kw in 0..g.k {
                    let r = (ci * g.k + kh) * g.k + kw;
                    let dst = &mut col[r * nc + (b - b0) * hw..][..hw];
                    // Pixel p reads ext[margin + p + (kh − pad)·w + (kw − pad)].
                    let at = kh * w + kw;
                    dst.copy_from_slice(&ext[at..at + hw]);
                    // Output columns whose input column `ow + kw − pad` is outside the image.
                    let (lo, hi) = (pad.saturating_sub(kw), (w + pad - kw).min(w));
                    for row in dst.chunks_exact_mut(w) {
                        row[..lo].fill(0.0);
                        row[hi..].fill(0.0);
                    }
                }
            }
        }
    }
}

/// The largest padding [`im2col_planes`] handles (filters up to 7×7).
const MAX_SAME_PAD: usize = 3;

/// The widest image [`im2col_planes`] handles (from 8 on: narrower images keep the table).
const MAX_PLANE_WIDTH: usize = 16;

/// Whether `g` is a "same" convolution of whole images that [`im2col_planes`] handles (whole
/// images have at most [`SMALL_IMAGE`] output pixels, here as many as input pixels).
fn same_conv(g: &ConvGeom) -> bool {
    g.whole_images()
        && g.k == 2 * g.pad + 1
        && g.pad <= MAX_SAME_PAD
        && (8..=MAX_PLANE_WIDTH).contains(&g.w)
}

/// Rows `u0..u1` (row `u` is image `u / h`, row `u % h`) of an NCHW buffer `[B, c, h, w]` as a
/// `[c, (u1 − u0)·w]` matrix: a view into `src` when the rows lie in one image, else a copy
/// gathered into `buf` (which must hold `c·(u1 − u0)·w` values).
pub(crate) fn rows_view<'a>(
    src: &'a [f32],
    [c, h, w]: [usize; 3],
    u0: usize,
    u1: usize,
    buf: &'a mut [f32],
) -> View<'a> {
    if u0 / h == (u1 - 1) / h {
        let (b, r) = (u0 / h, u0 % h);
        return View::rows(&src[b * c * h * w + r * w..], h * w);
    }
    let nc = (u1 - u0) * w;
    if u0.is_multiple_of(h) && u1.is_multiple_of(h) {
        // Whole images: one copy per channel plane.
        let (b0, p) = (u0 / h, h * w);
        for b in b0..u1 / h {
            for ch in 0..c {
                buf[ch * nc + (b - b0) * p..][..p].copy_from_slice(&src[(b * c + ch) * p..][..p]);
            }
        }
        return View::rows(buf, nc);
    }
    for (t, u) in (u0..u1).enumerate() {
        let (b, r) = (u / h, u % h);
        for ch in 0..c {
            buf[ch * nc + t * w..][..w].copy_from_slice(&src[((b * c + ch) * h + r) * w..][..w]);
        }
    }
    View::rows(buf, nc)
}

/// The input as the right-hand matrix of the product for output rows `u0..u1`: the rows of
/// `x` themselves for a 1×1 convolution, else the im2col matrix written to `col`.
fn patches<'a>(x: &'a [f32], g: &ConvGeom, u0: usize, u1: usize, col: &'a mut [f32]) -> View<'a> {
    if g.k == 1 && g.pad == 0 {
        return rows_view(x, [g.ci, g.h, g.w], u0, u1, col);
    }
    if same_conv(g) {
        im2col_planes(x, g, u0, u1, col);
    } else if g.whole_images() && g.h * g.w <= SMALL_PATCH_IMAGE {
        im2col_small(x, g, u0, u1, col);
    } else {
        im2col(x, g, u0, u1, col);
    }
    View::rows(col, (u1 - u0) * g.wo)
}

/// Forward convolution: `y = conv(x, w) + bias`, or `max(conv(x, w) + bias, 0)` with `relu`;
/// shapes `[B, C_in, H, W]`, `[C_out, C_in, K, K]`, `[C_out]` → `[B, C_out, H_out, W_out]`.
pub(crate) fn forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    g: &ConvGeom,
) -> Vec<f32> {
    if shift::worth_it(g) {
        return shift::forward(x, w, bias, relu, g);
    }
    let (kdim, opix) = (g.kdim(), g.opix());
    let len = g.b * g.co * opix;
    if len == 0 {
        return Vec::new();
    }
    let lhs = View::rows(w, kdim);
    let run = |u0: usize, u1: usize, parallel: bool, out: SharedMut<'_, MaybeUninit<f32>>| {
        let nc = (u1 - u0) * g.wo;
        with_scratch(kdim * nc, g.co * nc, |col, tmp| {
            let rhs = patches(x, g, u0, u1, col);
            matmul(g.co, nc, kdim, tmp, nc, false, lhs, rhs, parallel);
            // Each image the chunk covers, rows `r0..r1`: contiguous in every channel.
            let mut u = u0;
            while u < u1 {
                let (b, r0) = (u / g.ho, u % g.ho);
                let r1 = g.ho.min(r0 + u1 - u);
                let (at, len) = ((u - u0) * g.wo, (r1 - r0) * g.wo);
                for co in 0..g.co {
                    let start = (b * g.co + co) * opix + r0 * g.wo;
                    // SAFETY: rows (b, co, r0..r1) belong to this chunk alone.
                    let dst = unsafe { out.range(start, len) };
                    let src = &tmp[co * nc + at..][..len];
                    write_output(dst, src, bias.map_or(0.0, |bs| bs[co]), relu);
                }
                u += r1 - r0;
            }
        });
    };
    // SAFETY: the chunks of a split cover every output row `u = (b, oh)` once, and each writes
    // that row of every output channel.
    unsafe { write_chunks(len, g.split(1 << 18, 256), run) }
}

/// Input gradient: `dx = conv(dy, flip(w)ᵀ)` with padding `K − 1 − pad`.
///
/// `g` is the forward geometry; returns `None` when `pad ≥ K` (not supported here).
pub(crate) fn backward_input(dy: &[f32], w: &[f32], g: &ConvGeom) -> Option<Vec<f32>> {
    let gt = g.transposed()?;
    let k = g.k;
    // flip(w)ᵀ[ci, co, kh, kw] = w[co, ci, K−1−kh, K−1−kw]: written in order, one input
    // channel per task (written the other way round, this copy took as long as the
    // convolution itself for 832 channels on 2×2 images).
    let taps = k * k;
    let mut wt = vec![0.0f32; w.len()];
    if taps > 0 {
        wt.par_chunks_mut(g.co * taps)
            .enumerate()
            .for_each(|(ci, block)| {
                for (co, dst) in block.chunks_exact_mut(taps).enumerate() {
                    let src = &w[(co * g.ci + ci) * taps..][..taps];
                    for (d, &s) in dst.iter_mut().zip(src.iter().rev()) {
                        *d = s;
                    }
                }
            });
    }
    Some(forward(dy, &wt, None, false, &gt))
}

/// Filter gradient `dw[C_out, C_in·K·K] = Σ dy_chunk · im2col(x)_chunkᵀ`.
///
/// The `gemm` crate's micro-kernel runs along the contiguous axis of the destination and packs
/// (copies) an operand that is not contiguous along it. With few output channels the sum is
/// therefore accumulated transposed, `dwᵀ[C_in·K·K, C_out] = Σ im2col(x)_chunk · dy_chunkᵀ`,
/// so that the large patch matrix is read in place and only the small `dy` chunk is packed
/// (measured faster for the layers with up to 64 output channels, slower from 128 on).
pub(crate) fn backward_filter(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    if shift::direct(g) {
        return shift::backward_filter(x, dy, g);
    }
    if shift::filter_grad_by_rows(g) {
        return shift::backward_filter_by_rows(x, dy, g);
    }
    let kdim = g.kdim();
    let units = g.b * g.ho;
    if units == 0 {
        return vec![0.0; g.co * kdim];
    }
    let transposed = g.co <= 64;
    let acc = sum_chunks(
        g.split(1 << 18, 256),
        g.co * kdim,
        |u0, u1, acc, accumulate, parallel| {
            let nc = (u1 - u0) * g.wo;
            with_scratch(kdim * nc, g.co * nc, |col, tmp| {
                let dy_rows = rows_view(dy, [g.co, g.ho, g.wo], u0, u1, tmp);
                let cols = patches(x, g, u0, u1, col);
                if transposed {
                    let dy_t = View {
                        data: dy_rows.data,
                        rs: dy_rows.cs,
                        cs: dy_rows.rs,
                    };
                    matmul(kdim, g.co, nc, acc, g.co, accumulate, cols, dy_t, parallel);
                } else {
                    let cols_t = View {
                        data: cols.data,
                        rs: cols.cs,
                        cs: cols.rs,
                    };
                    matmul(
                        g.co, kdim, nc, acc, kdim, accumulate, dy_rows, cols_t, parallel,
                    );
                }
            });
        },
    );
    if !transposed {
        return acc;
    }
    let mut dw = vec![0.0f32; g.co * kdim];
    for (i, row) in acc.chunks_exact(g.co).enumerate() {
        for (o, &v) in row.iter().enumerate() {
            dw[o * kdim + i] = v;
        }
    }
    dw
}

/// `dy ⊙ [y > 0]`: the gradient through a ReLU from its output `y` (zero where the ReLU was
/// off, as PyTorch's `threshold_backward`).
pub(crate) fn relu_mask(dy: &[f32], y: &[f32]) -> Vec<f32> {
    assert_eq!(dy.len(), y.len(), "relu_mask: lengths differ");
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(1 << 14)
            .zip(dy.par_chunks(1 << 14).zip(y.par_chunks(1 << 14)))
            .for_each(|(o, (d, y))| {
                for ((o, &d), &y) in o.iter_mut().zip(d).zip(y) {
                    o.write(if y > 0.0 { d } else { 0.0 });
                }
            });
    };
    // SAFETY: the three buffers have one length and are cut into the same chunks, so every
    // output element is written once.
    unsafe { uninit::vec_written_by(dy.len(), fill) }
}

/// Per-channel sum of `[B, C, P]` over batch and pixels (the bias gradient).
///
/// Each plane is summed in 16 `f32` lanes (so that the loop vectorises), the lanes and planes
/// in `f64`: a lane adds `P / 16` values, 64 for a 32×32 image.
pub(crate) fn channel_sum(dy: &[f32], b: usize, c: usize, p: usize) -> Vec<f32> {
    let plane_sum = |v: &[f32]| -> f64 {
        let mut lanes = [0f32; 16];
        let chunks = v.chunks_exact(16);
        let rest: f64 = chunks.remainder().iter().map(|&x| f64::from(x)).sum();
        for ch in chunks {
            for (l, &x) in lanes.iter_mut().zip(ch) {
                *l += x;
            }
        }
        rest + lanes.iter().map(|&l| f64::from(l)).sum::<f64>()
    };
    (0..c)
        .into_par_iter()
        .map(|ch| {
            (0..b)
                .map(|i| plane_sum(&dy[(i * c + ch) * p..][..p]))
                .sum::<f64>() as f32
        })
        .collect()
}
