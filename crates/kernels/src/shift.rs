//! Stride-1 convolution without im2col, on bands of rows copied with their zero border.
//!
//! The output rows of each image are cut into bands. For a band of output rows `oh0..oh1`,
//! the input rows its filter taps read (`oh0 − pad .. oh1 − pad + K − 1`) are copied, for
//! every input channel, into a plane of rows `Wp = W + 2·pad` wide with the zero border around
//! them (rows outside the image are zeros): a small, cache-resident copy of the input. Output
//! pixel `(oh, ow)` of the band is given the position `q = (oh − oh0)·Wp + ow`; the input pixel
//! that filter tap `(kh, kw)` multiplies is then at `q + kh·Wp + kw` in every plane. So
//!
//! `Y[:, q] = Σ_taps W_tap · P[:, q + off_tap]`,
//!
//! where `W_tap` is the `[C_out, C_in]` slice of the filter for that tap and `P` the band's
//! planes seen as a `[C_in, positions]` matrix. Positions in the border columns
//! (`ow ≥ W_out`) are computed and thrown away, a waste of `1 − W_out / Wp`: 6 % at 32×32.
//!
//! The sum is an implicit matrix product whose patch matrix is never written: [`TiledBand`]
//! keeps a tile of output channels × positions in vector registers over all input channels and
//! taps, loading each plane at the tap's offset (layers chosen by [`worth_it`]); layers with one
//! output channel take the plain loops of [`DirectBand`]. Both serve the forward pass and the
//! input gradient (itself a convolution). Unlike one `gemm` product per tap, a tile's sums are
//! not written back and read again after every tap.
//!
//! The filter gradient of a layer with one input or output channel is a dot product per filter
//! element over the same positions ([`backward_filter`]); for other layers on images of at
//! least 8×8 it is one product per filter row on channels-last copies of the band
//! ([`backward_filter_by_rows`]).
//!
//! Each band is copied on its own, not the whole batch at once, so that the copy stays in
//! cache and the border rows between images are not positions. The measurements behind these
//! choices are in `docs/benchmarks/amun-kernels.md`.

use std::mem::MaybeUninit;

use crate::chunks::{sum_chunks, write_chunks, Split};
use crate::geom::{write_output, ConvGeom};
use crate::mm::{matmul, threads, View};
use crate::scratch::with_scratch;
use crate::uninit::SharedMut;

/// Whether the loops on band planes ([`TiledBand`], [`DirectBand`]) beat im2col and `gemm`
/// for this geometry, as measured on the AMUN presets' layers with 2 threads: every layer
/// with one input or output channel ([`direct`]); and, with AVX-512 only, a real filter
/// (K > 1) over images of at least 16×16, so that the thrown-away border positions stay a
/// small share, with at least 8 input channels and at most 48 output channels (or, up to 32
/// input channels, any number of output channels). With 52–104 output channels from 64 input
/// channels im2col stays ahead, and so it does for every many-channel layer without AVX-512,
/// whose 16 vector registers hold tiles of only 4 × 2 vectors.
pub(crate) fn worth_it(g: &ConvGeom) -> bool {
    if direct(g) {
        return true;
    }
    wide_vectors() && g.k > 1 && g.ci >= 8 && (g.co <= 48 || g.ci <= 32) && g.wo >= 16 && g.ho >= 16
}

/// Whether `pulp` runs this machine's vector loops with 16 `f32` lanes (AVX-512), detected once.
fn wide_vectors() -> bool {
    static WIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WIDE.get_or_init(|| pulp::Arch::new().dispatch(Lanes) == 16)
}

/// Whether the layer has a single input or output channel: its forward pass runs on the band
/// planes ([`TiledBand`], or [`DirectBand`] for one output channel) and its filter gradient as
/// dot products ([`backward_filter`]), several times faster there than `gemm` products with
/// one term or one row.
pub(crate) fn direct(g: &ConvGeom) -> bool {
    g.ci == 1 || g.co == 1
}

/// The most positions the loops compute together, and so the zeros every band plane carries
/// after its last row: [`DirectBand`] keeps eight vector registers of sums, so that eight
/// independent chains of fused multiply-adds hide their latency (128 positions with AVX-512,
/// 64 with AVX2); a [`TiledBand`] tile is narrower.
const BLOCK: usize = 128;

