//! 2×2 transposed convolution with stride 2 on NCHW `f32` buffers.
//!
//! The 2×2 windows of the output do not overlap, so the layer is one matrix product per chunk
//! of input rows, `Z[(C_out, 2, 2), pixels] = Wᵀ · X[C_in, pixels]`, followed by a pixel
//! shuffle into the output (and the reverse shuffle for the gradients).

use std::mem::MaybeUninit;

use crate::chunks::{sum_chunks, write_chunks, Split};
use crate::conv::rows_view;
use crate::error::{Error, Result};
use crate::mm::{matmul, threads, View};
use crate::scratch::with_scratch;
use crate::uninit::{self, SharedMut};

/// Sizes of one 2×2 stride-2 transposed convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UpGeom {
    pub b: usize,
    pub ci: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
}

impl UpGeom {
    /// Checks the input `[B, C_in, H, W]` and filter `[C_in, C_out, 2, 2]` dimensions.
    ///
    /// # Errors
    /// [`Error::Dim`] when the channel counts disagree, [`Error::Kernel`] when the filter is not
    /// 2×2.
    pub fn new(op: &'static str, x: [usize; 4], wt: [usize; 4]) -> Result<Self> {
        let [b, ci, h, w] = x;
        let [wci, co, kh, kw] = wt;
        if wci != ci {
            return Err(Error::Dim {
                op,
                arg: "w",
                dim: 0,
                expected: ci,
                got: wci,
            });
        }
        if kh != 2 || kw != 2 {
            return Err(Error::Kernel {
                op,
                kh,
                kw,
                h,
                w,
                padding: 0,
            });
        }
        Ok(Self { b, ci, h, w, co })
    }

    /// Input rows per chunk.
    fn rows_per_chunk(&self) -> usize {
        let units = self.b * self.h;
        let cols = ((1usize << 18) / (4 * self.co + self.ci).max(1)).max(256);
        let by_cache = (cols / self.w.max(1)).max(1);
        by_cache.min(units.div_ceil(2 * threads()).max(1)).max(1)
    }
}

/// Forward: `[B, C_in, H, W]` → `[B, C_out, 2H, 2W]`.
pub(crate) fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &UpGeom) -> Vec<f32> {
    let (co4, w2) = (4 * g.co, 2 * g.w);
    let len = g.b * g.co * 4 * g.h * g.w;
    if len == 0 {
        return Vec::new();
    }
    // Wᵀ[(co, di, dj), ci] = w[ci, co, di, dj]
    let lhs = View::rows_t(w, co4);
    let run = |u0: usize, u1: usize, parallel: bool, out: SharedMut<'_, MaybeUninit<f32>>| {
        let nc = (u1 - u0) * g.w;
        with_scratch(g.ci * nc, co4 * nc, |xbuf, z| {
            let rhs = rows_view(x, [g.ci, g.h, g.w], u0, u1, xbuf);
            matmul(co4, nc, g.ci, z, nc, false, lhs, rhs, parallel);
            for (t, u) in (u0..u1).enumerate() {
                let (b, i) = (u / g.h, u % g.h);
                for co in 0..g.co {
                    let add = bias.map_or(0.0, |bs| bs[co]);
                    for di in 0..2 {
                        let z0 = &z[(co * 4 + di * 2) * nc + t * g.w..][..g.w];
                        let z1 = &z[(co * 4 + di * 2 + 1) * nc + t * g.w..][..g.w];
                        // SAFETY: output row (b, co, 2i + di) belongs to this chunk alone.
                        let dst =
                            unsafe { out.range(((b * g.co + co) * 2 * g.h + 2 * i + di) * w2, w2) };
                        for (j, pair) in dst.chunks_exact_mut(2).enumerate() {
                            pair[0].write(z0[j] + add);
                            pair[1].write(z1[j] + add);
                        }
                    }
                }
            }
        });
    };
    // SAFETY: the chunks cover every input row `u = (b, i)` once, and each writes output rows
    // (b, co, 2i) and (b, co, 2i + 1), both `2W` values (`W` pairs), of every output channel.
    unsafe { write_chunks(len, Split::even(g.b * g.h, g.rows_per_chunk()), run) }
}

