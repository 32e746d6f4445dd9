//! From rasters to network inputs: channel encoding, normalisation, patches, the spatially
//! blocked split, augmentation and batches.

use amun_raster::{Raster, Stack};
use candle_core::{Device, Tensor};
use ndarray::{s, Array2, Array3, ArrayView2};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{AmunConfig, AspectEncoding, Base, Supervision};
use crate::error::{Error, Result};

/// One training scene (e.g. one month): coarse LST, fine covariates and, under
/// [`Supervision::FineLabel`], a fine label LST.
///
/// The covariate stack's grid must refine the coarse LST grid by an integer factor
/// (`covariates.grid().refinement_of(coarse_lst.grid())`), and the label must lie on the
/// covariates' grid.
#[derive(Debug, Clone)]
pub struct TrainingScene {
    /// Coarse LST (kelvin).
    pub coarse_lst: Raster,
    /// Fine covariates, at least the bands named in [`AmunConfig::covariates`].
    pub covariates: Stack,
    /// Fine reference LST (kelvin), the training target under [`Supervision::FineLabel`];
    /// `None` where no fine truth exists ([`Supervision::CoarseResidual`] never reads it).
    pub label: Option<Raster>,
    /// Fit a prior base's coefficients on the label instead of the coarse LST
    /// ([`amun_prior::PriorValidParams::fit_on`]). For a pair one scale up (the scale-up
    /// scheme): its label is the coarse field on whose cells the prior is fitted at the
    /// target scale, while its own coarse input may hold too few cells for the prior's
    /// terms; so the network learns to correct the prior it will correct when applied.
    /// `false` for pairs with a fine truth (the label is not known when the model is used).
    pub fit_prior_on_label: bool,
}

/// What to do with patches that contain nodata.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NodataPolicy {
    /// Drop every patch with a missing pixel in any input or the label (the paper).
    Drop,
    /// Keep patches with at least `min_valid` (0–1) valid pixels; missing inputs are set to
    /// the training mean (0 after normalisation) and missing pixels left out of the loss.
    /// Better at coasts and cloud edges.
    Mask {
        /// Minimum fraction of valid pixels for a patch to be kept.
        min_valid: f64,
    },
}

/// Mean and standard deviation of one channel over the training patches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Mean of the valid values.
    pub mean: f64,
    /// Population standard deviation (1 if the channel is constant).
    pub std: f64,
}

impl ChannelStats {
    pub(crate) fn norm(&self, v: f32) -> f32 {
        ((f64::from(v) - self.mean) / self.std) as f32
    }

    pub(crate) fn denorm(&self, v: f32) -> f32 {
        (f64::from(v) * self.std + self.mean) as f32
    }
}

/// Normalisation of every channel, from the training patches only; travels in the
/// checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// The base channel: bilinear coarse LST or the prior (kelvin).
    pub lst: ChannelStats,
    /// The auxiliary channels, in [`AmunConfig::aux_channels`] order.
    pub aux: Vec<ChannelStats>,
    /// The target: the residual `label − base` with `residual: true`, else the label.
    pub target: ChannelStats,
}

/// Accumulates mean and variance in f64 (Welford would be overkill: values are bounded).
#[derive(Default, Clone, Copy)]
struct Moments {
    n: f64,
    s: f64,
    ss: f64,
}

impl Moments {
    fn add(&mut self, v: f32) {
        let v = f64::from(v);
        self.n += 1.0;
        self.s += v;
        self.ss += v * v;
    }

    fn stats(&self) -> ChannelStats {
        if self.n < 1.0 {
            return ChannelStats {
                mean: 0.0,
                std: 1.0,
            };
        }
        let mean = self.s / self.n;
        let var = (self.ss / self.n - mean * mean).max(0.0);
        let std = var.sqrt();
        ChannelStats {
            mean,
            std: if std > 1e-6 * mean.abs().max(1.0) {
                std
            } else {
                1.0
            },
        }
    }
}

/// The scene's channels on the fine grid before normalisation: the base field, then the
/// encoded covariates. `NaN` marks missing pixels.
pub(crate) struct EncodedInputs {
    pub base: Array2<f32>,
    pub aux: Vec<Array2<f32>>,
    /// Whether the base is fed to the network ([`AmunConfig::base_is_input`]); it is the
    /// residual's reference either way.
    pub base_visible: bool,
}

/// Computes the base field on the covariates' grid ([`AmunConfig::base`]: the coarse LST
/// resampled bilinearly, or a prior fitted on the scene — on `fit_lst` when given, see
/// [`TrainingScene::fit_prior_on_label`]) and encodes the covariates
/// in the configuration's order (aspect → northness/eastness by default).
pub(crate) fn encode_inputs(
    cfg: &AmunConfig,
    fit_lst: Option<&Raster>,
    coarse_lst: &Raster,
    covariates: &Stack,
) -> Result<EncodedInputs> {
    let base = cfg
        .base
        .field_fitted_on(fit_lst, coarse_lst, covariates)?
        .0
        .into_data();
    Ok(EncodedInputs {
        base,
        aux: encode_covariates(cfg, covariates)?,
        base_visible: cfg.base_is_input(),
    })
}

/// The inputs of a scene under [`Supervision::CoarseResidual`] and its cell targets: the
/// prior fitted on the scene is the base, and what its linear model leaves of each coarse
/// cell ([`amun_prior::Prior::coarse_residual`], `NaN` on cells the fit did not use) is
/// what the block means of the correction learn.
fn encode_with_coarse_residual(
    cfg: &AmunConfig,
    coarse_lst: &Raster,
    covariates: &Stack,
) -> Result<(EncodedInputs, Array2<f32>)> {
    let Base::Prior(params) = &cfg.base else {
        return Err(Error::config(
            "supervision",
            "coarse_residual needs a prior base",
        ));
    };
    let prior = params.fit(coarse_lst, covariates)?;
    let enc = EncodedInputs {
        base: prior.field(covariates)?.into_data(),
        aux: encode_covariates(cfg, covariates)?,
        base_visible: cfg.base_is_input(),
    };
    Ok((enc, prior.coarse_residual().data().to_owned()))
}

