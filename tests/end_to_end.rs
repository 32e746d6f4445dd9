//! Workspace-level tests of the pipeline through the `amun-core` facade: the experiments of
//! `docs/design.md` §5 on a small synthetic world, scene folders and reports.
//! (The `amun` binary itself is tested end to end in `tests/cli.rs`, an integration test of
//! `amun-cli`.)

#![forbid(unsafe_code)]

use amun_core::prelude::*;
use amun_core::rf::{RfParams, RidgeParams};
use amun_core::synth::{World, WorldParams};
use amun_core::{paper_style, real, scale_transfer, Report, RunOptions};

const K: usize = 10;

fn scenes(world: &World, months: &[u32]) -> Vec<Scene> {
    months
        .iter()
        .map(|&m| {
            Scene::new(
                format!("month-{m:02}"),
                world.coarse_lst(m, 13, K).unwrap(),
                world.covariates(m).unwrap(),
            )
            .unwrap()
            .with_reference(world.lst(m, 13).unwrap())
            .unwrap()
            .with_time(Some(m), Some(13))
            .unwrap()
        })
        .collect()
}

fn rf() -> RfParams {
    RfParams::new().n_trees(20).seed(1).max_samples(20_000)
}

#[test]
fn paper_style_rf_beats_bilinear_and_reports_round_trip() {
    let world = World::generate(&WorldParams::new().seed(5).size(160, 160)).unwrap();
    let (train, test) = (scenes(&world, &[1, 6]), scenes(&world, &[4, 9]));
    let mut methods: Vec<Box<dyn Downscaler>> = vec![
        Box::new(Interpolation::bilinear()),
        Box::new(Regression::random_forest(rf(), RegressionMode::Supervised)),
    ];
    let out = paper_style(
        &train,
        &test,
        &mut methods,
        &RunOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let r = &out.report;
    let bl = r.method("bilinear").unwrap().fine.unwrap().rmse;
    let rf = r.method("rf").unwrap().fine.unwrap().rmse;
    // The synthetic world's fine structure is learnable from the covariates (amun-synth's
    // learnability test); even a small supervised forest (20 trees, 20 000 samples) must do
    // clearly better than interpolation (measured: 1.73 K vs 2.10 K).
    assert!(rf < 0.9 * bl, "rf {rf:.3} K vs bilinear {bl:.3} K");
    assert_eq!(out.predictions.len(), 2);
    assert_eq!(out.predictions[1].len(), 2);
    assert_eq!(r.methods[0].scenes.len(), 2);

    // The report survives JSON and says what it is in Markdown.
    let dir = tempfile::tempdir().unwrap();
    r.save(dir.path()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, r);
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("| rf |") && md.contains("RMSE"), "{md}");
}

#[test]
fn scale_transfer_and_real_experiments_with_conservation() {
    let world = World::generate(&WorldParams::new().seed(9).size(200, 200)).unwrap();
    let s = scenes(&world, &[3, 7]);
    let opts = RunOptions {
        conserve: Some(ConserveParams::default()),
        ..RunOptions::default()
    };
    let mut methods: Vec<Box<dyn Downscaler>> = vec![
        Box::new(Interpolation::bilinear()),
        Box::new(Regression::ridge(
            RidgeParams::new(),
            RegressionMode::Supervised,
        )),
    ];
    let st = scale_transfer(&s, &s, &mut methods, &opts, &NoProgress).unwrap();
    for m in &st.report.methods {
        // Conservation: every block mean equals the coarse input (`docs/design.md` §4.7, to
        // 1e-3 K).
        assert!(
            m.aggregated_back.unwrap().rmse < 1e-3,
            "{}: {:?}",
            m.method,
            m.aggregated_back
        );
        assert!(m.fine.unwrap().rmse.is_finite());
    }
    assert!(st.report.train_scenes[0].contains("one scale up"));

    // The real experiment needs no fine reference.
    let no_ref: Vec<Scene> = s
        .iter()
        .map(|x| Scene::new(x.name(), x.coarse_lst().clone(), x.covariates().clone()).unwrap())
        .collect();
    let rl = real(&no_ref, &mut methods, &opts, &NoProgress).unwrap();
    assert!(rl
        .report
        .methods
        .iter()
        .all(|m| m.fine.is_none() && m.aggregated_back.is_some()));
}

#[test]
fn scene_folders_round_trip() {
    let world = World::generate(&WorldParams::new().seed(2).size(80, 80)).unwrap();
    let scene = scenes(&world, &[5]).remove(0);
    let dir = tempfile::tempdir().unwrap();
    scene.save(dir.path()).unwrap();
    let back = Scene::load(dir.path()).unwrap();
    assert_eq!(back.name(), scene.name());
    assert_eq!(
        (back.month(), back.hour(), back.factor()),
        (Some(5), Some(13), K)
    );
    assert_eq!(back.covariates().names(), scene.covariates().names());
    assert_eq!(
        back.covariates().band("landcover").unwrap().kind(),
        BandKind::Categorical
    );
    assert_eq!(back.coarse_lst().data(), scene.coarse_lst().data());
    assert_eq!(
        back.reference().unwrap().data(),
        scene.reference().unwrap().data()
    );
    // A scene whose grids do not nest is refused, naming the problem.
    // A coarse LST that covers less than the covariates (a window of the coarse grid).
    let wrong = scene.coarse_lst().window(1, 1, 6, 6).unwrap();
    let e = Scene::new("x", wrong, scene.covariates().clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not refine"), "{e}");
}
