//! Whole-scene prediction, window by window, in bounded memory.
//!
//! **What is computed.** The network is applied once to the *canonical input*: the scene's
//! input channels extended by `margin` pixels of symmetric reflection on every side (and by
//! reflection on the bottom and right up to the next multiple of the size multiple), with
//! the convolutions' zero padding beyond, as in training, where each patch is zero-padded at
//! its edges. The output is that pass, cropped to the scene.
//!
//! **How.** The scene is cut into tiles on the lattice of the size multiple (16 with a
//! four-level U-Net), and each tile is predicted from a window of the canonical input: the
//! tile with `halo` pixels on each side that is not an edge of the canonical input, where it
//! is clipped. `halo` is the receptive radius ([`AmunConfig::receptive_radius`], exact for
//! the architecture) rounded up to the size multiple, so each window holds every input its
//! tile depends on, the zero padding happens at the same places as in the whole pass, and
//! pooling sees the same pixel phases: the output does not depend on the tiling (the tests
//! check that it is bit-identical). A scene whose canonical input fits the memory budget is
//! one window, with no overhead.
//!
//! **Memory.** Windows are as large as [`TileParams::max_memory`] allows, from the peak of
//! live activations per pixel ([`Amun::peak_values_per_pixel`]); inputs are read a window at
//! a time from any [`WindowSource`] (a file, or a stack in memory) and each tile's output is
//! handed to a sink as soon as it is ready, so memory does not grow with the scene.

use std::collections::HashMap;
use std::ops::Range;

use amun_raster::{resample_window, Raster, Resampling, Window, WindowSource};
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use ndarray::{s, Array2, ArrayView2};

use crate::check::Amplitude;
use crate::checkpoint::Checkpoint;
use crate::config::{AmunConfig, Supervision};
use crate::data::Normalization;
use crate::error::{Error, Result};
use crate::model::Amun;

/// Reflection margin of the canonical input, in pixels (see the module documentation). On
/// the demo world's four test months, no margin made the RMSE within 16 pixels of the edges
/// 0.009–0.034 K worse in three months (0.018 K better in one); 16, 32 and 64 pixels agreed
/// within 0.003 K (`docs/benchmarks/amun-net.md`, "Whole-scene inference").
pub const DEFAULT_MARGIN: usize = 16;

/// Memory of the process outside the window's tensors and buffers that the budget must also
/// hold: code, thread stacks and kernel scratch, the allocator's slack. An upper bound: a
/// whole `amun downscale` of an 80 × 80 scene peaks at 45 MB (`/usr/bin/time -v`,
/// `docs/benchmarks/amun-net.md`).
pub const BASELINE_BYTES: u64 = 96 << 20;

/// Bytes per window pixel held outside the network's tensors while it runs: the base field
/// (`f32`) and the validity mask (`bool`).
const HOST_BYTES_PER_PIXEL: f64 = 5.0;

/// How whole-scene inference is cut into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileParams {
    /// Output pixels per tile side, a multiple of the model's size multiple; `None`
    /// (default): as few tiles as [`TileParams::max_memory`] allows.
    pub tile: Option<usize>,
    /// Bytes inference may use in all: weights, one window's tensors and buffers, and
    /// [`BASELINE_BYTES`] (default 1 GiB). Only used to choose the tiles when `tile` is
    /// `None`.
    pub max_memory: u64,
    /// Reflection margin of the canonical input, a multiple of the size multiple (default
    /// [`DEFAULT_MARGIN`]). It changes the result near the scene's edges.
    pub margin: usize,
}

impl Default for TileParams {
    fn default() -> Self {
        Self {
            tile: None,
            max_memory: 1 << 30,
            margin: DEFAULT_MARGIN,
        }
    }
}

/// Bytes one window pixel costs while the network runs on it: the peak of live tensor data
/// ([`Amun::peak_values_per_pixel`], `f32`) and the host buffers of the window.
pub fn window_bytes_per_pixel(cfg: &AmunConfig) -> f64 {
    4.0 * Amun::peak_values_per_pixel(cfg) + HOST_BYTES_PER_PIXEL
}

/// Index into `0..n` of position `i` of the symmetric (edge-repeating) reflection of a
/// sequence of length `n`.
fn reflect(i: isize, n: usize) -> usize {
    let n2 = 2 * n as isize;
    let m = i.rem_euclid(n2);
    if m < n as isize {
        m as usize
    } else {
        (n2 - 1 - m) as usize
    }
}

/// The tiles and windows along one axis.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AxisPlan {
    /// Tile boundaries in scene pixels: `0 = b_0 < b_1 < … < b_k = n`.
    bounds: Vec<usize>,
    /// Each tile's window, in scene pixels (may reach into the margin: negative or ≥ n).
    windows: Vec<Range<isize>>,
}

impl AxisPlan {
    /// The windows of the tiles `bounds` on an axis of `n` pixels.
    fn new(n: usize, bounds: Vec<usize>, g: &Geometry) -> Self {
        let (lo, hi) = g.domain(n);
        let windows = bounds
            .windows(2)
            .map(|t| {
                let a = t[0] as isize - g.halo as isize;
                let b = (t[1].div_ceil(g.mult) * g.mult + g.halo) as isize;
                a.max(lo)..b.min(hi)
            })
            .collect();
        Self { bounds, windows }
    }

    /// Tiles of `tile` pixels (the last one shorter).
    fn fixed(n: usize, tile: usize, g: &Geometry) -> Self {
        let mut bounds: Vec<usize> = (0..n).step_by(tile).collect();
        bounds.push(n);
        Self::new(n, bounds, g)
    }

    /// `k` tiles whose windows are as equal as the lattice allows, or `None` if `k` tiles
    /// would leave a tile without pixels.
    fn split(n: usize, k: usize, g: &Geometry) -> Option<Self> {
        if k == 1 {
            return Some(Self::new(n, vec![0, n], g));
        }
        let (lo, hi) = g.domain(n);
        let len = (hi - lo) as usize;
        // k windows of `w`: the first and last lose the halo on their outer side.
        let w = (len + 2 * g.halo * (k - 1)).div_ceil(k).div_ceil(g.mult) * g.mult;
        let first = w.checked_sub(g.halo + g.margin)?;
        let mid = w.checked_sub(2 * g.halo)?;
        if first == 0 || mid == 0 {
            return None;
        }
        let mut bounds = vec![0, first];
        for _ in 2..k {
            bounds.push(bounds[bounds.len() - 1] + mid);
        }
        if *bounds.last()? >= n {
            return None;
        }
        bounds.push(n);
        Some(Self::new(n, bounds, g))
    }