/// The covariates in the configuration's order, aspect encoded as configured.
fn encode_covariates(cfg: &AmunConfig, covariates: &Stack) -> Result<Vec<Array2<f32>>> {
    let mut aux = Vec::with_capacity(cfg.n_aux());
    for (name, maps) in cfg.channel_maps() {
        let band = covariates
            .get(&name)
            .ok_or_else(|| Error::MissingCovariate {
                name: name.clone(),
                available: covariates.names().join(", "),
            })?
            .data();
        aux.extend(maps.into_iter().map(|m| band.mapv(|v| m.apply(v))));
    }
    Ok(aux)
}

/// Where the aspect lives among the input channels (index 0 is LST).
#[derive(Debug, Clone, Copy)]
pub(crate) enum AspectChannels {
    None,
    CosSin { north: usize, east: usize },
    Degrees(usize),
}

impl AspectChannels {
    pub(crate) fn of(cfg: &AmunConfig) -> Self {
        let maps = cfg.channel_maps();
        let Some(i) = maps.iter().position(|(n, _)| *n == cfg.aspect_band) else {
            return AspectChannels::None;
        };
        // Channel index of the aspect band's first channel: 1 (the base) plus the channels
        // of the bands before it (land cover may take several).
        let first = 1 + maps[..i].iter().map(|(_, m)| m.len()).sum::<usize>();
        match cfg.aspect_encoding {
            AspectEncoding::CosSin => AspectChannels::CosSin {
                north: first,
                east: first + 1,
            },
            AspectEncoding::Degrees => AspectChannels::Degrees(first),
        }
    }
}

/// One of the eight symmetries of the square: transpose first, then flips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Dihedral {
    pub transpose: bool,
    pub flip_v: bool,
    pub flip_h: bool,
}

impl Dihedral {
    pub(crate) fn from_index(i: u8) -> Self {
        Self {
            transpose: i & 4 != 0,
            flip_v: i & 2 != 0,
            flip_h: i & 1 != 0,
        }
    }

    fn is_identity(&self) -> bool {
        !(self.transpose || self.flip_v || self.flip_h)
    }

    /// Applies the symmetry to an array (any shape; transposing swaps the axes).
    pub(crate) fn apply(&self, a: ArrayView2<f32>) -> Array2<f32> {
        let mut v = a;
        if self.transpose {
            v = v.reversed_axes();
        }
        if self.flip_v {
            v.invert_axis(ndarray::Axis(0));
        }
        if self.flip_h {
            v.invert_axis(ndarray::Axis(1));
        }
        v.to_owned()
    }

    /// Applies the symmetry to a direction vector (eastness E, northness N). Image rows run
    /// south, so an image displacement is `(E, −N)`; transposing swaps the image axes.
    pub(crate) fn apply_vector(&self, e: f64, n: f64) -> (f64, f64) {
        let (mut e, mut n) = if self.transpose { (-n, -e) } else { (e, n) };
        if self.flip_h {
            e = -e;
        }
        if self.flip_v {
            n = -n;
        }
        (e, n)
    }

    /// Row/column offsets and counts of a lattice of `k`-pixel cells inside a `p`-pixel
    /// square after the symmetry: `(o_r, n_r, o_c, n_c)`.
    fn apply_cells(
        &self,
        p: usize,
        k: usize,
        cells: (usize, usize, usize, usize),
    ) -> (usize, usize, usize, usize) {
        let (mut or, mut nr, mut oc, mut nc) = cells;
        if self.transpose {
            (or, nr, oc, nc) = (oc, nc, or, nr);
        }
        if self.flip_v {
            or = p - or - nr * k;
        }
        if self.flip_h {
            oc = p - oc - nc * k;
        }
        (or, nr, oc, nc)
    }
}

/// A scene ready for training: normalised inputs (missing → 0), target, mask and the
/// degradation targets of its coarse cells.
#[derive(Debug)]
pub(crate) struct PreparedScene {
    /// `[1 + n_aux, H, W]`, normalised, 0 where missing.
    pub inputs: Array3<f32>,
    /// `[H, W]` normalised target, 0 where missing.
    pub target: Array2<f32>,
    /// `[H, W]` 1 where every input and the label are valid.
    pub mask: Array2<f32>,
    /// Refinement factor coarse → fine.
    pub k: usize,
    /// `[H/k, W/k]` normalised target of the mean network output over each coarse cell
    /// (degradation consistency); `NaN` where the cell is not fully valid.
    pub cell_target: Array2<f32>,
}

/// A patch: scene index and top-left pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PatchRef {
    pub scene: usize,
    pub row: usize,
    pub col: usize,
}

/// Summed-area table of a 0/1 mask, `(H+1)×(W+1)`.
fn integral(mask: &Array2<bool>) -> Array2<u32> {
    let (h, w) = mask.dim();
    let mut t = Array2::<u32>::zeros((h + 1, w + 1));
    for r in 0..h {
        let mut row = 0u32;
        for c in 0..w {
            row += u32::from(mask[(r, c)]);
            t[(r + 1, c + 1)] = t[(r, c + 1)] + row;
        }
    }
    t
}

fn window_sum(t: &Array2<u32>, r: usize, c: usize, p: usize) -> u32 {
    t[(r + p, c + p)] + t[(r, c)] - t[(r, c + p)] - t[(r + p, c)]
}

