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

/// [`scenes`] with the world's elevation among their covariates.
fn scenes_with_elevation(world: &World, months: &[u32]) -> Vec<Scene> {
    scenes(world, months)
        .into_iter()
        .map(|x| {
            let mut cov = x.covariates().clone();
            cov.push("elevation", world.elevation().clone()).unwrap();
            Scene::new(x.name(), x.coarse_lst().clone(), cov)
                .unwrap()
                .with_reference(x.reference().unwrap().clone())
                .unwrap()
                .with_time(x.month(), x.hour())
                .unwrap()
        })
        .collect()
}

/// One epoch of Adam at 1e-3 in batches of 8 with the paper's patches: enough to exercise
/// training.
fn one_epoch() -> amun_core::net::TrainConfig {
    amun_core::net::TrainConfig {
        solver: amun_core::net::Solver::ADAM,
        learning_rate: 1e-3,
        epochs: 1,
        batch_size: 8,
        ..amun_core::net::TrainConfig::paper()
    }
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

/// The guard flags a method built to fail: one scale up, a downscaler that adds a 3 K bias
/// to bilinear interpolation is scored worse than interpolation and the prior on truth it
/// never saw; the physical prior itself is not flagged.
#[test]
fn the_guard_flags_a_method_built_to_fail() {
    use amun_core::guard::check_one_scale_up;
    use amun_core::net::Verdict;
    use amun_core::raster::{resample, Resampling};
    let world = World::generate(&WorldParams::new().seed(4).size(400, 400)).unwrap();
    let scene = scenes(&world, &[7]).remove(0);
    let biased = |s: &Scene| -> amun_core::Result<amun_core::raster::Raster> {
        Ok(resample(s.coarse_lst(), s.fine_grid(), Resampling::Bilinear)?.map(|v| v + 3.0))
    };
    let c = check_one_scale_up(&scene, biased).unwrap();
    assert_eq!(c.pixels, 40 * 40);
    assert!(
        matches!(c.verdict(), Verdict::Worse { .. }),
        "{}",
        c.summary()
    );
    let prior = PhysicalPrior::new(PriorParams::covariates());
    let c = check_one_scale_up(&scene, |s| prior.predict(s, &NoProgress)).unwrap();
    assert_eq!(c.verdict(), Verdict::Better, "{}", c.summary());
    // The truth-free check: stripes the coarse field does not hold make the block means
    // depart from it more than interpolation's; the prior's do not depart at all.
    let striped = resample(scene.coarse_lst(), scene.fine_grid(), Resampling::Bilinear).unwrap();
    let striped = amun_core::raster::Raster::from_fn(scene.fine_grid().clone(), |(r, c)| {
        striped.data()[(r, c)] + if (r / 3 + c) % 4 == 0 { 2.0 } else { -0.3 }
    });
    let d = amun_core::departure(&striped, &scene).unwrap();
    assert!(d.exceeds_bilinear(), "{d:?}");
    let d = amun_core::departure(&prior.predict(&scene, &NoProgress).unwrap(), &scene).unwrap();
    assert!(!d.exceeds_bilinear() && d.field_rmse < 1e-3, "{d:?}");
    // A report marks a departing method.
    let mut row = amun_core::score_method(
        "striped",
        std::slice::from_ref(&scene),
        std::slice::from_ref(&striped),
        &RunOptions::default(),
        0.0,
        0.0,
    )
    .unwrap();
    assert_eq!(row.marked_name(), "striped");
    row.departure = amun_core::pooled(&[amun_core::departure(&striped, &scene).unwrap()]);
    assert_eq!(row.marked_name(), "striped ⚠");
}

/// The real experiment on a region whose coarse grid (42×40 cells) is not a multiple of the
/// factor: training pairs leave out the partial blocks, every method still downscales the
/// whole region, per-scene methods carry their one-scale-up check into the report, and the
/// forest on the prior keeps the block means.
#[test]
fn real_experiment_on_a_ragged_region_with_the_prior_base() {
    let world = World::generate(&WorldParams::new().seed(6).size(420, 400)).unwrap();
    let s = scenes_with_elevation(&world, &[4, 8]);
    assert_eq!(s[0].coarse_grid().width(), 42);
    let up = s[0].coarsened().unwrap();
    assert_eq!(up.coarse_grid().shape(), (4, 4));
    assert_eq!(up.fine_grid().shape(), (40, 40));
    let mut methods: Vec<Box<dyn Downscaler>> = vec![
        Box::new(Interpolation::bilinear()),
        Box::new(PhysicalPrior::new(PriorParams::covariates())),
        Box::new(
            Regression::random_forest(rf(), RegressionMode::PerScene)
                .with_base(Base::Prior(PriorParams::covariates())),
        ),
    ];
    let out = amun_core::real(&s, &mut methods, &RunOptions::default(), &NoProgress).unwrap();
    let r = &out.report;
    for m in &r.methods[1..] {
        assert!(m.check.is_some(), "{} has no check", m.method);
        let back = m.aggregated_back.unwrap().rmse;
        assert!(back < 1e-3, "{}: aggregated back {back} K", m.method);
    }
    assert!(r.method("bilinear").unwrap().check.is_none());
    assert_eq!(out.predictions[2][0].grid(), s[0].fine_grid());
    assert!(r
        .to_markdown()
        .contains("Checked where the truth was known"));
}

/// One scale up a 40×40-cell region gives pairs of 4×4 cells, too few for the covariate
/// prior's terms: fitted there it falls back to elevation, which is not the prior a network
/// corrects at the target scale. A pair fits its base on its reference (the cells the prior
/// is fitted on at the target scale), and the network is checked against that base.
#[test]
fn pairs_one_scale_up_fit_the_prior_base_where_the_target_scale_does() {
    use amun_core::net::AmunConfig;
    use amun_core::AmunDownscaler;
    let world = World::generate(&WorldParams::new().seed(6).size(400, 400)).unwrap();
    let s = scenes_with_elevation(&world, &[4, 8]);
    let up: Vec<Scene> = s.iter().map(|x| x.coarsened().unwrap()).collect();
    assert!(s[0].prior_fit().is_none() && !s[0].is_one_scale_up());
    assert_eq!(up[0].prior_fit(), up[0].reference());
    let base = Base::Prior(PriorParams::covariates());
    let (alone, r_alone) = base.field(up[0].coarse_lst(), up[0].covariates()).unwrap();
    let (fitted, r_fitted) = base
        .field_fitted_on(up[0].prior_fit(), up[0].coarse_lst(), up[0].covariates())
        .unwrap();
    let (r_alone, r_fitted) = (r_alone.unwrap(), r_fitted.unwrap());
    assert!(r_alone.fallback.is_some(), "{}", r_alone.summary());
    assert!(r_fitted.fallback.is_none(), "{}", r_fitted.summary());
    assert_eq!(r_fitted.cells, 40 * 40);
    let truth = up[0].reference().unwrap();
    let rmse = |f: &Raster| amun_core::metrics::score(f, truth, None).unwrap().rmse;
    let (e_alone, e_fitted) = (rmse(&alone), rmse(&fitted));
    assert!(e_fitted < 0.8 * e_alone, "{e_fitted} K vs {e_alone} K");
    // Fitted at the scale where the target scale's prior is fitted: the same lapse rate.
    // (Not every coefficient: one scale up the land cover is a mode, not class fractions,
    // and terms that go together with it trade weight.)
    let target = PriorParams::covariates()
        .fit(s[0].coarse_lst(), s[0].covariates())
        .unwrap();
    let weight = |terms: &[amun_core::prior::Term], band: &str| {
        terms.iter().find(|t| t.band == band).map(|t| t.weight)
    };
    let (a, b) = (
        weight(&r_fitted.terms, "elevation").unwrap(),
        weight(target.terms(), "elevation").unwrap(),
    );
    assert!((a - b).abs() <= 0.25 * b.abs(), "lapse rate {a} vs {b} K/m");
    let cfg = AmunConfig::tiny()
        .with_covariates(s[0].covariates().names())
        .with_base(base);
    let tc = one_epoch();
    let mut amun = AmunDownscaler::new(cfg, tc);
    amun.fit(&up, &NoProgress).unwrap();
    let check = amun.checkpoint().unwrap().held_out().unwrap();
    let names: Vec<&str> = check.scores.iter().map(|m| m.method.as_str()).collect();
    assert_eq!(
        names,
        [
            "model",
            "bilinear",
            "prior-elevation",
            "prior-covariates",
            "prior-covariates (the model's base)"
        ]
    );
    assert!(
        check.scores[4].rmse_k < check.scores[3].rmse_k,
        "{}",
        check.summary()
    );
}

/// Records what an experiment trains a method on.
struct Spy {
    at_target_scale: bool,
    /// Per training scene: one scale up, has a reference, coarse cells.
    seen: Vec<(bool, bool, (usize, usize))>,
}

impl Downscaler for Spy {
    fn name(&self) -> &str {
        "spy"
    }

    fn fit(&mut self, train: &[Scene], _: &dyn Progress) -> amun_core::Result<()> {
        self.seen = train
            .iter()
            .map(|s| {
                let shape = s.coarse_grid().shape();
                (s.is_one_scale_up(), s.reference().is_some(), shape)
            })
            .collect();
        Ok(())
    }

    fn predict(&self, scene: &Scene, _: &dyn Progress) -> amun_core::Result<Raster> {
        scene.interpolated_lst(Resampling::Bilinear)
    }

    fn learns_at_target_scale(&self) -> bool {
        self.at_target_scale
    }
}

/// In the real experiment a model that learns from the coarse cells trains at the target
/// scale, on the scenes without their truth, while the others train one scale up; it is
/// checked on the coarse cells its training held out, against the prior it corrects.
#[test]
fn the_real_experiment_trains_a_coarse_residual_model_at_the_target_scale() {
    use amun_core::frequent_classes;
    use amun_core::indices::LandcoverEncoding;
    use amun_core::net::Supervision;
    let world = World::generate(&WorldParams::new().seed(6).size(200, 200)).unwrap();
    let s = scenes_with_elevation(&world, &[4, 8]);
    let (mut up, mut target) = (
        Spy {
            at_target_scale: false,
            seen: Vec::new(),
        },
        Spy {
            at_target_scale: true,
            seen: Vec::new(),
        },
    );
    let classes = frequent_classes(&s, "landcover", 0.01).unwrap();
    assert!(classes.len() >= 3, "{classes:?}");
    let cfg = AmunConfig::tiny()
        .with_covariates(s[0].covariates().names())
        .with_base(Base::Prior(PriorParams::covariates()))
        .with_landcover_encoding(LandcoverEncoding::OneHot(classes))
        .with_supervision(Supervision::CoarseResidual);
    let mut amun = AmunDownscaler::new(cfg, one_epoch());
    let mut methods: Vec<Box<dyn Downscaler + '_>> = vec![
        Box::new(&mut up),
        Box::new(&mut target),
        Box::new(&mut amun),
    ];
    let out = real(&s, &mut methods, &RunOptions::default(), &NoProgress).unwrap();
    drop(methods);
    assert_eq!(up.seen, [(true, true, (2, 2)); 2]);
    assert_eq!(target.seen, [(false, false, (20, 20)); 2]);
    let check = amun.checkpoint().unwrap().held_out().unwrap();
    assert!(check.scale.starts_with("target scale"), "{}", check.scale);
    let names: Vec<&str> = check.scores.iter().map(|m| m.method.as_str()).collect();
    assert_eq!(names, ["model", "prior-covariates (the model's base)"]);
    assert!(check.pixels > 0 && check.scores.iter().all(|m| m.rmse_k.is_finite()));
    let pred = &out.predictions[2][0];
    assert_eq!(pred.grid(), s[0].fine_grid());
    assert!(pred.data().iter().all(|v| v.is_finite()));
}

