//! `amun demo --ensemble K`: per-pixel uncertainty of AMUN (a deep ensemble) and of the
//! random forest (quantile regression forest) on the demo's test months.

use std::path::Path;
use std::time::Instant;

use amun_core::metrics::{score_uncertainty, Predictive, UncertaintyMetrics, UncertaintyParams};
use amun_core::net::{AmunConfig, TrainConfig};
use amun_core::prior::PriorParams;
use amun_core::rf::RfParams;
use amun_core::{
    conserve, write_atomic, ConserveParams, Downscaler, EnsembleAmun, Members, PhysicalPrior,
    Regression, RegressionMode, Scene, Uncertain,
};
use anyhow::{anyhow, Result};
use serde::Serialize;

use crate::commands::evaluate::uncertainty_figures;
use crate::commands::uncertain::uncertainty_stack;
use crate::commands::Ctx;
use crate::figures::{self, Calibration};

/// One method's uncertainty scores.
#[derive(Serialize)]
struct MethodSpread {
    method: String,
    fit_seconds: f64,
    predict_seconds: f64,
    /// The spread's recalibration, when the method fits one.
    spread_model: Option<amun_core::metrics::SpreadModel>,
    pooled: UncertaintyMetrics,
    months: Vec<(String, UncertaintyMetrics)>,
}

/// Scores one method's probabilistic predictions of the test scenes, writes their bands and
/// figures, and pools them.
fn score_method(
    out: &Path,
    name: &str,
    test: &[Scene],
    preds: &[Uncertain],
    (fit_seconds, predict_seconds): (f64, f64),
    spread_model: Option<amun_core::metrics::SpreadModel>,
) -> Result<MethodSpread> {
    let mut months = Vec::new();
    for (scene, u) in test.iter().zip(preds) {
        let reference = scene.require_reference("demo")?;
        let p = Predictive {
            mean: &u.mean,
            std: &u.std,
            interval: None,
        };
        let m = score_uncertainty(&p, reference, None, &UncertaintyParams::default())?;
        let stem = format!("{}_{name}", scene.name());
        amun_core::raster::write(
            out.join(format!("geotiff/{stem}_uncertainty.tif")),
            &uncertainty_stack(&u.mean, &u.std)?,
            &Default::default(),
        )?;
        uncertainty_figures(
            &out.join("figures"),
            &stem,
            &format!("{name} ({})", scene.name()),
            &m,
            &u.mean,
            &u.std,
            reference,
            true,
        )?;
        months.push((scene.name().to_string(), m));
    }
    let parts: Vec<UncertaintyMetrics> = months.iter().map(|(_, m)| m.clone()).collect();
    Ok(MethodSpread {
        method: name.to_string(),
        fit_seconds,
        predict_seconds,
        spread_model,
        pooled: UncertaintyMetrics::pool(&parts)?,
        months,
    })
}