/// Top-left positions along one axis: every `stride`, plus the last one so the edge is
/// covered.
fn positions(len: usize, p: usize, stride: usize) -> Vec<usize> {
    if len < p {
        return Vec::new();
    }
    let mut v: Vec<usize> = (0..=len - p).step_by(stride).collect();
    if v.last() != Some(&(len - p)) {
        v.push(len - p);
    }
    v
}

/// Settings of patch extraction and the split (a subset of the training configuration).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PatchSettings {
    pub patch: usize,
    pub stride: usize,
    pub nodata: NodataPolicy,
    pub val_fraction: f64,
    pub split_block: usize,
    /// Scenes held out whole for validation (validation in time as well as in space).
    pub val_scenes: usize,
    pub seed: u64,
}

/// Which of `n` scenes are held out whole: `count` of them, drawn by the seed (none when
/// `count` is 0; never all of them).
pub(crate) fn held_out_scenes(n: usize, count: usize, seed: u64) -> Vec<bool> {
    let mut ids: Vec<usize> = (0..n).collect();
    ids.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x7e5c_e11e));
    let mut out = vec![false; n];
    for &i in ids.iter().take(count.min(n.saturating_sub(1))) {
        out[i] = true;
    }
    out
}

/// The data set: prepared scenes, train and validation patches, normalisation.
#[derive(Debug)]
pub(crate) struct Dataset {
    pub scenes: Vec<PreparedScene>,
    pub train: Vec<PatchRef>,
    pub val: Vec<PatchRef>,
    pub norm: Normalization,
}

/// Which split blocks are validation blocks, for a grid of `h × w` pixels: a seeded
/// shuffle of the blocks that can hold a `p × p` patch (edge blocks may be cut short), the
/// first `round(fraction · n)` of them. The same grid size and seed give the same blocks, so
/// one location is never in both sets across scenes.
fn val_blocks(
    h: usize,
    w: usize,
    block: usize,
    p: usize,
    fraction: f64,
    seed: u64,
) -> Array2<bool> {
    let (bh, bw) = (h.div_ceil(block), w.div_ceil(block));
    let mut ids: Vec<usize> = (0..bh * bw).collect();
    let grid_seed = seed ^ ((h as u64) << 32) ^ (w as u64) ^ 0x5eed_b10c;
    ids.shuffle(&mut ChaCha8Rng::seed_from_u64(grid_seed));
    let fits = |id: usize| {
        let (r, c) = (id / bw, id % bw);
        (h - r * block).min(block) >= p && (w - c * block).min(block) >= p
    };
    ids.retain(|&id| fits(id));
    let n = ids.len();
    let mut n_val = (fraction * n as f64).round() as usize;
    if fraction > 0.0 && n >= 2 {
        n_val = n_val.clamp(1, n - 1);
    }
    let mut out = Array2::from_elem((bh, bw), false);
    for &id in &ids[..n_val.min(n)] {
        out[(id / bw, id % bw)] = true;
    }
    out
}

/// Builds the data set: encodes every scene, extracts patches under the nodata policy,
/// splits them by spatial blocks, computes the normalisation from the training patches
/// (or takes `norm` when resuming) and normalises.
pub(crate) fn build_dataset(
    cfg: &AmunConfig,
    settings: &PatchSettings,
    scenes: &[TrainingScene],
    norm: Option<&Normalization>,
) -> Result<Dataset> {
    let p = settings.patch;
    let mut raw = Vec::with_capacity(scenes.len());
    let mut train = Vec::new();
    let mut val = Vec::new();
    let whole = held_out_scenes(scenes.len(), settings.val_scenes, settings.seed);
    for (si, sc) in scenes.iter().enumerate() {
        let fine = sc.covariates.grid();
        let k = fine.refinement_of(sc.coarse_lst.grid())?;
        let (enc, target) = match cfg.supervision {
            Supervision::FineLabel => {
                let label = sc.label.as_ref().ok_or_else(|| {
                    Error::config(
                        "supervision",
                        format!(
                            "training scene {si} has no fine label; without fine truth train with `coarse_residual` supervision or one scale up"
                        ),
                    )
                })?;
                fine.check_same(label.grid())?;
                let fit = sc.fit_prior_on_label.then_some(label);
                let enc = encode_inputs(cfg, fit, &sc.coarse_lst, &sc.covariates)?;
                (enc, SceneTarget::Fine(label.data().to_owned()))
            }
            Supervision::CoarseResidual => {
                let (enc, cells) =
                    encode_with_coarse_residual(cfg, &sc.coarse_lst, &sc.covariates)?;
                (enc, SceneTarget::Cells(cells))
            }
        };
        let (h, w) = fine.shape();
        let valid = Array2::from_shape_fn((h, w), |ix| {
            target.fine_valid(ix)
                && enc.base[ix].is_finite()
                && enc.aux.iter().all(|a| a[ix].is_finite())
        });
        let table = integral(&valid);
        let need = match settings.nodata {
            NodataPolicy::Drop => (p * p) as f64,
            NodataPolicy::Mask { min_valid } => (min_valid * (p * p) as f64).max(1.0),
        };
        let vb = val_blocks(
            h,
            w,
            settings.split_block,
            p,
            settings.val_fraction,
            settings.seed,
        );
        let blk = settings.split_block;
        for &r in &positions(h, p, settings.stride) {
            for &c in &positions(w, p, settings.stride) {
                if f64::from(window_sum(&table, r, c, p)) < need {
                    continue;
                }
                let cover = vb.slice(s![r / blk..=(r + p - 1) / blk, c / blk..=(c + p - 1) / blk]);
                let pr = PatchRef {
                    scene: si,
                    row: r,
                    col: c,
                };
                if whole[si] || cover.iter().all(|&v| v) {
                    val.push(pr);
                } else if cover.iter().all(|&v| !v) {
                    train.push(pr);
                }
                // Patches straddling both sets are dropped: no pixel is in both.
            }
        }
        raw.push(RawScene {
            enc,
            valid,
            k,
            target,
        });
    }
    if train.is_empty() {
        return Err(Error::NoPatches {
            split: "training",
            detail: format!(
                "{} scene(s), patch {p}, stride {}, nodata policy {:?}, split block {}",
                scenes.len(),
                settings.stride,
                settings.nodata,
                settings.split_block
            ),
        });
    }
    if val.is_empty() && settings.val_fraction > 0.0 {
        return Err(Error::NoPatches {
            split: "validation",
            detail: format!(
                "no split block of {} px is all validation; use a smaller `split_block` or larger scenes",
                settings.split_block
            ),
        });
    }

    let norm = match norm {
        Some(n) => n.clone(),
        None => compute_norm(cfg, &raw, &train, p),
    };
    let prepared = raw
        .into_iter()
        .zip(scenes)
        .map(|(rs, sc)| prepare_scene(cfg, &norm, rs, sc))
        .collect();
    Ok(Dataset {
        scenes: prepared,
        train,
        val,
        norm,
    })
}