/// The check of a model trained on coarse cells, by hand: a correction whose block means are
/// the prior's coarse residual scores 0, half of it half the prior's score, and only the
/// cells wholly inside the held-out pixels count.
#[test]
fn the_coarse_residual_check_by_hand() {
    use amun_core::guard::check_coarse_residual;
    let world = World::generate(&WorldParams::new().seed(6).size(200, 200)).unwrap();
    let s = scenes_with_elevation(&world, &[4]);
    let prior = PriorParams::covariates();
    let fitted = prior.fit(s[0].coarse_lst(), s[0].covariates()).unwrap();
    let base = fitted.field(s[0].covariates()).unwrap();
    let e = fitted.coarse_residual().data().clone();
    let with = |share: f32| {
        Raster::from_fn(base.grid().clone(), |(r, c)| {
            let ev = e[(r / K, c / K)];
            base.data()[(r, c)] + if ev.is_finite() { share * ev } else { 0.0 }
        })
    };
    // Held out: the left 105 columns, so the cells of column 10 are only half inside.
    let mask = amun_core::ndarray::Array2::from_shape_fn((200, 200), |(_, c)| c < 105);
    let (mut sse, mut n) = (0.0, 0usize);
    for ((_, c), &ev) in e.indexed_iter() {
        if c < 10 && ev.is_finite() {
            sse += f64::from(ev).powi(2);
            n += 1;
        }
    }
    let by_hand = (sse / n as f64).sqrt();
    let exact =
        check_coarse_residual(&s, &[with(1.0)], std::slice::from_ref(&mask), &prior).unwrap();
    assert_eq!(exact.pixels, n * K * K);
    assert!(exact.scores[0].rmse_k < 1e-4, "{}", exact.summary());
    assert!(
        (exact.scores[1].rmse_k - by_hand).abs() < 1e-6,
        "{}",
        exact.summary()
    );
    let half =
        check_coarse_residual(&s, &[with(0.5)], std::slice::from_ref(&mask), &prior).unwrap();
    assert!(
        (half.scores[0].rmse_k - 0.5 * by_hand).abs() < 1e-4,
        "{}",
        half.summary()
    );
}