    fn longest(&self) -> usize {
        self.windows.iter().map(|w| w.len()).max().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.windows.iter().map(|w| w.len()).sum()
    }
}

/// Sizes shared by both axes.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    mult: usize,
    halo: usize,
    margin: usize,
}

impl Geometry {
    /// The canonical input along an axis of `n` scene pixels: `-margin ..` the next multiple
    /// of `mult` past `n + margin`.
    fn domain(&self, n: usize) -> (isize, isize) {
        let len = (n + 2 * self.margin).div_ceil(self.mult) * self.mult;
        let lo = -(self.margin as isize);
        (lo, lo + len as isize)
    }
}

/// The windows of a whole-scene prediction (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferencePlan {
    rows: AxisPlan,
    cols: AxisPlan,
    halo: usize,
    margin: usize,
    bytes_per_pixel: u64,
}

impl InferencePlan {
    /// The plan for a scene of `height × width` fine pixels.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a tile or margin that is not a multiple of the size
    /// multiple, or a margin wider than the scene; [`Error::MemoryBudget`] if
    /// `params.max_memory` cannot hold the smallest window.
    pub fn new(cfg: &AmunConfig, height: usize, width: usize, params: &TileParams) -> Result<Self> {
        let mult = cfg.size_multiple();
        let halo = cfg.receptive_radius().div_ceil(mult) * mult;
        if !params.margin.is_multiple_of(mult) {
            return Err(Error::config(
                "margin",
                format!("must be a multiple of {mult}, got {}", params.margin),
            ));
        }
        if params.margin > height.min(width) {
            return Err(Error::config(
                "margin",
                format!(
                    "{} is wider than the {height}×{width} scene it reflects",
                    params.margin
                ),
            ));
        }
        if height == 0 || width == 0 {
            return Err(Error::config("scene", "the scene has no pixels"));
        }
        let g = Geometry {
            mult,
            halo,
            margin: params.margin,
        };
        let bpp = window_bytes_per_pixel(cfg);
        let (rows, cols) = match params.tile {
            Some(t) => {
                if t == 0 || !t.is_multiple_of(mult) {
                    return Err(Error::config(
                        "tile",
                        format!("must be a positive multiple of {mult}, got {t}"),
                    ));
                }
                (
                    AxisPlan::fixed(height, t, &g),
                    AxisPlan::fixed(width, t, &g),
                )
            }
            None => {
                let weights = 4 * Amun::parameter_count(cfg) as u64;
                let fixed = BASELINE_BYTES + weights;
                let avail = params.max_memory.saturating_sub(fixed);
                let max_pixels = (avail as f64 / bpp) as usize;
                best_split(height, width, max_pixels, &g).ok_or_else(|| {
                    let side = 2 * halo + mult;
                    Error::MemoryBudget {
                        budget: params.max_memory,
                        detail: format!(
                            "{} MiB of weights and baseline, and a window of at least {side}×{side} pixels at {bpp:.0} bytes each: {} MiB in all",
                            fixed >> 20,
                            (fixed + (bpp * (side * side) as f64) as u64) >> 20
                        ),
                    }
                })?
            }
        };
        Ok(Self {
            rows,
            cols,
            halo,
            margin: params.margin,
            bytes_per_pixel: bpp.ceil() as u64,
        })
    }

    /// The plan of the rows `rows` of a scene of `height × width` fine pixels only (a row
    /// band of the scene, for a task of a job split across processes): its tiles lie inside
    /// the band, on the lattice of the size multiple, with their windows as in the
    /// whole-scene plan — halos reaching into the rows beyond the band, the reflection
    /// margin only at the scene's own edges — so every pixel of the band comes out
    /// bit-identical to [`InferencePlan::new`]'s (the output does not depend on the tiling).
    ///
    /// # Errors
    /// As [`InferencePlan::new`]; [`Error::InvalidConfig`] for an empty band, one past the
    /// scene, or a band edge inside the scene that is not a multiple of the size multiple.
    pub fn for_rows(
        cfg: &AmunConfig,
        height: usize,
        width: usize,
        rows: Range<usize>,
        params: &TileParams,
    ) -> Result<Self> {
        let whole = Self::new(cfg, height, width, params)?;
        if rows == (0..height) {
            return Ok(whole);
        }
        let mult = cfg.size_multiple();
        if rows.is_empty() || rows.end > height {
            return Err(Error::config(
                "rows",
                format!(
                    "{}..{} is not a band of {height} rows",
                    rows.start, rows.end
                ),
            ));
        }
        for edge in [rows.start, rows.end] {
            if edge != height && !edge.is_multiple_of(mult) {
                return Err(Error::config(
                    "rows",
                    format!("band edge {edge} is not a multiple of {mult}"),
                ));
            }
        }
        let g = Geometry {
            mult,
            halo: whole.halo,
            margin: params.margin,
        };
        let (r0, band) = (rows.start, rows.len());
        let bounds: Vec<usize> = match params.tile {
            Some(t) => {
                let mut b: Vec<usize> = rows.clone().step_by(t).collect();
                b.push(rows.end);
                b
            }
            None => {
                // Sized as if a full halo lay beyond each side of the band (where the band
                // meets the scene's edge, the margin is smaller: the estimate errs safe).
                let gr = Geometry {
                    margin: g.margin.max(g.halo),
                    ..g
                };
                let weights = 4 * Amun::parameter_count(cfg) as u64;
                let avail = params.max_memory.saturating_sub(BASELINE_BYTES + weights);
                let max_pixels = (avail as f64 / whole.bytes_per_pixel as f64) as usize;
                let (r, c) =
                    best_split_with(band, width, max_pixels, &gr, &g).ok_or_else(|| {
                        Error::MemoryBudget {
                            budget: params.max_memory,
                            detail: format!("no window of rows {}..{} fits", rows.start, rows.end),
                        }
                    })?;
                return Ok(Self {
                    rows: AxisPlan::new(height, r.bounds.iter().map(|b| b + r0).collect(), &g),
                    cols: c,
                    ..whole
                });
            }
        };
        Ok(Self {
            rows: AxisPlan::new(height, bounds, &g),
            ..whole
        })
    }