/// How the output rows are cut into bands.
struct Bands {
    /// Output rows per band (the last band of an image may be shorter).
    rows: usize,
    /// Bands per image.
    per_image: usize,
    /// Width of a band's rows: `W + 2·pad`.
    wp: usize,
    /// Zeros after the last row of every plane, for the taps and blocks that read past it.
    tail: usize,
}

/// One band: output rows `oh0..oh1` of image `img`.
struct Band {
    img: usize,
    oh0: usize,
    oh1: usize,
}

impl Bands {
    /// Bands whose input planes and output about fit in `budget` floats, with enough bands to
    /// keep every thread busy when the batch allows it.
    fn new(g: &ConvGeom, budget: usize) -> Self {
        let wp = g.w + 2 * g.pad;
        let by_cache = budget / ((g.ci + g.co) * wp).max(1);
        let by_threads = (g.b * g.ho).div_ceil(2 * threads());
        let rows = by_cache.min(by_threads).clamp(1, g.ho.max(1));
        let tail = g.k - 1 + BLOCK;
        Self {
            rows,
            per_image: g.ho.div_ceil(rows),
            wp,
            tail,
        }
    }

    /// Bands of the whole batch.
    fn count(&self, g: &ConvGeom) -> usize {
        g.b * self.per_image
    }

    fn band(&self, c: usize, g: &ConvGeom) -> Band {
        let (img, i) = (c / self.per_image, c % self.per_image);
        let oh0 = i * self.rows;
        Band {
            img,
            oh0,
            oh1: (oh0 + self.rows).min(g.ho),
        }
    }

    /// Output positions of a band: its rows, `Wp` each.
    fn positions(&self, b: &Band) -> usize {
        (b.oh1 - b.oh0) * self.wp
    }

    /// Distance between two input planes of a band.
    fn stride(&self, b: &Band, g: &ConvGeom) -> usize {
        (b.oh1 - b.oh0 + g.k - 1) * self.wp + self.tail
    }

    /// The offset of each filter tap `(kh, kw)` from an output position: `kh·Wp + kw`.
    fn tap_offsets(&self, g: &ConvGeom) -> Vec<usize> {
        (0..g.k * g.k)
            .map(|t| (t / g.k) * self.wp + t % g.k)
            .collect()
    }

    /// Copies the input rows that the filter taps of band `b` read (`oh0 − pad .. oh1 − pad +
    /// K − 1`, zeros outside the image) of every input channel of `x` into `planes`, one plane
    /// per channel from `ch · stride`, each row `Wp` wide with the image row between `pad`
    /// zeros.
    fn fill_input(&self, x: &[f32], g: &ConvGeom, b: &Band, stride: usize, planes: &mut [f32]) {
        let r0 = b.oh0 as isize - g.pad as isize;
        let rows = b.oh1 - b.oh0 + g.k - 1;
        let at = (g.pad, self.wp);
        fill_planes(x, [g.ci, g.h, g.w], b.img, r0, rows, at, stride, planes);
    }
}

/// Copies rows `r0..r0 + rows` of image `img` of the NCHW buffer `src` (`[_, c, h, w]`; rows
/// outside `0..h` are zeros) into `c` planes of `dst`, plane `ch` from `ch · stride`, each row
/// `wp` wide with the image row at column `at` and zeros around it; the rest of each plane up
/// to `stride` is zeroed.
#[allow(clippy::too_many_arguments)]
fn fill_planes(
    src: &[f32],
    [c, h, w]: [usize; 3],
    img: usize,
    r0: isize,
    rows: usize,
    (at, wp): (usize, usize),
    stride: usize,
    dst: &mut [f32],
) {
    // One `memset` for all planes, then one copy per image row: per-row fills of the one- or
    // two-value borders cost more than zeroing everything.
    dst[..c * stride].fill(0.0);
    for (ch, plane) in dst.chunks_exact_mut(stride).take(c).enumerate() {
        for (i, row) in plane[..rows * wp].chunks_exact_mut(wp).enumerate() {
            if let Some(r) = usize::try_from(r0 + i as isize).ok().filter(|&r| r < h) {
                row[at..at + w].copy_from_slice(&src[((img * c + ch) * h + r) * w..][..w]);
            }
        }
    }
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
    let bands = Bands::new(g, 1 << 17);
    let offs = bands.tap_offsets(g);
    let packed = if g.co == 1 {
        Vec::new()
    } else {
        pack_filter(w, g)
    };
    let run = |c: usize, _: usize, _: bool, out: SharedMut<'_, MaybeUninit<f32>>| {
        let band = bands.band(c, g);
        let (n, stride) = (bands.positions(&band), bands.stride(&band, g));
        with_scratch(g.ci * stride, g.co * n, |planes, tmp| {
            bands.fill_input(x, g, &band, stride, planes);
            if g.co == 1 {
                pulp::Arch::new().dispatch(DirectBand {
                    w,
                    planes,
                    stride,
                    offs: &offs,
                    g,
                    tmp,
                });
            } else {
                let tb = TiledBand {
                    w: &packed,
                    planes,
                    stride,
                    offs: &offs,
                    ci: g.ci,
                    co: g.co,
                    tmp,
                };
                pulp::Arch::new().dispatch(tb);
            }
            scatter(tmp, &band, bands.wp, g, bias, relu, out);
        });
    };
    // SAFETY: the bands (chunks of one band each) cover every output row `(b, oh)` once, and
    // `scatter` writes that row of every output channel.
    unsafe { write_chunks(len, Split::even(bands.count(g), 1), run) }
}