/// What one scene is trained against.
enum SceneTarget {
    /// A fine label per pixel ([`Supervision::FineLabel`]).
    Fine(Array2<f32>),
    /// The prior's coarse residual per coarse cell ([`Supervision::CoarseResidual`]).
    Cells(Array2<f32>),
}

impl SceneTarget {
    /// Whether the fine pixel has a target (every pixel does under the cell targets: the
    /// cells decide).
    fn fine_valid(&self, ix: (usize, usize)) -> bool {
        match self {
            SceneTarget::Fine(label) => label[ix].is_finite(),
            SceneTarget::Cells(_) => true,
        }
    }
}

/// A scene encoded, with its validity mask, refinement factor and target.
struct RawScene {
    enc: EncodedInputs,
    valid: Array2<bool>,
    k: usize,
    target: SceneTarget,
}

/// The coarse cells whose `k × k` block is wholly inside `covered` and valid.
fn whole_cells(covered: &Array2<bool>, valid: &Array2<bool>, k: usize) -> Vec<(usize, usize)> {
    let (h, w) = covered.dim();
    (0..h / k)
        .flat_map(|r| (0..w / k).map(move |c| (r, c)))
        .filter(|&(r, c)| {
            let win = s![r * k..(r + 1) * k, c * k..(c + 1) * k];
            ndarray::Zip::from(covered.slice(win))
                .and(valid.slice(win))
                .all(|&a, &b| a && b)
        })
        .collect()
}

/// Statistics over the valid pixels covered by training patches (each pixel once); the
/// target's over the labelled pixels, or over the coarse cells the training patches wholly
/// cover.
fn compute_norm(cfg: &AmunConfig, raw: &[RawScene], train: &[PatchRef], p: usize) -> Normalization {
    let n_aux = cfg.n_aux();
    let mut m_lst = Moments::default();
    let mut m_aux = vec![Moments::default(); n_aux];
    let mut m_t = Moments::default();
    for (si, rs) in raw.iter().enumerate() {
        let (enc, valid) = (&rs.enc, &rs.valid);
        let mut covered = Array2::from_elem(valid.dim(), false);
        for pr in train.iter().filter(|pr| pr.scene == si) {
            covered
                .slice_mut(s![pr.row..pr.row + p, pr.col..pr.col + p])
                .fill(true);
        }
        for ((ix, &cov), &ok) in covered.indexed_iter().zip(valid.iter()) {
            if !(cov && ok) {
                continue;
            }
            m_lst.add(enc.base[ix]);
            for (m, a) in m_aux.iter_mut().zip(&enc.aux) {
                m.add(a[ix]);
            }
            if let SceneTarget::Fine(label) = &rs.target {
                m_t.add(if cfg.residual {
                    label[ix] - enc.base[ix]
                } else {
                    label[ix]
                });
            }
        }
        if let SceneTarget::Cells(cells) = &rs.target {
            for ix in whole_cells(&covered, valid, rs.k) {
                if cells[ix].is_finite() {
                    m_t.add(cells[ix]);
                }
            }
        }
    }
    Normalization {
        lst: m_lst.stats(),
        aux: m_aux.iter().map(Moments::stats).collect(),
        target: m_t.stats(),
    }
}

/// Normalised network inputs `[1 + n_aux, H, W]` (missing → 0) and the validity mask.
pub(crate) fn normalise_inputs(
    enc: &EncodedInputs,
    norm: &Normalization,
) -> (Array3<f32>, Array2<bool>) {
    let (h, w) = enc.base.dim();
    let n = 1 + enc.aux.len();
    let mut x = Array3::<f32>::zeros((n, h, w));
    let mut valid = Array2::from_elem((h, w), true);
    let chans = std::iter::once((&enc.base, &norm.lst)).chain(enc.aux.iter().zip(&norm.aux));
    for (c, (a, st)) in chans.enumerate() {
        let shown = c > 0 || enc.base_visible;
        let mut dst = x.slice_mut(s![c, .., ..]);
        for ((d, &v), ok) in dst.iter_mut().zip(a.iter()).zip(valid.iter_mut()) {
            if !v.is_finite() {
                *ok = false;
            } else if shown {
                *d = st.norm(v);
            }
        }
    }
    (x, valid)
}

