//! The guard: learned methods checked where the truth is known, next to interpolation and
//! the physical prior, so that a method worse than them never goes unnoticed.
//!
//! Without fine truth a model can only be checked one scale up, where the coarse field is
//! the truth: AMUN on the pixels its training held out (spatial blocks and whole scenes),
//! a per-scene method by running its whole procedure on the scene aggregated once more.

use amun_net::{HeldOutCheck, MethodScore};
use amun_prior::{Base, PriorParams};
use amun_raster::Raster;
use ndarray::Array2;

use crate::error::Result;
use crate::scene::Scene;

/// The references a model is checked against on a scene: bilinear interpolation, the
/// elevation prior when the scene has an `elevation` band, and the covariate prior.
pub fn references(scene: &Scene) -> Vec<Base> {
    let mut out = vec![Base::Bilinear];
    if scene.covariates().get("elevation").is_some() {
        out.push(Base::Prior(PriorParams::elevation()));
    }
    out.push(Base::Prior(PriorParams::covariates()));
    out
}

/// Squared errors of several fields on shared pixels, accumulated over scenes.
struct Tally {
    names: Vec<String>,
    sse: Vec<f64>,
    pixels: usize,
}

impl Tally {
    fn new(names: Vec<String>) -> Self {
        Self {
            sse: vec![0.0; names.len()],
            names,
            pixels: 0,
        }
    }

    /// Adds the pixels where `mask` holds and the truth and every field are valid.
    fn add(&mut self, truth: &Raster, fields: &[&Raster], mask: Option<&Array2<bool>>) {
        let t = truth.data();
        for (ix, &tv) in t.indexed_iter() {
            if tv.is_nan() || mask.is_some_and(|m| !m[ix]) {
                continue;
            }
            let vals: Vec<f32> = fields.iter().map(|f| f.data()[ix]).collect();
            if vals.iter().any(|v| v.is_nan()) {
                continue;
            }
            self.pixels += 1;
            for (s, v) in self.sse.iter_mut().zip(&vals) {
                *s += f64::from(v - tv).powi(2);
            }
        }
    }

    fn finish(self, scale: String) -> HeldOutCheck {
        let n = self.pixels.max(1) as f64;
        HeldOutCheck {
            scale,
            pixels: self.pixels,
            scores: self
                .names
                .into_iter()
                .zip(self.sse)
                .map(|(method, sse)| MethodScore {
                    method,
                    rmse_k: if self.pixels == 0 {
                        f64::NAN
                    } else {
                        (sse / n).sqrt()
                    },
                })
                .collect(),
        }
    }
}

/// Scores `predictions` of `scenes` (with a reference) against it on the pixels of `masks`
/// (all pixels when `None`), next to each of [`references`] on the same pixels and, for a
/// residual model on a prior, next to `base`: the field it corrects. On pairs one scale up
/// that base takes its coefficients from the pair's reference ([`Scene::prior_fit`]), as
/// the model's inputs did; it is scored as `<base> (the model's base)`.
///
/// # Errors
/// Prior and resampling errors.
pub fn check(
    scale: impl Into<String>,
    scenes: &[Scene],
    predictions: &[Raster],
    masks: Option<&[Array2<bool>]>,
    base: Option<&Base>,
) -> Result<HeldOutCheck> {
    let refs = scenes.first().map(references).unwrap_or_default();
    // A base fitted as the references are is one of them already.
    let base = base
        .filter(|b| !matches!(b, Base::Bilinear) && scenes.iter().any(|s| s.prior_fit().is_some()));
    let mut names = vec!["model".to_string()];
    names.extend(refs.iter().map(Base::name));
    names.extend(base.map(|b| format!("{} (the model's base)", b.name())));
    let mut tally = Tally::new(names);
    for (i, (scene, pred)) in scenes.iter().zip(predictions).enumerate() {
        let Some(truth) = scene.reference() else {
            continue;
        };
        let mut fields = vec![pred.clone()];
        for b in &refs {
            fields.push(b.field(scene.coarse_lst(), scene.covariates())?.0);
        }
        if let Some(b) = base {
            let fit = scene.prior_fit();
            fields.push(
                b.field_fitted_on(fit, scene.coarse_lst(), scene.covariates())?
                    .0,
            );
        }
        let refs: Vec<&Raster> = fields.iter().collect();
        tally.add(truth, &refs, masks.and_then(|m| m.get(i)));
    }
    Ok(tally.finish(scale.into()))
}