/// Writes the band's real output pixels from `tmp` (`[C_out, positions]`) into the NCHW
/// output, adding the bias.
fn scatter(
    tmp: &[f32],
    band: &Band,
    wp: usize,
    g: &ConvGeom,
    bias: Option<&[f32]>,
    relu: bool,
    out: SharedMut<'_, MaybeUninit<f32>>,
) {
    let n = (band.oh1 - band.oh0) * wp;
    for co in 0..g.co {
        let bias = bias.map_or(0.0, |b| b[co]);
        for oh in band.oh0..band.oh1 {
            let src = &tmp[co * n + (oh - band.oh0) * wp..][..g.wo];
            // SAFETY: output row (img, co, oh) belongs to this band alone.
            let dst = unsafe { out.range(((band.img * g.co + co) * g.ho + oh) * g.wo, g.wo) };
            write_output(dst, src, bias, relu);
        }
    }
}

/// `tmp[co, q] = Σ_ci Σ_taps w[co, ci, tap] · P[ci, q + off_tap]` for the band's positions
/// (`tmp.len() / C_out` of them), in blocks of [`BLOCK`] positions whose sums stay in
/// registers. The planes must hold `BLOCK` readable values after the last position plus the
/// largest offset (the [`Bands`] tail).
///
/// Run through `pulp`'s dispatch, which compiles [`pulp::WithSimd::with_simd`] (inlined into
/// a function with the CPU's vector features enabled) for AVX-512, AVX2 and baseline x86-64,
/// and picks one at run time. (A closure given to the dispatch is not inlined, and stays on
/// baseline SSE2.)
struct DirectBand<'a> {
    w: &'a [f32],
    planes: &'a [f32],
    stride: usize,
    offs: &'a [usize],
    g: &'a ConvGeom,
    tmp: &'a mut [f32],
}

impl pulp::WithSimd for DirectBand<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        match S::F32_LANES {
            16 => self.run::<128>(),
            8 => self.run::<64>(),
            _ => self.run::<16>(),
        }
    }
}

impl DirectBand<'_> {
    /// The loops, `B` positions at a time (`B ≤ BLOCK`).
    #[inline(always)]
    fn run<const B: usize>(self) {
        let Self {
            w,
            planes,
            stride,
            offs,
            g,
            tmp,
        } = self;
        let n = tmp.len() / g.co;
        let taps = offs.len();
        for blk in (0..n).step_by(B) {
            let len = B.min(n - blk);
            for co in 0..g.co {
                let mut acc = [0f32; B];
                for ci in 0..g.ci {
                    let plane = &planes[ci * stride + blk..];
                    let wr = &w[(co * g.ci + ci) * taps..][..taps];
                    for (&wv, &off) in wr.iter().zip(offs) {
                        let src = plane[off..]
                            .first_chunk::<B>()
                            .expect("DirectBand: planes without their block tail");
                        for (a, &s) in acc.iter_mut().zip(src) {
                            *a = wv.mul_add(s, *a);
                        }
                    }
                }
                tmp[co * n + blk..][..len].copy_from_slice(&acc[..len]);
            }
        }
    }
}