    /// Tiles down and across.
    pub fn tiles(&self) -> (usize, usize) {
        (self.rows.windows.len(), self.cols.windows.len())
    }

    /// Rows and columns of the largest window.
    pub fn largest_window(&self) -> (usize, usize) {
        (self.rows.longest(), self.cols.longest())
    }

    /// Input pixels of all windows together (the network's work; the scene's pixels when
    /// it is one window without margin).
    pub fn work_pixels(&self) -> u64 {
        self.rows.total() as u64 * self.cols.total() as u64
    }

    /// The halo of interior tile edges, in pixels.
    pub fn halo(&self) -> usize {
        self.halo
    }

    /// The reflection margin, in pixels.
    pub fn margin(&self) -> usize {
        self.margin
    }

    /// Estimated bytes of the largest window while the network runs on it (without the
    /// weights and [`BASELINE_BYTES`]).
    pub fn window_bytes(&self) -> u64 {
        let (h, w) = self.largest_window();
        (h * w) as u64 * self.bytes_per_pixel
    }

    /// Every tile (scene pixels) with its window (scene pixels, possibly in the margin), in
    /// row-major order.
    fn tiles_and_windows(&self) -> impl Iterator<Item = (Window, Range<isize>, Range<isize>)> + '_ {
        let r = &self.rows;
        let c = &self.cols;
        (0..r.windows.len()).flat_map(move |i| {
            (0..c.windows.len()).map(move |j| {
                let tile = Window::new(
                    c.bounds[j],
                    r.bounds[i],
                    c.bounds[j + 1] - c.bounds[j],
                    r.bounds[i + 1] - r.bounds[i],
                );
                (tile, r.windows[i].clone(), c.windows[j].clone())
            })
        })
    }
}

/// The split of both axes with the least work whose largest window has at most
/// `max_pixels` pixels (ties: fewer windows).
fn best_split(
    height: usize,
    width: usize,
    max_pixels: usize,
    g: &Geometry,
) -> Option<(AxisPlan, AxisPlan)> {
    best_split_with(height, width, max_pixels, g, g)
}

/// [`best_split`] with the rows sized by `gr` and the columns by `gc`.
fn best_split_with(
    height: usize,
    width: usize,
    max_pixels: usize,
    gr: &Geometry,
    gc: &Geometry,
) -> Option<(AxisPlan, AxisPlan)> {
    let options = |n: usize, g: &Geometry| -> Vec<AxisPlan> {
        let mut v = Vec::new();
        for k in 1..=n.div_ceil(g.mult) {
            match AxisPlan::split(n, k, g) {
                Some(p) => v.push(p),
                None if k > 1 => break,
                None => {}
            }
        }
        v
    };
    let (rows, cols) = (options(height, gr), options(width, gc));
    let mut best: Option<(u64, usize, usize, usize)> = None;
    for (i, r) in rows.iter().enumerate() {
        for (j, c) in cols.iter().enumerate() {
            if r.longest() * c.longest() > max_pixels {
                continue;
            }
            let work = r.total() as u64 * c.total() as u64;
            let n = r.windows.len() * c.windows.len();
            if best.is_none_or(|(w, m, _, _)| (work, n) < (w, m)) {
                best = Some((work, n, i, j));
            }
            // More columns only shrink the window further and add work.
            break;
        }
    }
    let (_, _, i, j) = best?;
    Some((rows[i].clone(), cols[j].clone()))
}

/// The residual base field of a window: the coarse LST resampled bilinearly onto the fine
/// grid, computed for the window's pixels only (bit-identical to the same pixels of the
/// whole resampling).
///
/// # Errors
/// Raster errors (CRS, window).
pub fn base_window(
    coarse_lst: &Raster,
    fine: &amun_raster::Grid,
    window: Window,
) -> Result<Array2<f32>> {
    Ok(resample_window(coarse_lst, fine, window, Resampling::Bilinear)?.into_data())
}

/// The base field of the whole scene when it is a prior ([`AmunConfig::base`]), `None` for
/// the bilinear base, which is computed window by window ([`base_window`]).
///
/// A prior is fitted on the scene's coarse cells, so it needs every covariate pixel of its
/// terms once: they are read whole from `covariates` (the one part of inference whose memory
/// grows with the scene; the fine field itself is 4 bytes per pixel).
fn whole_scene_base<S: WindowSource + ?Sized>(
    cfg: &AmunConfig,
    fit_lst: Option<&Raster>,
    coarse_lst: &Raster,
    covariates: &S,
) -> Result<Option<Raster>> {
    if matches!(cfg.base, crate::config::Base::Bilinear) {
        return Ok(None);
    }
    let grid = covariates.grid().clone();
    let all = Window::of(&grid);
    let mut stack = amun_raster::Stack::new(grid);
    for name in covariates.names() {
        stack.push(name.clone(), covariates.read_window(name, all)?)?;
    }
    Ok(Some(
        cfg.base.field_fitted_on(fit_lst, coarse_lst, &stack)?.0,
    ))
}

/// One window through the network: the input encoding, the network, and the output.
///
/// - Channel 0 is the window's `base` field (the coarse-LST-derived field the network
///   corrects), then the covariates (raw values in [`AmunConfig::covariates`] order) with
///   the aspect band encoded as [`AmunConfig::aspect_encoding`] says; each channel is
///   normalised with the checkpoint's statistics, missing values (non-finite) become 0
///   (the training mean) and make the pixel invalid.
/// - The output is denormalised and, with [`AmunConfig::residual`], added to `base`;
///   invalid pixels are `NaN`. Only the pixels under `crop` (window coordinates) are
///   returned.
///
/// # Shapes
/// `base` and every covariate `[H, W]` (a multiple of the size multiple) → `[crop rows,
/// crop cols]`.
/// The network and what it needs to encode its inputs and decode its output.
struct Net<'a> {
    model: &'a Amun,
    cfg: &'a AmunConfig,
    norm: &'a Normalization,
    device: &'a candle_core::Device,
}