/// Gathers `dZ[(co, di, dj), (t, j)] = dy[b, co, 2i + di, 2j + dj]` for input rows `u0..u1`.
fn unshuffle(dy: &[f32], g: &UpGeom, u0: usize, u1: usize, dz: &mut [f32]) {
    let (nc, w2) = ((u1 - u0) * g.w, 2 * g.w);
    for (t, u) in (u0..u1).enumerate() {
        let (b, i) = (u / g.h, u % g.h);
        for co in 0..g.co {
            for di in 0..2 {
                let src = &dy[((b * g.co + co) * 2 * g.h + 2 * i + di) * w2..][..w2];
                let (r0, r1) = (
                    (co * 4 + di * 2) * nc + t * g.w,
                    (co * 4 + di * 2 + 1) * nc + t * g.w,
                );
                for (j, pair) in src.chunks_exact(2).enumerate() {
                    dz[r0 + j] = pair[0];
                    dz[r1 + j] = pair[1];
                }
            }
        }
    }
}

/// Input gradient: `dx[ci, pixels] = W[ci, (co, 2, 2)] · dZ`.
pub(crate) fn backward_input(dy: &[f32], w: &[f32], g: &UpGeom) -> Vec<f32> {
    let co4 = 4 * g.co;
    let len = g.b * g.ci * g.h * g.w;
    if len == 0 {
        return Vec::new();
    }
    let lhs = View::rows(w, co4);
    let run = |u0: usize, u1: usize, parallel: bool, out: SharedMut<'_, MaybeUninit<f32>>| {
        let nc = (u1 - u0) * g.w;
        with_scratch(co4 * nc, g.ci * nc, |dz, tmp| {
            unshuffle(dy, g, u0, u1, dz);
            matmul(
                g.ci,
                nc,
                co4,
                tmp,
                nc,
                false,
                lhs,
                View::rows(dz, nc),
                parallel,
            );
            for (t, u) in (u0..u1).enumerate() {
                let (b, i) = (u / g.h, u % g.h);
                for ci in 0..g.ci {
                    // SAFETY: input row (b, ci, i) belongs to this chunk alone.
                    let dst = unsafe { out.range(((b * g.ci + ci) * g.h + i) * g.w, g.w) };
                    uninit::write(dst, &tmp[ci * nc + t * g.w..][..g.w]);
                }
            }
        });
    };
    // SAFETY: the chunks cover every input row `u = (b, i)` once, and each writes that row of
    // every input channel whole.
    unsafe { write_chunks(len, Split::even(g.b * g.h, g.rows_per_chunk()), run) }
}

/// Filter gradient `dw[ci, (co, 2, 2)] = Σ X_chunk · dZ_chunkᵀ`, as `[C_in, C_out, 2, 2]`.
pub(crate) fn backward_filter(x: &[f32], dy: &[f32], g: &UpGeom) -> Vec<f32> {
    let co4 = 4 * g.co;
    let units = g.b * g.h;
    if units == 0 {
        return vec![0.0; g.ci * co4];
    }
    let rows = g.rows_per_chunk();
    sum_chunks(
        Split::even(units, rows),
        g.ci * co4,
        |u0, u1, acc, accumulate, parallel| {
            let nc = (u1 - u0) * g.w;
            with_scratch(co4 * nc, g.ci * nc, |dz, xbuf| {
                unshuffle(dy, g, u0, u1, dz);
                let lhs = rows_view(x, [g.ci, g.h, g.w], u0, u1, xbuf);
                matmul(
                    g.ci,
                    co4,
                    nc,
                    acc,
                    co4,
                    accumulate,
                    lhs,
                    View::rows_t(dz, nc),
                    parallel,
                );
            });
        },
    )
}