/// Output channels [`pack_filter`] pads the filter to a multiple of: every tile width of
/// [`TiledBand`] divides it.
const TILE_CO: usize = 8;

/// The filter `[C_out, C_in, K, K]` as `[C_in, K·K, C_out′]`, `C_out′` rounded up to a
/// multiple of [`TILE_CO`] with zero filters, for [`TiledBand`]: the `TILE_CO` weights one
/// input value meets are adjacent.
fn pack_filter(w: &[f32], g: &ConvGeom) -> Vec<f32> {
    let taps = g.k * g.k;
    let cop = g.co.div_ceil(TILE_CO) * TILE_CO;
    let mut packed = vec![0f32; g.ci * taps * cop];
    for (co, filter) in w.chunks_exact(g.ci * taps).enumerate().take(g.co) {
        for (i, &v) in filter.iter().enumerate() {
            // `i` is `ci·taps + tap`.
            packed[i * cop + co] = v;
        }
    }
    packed
}

/// `tmp[co, q] = Σ_ci Σ_taps w[co, ci, tap] · P[ci, q + off_tap]` as an implicit matrix
/// product with the band's planes as its patch matrix: a tile of `CO` output channels × `NV`
/// vectors of positions (8 × 3 with AVX-512: 24 registers) stays in registers over all input
/// channels and taps; each step loads `NV` vectors of one plane at the tap's offset (no
/// packing, no im2col) and meets them with `CO` broadcast weights. Unlike one `gemm`
/// product per tap, the sums are not written back and read again after every tap.
///
/// `w` is the filter as [`pack_filter`] lays it out. The planes must hold `NV` vectors of
/// readable values after the last position plus the largest offset (the [`Bands`] tail).
struct TiledBand<'a> {
    w: &'a [f32],
    planes: &'a [f32],
    stride: usize,
    offs: &'a [usize],
    ci: usize,
    co: usize,
    tmp: &'a mut [f32],
}

impl pulp::WithSimd for TiledBand<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        // AVX-512: 8 channels × 3 vectors, 24 of the 32 registers (the fastest of 8 × 3, 6 × 4,
        // 4 × 6, 8 × 2 and 16 × 1 when measured). AVX2 (16 registers): 4 × 2.
        match S::F32_LANES {
            16 => self.run::<S, 3, 8>(simd),
            _ => self.run::<S, 2, 4>(simd),
        }
    }
}

impl TiledBand<'_> {
    /// The tiles, `NV` vectors of positions each.
    #[inline(always)]
    fn run<S: pulp::Simd, const NV: usize, const CO: usize>(self, simd: S) {
        let Self {
            w,
            planes,
            stride,
            offs,
            ci: ci_n,
            co,
            tmp,
        } = self;
        const {
            assert!(
                TILE_CO.is_multiple_of(CO),
                "TiledBand: tile not dividing the padding"
            );
            assert!(
                NV * S::F32_LANES <= BLOCK,
                "TiledBand: tile wider than the planes' tail"
            );
        }
        let width = NV * S::F32_LANES;
        let n = tmp.len() / co;
        let taps = offs.len();
        let cop = w.len() / (ci_n * taps).max(1);
        let mut spill = [0f32; BLOCK];
        for blk in (0..n).step_by(width) {
            let len = width.min(n - blk);
            for co0 in (0..co).step_by(CO) {
                let mut acc = [[simd.splat_f32s(0.0); NV]; CO];
                for ci in 0..ci_n {
                    let plane = &planes[ci * stride + blk..];
                    let wc = &w[ci * taps * cop + co0..];
                    for (t, &off) in offs.iter().enumerate() {
                        let (xs, _) = S::as_simd_f32s(&plane[off..off + width]);
                        let ws = &wc[t * cop..t * cop + CO];
                        for (a, &wv) in acc.iter_mut().zip(ws) {
                            let wv = simd.splat_f32s(wv);
                            for (a, &x) in a.iter_mut().zip(xs) {
                                *a = simd.mul_add_e_f32s(wv, x, *a);
                            }
                        }
                    }
                }
                for (j, a) in acc.iter().enumerate().take(co - co0) {
                    let row = &mut tmp[(co0 + j) * n + blk..][..len];
                    // A partial last tile goes through `spill`, so as not to write past `len`.
                    let full = len == width;
                    let (dst, _) =
                        S::as_mut_simd_f32s(if full { &mut *row } else { &mut spill[..width] });
                    dst.copy_from_slice(a);
                    if !full {
                        row.copy_from_slice(&spill[..len]);
                    }
                }
            }
        }
    }
}