fn prepare_scene(
    cfg: &AmunConfig,
    norm: &Normalization,
    rs: RawScene,
    sc: &TrainingScene,
) -> PreparedScene {
    let RawScene {
        enc,
        valid,
        k,
        target,
    } = rs;
    let (inputs, _) = normalise_inputs(&enc, norm);
    let label = match target {
        SceneTarget::Fine(label) => label,
        SceneTarget::Cells(cells) => return cell_scene(norm, inputs, &valid, k, &cells),
    };
    let target = Array2::from_shape_fn(valid.dim(), |ix| {
        if !valid[ix] {
            return 0.0;
        }
        let t = if cfg.residual {
            label[ix] - enc.base[ix]
        } else {
            label[ix]
        };
        norm.target.norm(t)
    });
    let mask = valid.mapv(|v| if v { 1.0 } else { 0.0 });
    let coarse = sc.coarse_lst.data();
    let cell_target = Array2::from_shape_fn(coarse.dim(), |(cr, cc)| {
        let cv = coarse[(cr, cc)];
        let win = s![cr * k..(cr + 1) * k, cc * k..(cc + 1) * k];
        if !cv.is_finite() || valid.slice(win).iter().any(|v| !v) {
            return f32::NAN;
        }
        if cfg.residual {
            // mean(base + σ·out + μ) = coarse  ⇔  mean(out) = (coarse − mean(base) − μ)/σ
            let mb = enc
                .base
                .slice(win)
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>()
                / (k * k) as f64;
            ((f64::from(cv) - mb - norm.target.mean) / norm.target.std) as f32
        } else {
            norm.target.norm(cv)
        }
    });
    PreparedScene {
        inputs,
        target,
        mask,
        k,
        cell_target,
    }
}

/// A scene trained on its coarse cells alone: no pixel target (mask 0) and, on each cell
/// whose block is wholly valid, the normalised coarse residual that the block mean of the
/// network's output learns (`mean(σ·out + μ) = e  ⇔  mean(out) = (e − μ)/σ`).
fn cell_scene(
    norm: &Normalization,
    inputs: Array3<f32>,
    valid: &Array2<bool>,
    k: usize,
    cells: &Array2<f32>,
) -> PreparedScene {
    let cell_target = Array2::from_shape_fn(cells.dim(), |(cr, cc)| {
        let e = cells[(cr, cc)];
        let win = s![cr * k..(cr + 1) * k, cc * k..(cc + 1) * k];
        if !e.is_finite() || valid.slice(win).iter().any(|v| !v) {
            return f32::NAN;
        }
        norm.target.norm(e)
    });
    PreparedScene {
        inputs,
        target: Array2::zeros(valid.dim()),
        mask: Array2::zeros(valid.dim()),
        k,
        cell_target,
    }
}

/// The degradation-consistency targets of one patch: cell lattice placement and values.
pub(crate) struct CellTargets {
    /// Row offset, rows of cells, column offset, columns of cells.
    pub lattice: (usize, usize, usize, usize),
    pub k: usize,
    /// `[n_r, n_c]` targets, `NaN` for cells left out.
    pub values: Array2<f32>,
}

/// A batch on the device.
pub(crate) struct Batch {
    /// `[B, 1 + n_aux, P, P]`.
    pub x: Tensor,
    /// `[B, 1, P, P]`.
    pub y: Tensor,
    /// `[B, 1, P, P]`, 1 where valid.
    pub m: Tensor,
    /// Number of valid pixels.
    pub valid: f64,
    /// Per-sample degradation targets (only built when asked for).
    pub cells: Vec<CellTargets>,
}

/// Assembles a batch; with `rng`, each sample gets a random symmetry of the square, and the
/// aspect channels are transformed with it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble(
    ds: &Dataset,
    patches: &[PatchRef],
    p: usize,
    aspect: AspectChannels,
    rng: Option<&mut ChaCha8Rng>,
    with_cells: bool,
    device: &Device,
) -> Result<Batch> {
    let b = patches.len();
    let n_ch = ds.scenes.first().map_or(0, |s| s.inputs.dim().0);
    let mut xs: Vec<f32> = Vec::with_capacity(b * n_ch * p * p);
    let mut ys: Vec<f32> = Vec::with_capacity(b * p * p);
    let mut ms: Vec<f32> = Vec::with_capacity(b * p * p);
    let mut cells = Vec::new();
    let mut rng = rng;
    for pr in patches {
        let sc = &ds.scenes[pr.scene];
        let d = match rng.as_deref_mut() {
            Some(r) => Dihedral::from_index(r.random_range(0..8u8)),
            None => Dihedral::default(),
        };
        let win = |a: &Array2<f32>| d.apply(a.slice(s![pr.row..pr.row + p, pr.col..pr.col + p]));
        let mut chans: Vec<Array2<f32>> = (0..n_ch)
            .map(|c| {
                d.apply(
                    sc.inputs
                        .slice(s![c, pr.row..pr.row + p, pr.col..pr.col + p]),
                )
            })
            .collect();
        if !d.is_identity() {
            transform_aspect(&mut chans, aspect, d, &ds.norm);
        }
        for ch in &chans {
            xs.extend(ch.iter());
        }
        ys.extend(win(&sc.target).iter());
        ms.extend(win(&sc.mask).iter());
        if with_cells {
            let k = sc.k;
            let (cr0, cr1) = (pr.row.div_ceil(k), (pr.row + p) / k);
            let (cc0, cc1) = (pr.col.div_ceil(k), (pr.col + p) / k);
            let (nr, nc) = (cr1.saturating_sub(cr0), cc1.saturating_sub(cc0));
            let lattice = (cr0 * k - pr.row, nr, cc0 * k - pr.col, nc);
            let values = if nr > 0 && nc > 0 {
                d.apply(sc.cell_target.slice(s![cr0..cr1, cc0..cc1]))
            } else {
                Array2::zeros((0, 0))
            };
            cells.push(CellTargets {
                lattice: d.apply_cells(p, k, lattice),
                k,
                values,
            });
        }
    }
    let valid = ms.iter().map(|&v| f64::from(v)).sum();
    Ok(Batch {
        x: Tensor::from_vec(xs, (b, n_ch, p, p), device)?,
        y: Tensor::from_vec(ys, (b, 1, p, p), device)?,
        m: Tensor::from_vec(ms, (b, 1, p, p), device)?,
        valid,
        cells,
    })
}