/// Predicts every test scene with its spread, timing it.
fn predict_all(
    method: &dyn Downscaler,
    test: &[Scene],
    ctx: &Ctx,
) -> Result<(Vec<Uncertain>, f64)> {
    let t = Instant::now();
    let preds = test
        .iter()
        .map(|s| {
            method
                .predict_with_spread(s, &ctx.bars)?
                .ok_or_else(|| anyhow!("{} gave no spread", method.name()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((preds, t.elapsed().as_secs_f64()))
}

fn row(name: &str, m: &UncertaintyMetrics, fit: Option<(f64, f64)>) -> String {
    format!(
        "| {name} | {:.1} % | {:.3} | {:.3} | {:.3} | {:.3} | {} ({}) | {} |\n",
        100.0 * m.coverage,
        m.mean_width,
        m.crps,
        m.mean_std,
        m.rmse,
        m.spread_error_spearman
            .map_or("–".into(), |r| format!("{r:+.3}")),
        m.blocks,
        fit.map_or(String::new(), |(f, p)| format!("{f:.0} / {p:.1}"))
    )
}

/// Trains the ensemble and the quantile forest on `train`, scores them on `test` and writes
/// `uncertainty.md`, `uncertainty.json`, the bands and the figures under `out`; returns the
/// Markdown table.
///
/// The forest is the demo's `rf` with the leaf moments kept (same seed: the same trees).
pub fn run(
    ctx: &Ctx,
    out: &Path,
    train: &[Scene],
    test: &[Scene],
    members: usize,
    (amun_cfg, tc): (AmunConfig, TrainConfig),
    rf: RfParams,
) -> Result<String> {
    let mut results = Vec::new();
    let tc_epochs = tc.epochs;
    let snap_cfg = (amun_cfg.clone(), tc.clone());
    let base = amun_cfg.base.clone();

    ctx.say(&format!(
        "uncertainty: training an AMUN ensemble of {members}"
    ));
    let ens = ensemble_scores(
        ctx,
        out,
        (train, test),
        members,
        (amun_cfg, tc),
        &mut results,
    )?;
    let model = ens.calibration().model;
    ens.save(&out.join("amun-ensemble"))?;

    // The cheaper variant: the members are snapshots of one training.
    let every = (tc_epochs / (2 * members)).max(1);
    ctx.say(&format!(
        "uncertainty: training a snapshot ensemble ({members} snapshots {every} epoch(s) apart)"
    ));
    let t = Instant::now();
    let mut snap = EnsembleAmun::new(members, snap_cfg.0, snap_cfg.1)?
        .with_members(Members::Snapshots { every })?;
    snap.fit(train, &ctx.bars)?;
    let fit = t.elapsed().as_secs_f64();
    let (preds, predict) = predict_all(&snap, test, ctx)?;
    let snap_model = snap.calibration().model;
    results.push(score_method(
        out,
        "amun-snapshot",
        test,
        &preds,
        (fit, predict),
        Some(snap_model),
    )?);

    // The demo's two forests with their leaf moments kept: on bilinear and on AMUN's base.
    let qrf =
        || Regression::random_forest(rf.clone().uncertainty(true), RegressionMode::Supervised);
    for (name, mut qrf) in [("rf-qrf", qrf()), ("rf-prior-qrf", qrf().with_base(base))] {
        ctx.say(&format!(
            "uncertainty: fitting the quantile regression forest {name}"
        ));
        let t = Instant::now();
        qrf.fit(train, &ctx.bars)?;
        let fit = t.elapsed().as_secs_f64();
        let (preds, predict) = predict_all(&qrf, test, ctx)?;
        results.push(score_method(out, name, test, &preds, (fit, predict), None)?);
    }

    calibration_figures(out, &results)?;
    let md = markdown(&results, members, every, (model, snap_model), test.len());
    write_atomic(out.join("uncertainty.md"), md.as_bytes())?;
    write_atomic(
        out.join("uncertainty.json"),
        serde_json::to_string_pretty(&results)?.as_bytes(),
    )?;
    Ok(md)
}

/// The scale-up experiment's uncertainty (`amun demo --experiment real --ensemble K`): every
/// method learns one scale up from the coarse field alone, as in [`crate::demo_real`], and
/// its spread is scored at the fine scale against the truth no method saw. The AMUN ensemble's
/// spread is recalibrated on the pixels its members held out one scale up; the prior's
/// residual spread and the per-scene quantile forest come from each scene's coarse cells.
/// Writes `uncertainty.md`, `uncertainty.json`, bands and figures under `out`; returns the
/// Markdown table.
pub fn scale_up(
    ctx: &Ctx,
    out: &Path,
    (all, scored): (&[Scene], &[Scene]),
    members: usize,
    (amun_cfg, tc): (AmunConfig, TrainConfig),
    rf: RfParams,
) -> Result<String> {
    for sub in ["geotiff", "figures"] {
        std::fs::create_dir_all(out.join(sub))?;
    }
    let base = amun_cfg.base.clone();
    let coarsened = all
        .iter()
        .map(Scene::coarsened)
        .collect::<amun_core::Result<Vec<_>>>()?;
    let mut results = Vec::new();
    ctx.say(&format!(
        "uncertainty: training an AMUN ensemble of {members} one scale up"
    ));
    let model = ensemble_scores(
        ctx,
        out,
        (&coarsened, scored),
        members,
        (amun_cfg, tc),
        &mut results,
    )?
    .calibration()
    .model;

    let prior = PhysicalPrior::new(PriorParams::covariates());
    let (preds, predict) = predict_all(&prior, scored, ctx)?;
    results.push(score_method(
        out,
        prior.name(),
        scored,
        &preds,
        (0.0, predict),
        None,
    )?);
    ctx.say("uncertainty: the per-scene quantile regression forest on the prior base");
    let qrf =
        Regression::random_forest(rf.uncertainty(true), RegressionMode::PerScene).with_base(base);
    let (preds, predict) = predict_all(&qrf, scored, ctx)?;
    results.push(score_method(
        out,
        "rf-prior-qrf",
        scored,
        &preds,
        (0.0, predict),
        None,
    )?);

    calibration_figures(out, &results)?;
    let mut md = table(&results);
    md.push_str(&format!(
        "
Every method learned one scale up from the coarse field alone; scored at the fine scale against the truth none of them saw. \
         amun-ensemble: {members} members trained one scale up on every month pooled; its spread σ is recalibrated there to √({:.3}² + ({:.3}·σ)²) K on the pixels all members held out. \
         amun-ensemble-conserved: the mean conserved, the interval moved with it. \
         prior-covariates: the residual standard deviation of each scene's regression on its coarse cells. \
         rf-prior-qrf: the per-scene forest on the prior base with its quantile-regression-forest spread from the coarse cells' leaves, not recalibrated (its fit is part of the prediction time). \
         CRPS and PIT treat each pixel as N(mean, std²); the interval is mean ± 1.645 std.\n",
        model.floor, model.scale
    ));
    write_atomic(out.join("uncertainty.md"), md.as_bytes())?;
    write_atomic(
        out.join("uncertainty.json"),
        serde_json::to_string_pretty(&results)?.as_bytes(),
    )?;
    Ok(md)
}

/// Trains an ensemble of `members` on `train`, then scores its predictions of `test` and
/// their conserved means (the interval moved with the mean, as `--conserve` writes them) into
/// `results`; returns the fitted ensemble.
fn ensemble_scores(
    ctx: &Ctx,
    out: &Path,
    (train, test): (&[Scene], &[Scene]),
    members: usize,
    (amun_cfg, tc): (AmunConfig, TrainConfig),
    results: &mut Vec<MethodSpread>,
) -> Result<EnsembleAmun> {
    let t = Instant::now();
    let mut ens = EnsembleAmun::new(members, amun_cfg, tc)?;
    ens.fit(train, &ctx.bars)?;
    let fit = t.elapsed().as_secs_f64();
    let (preds, predict) = predict_all(&ens, test, ctx)?;
    let model = Some(ens.calibration().model);
    results.push(score_method(
        out,
        "amun-ensemble",
        test,
        &preds,
        (fit, predict),
        model,
    )?);
    let t = Instant::now();
    let conserved = conserved_means(&preds, test)?;
    let predict = predict + t.elapsed().as_secs_f64();
    results.push(score_method(
        out,
        "amun-ensemble-conserved",
        test,
        &conserved,
        (fit, predict),
        model,
    )?);
    Ok(ens)
}

/// The means conserved to their scenes' coarse cells, the intervals moved with them (what
/// `--conserve` writes).
fn conserved_means(preds: &[Uncertain], scenes: &[Scene]) -> Result<Vec<Uncertain>> {
    preds
        .iter()
        .zip(scenes)
        .map(|(u, s)| {
            Ok(Uncertain {
                mean: conserve(&u.mean, s.coarse_lst(), &ConserveParams::default())?.0,
                std: u.std.clone(),
            })
        })
        .collect()
}

/// The pooled PIT histogram and reliability diagram, every method on one plot.
fn calibration_figures(out: &Path, results: &[MethodSpread]) -> Result<()> {
    let freqs: Vec<Vec<f64>> = results.iter().map(|r| r.pooled.pit.frequencies()).collect();
    let cals: Vec<Calibration> = results
        .iter()
        .zip(&freqs)
        .map(|(r, f)| Calibration {
            name: &r.method,
            pit: f,
            nominal: &r.pooled.reliability.nominal,
            observed: &r.pooled.reliability.observed,
        })
        .collect();
    figures::pit_png(
        &out.join("figures/uncertainty_pit.png"),
        "PIT histogram, test months",
        &cals,
    )?;
    figures::reliability_png(
        &out.join("figures/uncertainty_reliability.png"),
        "Reliability, test months",
        &cals,
    )?;

    Ok(())
}

/// The table, pooled and per month.
fn table(results: &[MethodSpread]) -> String {
    let mut md = String::from(
        "| method | 90 % coverage | mean width (K) | CRPS (K) | mean std (K) | RMSE (K) | Spearman(std, \\|error\\|) (blocks) | fit / predict (s) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        md.push_str(&row(
            &format!("**{}**, pooled", r.method),
            &r.pooled,
            Some((r.fit_seconds, r.predict_seconds)),
        ));
        for (month, m) in &r.months {
            md.push_str(&row(&format!("{}, {month}", r.method), m, None));
        }
    }
    md
}

/// The table (pooled and per month) and its notes.
fn markdown(
    results: &[MethodSpread],
    members: usize,
    every: usize,
    (model, snap_model): (
        amun_core::metrics::SpreadModel,
        amun_core::metrics::SpreadModel,
    ),
    test_months: usize,
) -> String {
    let mut md = table(results);
    let mut notes = format!(
        "\nAMUN: a deep ensemble of {members} members (seeds differ, one split); its spread σ is recalibrated to √({:.3}² + ({:.3}·σ)²) K, the CRPS-optimal floor and scale on the validation pixels all members held out. \
         rf-qrf, rf-prior-qrf: the demo's forests (on bilinear, on AMUN's base) with their quantile-regression-forest spread (Meinshausen 2006), not recalibrated. \
         CRPS and PIT treat each pixel as N(mean, std²); the interval is mean ± 1.645 std. \
         amun-ensemble-conserved: the mean conserved, the interval moved with it. \
         amun-snapshot: {members} snapshots of one training, {every} epoch(s) apart, recalibrated alike (√({:.3}² + ({:.3}·σ)²) K).\n",
        model.floor, model.scale, snap_model.floor, snap_model.scale
    );
    notes.push_str(&format!(
        "Spread-vs-error: Spearman correlation of the block means of std and |mean − truth| over 32×32-pixel blocks of the {} test months.\n",
        test_months
    ));
    md.push_str(&notes);
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_core::net::Solver;
    use amun_core::prior::Base;
    use amun_core::synth::{World, WorldParams};

    use crate::commands::synth::synth_scene;

    /// Every spread of the scale-up experiment is learnt from the coarse field alone and
    /// scored at the fine scale: the four methods, per month, with the ensemble's spread model
    /// recorded and the bands written as `amun downscale --uncertainty` writes them.
    #[test]
    fn scale_up_scores_every_spread_at_the_fine_scale() {
        // 40 × 40 coarse cells: one scale up, 40 × 40 px at 0.1°, as small as AMUN trains on.
        let world = World::generate(&WorldParams::new().seed(3).size(400, 400)).unwrap();
        let all: Vec<Scene> = [2, 5, 8]
            .iter()
            .map(|&m| synth_scene(&world, m, 13, 10).unwrap())
            .collect();
        let cfg = AmunConfig::tiny()
            .with_covariates(all[0].covariates().names())
            .with_base(Base::Prior(PriorParams::covariates()));
        let tc = TrainConfig {
            solver: Solver::ADAM,
            epochs: 1,
            batch_size: 8,
            ..TrainConfig::paper()
        };
        let dir = tempfile::tempdir().unwrap();
        let scored = &all[1..];
        let md = scale_up(
            &Ctx::new(0, true),
            dir.path(),
            (&all, scored),
            2,
            (cfg, tc),
            RfParams::new().seed(1).n_trees(8),
        )
        .unwrap();
        assert!(md.contains("learned one scale up"), "{md}");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("uncertainty.json")).unwrap())
                .unwrap();
        let methods = json.as_array().unwrap();
        let names: Vec<&str> = methods
            .iter()
            .map(|m| m["method"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "amun-ensemble",
                "amun-ensemble-conserved",
                "prior-covariates",
                "rf-prior-qrf"
            ]
        );
        for m in methods {
            let pooled = &m["pooled"];
            let coverage = pooled["coverage"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&coverage), "{m}");
            assert!(pooled["mean_std"].as_f64().unwrap() > 0.0, "{m}");
            assert!(pooled["crps"].as_f64().unwrap() > 0.0, "{m}");
            assert_eq!(m["months"].as_array().unwrap().len(), scored.len(), "{m}");
        }
        assert!(methods[0]["spread_model"]["floor"].as_f64().unwrap() >= 0.0);
        assert!(
            methods[2]["spread_model"].is_null(),
            "the prior is not recalibrated"
        );
        let tif = dir.path().join(format!(
            "geotiff/{}_amun-ensemble_uncertainty.tif",
            scored[0].name()
        ));
        let bands = amun_core::raster::inspect(&tif).unwrap().bands;
        let names: Vec<Option<String>> = bands.into_iter().map(|b| b.description).collect();
        assert_eq!(
            names,
            ["mean", "std", "q05", "q95"].map(|s| Some(s.to_string()))
        );
    }
}