fn run_window(
    net: &Net<'_>,
    base: ArrayView2<'_, f32>,
    covariates: Vec<Array2<f32>>,
    crop: (Range<usize>, Range<usize>),
    amplitude: &mut Tally,
) -> Result<Array2<f32>> {
    let Net {
        model,
        cfg,
        norm,
        device,
    } = *net;
    let (h, w) = base.dim();
    let n_ch = 1 + cfg.n_aux();
    let mut x = vec![0f32; n_ch * h * w];
    let mut valid = Array2::from_elem((h, w), true);
    let mut channel = 0;
    let mut put =
        |src: &mut dyn Iterator<Item = f32>, stats: &crate::data::ChannelStats, ch: usize| {
            let dst = &mut x[ch * h * w..(ch + 1) * h * w];
            for ((d, v), ok) in dst.iter_mut().zip(src).zip(valid.iter_mut()) {
                if v.is_finite() {
                    *d = stats.norm(v);
                } else {
                    *ok = false;
                }
            }
        };
    put(&mut base.iter().copied(), &norm.lst, channel);
    channel += 1;
    for ((_, maps), band) in cfg.channel_maps().into_iter().zip(&covariates) {
        for m in maps {
            put(
                &mut band.iter().map(|&v| m.apply(v)),
                &norm.aux[channel - 1],
                channel,
            );
            channel += 1;
        }
    }
    if !cfg.base_is_input() {
        // Its validity counts; its values are not the network's to see.
        x[..h * w].fill(0.0);
    }
    // The raw bands are encoded: free them before the network runs.
    drop(covariates);
    let input = Tensor::from_vec(x, (1, n_ch, h, w), device)?; // [B, C, H, W]
    let out = model.forward(&input)?; // [B, 1, H, W]
    drop(input);
    let out: Vec<f32> = out.flatten_all()?.to_vec1()?;
    let out = ArrayView2::from_shape((h, w), &out).map_err(|e| Error::ShapeMismatch {
        what: "network output",
        expected: format!("{h}×{w}"),
        got: e.to_string(),
    })?;
    let (rr, cc) = crop;
    let base = base.slice(s![rr.clone(), cc.clone()]);
    let valid = valid.slice(s![rr.clone(), cc.clone()]);
    let out = out.slice(s![rr, cc]);
    Ok(ndarray::Zip::from(&out)
        .and(&base)
        .and(&valid)
        .map_collect(|&o, &b, &ok| {
            if !ok {
                return f32::NAN;
            }
            let o = norm.target.denorm(o);
            if cfg.residual {
                amplitude.add(o);
                b + o
            } else {
                o
            }
        }))
}

/// Sum of squared corrections and their count, over the windows of a scene.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    sum_sq: f64,
    n: u64,
}

impl Tally {
    fn add(&mut self, correction: f32) {
        if correction.is_finite() {
            self.sum_sq += f64::from(correction).powi(2);
            self.n += 1;
        }
    }

    /// The scene's [`Amplitude`] next to the training targets' RMS, `√(σ² + μ²)` of the
    /// target statistics; `None` for a model that is not residual or without pixels, and
    /// for one trained on coarse cells ([`Supervision::CoarseResidual`]): its targets are
    /// block means, and a pixel's correction may rightly exceed them.
    fn amplitude(&self, cfg: &AmunConfig, norm: &Normalization) -> Option<Amplitude> {
        let pixel_targets = cfg.supervision == Supervision::FineLabel;
        (cfg.residual && pixel_targets && self.n > 0).then(|| Amplitude {
            correction_rms_k: (self.sum_sq / self.n as f64).sqrt(),
            trained_rms_k: norm.target.std.hypot(norm.target.mean),
            pixels: self.n,
        })
    }
}

/// What a windowed prediction did: the plan it followed and how large its correction was.
#[derive(Debug, Clone)]
pub struct Inference {
    /// The windows.
    pub plan: InferencePlan,
    /// The correction's size next to the training residuals' (`None` for a model that
    /// predicts LST directly rather than a correction of its base).
    pub amplitude: Option<Amplitude>,
}

/// Pixels of `window` of a scene-sized array gathered through `rows` and `cols`, the scene
/// indices of each window row and column, from the part of the scene `src` read at
/// `(r0, c0)`.
fn gather(src: Array2<f32>, r0: usize, c0: usize, rows: &[usize], cols: &[usize]) -> Array2<f32> {
    let identity = rows.iter().enumerate().all(|(i, &r)| r == r0 + i)
        && cols.iter().enumerate().all(|(j, &c)| c == c0 + j)
        && src.dim() == (rows.len(), cols.len());
    if identity {
        return src;
    }
    Array2::from_shape_fn((rows.len(), cols.len()), |(i, j)| {
        src[(rows[i] - r0, cols[j] - c0)]
    })
}