/// A region too small to train one scale up is refused with what to do instead.
#[test]
fn too_small_regions_say_to_use_the_prior() {
    let world = World::generate(&WorldParams::new().seed(6).size(150, 150)).unwrap();
    let s = scenes(&world, &[4]);
    let e = s[0].coarsened().unwrap_err().to_string();
    assert!(e.contains("amun baseline prior"), "{e}");
}

/// AMUN in stages (2 then 5 for a factor of 10), trained one scale up on a 40×40-cell
/// region: each stage is checked at its own training scale, the chain survives a save and
/// load, and it downscales the whole region.
#[test]
fn staged_amun_trains_saves_and_downscales() {
    use amun_core::net::{AmunConfig, TrainConfig};
    use amun_core::StagedAmun;
    let world = World::generate(&WorldParams::new().seed(8).size(400, 400)).unwrap();
    let s = scenes(&world, &[3, 9]);
    let up: Vec<Scene> = s.iter().map(|x| x.coarsened().unwrap()).collect();
    let cfg = AmunConfig::tiny()
        .with_covariates(s[0].covariates().names())
        .with_base(Base::Prior(PriorParams::covariates()));
    let tc = one_epoch();
    let mut staged = StagedAmun::new(vec![2, 5], cfg, tc).unwrap();
    staged.fit(&up, &NoProgress).unwrap();
    assert_eq!(staged.stages().len(), 2);
    for c in staged.stages() {
        let check = c.held_out().unwrap();
        assert!(check.pixels > 0 && check.model_rmse().unwrap().is_finite());
    }
    assert!(staged.check().is_some());
    let dir = tempfile::tempdir().unwrap();
    staged.save(dir.path()).unwrap();
    let back = StagedAmun::load(dir.path()).unwrap();
    assert_eq!(back.factors(), [2, 5]);
    let a = staged.predict(&s[0], &NoProgress).unwrap();
    let b = back.predict(&s[0], &NoProgress).unwrap();
    assert_eq!(a.grid(), s[0].fine_grid());
    assert!(a.valid_count() > 0);
    assert_eq!(a.data(), b.data(), "a saved chain predicts the same");
    // Stages of 1, an unfitted chain and a scene of another factor are refused.
    assert!(StagedAmun::new(vec![1], AmunConfig::small(), TrainConfig::paper()).is_err());
    let unfitted = StagedAmun::new(vec![2, 5], AmunConfig::small(), TrainConfig::paper());
    assert!(unfitted.unwrap().predict(&s[0], &NoProgress).is_err());
    let five = amun_core::raster::Raster::filled(s[0].fine_grid().coarsen(5).unwrap(), 280.0);
    let other = Scene::new("five", five, s[0].covariates().clone()).unwrap();
    let e = staged.predict(&other, &NoProgress).unwrap_err().to_string();
    assert!(e.contains("multiply to 10"), "{e}");
}