/// Filter gradient `dw[co, ci, tap] = Σ_q dY[co, q] · P[ci, q + off_tap]`: a dot product over
/// the positions per filter element, with `dY` placed on the same positions (zero in the border
/// columns, which are not outputs).
///
/// Each dot product is summed in vector lanes that persist over all the bands a thread takes
/// (the lanes are summed once at the end, not per band); bands are summed in a fixed order
/// ([`sum_chunks`]), so the result does not depend on scheduling.
pub(crate) fn backward_filter(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    let taps = g.k * g.k;
    let len = g.co * g.ci * taps;
    let arch = pulp::Arch::new();
    let lanes = arch.dispatch(Lanes);
    let bands = Bands::new(g, 1 << 17);
    let offs = bands.tap_offsets(g);
    let sums = sum_chunks(
        Split::even(bands.count(g), 1),
        len * lanes,
        |c, _, acc, accumulate, _| {
            if !accumulate {
                acc.fill(0.0);
            }
            let band = bands.band(c, g);
            let (n, stride) = (bands.positions(&band), bands.stride(&band, g));
            with_scratch(g.ci * stride, g.co * n, |planes, dys| {
                bands.fill_input(x, g, &band, stride, planes);
                let dy_rows = band.oh1 - band.oh0;
                let src = [g.co, g.ho, g.wo];
                fill_planes(
                    dy,
                    src,
                    band.img,
                    band.oh0 as isize,
                    dy_rows,
                    (0, bands.wp),
                    n,
                    dys,
                );
                arch.dispatch(FilterDots {
                    dys,
                    planes,
                    stride,
                    offs: &offs,
                    g,
                    lanes: acc,
                });
            });
        },
    );
    sums.chunks_exact(lanes).map(|l| l.iter().sum()).collect()
}

/// Whether [`backward_filter_by_rows`] computes this layer's filter gradient: a real filter
/// on images of at least 8×8, where it measured faster than im2col on the presets' layers (or
/// within a few percent, for 64→64 and 64→32 at 32×32). On 4×4 images, whose border columns
/// are a third of the positions, it is slower, and they stay on im2col.
pub(crate) fn filter_grad_by_rows(g: &ConvGeom) -> bool {
    g.k > 1 && g.ho >= 8 && g.wo >= 8
}

/// Filter gradient from channels-last copies of each band: `Pᵀ[q, ci]` (the band's input
/// rows with their zero border) and `dYᵀ[q, co]` (its output-gradient rows, zero in the
/// border columns). For filter row `kh`, the taps `kw = 0..K` read `Pᵀ[q + kh·Wp + kw, ci]`:
/// row `q + kh·Wp` of `Pᵀ` seen as a `[positions, K·C_in]` matrix whose rows overlap (they
/// are `C_in` apart). So one product per filter row,
///
/// `dW_kh[co, (kw, ci)] += dYᵀᵀ · Pᵀ_kh`,
///
/// sums over all positions with both operands read in place by `gemm` (the positions are its
/// inner dimension, the channels contiguous): no nine-times-larger patch matrix, and a copy
/// of the input the size of the input. Bands are summed in a fixed order ([`sum_chunks`]).
pub(crate) fn backward_filter_by_rows(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (k, taps) = (g.k, g.k * g.k);
    let row = k * g.ci; // columns of one filter row's product
    let len = k * g.co * row;
    let bands = Bands::new(g, 1 << 17);
    let wp = bands.wp;
    let acc = sum_chunks(
        Split::even(bands.count(g), 1),
        len,
        |c, _, acc, accumulate, parallel| {
            let band = bands.band(c, g);
            let (n, stride) = (bands.positions(&band), bands.stride(&band, g));
            with_scratch(g.ci * stride, g.co * n, |pt, dyt| {
                // Pᵀ: input rows oh0 − pad .. with their border, channels last.
                pt.fill(0.0);
                let r0 = band.oh0 as isize - g.pad as isize;
                for r in 0..band.oh1 - band.oh0 + k - 1 {
                    let Some(ih) = usize::try_from(r0 + r as isize).ok().filter(|&i| i < g.h)
                    else {
                        continue;
                    };
                    for ci in 0..g.ci {
                        let src = &x[((band.img * g.ci + ci) * g.h + ih) * g.w..][..g.w];
                        let base = (r * wp + g.pad) * g.ci + ci;
                        for (j, &v) in src.iter().enumerate() {
                            pt[base + j * g.ci] = v;
                        }
                    }
                }
                // dYᵀ: the band's output rows, zero in the border columns.
                dyt.fill(0.0);
                for r in 0..band.oh1 - band.oh0 {
                    for co in 0..g.co {
                        let src =
                            &dy[((band.img * g.co + co) * g.ho + band.oh0 + r) * g.wo..][..g.wo];
                        let base = r * wp * g.co + co;
                        for (j, &v) in src.iter().enumerate() {
                            dyt[base + j * g.co] = v;
                        }
                    }
                }
                let lhs = View {
                    data: dyt,
                    rs: 1,
                    cs: g.co,
                };
                for kh in 0..k {
                    let rhs = View {
                        data: &pt[kh * wp * g.ci..],
                        rs: g.ci,
                        cs: 1,
                    };
                    let dst = &mut acc[kh * g.co * row..][..g.co * row];
                    matmul(g.co, row, n, dst, row, accumulate, lhs, rhs, parallel);
                }
            });
        },
    );
    // acc[kh][co][kw·C_in + ci] → dw[co][ci][kh][kw]
    let mut dw = vec![0f32; g.co * g.ci * taps];
    for kh in 0..k {
        for co in 0..g.co {
            for kw in 0..k {
                for ci in 0..g.ci {
                    dw[((co * g.ci + ci) * k + kh) * k + kw] =
                        acc[(kh * g.co + co) * row + kw * g.ci + ci];
                }
            }
        }
    }
    dw
}