impl Checkpoint {
    /// The network with plain (non-variable) copies of the weights, sharing their storage:
    /// its forward pass records no autograd graph, so every activation is freed as soon as
    /// the next layer has consumed it.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn inference_model(&self) -> Result<Amun> {
        let tensors: HashMap<String, Tensor> = self
            .weights()
            .into_iter()
            .map(|(name, var)| (name, var.as_tensor().detach()))
            .collect();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, self.device());
        Ok(Amun::new(self.config(), vb)?)
    }

    /// Predicts fine LST over `covariates`' grid from a coarse LST raster, window by window
    /// (see the module documentation), handing each tile's output to `sink` as it is ready.
    ///
    /// `covariates` must hold the bands the model was trained with. Pixels where any input
    /// is missing are `NaN`. `progress(done, total)` is called after each window. Returns
    /// the plan that was used and the size of the network's correction ([`Inference`]).
    ///
    /// # Errors
    /// [`Error::MissingCovariate`]; [`Error::InvalidConfig`] / [`Error::MemoryBudget`] from
    /// [`InferencePlan::new`]; [`Error::NoValidOutput`] when no output pixel would have a
    /// value (checked first on the coarse LST, then over the whole run); raster, tensor and
    /// sink errors.
    pub fn predict_windows<S: WindowSource + ?Sized>(
        &self,
        coarse_lst: &Raster,
        covariates: &S,
        params: &TileParams,
        sink: impl FnMut(Window, Array2<f32>) -> Result<()>,
        progress: impl FnMut(usize, usize),
    ) -> Result<Inference> {
        let (h, w) = covariates.grid().shape();
        let plan = InferencePlan::new(self.config(), h, w, params)?;
        self.predict_plan(None, coarse_lst, covariates, plan, true, sink, progress)
    }

    /// [`Checkpoint::predict_windows`] for the rows `rows` of the scene only (see
    /// [`InferencePlan::for_rows`]): the tiles handed to `sink` cover those rows (in scene
    /// coordinates), each bit-identical to the same pixels of the whole-scene prediction. A
    /// band without a valid output pixel is not an error (another band may have some).
    ///
    /// # Errors
    /// As [`Checkpoint::predict_windows`] and [`InferencePlan::for_rows`].
    pub fn predict_rows<S: WindowSource + ?Sized>(
        &self,
        coarse_lst: &Raster,
        covariates: &S,
        params: &TileParams,
        rows: Range<usize>,
        sink: impl FnMut(Window, Array2<f32>) -> Result<()>,
        progress: impl FnMut(usize, usize),
    ) -> Result<Inference> {
        let (h, w) = covariates.grid().shape();
        let plan = InferencePlan::for_rows(self.config(), h, w, rows, params)?;
        self.predict_plan(None, coarse_lst, covariates, plan, false, sink, progress)
    }

    /// Runs `plan`'s windows (a prior base fitted on `fit_lst` when given); with
    /// `require_valid`, no valid output pixel is an error.
    #[allow(clippy::too_many_arguments)]
    fn predict_plan<S: WindowSource + ?Sized>(
        &self,
        fit_lst: Option<&Raster>,
        coarse_lst: &Raster,
        covariates: &S,
        plan: InferencePlan,
        require_valid: bool,
        mut sink: impl FnMut(Window, Array2<f32>) -> Result<()>,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Inference> {
        let cfg = self.config();
        for name in &cfg.covariates {
            if !covariates.names().contains(name) {
                return Err(Error::MissingCovariate {
                    name: name.clone(),
                    available: covariates.names().join(", "),
                });
            }
        }
        let fine = covariates.grid().clone();
        if coarse_lst.valid_count() == 0 {
            return Err(Error::NoValidOutput {
                detail: "the coarse LST has no valid pixel".into(),
            });
        }
        let (h, w) = fine.shape();
        let prior = whole_scene_base(cfg, fit_lst, coarse_lst, covariates)?;
        let model = self.inference_model()?;
        let norm = self.normalization();
        let net = Net {
            model: &model,
            cfg,
            norm,
            device: self.device(),
        };
        let total = plan.tiles().0 * plan.tiles().1;
        let mut base_valid = 0u64;
        let mut cov_valid = vec![0u64; cfg.covariates.len()];
        let mut valid_out = 0u64;
        let mut tally = Tally::default();
        for (done, (tile, wr, wc)) in plan.tiles_and_windows().enumerate() {
            let rows: Vec<usize> = wr.clone().map(|i| reflect(i, h)).collect();
            let cols: Vec<usize> = wc.clone().map(|j| reflect(j, w)).collect();
            let (r0, r1) = (rows.iter().min(), rows.iter().max());
            let (c0, c1) = (cols.iter().min(), cols.iter().max());
            let (Some(&r0), Some(&r1), Some(&c0), Some(&c1)) = (r0, r1, c0, c1) else {
                continue;
            };
            let src = Window::new(c0, r0, c1 - c0 + 1, r1 - r0 + 1);
            let base = match &prior {
                None => base_window(coarse_lst, &fine, src)?,
                Some(field) => field
                    .data()
                    .slice(s![r0..r0 + src.height, c0..c0 + src.width])
                    .to_owned(),
            };
            let base = gather(base, r0, c0, &rows, &cols);
            let crop = (
                (tile.row0 as isize - wr.start) as usize
                    ..(tile.row1() as isize - wr.start) as usize,
                (tile.col0 as isize - wc.start) as usize
                    ..(tile.col1() as isize - wc.start) as usize,
            );
            let count = |a: &Array2<f32>| {
                a.slice(s![crop.0.clone(), crop.1.clone()])
                    .iter()
                    .filter(|v| v.is_finite())
                    .count() as u64
            };
            base_valid += count(&base);
            let mut bands = Vec::with_capacity(cfg.covariates.len());
            for (i, name) in cfg.covariates.iter().enumerate() {
                let band = gather(
                    covariates.read_window(name, src)?.into_data(),
                    r0,
                    c0,
                    &rows,
                    &cols,
                );
                cov_valid[i] += count(&band);
                bands.push(band);
            }
            let out = run_window(&net, base.view(), bands, crop, &mut tally)?;
            drop(base);
            valid_out += out.iter().filter(|v| !v.is_nan()).count() as u64;
            sink(tile, out)?;
            progress(done + 1, total);
        }
        if valid_out == 0 && require_valid {
            let mut missing: Vec<String> = cfg
                .covariates
                .iter()
                .zip(&cov_valid)
                .filter(|(_, &n)| n == 0)
                .map(|(name, _)| format!("covariate `{name}`"))
                .collect();
            if base_valid == 0 {
                missing.insert(0, "the coarse LST interpolated onto the fine grid".into());
            }
            return Err(Error::NoValidOutput {
                detail: if missing.is_empty() {
                    "no fine pixel has every input (the valid pixels of the inputs do not overlap)"
                        .into()
                } else {
                    format!(
                        "{} has no valid pixel over the scene",
                        missing.join(" and ")
                    )
                },
            });
        }
        let amplitude = tally.amplitude(cfg, norm);
        Ok(Inference { plan, amplitude })
    }

    /// Predicts fine LST over the covariates' grid from a coarse LST raster: the whole
    /// scene in memory, computed as [`Checkpoint::predict_windows`] does.
    ///
    /// `progress(done, total)` is called after each window.
    ///
    /// # Errors
    /// As [`Checkpoint::predict_windows`].
    pub fn predict(
        &self,
        coarse_lst: &Raster,
        fine_covariates: &amun_raster::Stack,
        tiles: &TileParams,
        progress: impl FnMut(usize, usize),
    ) -> Result<Raster> {
        Ok(self
            .predict_checked(coarse_lst, fine_covariates, tiles, progress)?
            .0)
    }

    /// [`Checkpoint::predict`], with the size of the network's correction next to its
    /// training residuals' ([`Amplitude`]; `None` for a model that is not residual).
    ///
    /// # Errors
    /// As [`Checkpoint::predict_windows`].
    pub fn predict_checked(
        &self,
        coarse_lst: &Raster,
        fine_covariates: &amun_raster::Stack,
        tiles: &TileParams,
        progress: impl FnMut(usize, usize),
    ) -> Result<(Raster, Option<Amplitude>)> {
        self.predict_fitted_on(None, coarse_lst, fine_covariates, tiles, progress)
    }

    /// [`Checkpoint::predict_checked`] with a prior base's coefficients fitted on `fit_lst`
    /// when given: for a pair one scale up, its label, as in training
    /// ([`crate::TrainingScene::fit_prior_on_label`]).
    ///
    /// # Errors
    /// As [`Checkpoint::predict_windows`]; prior errors for `fit_lst`.
    pub fn predict_fitted_on(
        &self,
        fit_lst: Option<&Raster>,
        coarse_lst: &Raster,
        fine_covariates: &amun_raster::Stack,
        tiles: &TileParams,
        progress: impl FnMut(usize, usize),
    ) -> Result<(Raster, Option<Amplitude>)> {
        let grid = fine_covariates.grid().clone();
        let (h, w) = grid.shape();
        let plan = InferencePlan::new(self.config(), h, w, tiles)?;
        let mut data = Array2::from_elem(grid.shape(), f32::NAN);
        let inference = self.predict_plan(
            fit_lst,
            coarse_lst,
            fine_covariates,
            plan,
            true,
            |t, out| {
                data.slice_mut(s![t.row0..t.row1(), t.col0..t.col1()])
                    .assign(&out);
                Ok(())
            },
            progress,
        )?;
        Ok((Raster::new(grid, data)?, inference.amplitude))
    }
}