/// A deep ensemble trains its members on one split, calibrates its spread on the pixels they
/// all held out, saves and loads as a whole, and refuses a member trained on another split.
#[test]
fn amun_ensemble_trains_calibrates_saves_and_checks_its_members() {
    use amun_core::net::{AmunConfig, Checkpoint, Solver, TrainConfig};
    use amun_core::{AmunDownscaler, EnsembleAmun};
    let world = World::generate(&WorldParams::new().seed(8).size(160, 160)).unwrap();
    let s = scenes(&world, &[3, 9]);
    let cfg = AmunConfig::tiny().with_covariates(s[0].covariates().names());
    let tc = TrainConfig {
        solver: Solver::ADAM,
        learning_rate: 1e-3,
        epochs: 1,
        batch_size: 8,
        split_block: 32,
        val_fraction: 0.25,
        seed: 5,
        ..TrainConfig::paper()
    };
    assert!(EnsembleAmun::new(1, cfg.clone(), tc.clone()).is_err());
    let mut ens = EnsembleAmun::new(3, cfg.clone(), tc.clone()).unwrap();
    assert!(ens.predict(&s[0], &NoProgress).is_err(), "unfitted");
    ens.fit(&s, &NoProgress).unwrap();
    assert_eq!(ens.members().len(), 3);
    let cal = ens.calibration().clone();
    assert!(cal.pixels > 0, "{cal:?}");
    let m = cal.model;
    assert!(m.floor.is_finite() && m.scale.is_finite(), "{cal:?}");
    assert!(m.floor > 0.0 || m.scale > 0.0, "{cal:?}");
    assert!((0.0..=1.0).contains(&cal.raw_coverage));
    // Recalibrated on those pixels, the 90 % interval covers close to 90 % of them.
    assert!((0.75..0.98).contains(&cal.coverage), "{cal:?}");
    // Fitted at the training scenes' pixel size: it holds there, not ten times finer (where
    // a scale-up ensemble is applied).
    let fine = s[0].fine_grid();
    assert_eq!(cal.pixel_width, Some(fine.pixel_width().abs()));
    assert!(cal.fitted_at(fine));
    assert!(!cal.fitted_at(&fine.refine(10).unwrap()));
    assert!(ens.check().unwrap().pixels > 0);
    let u = ens
        .predict_with_spread(&s[1], &NoProgress)
        .unwrap()
        .unwrap();
    assert_eq!(
        u.mean.data(),
        ens.predict(&s[1], &NoProgress).unwrap().data()
    );
    assert!(u.mean.valid_count() > 0);
    for (m, sd) in u.mean.data().iter().zip(u.std.data()) {
        assert_eq!(m.is_nan(), sd.is_nan());
        assert!(sd.is_nan() || *sd >= 0.0);
    }
    assert!(
        u.std.stats().unwrap().mean > 0.0,
        "members with other seeds disagree"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ens");
    ens.save(&path).unwrap();
    let back = EnsembleAmun::load(&path).unwrap();
    assert_eq!(back.calibration(), &cal);
    let v = back
        .predict_with_spread(&s[1], &NoProgress)
        .unwrap()
        .unwrap();
    assert_eq!(u.mean.data(), v.mean.data());
    assert_eq!(u.std.data(), v.std.data());
    // A member trained on another split has another normalisation: refused, named.
    let mut stranger = AmunDownscaler::new(cfg, TrainConfig { seed: 77, ..tc });
    stranger.fit(&s, &NoProgress).unwrap();
    let member = path.join("member-2");
    std::fs::remove_dir_all(&member).unwrap();
    stranger.checkpoint().unwrap().save(&member).unwrap();
    let e = EnsembleAmun::load(&path).err().unwrap().to_string();
    assert!(e.contains("member-2") && e.contains("normalisation"), "{e}");
    assert!(Checkpoint::load(&member).is_ok());
}

/// A snapshot ensemble takes its members from one run: after the last epoch and every
/// `every` epochs before it, on that run's split.
#[test]
fn amun_snapshot_ensemble_takes_members_from_one_run() {
    use amun_core::net::{AmunConfig, Solver, TrainConfig};
    use amun_core::{EnsembleAmun, Members};
    let world = World::generate(&WorldParams::new().seed(8).size(160, 160)).unwrap();
    let s = scenes(&world, &[3, 9]);
    let cfg = AmunConfig::tiny().with_covariates(s[0].covariates().names());
    let tc = TrainConfig {
        solver: Solver::ADAM,
        learning_rate: 1e-3,
        epochs: 3,
        batch_size: 8,
        split_block: 32,
        val_fraction: 0.25,
        ..TrainConfig::paper()
    };
    let snapshots = |k, every| {
        EnsembleAmun::new(k, cfg.clone(), tc.clone())
            .unwrap()
            .with_members(Members::Snapshots { every })
    };
    assert!(snapshots(3, 0).is_err());
    let e = snapshots(3, 2)
        .unwrap()
        .fit(&s, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("need more than 4 epochs"), "{e}");
    let mut ens = snapshots(3, 1).unwrap();
    ens.fit(&s, &NoProgress).unwrap();
    let done: Vec<usize> = ens.members().iter().map(|c| c.history().len()).collect();
    assert_eq!(done, [1, 2, 3], "members in the order they were taken");
    assert!(ens.calibration().pixels > 0);
    let u = ens
        .predict_with_spread(&s[1], &NoProgress)
        .unwrap()
        .unwrap();
    assert!(u.std.stats().unwrap().mean > 0.0);
    let dir = tempfile::tempdir().unwrap();
    ens.save(&dir.path().join("snap")).unwrap();
    let back = EnsembleAmun::load(&dir.path().join("snap")).unwrap();
    assert_eq!(back.members_kind(), Members::Snapshots { every: 1 });
}