/// The lanes [`FilterDots`] sums each dot product in: one vector of `f32`.
struct Lanes;

impl pulp::WithSimd for Lanes {
    type Output = usize;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> usize {
        lanes_for::<S>()
    }
}

/// The lane counts [`FilterDots::run`] is instantiated for.
fn lanes_for<S: pulp::Simd>() -> usize {
    match S::F32_LANES {
        n @ (16 | 8 | 4) => n,
        _ => 1,
    }
}

/// `lanes[co, ci, tap, ..] += Σ_q dY[co, q] · P[ci, q + off_tap]` over one band's positions
/// (`dys.len() / C_out` of them), split over [`Lanes`] lanes; dispatched as [`DirectBand`].
struct FilterDots<'a> {
    dys: &'a [f32],
    planes: &'a [f32],
    stride: usize,
    offs: &'a [usize],
    g: &'a ConvGeom,
    lanes: &'a mut [f32],
}

impl pulp::WithSimd for FilterDots<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        match lanes_for::<S>() {
            16 => self.run::<16>(),
            8 => self.run::<8>(),
            4 => self.run::<4>(),
            _ => self.run::<1>(),
        }
    }
}

impl FilterDots<'_> {
    /// The dot products in `L` lanes, the taps of one channel pair together.
    #[inline(always)]
    fn run<const L: usize>(self) {
        let Self {
            dys,
            planes,
            stride,
            offs,
            g,
            lanes,
        } = self;
        let n = dys.len() / g.co;
        let taps = offs.len();
        for co in 0..g.co {
            let d = &dys[co * n..][..n];
            for ci in 0..g.ci {
                let plane = &planes[ci * stride..];
                let out = &mut lanes[(co * g.ci + ci) * taps * L..][..taps * L];
                if let Ok(o9) = <&[usize; 9]>::try_from(offs) {
                    tap_dots::<L, 9>(d, plane, o9, out);
                } else {
                    for (&off, out) in offs.iter().zip(out.chunks_exact_mut(L)) {
                        tap_dots::<L, 1>(d, plane, &[off], out);
                    }
                }
            }
        }
    }
}

