//! `amun demo --ensemble K`: per-pixel uncertainty of AMUN (a deep ensemble) and of the
//! random forest (quantile regression forest) on the demo's test months.

use std::path::Path;
use std::time::Instant;

use amun_core::metrics::{score_uncertainty, Predictive, UncertaintyMetrics, UncertaintyParams};
use amun_core::net::{AmunConfig, TrainConfig};
use amun_core::rf::RfParams;
use amun_core::{
    conserve, write_atomic, ConserveParams, Downscaler, EnsembleAmun, Members, Regression,
    RegressionMode, Scene, Uncertain,
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
    let t = Instant::now();
    let mut ens = EnsembleAmun::new(members, amun_cfg, tc)?;
    ens.fit(train, &ctx.bars)?;
    let fit = t.elapsed().as_secs_f64();
    let (preds, predict) = predict_all(&ens, test, ctx)?;
    let model = ens.calibration().model;
    results.push(score_method(
        out,
        "amun-ensemble",
        test,
        &preds,
        (fit, predict),
        Some(model),
    )?);
    // The conserved mean, the interval moved with it (what `--conserve` writes).
    let t = Instant::now();
    let conserved = preds
        .iter()
        .zip(test)
        .map(|(u, s)| {
            Ok(Uncertain {
                mean: conserve(&u.mean, s.coarse_lst(), &ConserveParams::default())?.0,
                std: u.std.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    results.push(score_method(
        out,
        "amun-ensemble-conserved",
        test,
        &conserved,
        (fit, predict + t.elapsed().as_secs_f64()),
        Some(model),
    )?);
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
