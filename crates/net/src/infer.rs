//! Whole-scene prediction, tiled with a halo and blended.
//!
//! The scene is extended by symmetric reflection, cut into tiles of `tile × tile` output
//! pixels, each predicted from a window with `halo` extra pixels on every side. Window
//! origins lie on one lattice of the model's size multiple (16 with a four-level U-Net), so
//! the pooling phase of a pixel never depends on the tiling. With `halo` at least the
//! receptive-field radius ([`AmunConfig::receptive_radius`], the default), each output pixel
//! sees exactly the inputs it would see in one whole-scene pass: the result does not depend
//! on the tile size and has no seams. With a smaller halo, overlapping windows are blended
//! with linear ramps.

use amun_raster::{Raster, Stack};
use candle_core::{Module, Tensor};
use ndarray::{s, Array2, Array3};

use crate::checkpoint::Checkpoint;
use crate::config::AmunConfig;
use crate::data::{encode_inputs, normalise_inputs};
use crate::error::{Error, Result};

/// Tiling of whole-scene inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileParams {
    /// Output pixels per tile side, a multiple of the model's size multiple (default 256).
    pub tile: usize,
    /// Extra input pixels on every side; `None` (default): the receptive-field radius
    /// rounded up to the size multiple, which makes tiling exact.
    pub halo: Option<usize>,
    /// Tiles per forward pass (default 2); bounds the memory used by activations.
    pub batch: usize,
}

impl Default for TileParams {
    fn default() -> Self {
        Self {
            tile: 256,
            halo: None,
            batch: 2,
        }
    }
}

impl TileParams {
    /// The halo used with `cfg`.
    pub fn halo_for(&self, cfg: &AmunConfig) -> usize {
        let m = cfg.size_multiple();
        self.halo
            .unwrap_or_else(|| cfg.receptive_radius())
            .div_ceil(m)
            * m
    }
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

/// Blending weight of position `i` in a window of `len` with ramps of `ramp` pixels
/// (crop: 1 inside `[halo, len − halo)`, 0 outside).
fn weight_1d(i: usize, len: usize, halo: usize, crop: bool) -> f32 {
    if crop {
        return if i >= halo && i < len - halo {
            1.0
        } else {
            0.0
        };
    }
    if halo == 0 {
        return 1.0;
    }
    let ramp = (2 * halo) as f32;
    let up = ((i as f32 + 0.5) / ramp).clamp(0.0, 1.0);
    let down = (((len - i) as f32 - 0.5) / ramp).clamp(0.0, 1.0);
    up * down
}

impl Checkpoint {
    /// Predicts fine LST over the covariates' grid from a coarse LST raster.
    ///
    /// The base field ([`AmunConfig::base`]: `coarse_lst` resampled bilinearly onto
    /// `fine_covariates`'s grid, or a prior fitted on the scene) is the first input channel
    /// and what the network's residual is added to.
    /// Pixels where any input is missing are missing in the output. `progress(done, total)`
    /// is called after each tile batch.
    ///
    /// # Errors
    /// [`Error::MissingCovariate`], raster errors (CRS), [`Error::InvalidConfig`] for a
    /// tile size that is not a multiple of the model's size multiple, tensor errors.
    pub fn predict(
        &self,
        coarse_lst: &Raster,
        fine_covariates: &Stack,
        tiles: &TileParams,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Raster> {
        let cfg = self.config();
        let m = cfg.size_multiple();
        if tiles.tile == 0 || !tiles.tile.is_multiple_of(m) {
            return Err(Error::config(
                "tile",
                format!("must be a positive multiple of {m}, got {}", tiles.tile),
            ));
        }
        if tiles.batch == 0 {
            return Err(Error::config("batch", "must be ≥ 1"));
        }
        let halo = tiles.halo_for(cfg);
        let crop = halo >= cfg.receptive_radius();
        let norm = self.normalization();
        let enc = encode_inputs(cfg, coarse_lst, fine_covariates)?;
        let (x, valid) = normalise_inputs(&enc, norm);
        let (n_ch, h, w) = x.dim();
        let t = tiles.tile;
        let (ty, tx) = (h.div_ceil(t), w.div_ceil(t));
        let win = t + 2 * halo;
        let wts: Vec<f32> = (0..win).map(|i| weight_1d(i, win, halo, crop)).collect();
        let mut acc = Array2::<f32>::zeros((h, w));
        let mut wsum = Array2::<f32>::zeros((h, w));
        let origins: Vec<(usize, usize)> =
            (0..ty).flat_map(|a| (0..tx).map(move |b| (a, b))).collect();
        let total = origins.len();
        let mut done = 0;
        for chunk in origins.chunks(tiles.batch) {
            let nb = chunk.len();
            let mut buf = Array3::<f32>::zeros((nb * n_ch, win, win));
            for (bi, &(a, b)) in chunk.iter().enumerate() {
                let (r0, c0) = (
                    (a * t) as isize - halo as isize,
                    (b * t) as isize - halo as isize,
                );
                let rows: Vec<usize> = (0..win).map(|i| reflect(r0 + i as isize, h)).collect();
                let cols: Vec<usize> = (0..win).map(|j| reflect(c0 + j as isize, w)).collect();
                for c in 0..n_ch {
                    let src = x.slice(s![c, .., ..]);
                    let mut dst = buf.slice_mut(s![bi * n_ch + c, .., ..]);
                    for (i, &r) in rows.iter().enumerate() {
                        for (j, &cc) in cols.iter().enumerate() {
                            dst[(i, j)] = src[(r, cc)];
                        }
                    }
                }
            }
            let (data, _) = buf.into_raw_vec_and_offset();
            let input = Tensor::from_vec(data, (nb, n_ch, win, win), self.device())?; // [B, C, H, W]
            let out = self.model().forward(&input)?; // [B, 1, H, W]
            let out: Vec<f32> = out.flatten_all()?.to_vec1()?;
            for (bi, &(a, b)) in chunk.iter().enumerate() {
                let (r0, c0) = (
                    (a * t) as isize - halo as isize,
                    (b * t) as isize - halo as isize,
                );
                let o = &out[bi * win * win..(bi + 1) * win * win];
                for i in 0..win {
                    let r = r0 + i as isize;
                    if r < 0 || r >= h as isize || wts[i] <= 0.0 {
                        continue;
                    }
                    for j in 0..win {
                        let c = c0 + j as isize;
                        let wt = wts[i] * wts[j];
                        if c < 0 || c >= w as isize || wt <= 0.0 {
                            continue;
                        }
                        let ix = (r as usize, c as usize);
                        acc[ix] += wt * o[i * win + j];
                        wsum[ix] += wt;
                    }
                }
            }
            done += nb;
            progress(done, total);
        }
        let data = Array2::from_shape_fn((h, w), |ix| {
            if !valid[ix] || wsum[ix] <= 0.0 {
                return f32::NAN;
            }
            let o = norm.target.denorm(acc[ix] / wsum[ix]);
            if cfg.residual {
                enc.base[ix] + o
            } else {
                o
            }
        });
        Ok(Raster::new(fine_covariates.grid().clone(), data)?)
    }
}

/// Predicts fine LST with a checkpoint; see [`Checkpoint::predict`].
///
/// # Errors
/// As [`Checkpoint::predict`].
pub fn predict(
    checkpoint: &Checkpoint,
    coarse_lst: &Raster,
    fine_covariates: &Stack,
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

    #[test]
    fn blend_weights_sum_to_one_in_overlaps() {
        // Windows of len t + 2h at stride t: weights of neighbours add up to 1.
        let (t, h) = (32, 8);
        let len = t + 2 * h;
        for p in 0..len {
            let mut s = weight_1d(p, len, h, false);
            if p >= t {
                s += weight_1d(p - t, len, h, false);
            }
            if p + t < len {
                s += weight_1d(p + t, len, h, false);
            }
            if (h..len - h).contains(&p) {
                assert!((s - 1.0).abs() < 1e-6, "position {p}: {s}");
            }
        }
        assert!((weight_1d(3, len, h, true)).abs() < 1e-9);
        assert!((weight_1d(h, len, h, true) - 1.0).abs() < 1e-9);
    }
}

#[cfg(test)]
mod scene_tests {
    use super::*;
    use crate::checkpoint::CheckpointMeta;
    use crate::data::{ChannelStats, Normalization};
    use crate::init::SeededVarMap;
    use crate::model::Amun;
    use crate::testutil::{scene, tiny_config};
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