/// `lanes[t, ..] += Σ_i d[i] · plane[i + offs[t]]` for the `T` taps, which share `d`: `T`
/// independent chains of fused multiply-adds in `L` lanes (`lanes` holds `T·L` values; a
/// remainder of `d` shorter than `L` goes to lane 0).
#[inline(always)]
fn tap_dots<const L: usize, const T: usize>(
    d: &[f32],
    plane: &[f32],
    offs: &[usize; T],
    lanes: &mut [f32],
) {
    let mut acc = [[0f32; L]; T];
    for (a, l) in acc.iter_mut().zip(lanes.chunks_exact(L)) {
        a.copy_from_slice(l);
    }
    let offs = *offs;
    let full = d.len() / L * L;
    assert!(
        offs.iter().all(|&off| off
            .checked_add(d.len())
            .is_some_and(|end| end <= plane.len())),
        "tap_dots: planes shorter than the positions"
    );
    for (i, dv) in d.chunks_exact(L).enumerate() {
        let dv: &[f32; L] = dv.try_into().expect("chunks_exact gives L values");
        for (a, &off) in acc.iter_mut().zip(&offs) {
            // SAFETY: `i·L + L ≤ full ≤ d.len()` and `off + d.len() ≤ plane.len()` (asserted
            // above), so the `L` values read lie inside `plane`. (Unchecked: nine bounds checks
            // per step halved the loop's speed.)
            let pv = unsafe { &*plane.as_ptr().add(i * L + off).cast::<[f32; L]>() };
            for ((l, &x), &y) in a.iter_mut().zip(dv).zip(pv) {
                *l = x.mul_add(y, *l);
            }
        }
    }
    for ((a, l), &off) in acc.iter_mut().zip(lanes.chunks_exact_mut(L)).zip(&offs) {
        a[0] += (full..d.len()).map(|i| d[i] * plane[i + off]).sum::<f32>();
        l.copy_from_slice(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulp::Simd;

    /// Which instruction set [`run_tiled`] runs [`TiledBand`] on.
    #[derive(Debug, Clone, Copy)]
    enum Isa {
        Best,
        Avx2,
        Scalar,
    }

    /// `TiledBand`'s sums on `isa`, or `None` when this machine lacks it.
    fn run_tiled(isa: Isa, tiled: TiledBand) -> Option<()> {
        match isa {
            Isa::Best => pulp::Arch::new().dispatch(tiled),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Simd::vectorize(pulp::x86::V3::try_new()?, tiled),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 => return None,
            Isa::Scalar => Simd::vectorize(pulp::Scalar::new(), tiled),
        }
        Some(())
    }

    /// The register tiles give the plain sums on every instruction set the machine has, so
    /// that the narrower AVX2 and scalar tiles, which an AVX-512 machine never picks on its
    /// own, are tested too: 11 output channels (a full tile and a partial one), a position
    /// count that is not a multiple of any tile width.
    #[test]
    fn tiled_band_matches_plain_sums_on_every_instruction_set() {
        let (ci, co, wp, rows) = (5, 11, 13, 7);
        let g = ConvGeom {
            b: 1,
            ci,
            h: rows,
            w: wp - 2,
            co,
            k: 3,
            pad: 1,
            ho: rows,
            wo: wp - 2,
        };
        let taps = 9;
        let offs: Vec<usize> = (0..taps).map(|t| (t / 3) * wp + t % 3).collect();
        let n = rows * wp;
        let stride = (rows + 2) * wp + 2 + BLOCK;
        let planes: Vec<f32> = (0..ci * stride)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let w: Vec<f32> = (0..co * ci * taps)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 40.0)
            .collect();
        let mut want = vec![0f32; co * n];
        for (o, row) in want.chunks_exact_mut(n).enumerate() {
            for (q, v) in row.iter_mut().enumerate() {
                let mut s = 0f64;
                for c in 0..ci {
                    for (t, &off) in offs.iter().enumerate() {
                        s += f64::from(w[(o * ci + c) * taps + t])
                            * f64::from(planes[c * stride + q + off]);
                    }
                }
                *v = s as f32;
            }
        }
        let packed = pack_filter(&w, &g);
        let mut ran = 0;
        for isa in [Isa::Best, Isa::Avx2, Isa::Scalar] {
            let mut tmp = vec![f32::NAN; co * n];
            let tiled = TiledBand {
                w: &packed,
                planes: &planes,
                stride,
                offs: &offs,
                ci,
                co,
                tmp: &mut tmp,
            };
            if run_tiled(isa, tiled).is_none() {
                continue;
            }
            ran += 1;
            for (i, (&got, &want)) in tmp.iter().zip(&want).enumerate() {
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{isa:?}: element {i}: {got} against {want}"
                );
            }
        }
        assert!(
            ran >= 2,
            "the best and the scalar instruction sets always run"
        );
    }
}
