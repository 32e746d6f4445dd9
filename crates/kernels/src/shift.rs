//! Stride-1 convolution without im2col: one matrix product per filter tap on a zero-padded,
//! channel-major copy of the input ("shifted GEMM").
//!
//! The input `[B, C, H, W]` is copied once into `C` planes, each holding the `B` images with
//! their zero border, `Hp × Wp` with `Hp = H + 2·pad`, `Wp = W + 2·pad`, one after the other,
//! followed by a zero tail. Output pixel `(b, oh, ow)` is given the position
//! `q = (b·Hp + oh)·Wp + ow`; the input pixel that filter tap `(kh, kw)` multiplies is then at
//! `q + kh·Wp + kw` in every plane. So for a run of positions `q0..q1`,
//!
//! `Y[:, q0..q1] = Σ_taps W_tap · P[:, q0 + off_tap .. q1 + off_tap]`,
//!
//! where `W_tap` is the `[C_out, C_in]` slice of the filter for that tap and `P` the padded
//! planes seen as a `[C_in, planes]` matrix: nine products (for 3×3) that read the input in
//! place instead of a nine-times-larger patch matrix. Positions in the border rows and
//! columns (`oh ≥ H_out` or `ow ≥ W_out`) are computed and thrown away, a waste of
//! `1 − H_out·W_out / (Hp·Wp)`: 11 % at 32×32, which is why [`worth_it`] keeps small images on
//! the im2col path.
//!
//! Used for the forward pass and the input gradient (itself a convolution). The filter
//! gradient stays on im2col: read this way it needs nine products whose operands `gemm` must
//! pack, and measured slower.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use crate::chunks::for_each_chunk;
use crate::conv::{write_output, ConvGeom};
use crate::mm::{matmul, threads, View};
use crate::scratch::{with_scratch, SharedMut};
use crate::uninit;

/// Whether the shifted products beat im2col for this geometry, as measured on the AMUN
/// presets' layers (`examples/compare.rs`, 2 threads, AVX-512): a real filter (K > 1) on
/// 8–48 input and at most 48 output channels, over images of at least 16×16 so that the
/// thrown-away border positions stay a small share. There the forward pass is 15–30 % faster;
/// with one input channel each product has a single term and im2col wins by 2×, and from 64
/// channels on the two are even or im2col is ahead.
pub(crate) fn worth_it(g: &ConvGeom) -> bool {
    g.k > 1 && (8..=48).contains(&g.ci) && g.co <= 48 && g.wo >= 16 && g.ho >= 16
}

/// `C` channel planes of `B` zero-bordered images, each `hp × wp`, then a zero tail; plane `c`
/// starts at `c · stride`.
struct Planes {
    data: Vec<f32>,
    stride: usize,
    hp: usize,
    wp: usize,
    /// Positions in a plane before its tail: `B·hp·wp`.
    positions: usize,
}

impl Planes {
    /// Places the NCHW buffer `src` (`[b, c, h, w]`) into planes of `hp × wp` images at row
    /// and column offset `at` (with `h + at ≤ hp`, `w + at ≤ wp`), with `tail` zeros after each
    /// plane.
    fn new(
        src: &[f32],
        [b, c, h, w]: [usize; 4],
        (hp, wp): (usize, usize),
        at: usize,
        tail: usize,
    ) -> Self {
        assert!(
            h + at <= hp && w + at <= wp,
            "Planes: image does not fit its border"
        );
        let stride = b * hp * wp + tail;
        let fill = |planes: &mut [MaybeUninit<f32>]| {
            planes
                .par_chunks_mut(stride)
                .enumerate()
                .for_each(|(ch, plane)| {
                    let (rows, tail) = plane.split_at_mut(b * hp * wp);
                    for (i, row) in rows.chunks_exact_mut(wp).enumerate() {
                        let (img, r) = (i / hp, i % hp);
                        match r.checked_sub(at).filter(|&r| r < h) {
                            Some(r) => {
                                let (left, rest) = row.split_at_mut(at);
                                let (mid, right) = rest.split_at_mut(w);
                                uninit::zero(left);
                                uninit::write(mid, &src[((img * c + ch) * h + r) * w..][..w]);
                                uninit::zero(right);
                            }
                            None => uninit::zero(row),
                        }
                    }
                    uninit::zero(tail);
                });
        };
        // SAFETY: every plane is `b·hp` rows of `wp` (each written whole: border, image row,
        // border; or zeros) followed by its tail (zeros), and the planes tile the buffer.
        let data = unsafe { uninit::vec_written_by(c * stride, fill) };
        Self {
            data,
            stride,
            hp,
            wp,
            positions: b * hp * wp,
        }
    }
}