    #[test]
    fn result_does_not_depend_on_tile_size_and_has_no_seams() {
        let ck = checkpoint();
        let sc = scene(192, 4, 0.0);
        let run = |tile| {
            let mut calls = 0;
            let r = ck
                .predict(
                    &sc.coarse_lst,
                    &sc.covariates,
                    &TileParams {
                        tile,
                        halo: None,
                        batch: 3,
                    },
                    |d, t| {
                        calls += 1;
                        assert!(d <= t);
                    },
                )
                .unwrap();
            (r, calls)
        };
        let (small, calls) = run(64);
        let (big, _) = run(512);
        assert_eq!(calls, 3, "9 tiles in batches of 3");
        let max_diff = small
            .data()
            .iter()
            .zip(big.data().iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < 1e-3, "tile 64 vs 512: max |Δ| = {max_diff} K");
        // Seams: mean |horizontal and vertical gradient| across tile borders (between pixel
        // 64j−1 and 64j) against all other neighbour pairs.
        let d = small.data();
        let (mut border, mut nb, mut inner, mut ni) = (0.0f64, 0.0, 0.0f64, 0.0);
        for r in 0..192 {
            for c in 0..191 {
                let g = f64::from((d[(r, c + 1)] - d[(r, c)]).abs());
                let gv = f64::from((d[(c + 1, r)] - d[(c, r)]).abs());
                if (c + 1) % 64 == 0 {
                    border += g + gv;
                    nb += 2.0;
                } else {
                    inner += g + gv;
                    ni += 2.0;
                }
            }
        }
        let ratio = (border / nb) / (inner / ni);
        assert!(
            (ratio - 1.0).abs() < 0.05 || max_diff < 1e-5,
            "border/interior gradient ratio {ratio}"
        );
    }

    #[test]
    fn a_short_halo_blends_and_nodata_passes_through() {
        let ck = checkpoint();
        let mut sc = scene(64, 4, 0.0);
        let mut cov = Stack::new(sc.covariates.grid().clone());
        for (name, band) in sc.covariates.iter() {
            let mut b = band.clone();
            if name == "ndvi" {
                b.data_mut()[(10, 20)] = f32::NAN;
            }
            cov.push(name, b).unwrap();
        }
        sc.covariates = cov;
        let tiles = TileParams {
            tile: 32,
            halo: Some(8),
            batch: 1,
        };
        let out = ck
            .predict(&sc.coarse_lst, &sc.covariates, &tiles, |_, _| {})
            .unwrap();
        assert!(out.data()[(10, 20)].is_nan());
        assert_eq!(out.valid_count(), 64 * 64 - 1);
        assert_eq!(out.grid(), sc.covariates.grid());
        let e = ck
            .predict(
                &sc.coarse_lst,
                &sc.covariates,
                &TileParams { tile: 30, ..tiles },
                |_, _| {},
            )
            .unwrap_err();
        assert!(e.to_string().contains("tile"), "{e}");
    }
}
