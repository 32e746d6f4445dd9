//! Per-pixel uncertainty end to end: `amun train --ensemble`, `amun downscale --uncertainty`
//! and `amun evaluate` on the bands it writes.

use amun_core::raster::inspect;

use super::{amun, assert_fails_with, p, stderr, TINY_MODEL};

/// A synthetic world under `t/world` (side, factor, months as `amun synth` takes them) and
/// the tiny network's configuration at `t/tiny.toml`, trained for `epochs`.
fn world_and_config(t: &std::path::Path, (size, factor, months): (&str, &str, &str), epochs: u32) {
    let o = amun(&[
        "synth",
        "--out",
        p(&t.join("world")),
        "--size",
        size,
        "--factor",
        factor,
        "--months",
        months,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(
        t.join("tiny.toml"),
        TINY_MODEL.replace("epochs = 8", &format!("epochs = {epochs}")),
    )
    .unwrap();
}

/// The warning of `downscale --uncertainty` for a spread calibrated at another scale.
const NOT_CALIBRATED_HERE: &str = "not calibrated at the target scale";
/// The warning of a per-scene method's `--uncertainty`.
const COARSE_CELLS_ONLY: &str = "does not see the variability inside a cell";

#[test]
fn ensemble_train_downscale_uncertainty_and_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    world_and_config(t, ("128", "8", "1,4,7"), 2);
    let (m1, m4, m7) = (
        t.join("world/month-01"),
        t.join("world/month-04"),
        t.join("world/month-07"),
    );
    let ens = t.join("ens");
    let o = amun(&[
        "train",
        "--config",
        p(&t.join("tiny.toml")),
        "--ensemble",
        "2",
        "--out",
        p(&ens),
        "--scenes",
        p(&m1),
        p(&m4),
    ]);
    assert!(o.status.success(), "train --ensemble: {}", stderr(&o));
    assert!(ens.join("ensemble.json").exists() && ens.join("member-2/manifest.json").exists());
    let o = amun(&[
        "train",
        "--config",
        p(&t.join("tiny.toml")),
        "--ensemble",
        "1",
        "--out",
        p(&t.join("one")),
        "--scenes",
        p(&m1),
    ]);
    assert_eq!(o.status.code(), Some(2), "one member is a usage error");
    // A snapshot ensemble from one training; --snapshots alone is a usage error.
    let snap = t.join("snap");
    let o = amun(&[
        "train",
        "--config",
        p(&t.join("tiny.toml")),
        "--ensemble",
        "2",
        "--snapshots",
        "1",
        "--out",
        p(&snap),
        "--scenes",
        p(&m1),
        p(&m4),
    ]);
    assert!(o.status.success(), "train --snapshots: {}", stderr(&o));
    let manifest = std::fs::read_to_string(snap.join("ensemble.json")).unwrap();
    assert!(manifest.contains("snapshots"), "{manifest}");
    let o = amun(&[
        "train",
        "--config",
        p(&t.join("tiny.toml")),
        "--snapshots",
        "1",
        "--out",
        p(&t.join("x")),
        "--scenes",
        p(&m1),
    ]);
    assert_eq!(o.status.code(), Some(2), "--snapshots needs --ensemble");

    // Four bands with GDAL descriptions; the interval is mean ∓ 1.645 std.
    let out = t.join("u.tif");
    let o = amun(&[
        "downscale",
        "--checkpoint",
        p(&ens),
        "--scene",
        p(&m7),
        "--out",
        p(&out),
        "--uncertainty",
        "--conserve",
    ]);
    assert!(
        o.status.success(),
        "downscale --uncertainty: {}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains(NOT_CALIBRATED_HERE),
        "calibrated at this scale: {}",
        stderr(&o)
    );
    let names: Vec<Option<String>> = inspect(&out)
        .unwrap()
        .bands
        .into_iter()
        .map(|b| b.description)
        .collect();
    let want = ["mean", "std", "q05", "q95"].map(|s| Some(s.to_string()));
    assert_eq!(names, want);
    let band = |b| amun_core::raster::read_band(&out, b).unwrap();
    let (mean, std, lo, hi) = (band(1), band(2), band(3), band(4));
    let mut checked = 0;
    for (((m, s), l), h) in mean
        .data()
        .iter()
        .zip(std.data())
        .zip(lo.data())
        .zip(hi.data())
    {
        if m.is_nan() {
            continue;
        }
        checked += 1;
        assert!(*s >= 0.0);
        assert!((m - 1.644_853_6 * s - l).abs() < 1e-3 && (m + 1.644_853_6 * s - h).abs() < 1e-3);
    }
    assert!(checked > 0);
    // The conserved mean keeps the coarse block means.
    let coarse = amun_core::raster::read_band(m7.join("lst_coarse.tif"), 1).unwrap();
    let agg = mean.block_mean(8, 0.0).unwrap();
    let worst = agg
        .data()
        .iter()
        .zip(coarse.data())
        .map(|(a, c)| (a - c).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-2, "block means off by {worst} K");

    // evaluate scores the bands and draws the calibration figures.
    let figs = t.join("figs");
    let o = amun(&[
        "evaluate",
        "--prediction",
        p(&out),
        "--reference",
        p(&m7.join("lst_reference.tif")),
        "--json",
        "--figures",
        p(&figs),
    ]);
    assert!(o.status.success(), "evaluate: {}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let u = &json["uncertainty"];
    let coverage = u["coverage"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&coverage), "{u}");
    assert!(u["crps"].as_f64().unwrap() > 0.0, "{u}");
    assert_eq!(u["nominal"], 0.9);
    let pit: u64 = u["pit"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(pit, json["reference"]["n"].as_u64().unwrap());
    for f in ["pit", "reliability", "std_error"] {
        assert!(figs.join(format!("evaluation_{f}.png")).exists(), "{f}");
    }

    // The quantile forest through `amun baseline rf --uncertainty`, scored the same way.
    let rf = t.join("rf.tif");
    let o = amun(&[
        "baseline",
        "rf",
        "--train",
        p(&m1),
        p(&m4),
        "--scene",
        p(&m7),
        "--out",
        p(&rf),
        "--trees",
        "10",
        "--uncertainty",
    ]);
    assert!(
        o.status.success(),
        "baseline rf --uncertainty: {}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains(COARSE_CELLS_ONLY),
        "trained on fine truth: {}",
        stderr(&o)
    );
    let o = amun(&[
        "evaluate",
        "--prediction",
        p(&rf),
        "--reference",
        p(&m7.join("lst_reference.tif")),
        "--json",
    ]);
    assert!(o.status.success(), "evaluate rf: {}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = json["uncertainty"]["coverage"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&c), "{json}");
    assert!(
        json["uncertainty"]["mean_std"].as_f64().unwrap() > 0.0,
        "{json}"
    );

    // A plain checkpoint has no spread to write.
    let o = amun(&[
        "downscale",
        "--checkpoint",
        p(&ens.join("member-1")),
        "--scene",
        p(&m7),
        "--out",
        p(&t.join("x.tif")),
        "--uncertainty",
    ]);
    assert_fails_with(&o, "needs an ensemble checkpoint");
}

/// An ensemble trained one scale up had its spread calibrated at the training scale: applied
/// at the target scale, `--uncertainty` writes the bands and warns that `std` is not
/// calibrated there.
#[test]
fn a_scale_up_ensemble_warns_that_its_spread_is_not_calibrated_at_the_target_scale() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // 40 × 40 coarse cells: one scale up, 40 × 40 training pixels.
    world_and_config(t, ("160", "4", "1,4"), 1);
    let (m1, m4) = (t.join("world/month-01"), t.join("world/month-04"));
    let ens = t.join("ens");
    let o = amun(&[
        "train",
        "--config",
        p(&t.join("tiny.toml")),
        "--scheme",
        "scale-up",
        "--ensemble",
        "2",
        "--out",
        p(&ens),
        "--scenes",
        p(&m1),
        p(&m4),
    ]);
    assert!(
        o.status.success(),
        "train --scheme scale-up --ensemble: {}",
        stderr(&o)
    );
    let out = t.join("u.tif");
    let o = amun(&[
        "downscale",
        "--checkpoint",
        p(&ens),
        "--scene",
        p(&m4),
        "--out",
        p(&out),
        "--uncertainty",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(NOT_CALIBRATED_HERE), "{}", stderr(&o));
    assert_eq!(inspect(&out).unwrap().bands.len(), 4);
    // --strict refuses, before writing anything.
    let strict = t.join("strict.tif");
    let o = amun(&[
        "downscale",
        "--checkpoint",
        p(&ens),
        "--scene",
        p(&m4),
        "--out",
        p(&strict),
        "--uncertainty",
        "--strict",
    ]);
    assert_fails_with(&o, NOT_CALIBRATED_HERE);
    assert!(!strict.exists());
    // A per-scene method's spread comes from the coarse cells alone, and says so.
    let o = amun(&[
        "baseline",
        "prior",
        "--scene",
        p(&m4),
        "--out",
        p(&t.join("prior.tif")),
        "--uncertainty",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(COARSE_CELLS_ONLY), "{}", stderr(&o));
}