/// A model trained on coarse cells ([`amun_net::Supervision::CoarseResidual`]) checked on
/// the cells its training held out, where the only truth it has is: each `prediction`'s
/// correction of the prior fitted on its scene (prediction − prior), averaged over the
/// cell's block, against what the prior's linear model leaves of that cell (its coarse
/// residual), next to the prior itself (no correction). `masks` are the held-out fine
/// pixels; a cell counts when its whole block is held out and valid. Scored as `model` and
/// `<prior> (the model's base)`; `pixels` counts the pixels of the scored blocks.
///
/// # Errors
/// Prior errors; grid errors if a prediction is not on its scene's fine grid.
pub fn check_coarse_residual(
    scenes: &[Scene],
    predictions: &[Raster],
    masks: &[Array2<bool>],
    prior: &PriorParams,
) -> Result<HeldOutCheck> {
    let (mut sse_model, mut sse_prior, mut cells) = (0.0, 0.0, 0usize);
    let mut k_last = 1;
    for ((scene, pred), mask) in scenes.iter().zip(predictions).zip(masks) {
        scene.fine_grid().check_same(pred.grid())?;
        let fitted = prior.fit(scene.coarse_lst(), scene.covariates())?;
        let base = fitted.field(scene.covariates())?;
        let e = fitted.coarse_residual().data();
        let k = scene.factor();
        k_last = k;
        let correction = pred.data() - base.data();
        let (h, w) = correction.dim();
        for ((r, c), &ev) in e.indexed_iter() {
            if !ev.is_finite() || (r + 1) * k > h || (c + 1) * k > w {
                continue;
            }
            let block: Vec<(usize, usize)> = (r * k..(r + 1) * k)
                .flat_map(|i| (c * k..(c + 1) * k).map(move |j| (i, j)))
                .collect();
            if block
                .iter()
                .any(|&ix| !correction[ix].is_finite() || !mask[ix])
            {
                continue;
            }
            let mean = block
                .iter()
                .map(|&ix| f64::from(correction[ix]))
                .sum::<f64>()
                / (k * k) as f64;
            sse_model += (mean - f64::from(ev)).powi(2);
            sse_prior += f64::from(ev).powi(2);
            cells += 1;
        }
    }
    let rmse = |sse: f64| {
        if cells == 0 {
            f64::NAN
        } else {
            (sse / cells as f64).sqrt()
        }
    };
    Ok(HeldOutCheck {
        scale: format!(
            "target scale: block means of the correction against the prior's coarse residual on {cells} held-out coarse cells of {} scene(s)",
            scenes.len()
        ),
        pixels: cells * k_last * k_last,
        scores: vec![
            MethodScore {
                method: "model".into(),
                rmse_k: rmse(sse_model),
            },
            MethodScore {
                method: format!("prior-{} (the model's base)", prior.kind.name()),
                rmse_k: rmse(sse_prior),
            },
        ],
    })
}

/// A per-scene method checked one scale up: `downscale` is run on the scene aggregated
/// once more (its coarse LST aggregated by the factor, its covariates to the coarse grid)
/// and its output scored against the scene's own coarse LST — truth the method never saw.
///
/// # Errors
/// As [`Scene::coarsened`] and `downscale`.
pub fn check_one_scale_up(
    scene: &Scene,
    downscale: impl Fn(&Scene) -> Result<Raster>,
) -> Result<HeldOutCheck> {
    let up = scene.coarsened()?;
    let pred = downscale(&up)?;
    check(
        format!("coarse scale (one scale up) of {}", scene.name()),
        std::slice::from_ref(&up),
        std::slice::from_ref(&pred),
        None,
        None,
    )
}

/// Pools checks of several scenes: RMSEs weighted by their pixel counts.
pub fn pool(checks: &[HeldOutCheck], scale: impl Into<String>) -> Option<HeldOutCheck> {
    let first = checks.first()?;
    let mut tally = Tally::new(first.scores.iter().map(|s| s.method.clone()).collect());
    for c in checks {
        if c.scores.len() != tally.names.len() || c.pixels == 0 {
            continue;
        }
        tally.pixels += c.pixels;
        for (s, m) in tally.sse.iter_mut().zip(&c.scores) {
            *s += m.rmse_k.powi(2) * c.pixels as f64;
        }
    }
    Some(tally.finish(scale.into()))
}
