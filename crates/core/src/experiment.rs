//! The experiments of `docs/design.md` §5: paper-style, scale-transfer and real.

use std::borrow::Cow;
use std::time::Instant;

use amun_metrics::{aggregated_back, score, score_grouped, score_stations, Sampling, Station};
use amun_net::Amplitude;
use amun_raster::{BlockStats, Departure, Raster, Window};

use crate::downscale::Downscaler;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::report::{MethodReport, Report, SceneScore};
use crate::scene::Scene;
use amun_raster::{conserve, ConserveParams};

/// Options shared by the experiments.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Apply coarse conservation to every prediction (see [`conserve`]).
    pub conserve: Option<ConserveParams>,
    /// Station points to score every prediction against.
    pub stations: Vec<Station>,
    /// How stations sample the prediction.
    pub station_sampling: Option<Sampling>,
}

/// A run's report and every method's predictions (`predictions[m][s]`: method `m`, test
/// scene `s`).
#[derive(Debug)]
pub struct RunOutput {
    /// Metrics and setup.
    pub report: Report,
    /// Predictions in the order of the report's methods and the test scenes.
    pub predictions: Vec<Vec<Raster>>,
}

/// Paper-style simulated experiment (`docs/design.md` §5): fit every method on training
/// scenes with a fine reference, predict the test scenes (other dates) and score against their
/// fine reference and, aggregated back, against their coarse input.
///
/// # Errors
/// [`Error::Scene`] if a scene lacks a fine reference; method errors.
pub fn paper_style(
    train: &[Scene],
    test: &[Scene],
    methods: &mut [Box<dyn Downscaler + '_>],
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<RunOutput> {
    for s in train.iter().chain(test) {
        s.require_reference("paper-style experiment")?;
    }
    run(
        "paper-style",
        "Paper-style simulated experiment: same scale, unseen dates",
        Learn::AsGiven(train),
        test,
        methods,
        opts,
        progress,
    )
}

/// Scale-transfer experiment (`docs/design.md` §5): train one scale up (each training scene
/// [`Scene::coarsened`]: LST at c′ → c), apply at c → f on the test scenes and score against
/// their fine reference. This is what real use relies on.
///
/// # Errors
/// As [`Scene::coarsened`]; [`Error::Scene`] if a test scene lacks a fine reference.
pub fn scale_transfer(
    train: &[Scene],
    test: &[Scene],
    methods: &mut [Box<dyn Downscaler + '_>],
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<RunOutput> {
    for s in test {
        s.require_reference("scale-transfer experiment")?;
    }
    run(
        "scale-transfer",
        "Scale-transfer experiment: trained one scale up, applied at the target scale",
        Learn::OneScaleUp(train),
        test,
        methods,
        opts,
        progress,
    )
}

/// Real experiment (`docs/design.md` §5): no fine truth. Train one scale up on the scenes
/// themselves, downscale them, and score by aggregating back to the coarse input and against
/// stations.
///
/// # Errors
/// As [`scale_transfer`], without the reference requirement.
pub fn real(
    scenes: &[Scene],
    methods: &mut [Box<dyn Downscaler + '_>],
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<RunOutput> {
    real_split(scenes, scenes, methods, opts, progress)
}

/// The real experiment with the scenes learnt from and the scenes downscaled given apart:
/// train one scale up on `train` (e.g. every time step of a region), downscale `test` (some
/// of them, or others) and score aggregated back, at stations and, where the test scenes
/// have one, against a fine reference that no method saw.
///
/// # Errors
/// As [`real`].
pub fn real_split(
    train: &[Scene],
    test: &[Scene],
    methods: &mut [Box<dyn Downscaler + '_>],
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<RunOutput> {
    run(
        "real",
        "Real-data experiment: trained one scale up, scored aggregated back and at stations",
        Learn::OneScaleUp(train),
        test,
        methods,
        opts,
        progress,
    )
}

/// What the methods of an experiment learn from.
enum Learn<'a> {
    /// The scenes as they are, every method.
    AsGiven(&'a [Scene]),
    /// Every scene [`Scene::coarsened`]; a method that learns at the target scale from the
    /// coarse cells ([`Downscaler::learns_at_target_scale`]) gets the scenes themselves
    /// without their fine reference.
    OneScaleUp(&'a [Scene]),
}

/// Fits each method on what `learn` gives it, then predicts and scores `test`.
fn run(
    experiment: &str,
    title: &str,
    learn: Learn<'_>,
    test: &[Scene],
    methods: &mut [Box<dyn Downscaler + '_>],
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<RunOutput> {
    if test.is_empty() {
        return Err(Error::Scene {
            scene: experiment.into(),
            detail: "no test scene".into(),
        });
    }
    let at_target = methods.iter().any(|m| m.learns_at_target_scale());
    let (train, target_scale): (Cow<'_, [Scene]>, Option<Vec<Scene>>) = match learn {
        Learn::AsGiven(scenes) => (Cow::Borrowed(scenes), None),
        Learn::OneScaleUp(scenes) => (
            Cow::Owned(scenes.iter().map(Scene::coarsened).collect::<Result<_>>()?),
            at_target.then(|| {
                scenes
                    .iter()
                    .map(|s| s.clone().without_reference())
                    .collect()
            }),
        ),
    };
    let mut report = Report::new(title, experiment);
    report.train_scenes = train.iter().map(|s| s.name().to_string()).collect();
    report.test_scenes = test.iter().map(|s| s.name().to_string()).collect();
    report
        .setup
        .push(("factor".into(), test[0].factor().to_string()));
    report
        .setup
        .push(("fine grid".into(), test[0].fine_grid().to_string()));
    report
        .setup
        .push(("covariates".into(), test[0].covariates().names().join(", ")));
    if let Some(c) = &opts.conserve {
        report.setup.push((
            "coarse conservation".into(),
            format!("on (tolerance {} K)", c.tolerance),
        ));
    }
    let mut predictions = Vec::with_capacity(methods.len());
    for method in methods.iter_mut() {
        let t0 = Instant::now();
        let learn_from: &[Scene] = match &target_scale {
            Some(t) if method.learns_at_target_scale() => t,
            _ => &train,
        };
        method.fit(learn_from, progress)?;
        let fit_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let mut preds = Vec::with_capacity(test.len());
        let mut departures = Vec::with_capacity(test.len());
        let mut amplitudes = Vec::new();
        for scene in test {
            let (mut p, amplitude) = method.predict_checked(scene, progress)?;
            amplitudes.extend(amplitude);
            departures.push(departure(&p, scene)?);
            if let Some(c) = &opts.conserve {
                p = conserve(&p, scene.coarse_lst(), c)?.0;
            }
            preds.push(p);
        }
        let predict_seconds = t1.elapsed().as_secs_f64();
        let mut scored = score_method(
            method.name(),
            test,
            &preds,
            opts,
            fit_seconds,
            predict_seconds,
        )?;
        scored.check = method.check();
        scored.departure = pooled(&departures);
        scored.amplitude = Amplitude::pooled(&amplitudes);
        report.methods.push(scored);
        predictions.push(preds);
    }
    Ok(RunOutput {
        report,
        predictions,
    })
}

/// How far `prediction`'s block means depart from `scene`'s coarse LST, next to bilinear
/// interpolation's.
///
/// # Errors
/// Grid errors if the prediction is not on the scene's fine grid.
pub fn departure(prediction: &Raster, scene: &Scene) -> Result<Departure> {
    let mut stats = BlockStats::new(prediction.grid(), scene.coarse_lst().grid())?;
    stats.add(Window::of(prediction.grid()), prediction.data().view())?;
    Ok(stats.departure(scene.coarse_lst())?)
}

/// Departures of several scenes pooled over their cells (`None` if no cell was compared).
pub fn pooled(departures: &[Departure]) -> Option<Departure> {
    let cells: usize = departures.iter().map(|d| d.cells).sum();
    if cells == 0 {
        return None;
    }
    let rms = |f: fn(&Departure) -> f64| {
        let s: f64 = departures
            .iter()
            .filter(|d| d.cells > 0)
            .map(|d| d.cells as f64 * f(d).powi(2))
            .sum();
        (s / cells as f64).sqrt()
    };
    Some(Departure {
        field_rmse: rms(|d| d.field_rmse),
        bilinear_rmse: rms(|d| d.bilinear_rmse),
        cells,
    })
}

/// Scores one method's predictions of the test scenes.
///
/// # Errors
/// Scoring errors (grids that differ).
pub fn score_method(
    name: &str,
    test: &[Scene],
    preds: &[Raster],
    opts: &RunOptions,
    fit_seconds: f64,
    predict_seconds: f64,
) -> Result<MethodReport> {
    let mut scenes = Vec::with_capacity(test.len());
    let mut pooled = Vec::new();
    let mut pooled_back = Vec::new();
    let mut coarse_back = Vec::new();
    for (scene, p) in test.iter().zip(preds) {
        let fine = match scene.reference() {
            Some(r) => {
                pooled.push(amun_metrics::ScoredPair {
                    key: (),
                    prediction: p,
                    reference: r,
                });
                Some(score(p, r, None)?)
            }
            None => None,
        };
        let back = aggregated_back(p, scene.coarse_lst(), 0.5).ok();
        let k = scene.factor();
        coarse_back.push(p.block_mean(k, 0.5)?);
        let stations = match (&opts.station_sampling, opts.stations.is_empty()) {
            (Some(sampling), false) => Some(score_stations(p, &opts.stations, *sampling)?),
            _ => None,
        };
        scenes.push(SceneScore {
            scene: scene.name().to_string(),
            month: scene.month(),
            fine,
            aggregated_back: back,
            stations,
        });
    }
    for (agg, scene) in coarse_back.iter().zip(test) {
        pooled_back.push(amun_metrics::ScoredPair {
            key: (),
            prediction: agg,
            reference: scene.coarse_lst(),
        });
    }
    let fine = if pooled.is_empty() {
        None
    } else {
        score_grouped(&pooled)?
            .into_iter()
            .next()
            .map(|g| g.metrics)
    };
    let aggregated_back = score_grouped(&pooled_back)
        .ok()
        .and_then(|g| g.into_iter().next().map(|g| g.metrics));
    Ok(MethodReport {
        method: name.to_string(),
        fine,
        aggregated_back,
        scenes,
        fit_seconds,
        predict_seconds,
        check: None,
        departure: None,
        amplitude: None,
    })
}