/// Predicts fine LST with a checkpoint; see [`Checkpoint::predict`].
///
/// # Errors
/// As [`Checkpoint::predict`].
pub fn predict(
    checkpoint: &Checkpoint,
    coarse_lst: &Raster,
    fine_covariates: &amun_raster::Stack,
    tiles: &TileParams,
    progress: impl FnMut(usize, usize),
) -> Result<Raster> {
    checkpoint.predict(coarse_lst, fine_covariates, tiles, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_is_symmetric_and_periodic() {
        let v: Vec<usize> = (-4..8).map(|i| reflect(i, 3)).collect();
        // Period 2n: 0 1 2 | 2 1 0 | 0 1 2 …, read from i = −4.
        assert_eq!(v, [2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1]);
    }

    fn small_plan(h: usize, w: usize, params: &TileParams) -> Result<InferencePlan> {
        InferencePlan::new(&AmunConfig::small(), h, w, params)
    }

    /// Windows cover their tiles plus the halo, stop at the canonical input's edges, lie on
    /// the lattice, and a scene that fits is one window with no overhead.
    #[test]
    fn plans_cover_the_scene_on_the_lattice() {
        let p = small_plan(400, 800, &TileParams::default()).unwrap();
        assert_eq!(p.tiles(), (1, 1));
        // The scene and its margin of 16 on every side.
        assert_eq!(p.work_pixels(), 432 * 832);
        assert_eq!(p.halo(), 128);
        let no_margin = TileParams {
            margin: 0,
            ..TileParams::default()
        };
        assert_eq!(
            small_plan(400, 800, &no_margin).unwrap().work_pixels(),
            400 * 800
        );
        // 2048² does not fit 1 GiB in one window: the split keeps every window inside it.
        let p = small_plan(2048, 2048, &TileParams::default()).unwrap();
        assert!(p.tiles().0 * p.tiles().1 > 1, "{p:?}");
        let fixed = BASELINE_BYTES + 4 * Amun::parameter_count(&AmunConfig::small()) as u64;
        assert!(p.window_bytes() + fixed <= 1 << 30, "{p:?}");
        for (tile, wr, wc) in p.tiles_and_windows() {
            assert!(wr.start <= tile.row0 as isize && wr.end >= tile.row1() as isize);
            assert!(wc.start <= tile.col0 as isize && wc.end >= tile.col1() as isize);
            for v in [wr.start, wr.end, wc.start, wc.end] {
                assert_eq!(v.rem_euclid(16), 0);
            }
            assert!(wr.start >= -16 && wr.end <= 2048 + 16);
            if tile.row0 > 0 {
                assert_eq!(wr.start, tile.row0 as isize - 128);
            }
        }
        // A margin widens the canonical input; odd sizes pad to the lattice.
        let p = small_plan(
            100,
            70,
            &TileParams {
                margin: 16,
                ..TileParams::default()
            },
        )
        .unwrap();
        let (_, wr, wc) = p.tiles_and_windows().next().unwrap();
        assert_eq!((wr, wc), (-16..128, -16..96));
    }

    /// A larger budget never gives more work or smaller windows; too small a budget is an
    /// error that says what is needed.
    #[test]
    fn the_budget_decides_the_windows() {
        let mut last_work = u64::MAX;
        for mib in [300u64, 400, 600, 1024, 2048, 8192] {
            let p = small_plan(
                2048,
                2048,
                &TileParams {
                    max_memory: mib << 20,
                    ..TileParams::default()
                },
            )
            .unwrap();
            assert!(p.work_pixels() <= last_work, "{mib} MiB: {p:?}");
            last_work = p.work_pixels();
        }
        assert_eq!(last_work, 2080 * 2080);
        let e = small_plan(
            2048,
            2048,
            &TileParams {
                max_memory: 64 << 20,
                ..TileParams::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, Error::MemoryBudget { .. }), "{e}");
        let e = small_plan(
            64,
            64,
            &TileParams {
                tile: Some(24),
                ..TileParams::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("tile"), "{e}");
        let e = small_plan(
            64,
            64,
            &TileParams {
                margin: 8,
                ..TileParams::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("margin"), "{e}");
    }
}

#[cfg(test)]
mod scene_tests {
    use super::*;
    use crate::checkpoint::CheckpointMeta;
    use crate::data::{ChannelStats, Normalization};
    use crate::init::SeededVarMap;
    use crate::testutil::{scene, tiny_config};
    use amun_raster::Stack;
    use candle_core::Device;

    /// An untrained tiny network with made-up normalisation: tiling properties do not
    /// depend on training.
    fn checkpoint() -> Checkpoint {
        let cfg = tiny_config();
        let vars = SeededVarMap::new(5);
        Amun::new(&cfg, vars.var_builder(&Device::Cpu)).unwrap();
        let st = ChannelStats {
            mean: 0.0,
            std: 1.0,
        };
        let norm = Normalization {
            lst: ChannelStats {
                mean: 285.0,
                std: 3.0,
            },
            aux: vec![
                ChannelStats {
                    mean: 0.5,
                    std: 0.2,
                },
                ChannelStats {
                    mean: 500.0,
                    std: 150.0,
                },
                st,
                st,
            ],
            target: ChannelStats {
                mean: 0.0,
                std: 2.0,
            },
        };
        let meta = CheckpointMeta::new(cfg, norm, None, vec![], 0, None);
        Checkpoint::from_parts(meta, &vars.sorted_vars(), vec![], &Device::Cpu).unwrap()
    }

    fn bits(r: &Raster) -> Vec<u32> {
        r.data().iter().map(|v| v.to_bits()).collect()
    }

    /// The tiled result is bit-identical for every tiling, and equal to one pass of the
    /// network over the canonical input built by hand (reflection margin, padding to the
    /// lattice, zero padding beyond).
    #[test]
    fn result_does_not_depend_on_the_tiling() {
        let ck = checkpoint();
        let cfg = ck.config().clone();
        let mult = cfg.size_multiple();
        // 66 is not a multiple of the lattice (4 here): the canonical input is padded.
        let sc = scene(66, 6, 0.0);
        for margin in [0, 8] {
            let run = |tile: Option<usize>, max_memory: u64| {
                let mut calls = 0;
                let r = ck
                    .predict(
                        &sc.coarse_lst,
                        &sc.covariates,
                        &TileParams {
                            tile,
                            max_memory,
                            margin,
                        },
                        |d, t| {
                            calls += 1;
                            assert!(d <= t);
                        },
                    )
                    .unwrap();
                (r, calls)
            };
            let (whole, calls) = run(None, 1 << 30);
            assert_eq!(calls, 1);
            assert_eq!(whole.valid_count(), 66 * 66);
            for tile in [4, 8, 20, 32, 64] {
                let (tiled, calls) = run(Some(tile), 0);
                assert_eq!(calls, 66usize.div_ceil(tile).pow(2));
                assert_eq!(bits(&tiled), bits(&whole), "margin {margin}, tile {tile}");
            }
            // The reference: the canonical input by hand, one forward pass.
            let side = (66 + 2 * margin).div_ceil(mult) * mult;
            let idx: Vec<usize> = (0..side)
                .map(|i| reflect(i as isize - margin as isize, 66))
                .collect();
            let base = base_window(
                &sc.coarse_lst,
                sc.covariates.grid(),
                Window::of(sc.covariates.grid()),
            )
            .unwrap();
            let pick =
                |a: &Array2<f32>| Array2::from_shape_fn((side, side), |(i, j)| a[(idx[i], idx[j])]);
            let bands: Vec<Array2<f32>> = cfg
                .covariates
                .iter()
                .map(|n| pick(sc.covariates.band(n).unwrap().data()))
                .collect();
            let crop = (margin..margin + 66, margin..margin + 66);
            let model = ck.inference_model().unwrap();
            let net = Net {
                model: &model,
                cfg: &cfg,
                norm: ck.normalization(),
                device: ck.device(),
            };
            let want =
                run_window(&net, pick(&base).view(), bands, crop, &mut Tally::default()).unwrap();
            let want_bits: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
            assert_eq!(bits(&whole), want_bits, "margin {margin}");
        }
    }

    /// Row bands cut on the lattice, each predicted on its own (several windows or one, any
    /// memory budget), give the whole-scene prediction's pixels bit for bit; band edges off
    /// the lattice are refused.
    #[test]
    fn row_bands_are_the_whole_scene_row_for_row() {
        let ck = checkpoint();
        let mult = ck.config().size_multiple();
        let sc = scene(130, 10, 0.0);
        for margin in [0, 8] {
            let params = |tile, max_memory| TileParams {
                tile,
                max_memory,
                margin,
            };
            let whole = ck
                .predict(
                    &sc.coarse_lst,
                    &sc.covariates,
                    &params(None, 1 << 30),
                    |_, _| {},
                )
                .unwrap();
            // Bands 0..40, 40..88, 88..130 (multiples of the lattice, 4 here).
            assert_eq!(mult, 4);
            // A budget for windows of 9000 pixels (the halo is 32 here): several per band.
            let small = BASELINE_BYTES
                + 4 * Amun::parameter_count(ck.config()) as u64
                + (window_bytes_per_pixel(ck.config()) * 9000.0) as u64;
            let mut windows = 0;
            for (tile, budget) in [(None, 1 << 30), (Some(8), 0), (None, 0), (None, small)] {
                let mut got = Array2::from_elem((130, 130), f32::NAN);
                let mut seen = Array2::from_elem((130, 130), 0u8);
                for rows in [0..40, 40..88, 88..130] {
                    let r = rows.clone();
                    let p = params(tile, budget);
                    let plan = ck.predict_rows(
                        &sc.coarse_lst,
                        &sc.covariates,
                        &p,
                        rows,
                        |w, out| {
                            assert!(
                                w.row0 >= r.start && w.row1() <= r.end,
                                "{w:?} outside {r:?}"
                            );
                            got.slice_mut(s![w.row0..w.row1(), w.col0..w.col1()])
                                .assign(&out);
                            seen.slice_mut(s![w.row0..w.row1(), w.col0..w.col1()])
                                .mapv_inplace(|v| v + 1);
                            Ok(())
                        },
                        |_, _| {},
                    );
                    // A budget of 0 fits no window at all: refused like the whole scene.
                    if tile.is_none() && budget == 0 {
                        assert!(matches!(plan, Err(Error::MemoryBudget { .. })));
                        continue;
                    }
                    let plan = plan.unwrap().plan;
                    if budget == small {
                        windows += plan.tiles().0 * plan.tiles().1;
                    }
                }
                if tile.is_none() && budget == 0 {
                    continue;
                }
                assert!(seen.iter().all(|&n| n == 1), "every pixel once");
                let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, bits(&whole), "margin {margin}, tile {tile:?}");
            }
            assert!(windows > 3, "{windows} windows in three bands");
        }
        let e = InferencePlan::for_rows(ck.config(), 66, 66, 10..40, &TileParams::default());
        assert!(e.unwrap_err().to_string().contains("band edge 10"));
        let e = InferencePlan::for_rows(ck.config(), 66, 66, 40..70, &TileParams::default());
        assert!(e.is_err());
    }

    /// With autograd off the inference model gives the training model's output exactly.
    #[test]
    fn the_inference_model_is_the_model() {
        let ck = checkpoint();
        let x = Tensor::randn(0f32, 1.0, (1, 5, 16, 20), &Device::Cpu).unwrap();
        let a = ck.model().forward(&x).unwrap();
        let b = ck.inference_model().unwrap().forward(&x).unwrap();
        let v = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v(a), v(b));
    }

    #[test]
    fn nodata_passes_through_and_no_valid_output_is_an_error() {
        let ck = checkpoint();
        let sc = scene(64, 4, 0.0);
        let with_band = |name: &str, f: &dyn Fn(&mut Raster)| {
            let mut cov = Stack::new(sc.covariates.grid().clone());
            for (n, band) in sc.covariates.iter() {
                let mut b = band.clone();
                if n == name {
                    f(&mut b);
                }
                cov.push(n, b).unwrap();
            }
            cov
        };
        let cov = with_band("ndvi", &|b| b.data_mut()[(10, 20)] = f32::NAN);
        let tiles = TileParams {
            tile: Some(32),
            ..TileParams::default()
        };
        let out = ck.predict(&sc.coarse_lst, &cov, &tiles, |_, _| {}).unwrap();
        assert!(out.data()[(10, 20)].is_nan());
        assert_eq!(out.valid_count(), 64 * 64 - 1);
        assert_eq!(out.grid(), sc.covariates.grid());
        // An all-nodata covariate: an error naming it, not an all-NaN raster.
        let cov = with_band("height", &|b| b.data_mut().fill(f32::NAN));
        let e = ck
            .predict(&sc.coarse_lst, &cov, &tiles, |_, _| {})
            .unwrap_err();
        assert!(matches!(e, Error::NoValidOutput { .. }), "{e}");
        assert!(e.to_string().contains("covariate `height`"), "{e}");
        let empty = sc.coarse_lst.map(|_| f32::NAN);
        let e = ck
            .predict(&empty, &sc.covariates, &tiles, |_, _| {})
            .unwrap_err();
        assert!(e.to_string().contains("coarse LST"), "{e}");
        let mut missing = Stack::new(sc.covariates.grid().clone());
        missing
            .push("ndvi", sc.covariates.band("ndvi").unwrap().clone())
            .unwrap();
        let e = ck
            .predict(&sc.coarse_lst, &missing, &tiles, |_, _| {})
            .unwrap_err();
        assert!(matches!(e, Error::MissingCovariate { .. }), "{e}");
    }
}

#[cfg(test)]
mod amplitude_tests {
    use super::*;
    use crate::settings::TrainConfig;
    use crate::testutil::{scene, tiny_config};
    use crate::train::train;
    use crate::Solver;
    use amun_raster::Stack;

    /// The amplitude check on a case built to fail: a model trained briefly on one scene
    /// corrects that scene by less than its training residuals; given covariates twenty
    /// times their training range (inputs far outside what it learned), its correction is
    /// larger than anything it was trained on, and the check says so.
    #[test]
    fn corrections_beyond_the_training_residuals_are_flagged() {
        let sc = scene(64, 4, 0.0);
        let tc = TrainConfig {
            solver: Solver::ADAM,
            learning_rate: 3e-3,
            epochs: 3,
            batch_size: 8,
            patch: 16,
            stride: 8,
            split_block: 32,
            seed: 3,
            ..TrainConfig::paper()
        };
        let ck = train(&tiny_config(), &tc, std::slice::from_ref(&sc), |_| {}).unwrap();
        let tiles = TileParams::default();
        let (_, own) = ck
            .predict_checked(&sc.coarse_lst, &sc.covariates, &tiles, |_, _| {})
            .unwrap();
        let own = own.expect("a residual model has an amplitude");
        let t = ck.normalization().target;
        assert!((own.trained_rms_k - t.std.hypot(t.mean)).abs() < 1e-12);
        assert_eq!(own.pixels, 64 * 64);
        assert!(!own.exceeds_training(), "{own:?}");

        let mut wild = Stack::new(sc.covariates.grid().clone());
        for (name, band) in sc.covariates.iter() {
            let scaled = if name == "aspect" {
                band.clone()
            } else {
                band.map(|v| 20.0 * v)
            };
            wild = wild.with(name, scaled).unwrap();
        }
        let (_, far) = ck
            .predict_checked(&sc.coarse_lst, &wild, &tiles, |_, _| {})
            .unwrap();
        let far = far.unwrap();
        assert!(far.exceeds_training(), "{far:?} (own scene: {own:?})");
    }
}