/// Positions per chunk: the chunk's slice of every input plane and its output about fit in
/// `budget` floats, a multiple of 16, and enough chunks to keep every thread busy.
fn positions_per_chunk(q: usize, ci: usize, co: usize, budget: usize) -> usize {
    let by_cache = (budget / (ci + co).max(1)).max(256);
    let by_threads = q.div_ceil(2 * threads()).max(16);
    by_cache.min(by_threads).div_ceil(16) * 16
}

/// Zero rows and columns the taps may read past the last position.
fn tail_for(g: &ConvGeom, wp: usize) -> usize {
    (g.k - 1) * (wp + 1)
}

/// Forward convolution `y = conv(x, w) + bias`, through a ReLU with `relu` (shapes and
/// arguments as [`crate::conv::forward`]).
pub(crate) fn forward(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    g: &ConvGeom,
) -> Vec<f32> {
    let len = g.b * g.co * g.ho * g.wo;
    if len == 0 {
        return Vec::new();
    }
    let (hp, wp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
    let planes = Planes::new(x, [g.b, g.ci, g.h, g.w], (hp, wp), g.pad, tail_for(g, wp));
    let q = planes.positions;
    let per = positions_per_chunk(q, g.ci, g.co, 1 << 17);
    let taps = g.k * g.k;
    let fill = |y: &mut [MaybeUninit<f32>]| {
        let out = SharedMut::new_uninit(y);
        for_each_chunk(q, per, |q0, q1, parallel| {
            let n = q1 - q0;
            with_scratch(0, g.co * n, |_, tmp| {
                for t in 0..taps {
                    let off = (t / g.k) * wp + t % g.k;
                    // W_tap[co, ci] = w[co, ci, kh, kw]
                    let lhs = View {
                        data: &w[t..],
                        rs: g.ci * taps,
                        cs: taps,
                    };
                    let rhs = View::rows(&planes.data[q0 + off..], planes.stride);
                    matmul(g.co, n, g.ci, tmp, n, t > 0, lhs, rhs, parallel);
                }
                scatter(tmp, q0..q1, &planes, g, bias, relu, out);
            });
        });
    };
    // SAFETY: the chunks cover the positions `0..q` once; every output pixel `(b, oh, ow)` has
    // a position in that range, and `scatter` writes all output channels of each.
    unsafe { uninit::vec_written_by(len, fill) }
}

/// Writes the chunk's positions `q0..q1` that are real output pixels from `tmp`
/// (`[C_out, q1 − q0]`) into the NCHW output, adding the bias.
fn scatter(
    tmp: &[f32],
    Range { start: q0, end: q1 }: Range<usize>,
    p: &Planes,
    g: &ConvGeom,
    bias: Option<&[f32]>,
    relu: bool,
    out: SharedMut,
) {
    let n = q1 - q0;
    let mut q = q0;
    while q < q1 {
        let (img, r) = (q / (p.hp * p.wp), q % (p.hp * p.wp));
        let (oh, ow) = (r / p.wp, r % p.wp);
        let row_end = q - ow + p.wp; // first position of the next row
        if oh < g.ho && ow < g.wo {
            let len = (g.wo - ow).min(q1 - q);
            for co in 0..g.co {
                let src = &tmp[co * n + (q - q0)..][..len];
                // SAFETY: each output pixel has one position, in one chunk.
                let dst =
                    unsafe { out.range_uninit(((img * g.co + co) * g.ho + oh) * g.wo + ow, len) };
                write_output(dst, src, bias.map_or(0.0, |b| b[co]), relu);
            }
        }
        q = row_end.min(q1);
    }
}