/// Rotates/reflects the aspect direction consistently with the image symmetry.
fn transform_aspect(
    chans: &mut [Array2<f32>],
    aspect: AspectChannels,
    d: Dihedral,
    norm: &Normalization,
) {
    match aspect {
        AspectChannels::None => {}
        AspectChannels::CosSin { north, east } => {
            let (sn, se) = (norm.aux[north - 1], norm.aux[east - 1]);
            let (a, rest) = chans.split_at_mut(east);
            let (nch, ech) = (&mut a[north], &mut rest[0]);
            for (nv, ev) in nch.iter_mut().zip(ech.iter_mut()) {
                let (e, n) = d.apply_vector(f64::from(se.denorm(*ev)), f64::from(sn.denorm(*nv)));
                *nv = sn.norm(n as f32);
                *ev = se.norm(e as f32);
            }
        }
        AspectChannels::Degrees(i) => {
            let st = norm.aux[i - 1];
            for v in chans[i].iter_mut() {
                let a = f64::from(st.denorm(*v)).to_radians();
                let (e, n) = d.apply_vector(a.sin(), a.cos());
                *v = st.norm(e.atan2(n).to_degrees().rem_euclid(360.0) as f32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::Grid;

    fn scene(seed: u64, k: usize, cw: usize, ch: usize) -> TrainingScene {
        let coarse_grid = Grid::geographic(0.0, 10.0, 0.1 * k as f64, cw, ch).unwrap();
        let fine = coarse_grid.refine(k).unwrap();
        let s = seed as f32;
        let ndvi = Raster::from_fn(fine.clone(), |(r, c)| ((r * 7 + c * 3) % 11) as f32 / 11.0);
        let aspect = Raster::from_fn(fine.clone(), |(r, c)| ((r * 13 + c * 29) % 360) as f32);
        let label = Raster::from_fn(fine.clone(), |(r, c)| {
            290.0 + s + 0.1 * r as f32 - 0.05 * c as f32
        });
        let coarse_lst = label.block_mean(k, 1.0).unwrap();
        let covariates = Stack::new(fine)
            .with("ndvi", ndvi)
            .unwrap()
            .with("aspect", aspect)
            .unwrap();
        TrainingScene {
            coarse_lst,
            covariates,
            label: Some(label),
            fit_prior_on_label: false,
        }
    }

    fn cfg() -> AmunConfig {
        AmunConfig::small().with_covariates(&["ndvi", "aspect"])
    }

    fn settings() -> PatchSettings {
        PatchSettings {
            patch: 16,
            stride: 8,
            nodata: NodataPolicy::Drop,
            val_fraction: 0.15,
            split_block: 32,
            val_scenes: 0,
            seed: 3,
        }
    }

    #[test]
    fn dihedral_moves_pixels_and_directions_together() {
        // A 3×3 array with a marker east of the centre, and the direction "east" (E=1, N=0).
        let mut a = Array2::<f32>::zeros((3, 3));
        a[(1, 2)] = 1.0;
        for i in 0..8u8 {
            let d = Dihedral::from_index(i);
            let b = d.apply(a.view());
            let (e, n) = d.apply_vector(1.0, 0.0);
            // The marker must sit at centre + (E, −N) in (col, row).
            let (r, c) = b.indexed_iter().find(|(_, &v)| v > 0.5).unwrap().0;
            assert_eq!(
                (c as f64 - 1.0, r as f64 - 1.0),
                (e, -n),
                "symmetry {i}: {d:?}"
            );
        }
        // Transpose of a non-square array swaps its shape.
        let d = Dihedral::from_index(4);
        assert_eq!(d.apply(Array2::<f32>::zeros((2, 3)).view()).dim(), (3, 2));
    }

    #[test]
    fn cell_lattice_follows_the_symmetry() {
        // Patch 16, k 5, cells at rows 2..12 (2 cells), cols 0..15 (3 cells).
        let p = 16;
        let mut m = Array2::<f32>::zeros((p, p));
        m.slice_mut(s![2..12, 0..15]).fill(1.0);
        for i in 0..8u8 {
            let d = Dihedral::from_index(i);
            let t = d.apply(m.view());
            let (or, nr, oc, nc) = d.apply_cells(p, 5, (2, 2, 0, 3));
            let want = t.slice(s![or..or + nr * 5, oc..oc + nc * 5]).sum();
            assert!((want - 150.0).abs() < 1e-6, "symmetry {i}");
            assert!((t.sum() - 150.0).abs() < 1e-6);
        }
    }

    #[test]
    fn split_is_spatially_blocked_and_deterministic() {
        let scenes = vec![scene(0, 4, 24, 24), scene(1, 4, 24, 24)];
        let ds = build_dataset(&cfg(), &settings(), &scenes, None).unwrap();
        assert!(!ds.train.is_empty() && !ds.val.is_empty());
        // No training pixel in any scene overlaps a validation pixel of any scene.
        let p = 16;
        let mut tr = Array2::from_elem((96, 96), false);
        for pr in &ds.train {
            tr.slice_mut(s![pr.row..pr.row + p, pr.col..pr.col + p])
                .fill(true);
        }
        for pr in &ds.val {
            assert!(!tr
                .slice(s![pr.row..pr.row + p, pr.col..pr.col + p])
                .iter()
                .any(|&v| v));
        }
        let frac = ds.val.len() as f64 / (ds.val.len() + ds.train.len()) as f64;
        assert!((0.03..0.4).contains(&frac), "validation fraction {frac}");
        let again = build_dataset(&cfg(), &settings(), &scenes, None).unwrap();
        assert_eq!(again.train, ds.train);
        assert_eq!(again.val, ds.val);
        // Other seeds draw other validation blocks.
        let differs = (4..10).any(|seed| {
            let o = build_dataset(&cfg(), &PatchSettings { seed, ..settings() }, &scenes, None)
                .unwrap();
            o.val != ds.val
        });
        assert!(differs);
    }

    #[test]
    fn normalisation_comes_from_training_pixels() {
        let scenes = vec![scene(0, 4, 24, 24)];
        let ds = build_dataset(&cfg(), &settings(), &scenes, None).unwrap();
        // Recompute the NDVI mean over the union of training patches by hand.
        let ndvi = scenes[0].covariates.band("ndvi").unwrap().data();
        let mut cov = Array2::from_elem((96, 96), false);
        for pr in &ds.train {
            cov.slice_mut(s![pr.row..pr.row + 16, pr.col..pr.col + 16])
                .fill(true);
        }
        let (n, sum) = cov
            .indexed_iter()
            .filter(|(_, &c)| c)
            .fold((0.0, 0.0), |(n, s), (ix, _)| {
                (n + 1.0, s + f64::from(ndvi[ix]))
            });
        assert!((ds.norm.aux[0].mean - sum / n).abs() < 1e-9);
        // The target is the residual over the (bilinear) base: its mean is near zero here (a plane).
        assert!(ds.norm.target.mean.abs() < 0.05, "{:?}", ds.norm.target);
        // Normalised ndvi of the training pixels has mean 0.
        let x = &ds.scenes[0].inputs;
        let m: f64 = cov
            .indexed_iter()
            .filter(|(_, &c)| c)
            .map(|((r, c), _)| f64::from(x[(1, r, c)]))
            .sum::<f64>()
            / n;
        assert!(m.abs() < 1e-4);
    }

    #[test]
    fn nodata_policies() {
        let mut sc = scene(0, 4, 24, 24);
        // A missing label pixel inside the top-left corner.
        sc.label.as_mut().unwrap().data_mut()[(3, 3)] = f32::NAN;
        let drop = build_dataset(&cfg(), &settings(), std::slice::from_ref(&sc), None).unwrap();
        let all: Vec<_> = drop.train.iter().chain(&drop.val).collect();
        assert!(!all.iter().any(|pr| pr.row <= 3 && pr.col <= 3));
        let mask = PatchSettings {
            nodata: NodataPolicy::Mask { min_valid: 0.5 },
            ..settings()
        };
        let kept = build_dataset(&cfg(), &mask, std::slice::from_ref(&sc), None).unwrap();
        let n_kept = kept.train.len() + kept.val.len();
        assert!(n_kept > all.len());
        assert!((kept.scenes[0].mask[(3, 3)]).abs() < 1e-9);
        assert!(kept.scenes[0].cell_target[(0, 0)].is_nan());
        assert!(kept.scenes[0].cell_target[(1, 1)].is_finite());
    }

    #[test]
    fn augmented_aspect_stays_consistent_with_the_image() {
        let sc = scene(0, 4, 24, 24);
        let ds = build_dataset(&cfg(), &settings(), std::slice::from_ref(&sc), None).unwrap();
        let pr = [ds.train[0]];
        let dev = Device::Cpu;
        let aspect = AspectChannels::of(&cfg());
        let base = assemble(&ds, &pr, 16, aspect, None, false, &dev).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..6 {
            let aug = assemble(&ds, &pr, 16, aspect, Some(&mut rng), false, &dev).unwrap();
            // Norm of (E, N) is 1 per pixel before and after: rotations keep unit vectors.
            let x: Vec<Vec<Vec<f32>>> = aug.x.squeeze(0).unwrap().to_vec3().unwrap();
            let (sn, se) = (ds.norm.aux[1], ds.norm.aux[2]);
            for (nr, er) in x[2].iter().zip(&x[3]) {
                for (&nv, &ev) in nr.iter().zip(er) {
                    let (n, e) = (sn.denorm(nv), se.denorm(ev));
                    assert!((n * n + e * e - 1.0).abs() < 1e-3);
                }
            }
            // The LST channel and the target are moved, not changed: same sums.
            let lst_sum = |x: &Tensor| {
                x.narrow(1, 0, 1)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            let (s0, s1) = (lst_sum(&base.x), lst_sum(&aug.x));
            assert!((s0 - s1).abs() < 1e-3);
        }
    }

    #[test]
    fn missing_covariate_is_named() {
        let sc = scene(0, 4, 24, 24);
        let cfg = AmunConfig::small().with_covariates(&["ndvi", "elevation"]);
        let e = build_dataset(&cfg, &settings(), &[sc], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("elevation") && e.contains("ndvi, aspect"), "{e}");
    }

    /// A pair one scale up whose input holds 3 × 3 cells, too few for the covariate prior:
    /// fitted there the base falls back and leaves the label's covariate signal to learn;
    /// fitted on the label (as the target scale's prior is fitted on its coarse cells) it
    /// explains the exactly linear label, and the training targets nearly vanish.
    #[test]
    fn a_pair_one_scale_up_fits_its_prior_base_on_the_label() {
        use amun_prior::PriorParams;
        let mut sc = crate::testutil::scene(48, 16, 0.0);
        assert_eq!(sc.coarse_lst.grid().shape(), (3, 3));
        let base = crate::config::Base::Prior(PriorParams::covariates().elevation_band("height"));
        let cfg = crate::testutil::tiny_config()
            .with_covariates(&["ndvi", "height", "aspect"])
            .with_base(base);
        let target_std = |sc: &TrainingScene| {
            build_dataset(&cfg, &settings(), std::slice::from_ref(sc), None)
                .unwrap()
                .norm
                .target
                .std
        };
        let alone = target_std(&sc);
        sc.fit_prior_on_label = true;
        let on_label = target_std(&sc);
        assert!(alone > 0.3, "{alone} K");
        assert!(on_label < 0.1 * alone, "{on_label} K vs {alone} K");
    }

    /// With a prior as the base, the first channel is the prior fitted on the scene and the
    /// target is the label minus it; the configuration survives a JSON round trip (it
    /// travels in the checkpoint).
    #[test]
    fn a_prior_base_is_the_first_channel_and_the_residual_reference() {
        use amun_prior::PriorParams;
        let sc = crate::testutil::scene(64, 4, 0.0);
        let base = crate::config::Base::Prior(PriorParams::elevation().elevation_band("height"));
        let cfg = crate::testutil::tiny_config().with_base(base.clone());
        let enc = encode_inputs(&cfg, None, &sc.coarse_lst, &sc.covariates).unwrap();
        let (prior, report) = base.field(&sc.coarse_lst, &sc.covariates).unwrap();
        let report = report.unwrap();
        assert!(report.lapse_rate.is_some(), "{}", report.summary());
        for (a, b) in enc.base.iter().zip(prior.data()) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        let bilinear = encode_inputs(
            &crate::testutil::tiny_config(),
            None,
            &sc.coarse_lst,
            &sc.covariates,
        )
        .unwrap()
        .base;
        assert!(enc
            .base
            .iter()
            .zip(&bilinear)
            .any(|(a, b)| (a - b).abs() > 0.1));
        let json = serde_json::to_string(&cfg).unwrap();
        let back: AmunConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.base, base);
        // Configurations written before the field existed read as bilinear.
        let old = json.replace(
            &format!(",\"base\":{}", serde_json::to_string(&base).unwrap()),
            "",
        );
        assert!(!old.contains("\"base\""), "{old}");
        let old: AmunConfig = serde_json::from_str(&old).unwrap();
        assert_eq!(old.base, crate::config::Base::Bilinear);
    }

    fn coarse_residual_config() -> AmunConfig {
        crate::testutil::tiny_config()
            .with_covariates(&["ndvi", "landcover", "height", "aspect"])
            .with_base(Base::Prior(
                amun_prior::PriorParams::covariates().elevation_band("height"),
            ))
            .with_supervision(Supervision::CoarseResidual)
    }

    #[test]
    fn coarse_cells_learn_the_priors_residual_with_no_label_and_no_base_channel() {
        let sc = crate::testutil::coarse_cell_scene(64, 4, 0.0);
        assert!(sc.label.is_none());
        let cfg = coarse_residual_config();
        let st = PatchSettings {
            stride: 16,
            ..settings()
        };
        let ds = build_dataset(&cfg, &st, std::slice::from_ref(&sc), None).unwrap();
        let prep = &ds.scenes[0];
        // No pixel is a target; the base channel is all zeros, the covariates are not.
        assert!(prep.mask.iter().all(|&m| m == 0.0));
        assert!(prep.inputs.slice(s![0, .., ..]).iter().all(|&v| v == 0.0));
        assert!(prep.inputs.slice(s![1, .., ..]).iter().any(|&v| v != 0.0));
        // Each cell's target is the prior's coarse residual, normalised.
        let Base::Prior(p) = &cfg.base else {
            unreachable!()
        };
        let prior = p.fit(&sc.coarse_lst, &sc.covariates).unwrap();
        assert!(
            prior.report().fallback.is_none(),
            "{}",
            prior.report().summary()
        );
        let e = prior.coarse_residual().data();
        let mut checked = 0;
        for (ix, &t) in prep.cell_target.indexed_iter() {
            if t.is_finite() {
                assert!((t - ds.norm.target.norm(e[ix])).abs() < 1e-5, "{ix:?}");
                checked += 1;
            }
        }
        assert!(checked > 100, "{checked} cells");
        // ndvi² is no linear term: the prior leaves some of it in its residual.
        assert!(ds.norm.target.std > 0.01, "{:?}", ds.norm.target);
        // The fine-label supervision needs a label and names what is missing.
        let fine = cfg.clone().with_supervision(Supervision::FineLabel);
        let err = build_dataset(&fine, &st, std::slice::from_ref(&sc), None).unwrap_err();
        assert!(
            err.to_string().contains("scene 0 has no fine label"),
            "{err}"
        );
        // Coarse cells need a prior to correct.
        let err = cfg
            .clone()
            .with_base(Base::Bilinear)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("supervision"), "{err}");
    }

    #[test]
    fn one_hot_land_cover_takes_a_channel_per_class_and_moves_the_aspect() {
        use amun_indices::{Igbp, LandcoverEncoding};
        let cfg =
            coarse_residual_config().with_landcover_encoding(LandcoverEncoding::OneHot(vec![
                Igbp::Cropland,
                Igbp::UrbanBuiltUp,
            ]));
        assert_eq!(
            cfg.aux_channels(),
            [
                "ndvi",
                "landcover:lc_cropland",
                "landcover:lc_urban",
                "height",
                "aspect:northness",
                "aspect:eastness"
            ]
        );
        match AspectChannels::of(&cfg) {
            AspectChannels::CosSin { north, east } => assert_eq!((north, east), (5, 6)),
            a => panic!("{a:?}"),
        }
        let sc = crate::testutil::coarse_cell_scene(32, 4, 0.0);
        let aux = encode_covariates(&cfg, &sc.covariates).unwrap();
        let lc = sc.covariates.band("landcover").unwrap().data();
        let indicator = |on: bool| f32::from(u8::from(on)).to_bits();
        for (ix, &code) in lc.indexed_iter() {
            let code = code as u8;
            assert_eq!(aux[1][ix].to_bits(), indicator(code == 12));
            assert_eq!(aux[2][ix].to_bits(), indicator(code == 13));
        }
    }
}
