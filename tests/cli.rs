//! The `amun` binary end to end (an integration test of `amun-cli`, kept here with the
//! workspace's other end-to-end tests), and one test per bad input: each must end in one clear line
//! on stderr and a non-zero exit code, never a panic or a backtrace.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use amun_core::metrics::score;
use amun_core::raster::{
    read_band, resample, write_raster, Crs, GeoTransform, Grid, Raster, Resampling, WriteOptions,
};
use amun_core::synth::{World, WorldParams};

/// Time series and Slurm job arrays (`amun prepare --series`).
#[path = "cli/series.rs"]
mod series;

/// Per-pixel uncertainty (`--ensemble`, `--uncertainty`).
#[path = "cli/uncertainty.rs"]
mod uncertainty;

fn amun(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amun"))
        .args(args)
        .arg("-q")
        .output()
        .expect("the amun binary runs")
}

/// The `amun` binary with these arguments (no `-q`), to be adjusted and run.
fn amun_command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_amun"));
    c.args(args);
    c
}

/// A file of the repository's `fixtures/` folder.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

/// Asserts that a file amun wrote has mode 0o666 less this process's umask, as GDAL's files
/// do (Linux: the umask is read from /proc).
fn assert_umask_mode(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return;
    };
    let Some(umask) = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
    else {
        return;
    };
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode,
        0o666 & !umask,
        "{}: mode {mode:o} with umask {umask:o}",
        path.display()
    );
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Asserts a failed run: exit code 1 and one `amun: error:` line containing `needle`.
fn assert_fails_with(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(err.starts_with("amun: error:"), "{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

fn write(path: &Path, r: &Raster) {
    write_raster(path, r, &WriteOptions::default()).expect("fixture written");
}

/// A small world written as separate GeoTIFFs per input, as a user would have them.
struct Inputs {
    dir: PathBuf,
}

const SIZE: usize = 128;
const K: usize = 8;
const HOUR: u32 = 13;

impl Inputs {
    fn new(dir: &Path, world: &World, month: u32) -> Inputs {
        let d = dir.join(format!("inputs-{month:02}"));
        std::fs::create_dir_all(&d).unwrap();
        let cov = world.covariates(month).unwrap();
        for name in cov.names() {
            write(&d.join(format!("{name}.tif")), cov.band(name).unwrap());
        }
        write(
            &d.join("lst.tif"),
            &world.coarse_lst(month, HOUR, K).unwrap(),
        );
        write(&d.join("truth.tif"), &world.lst(month, HOUR).unwrap());
        Inputs { dir: d }
    }

    fn f(&self, name: &str) -> String {
        p(&self.dir.join(format!("{name}.tif"))).to_string()
    }

    fn prepare(&self, out: &Path, month: u32) -> Output {
        let m = month.to_string();
        amun(&[
            "prepare",
            "--lst",
            &self.f("lst"),
            "--factor",
            &K.to_string(),
            "--month",
            &m,
            "--ndvi",
            &self.f("ndvi"),
            "--landcover",
            &self.f("landcover"),
            "--reflectance",
            &self.f("reflectance"),
            "--mndwi",
            &self.f("mndwi"),
            "--ndbi",
            &self.f("ndbi"),
            "--slope",
            &self.f("slope"),
            "--aspect",
            &self.f("aspect"),
            "--reference",
            &self.f("truth"),
            "--out",
            p(out),
        ])
    }
}

const TINY_MODEL: &str = r#"
[model]
covariates = ["ndvi", "landcover", "reflectance", "mndwi", "ndbi", "slope", "aspect"]
channels = 8
rdb_growth = 8
rdb_count = 2
rdb_layers = 2
unet_widths = [8, 16]
unet_bridge = 32

[train]
solver = { kind = "adam", beta1 = 0.9, beta2 = 0.999, eps = 1e-8 }
learning_rate = 0.003
lr_drop_every = 0
lr_schedule = "step"
warmup_epochs = 0.0
augment = false
keep_best = false
epochs = 8
batch_size = 16
patch = 32
stride = 16
split_block = 64
seed = 3
"#;

#[test]
fn synth_prepare_train_downscale_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let world = World::generate(&WorldParams::new().seed(7).size(SIZE, SIZE)).unwrap();

    // synth writes scene folders that load back.
    let o = amun(&[
        "synth",
        "--out",
        p(&t.join("world")),
        "--size",
        "80",
        "--factor",
        "8",
        "--months",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(t.join("world/month-02/scene.json").exists());
    assert!(t.join("world/month-02/stations.csv").exists());

    // prepare: training months 1, 4, 10 and test month 7 from separate GeoTIFFs.
    for m in [1, 4, 10, 7] {
        let o = Inputs::new(t, &world, m).prepare(&t.join(format!("scene-{m:02}")), m);
        assert!(o.status.success(), "prepare {m}: {}", stderr(&o));
    }
    let info = amun(&["info", p(&t.join("scene-07/covariates.tif")), "--json"]);
    assert!(info.status.success(), "{}", stderr(&info));
    let json: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(json["width"], SIZE);
    assert_eq!(json["bands"].as_array().map(Vec::len), Some(7), "{json}");
    std::fs::write(t.join("tiny.toml"), TINY_MODEL).unwrap();

    // train, then refuse to overwrite without --force.
    let scenes: Vec<String> = [1, 4, 10]
        .iter()
        .map(|m| p(&t.join(format!("scene-{m:02}"))).to_string())
        .collect();
    let (toml, model) = (t.join("tiny.toml"), t.join("model"));
    let mut args = vec![
        "train",
        "--config",
        p(&toml),
        "--out",
        p(&model),
        "--scenes",
    ];
    args.extend(scenes.iter().map(String::as_str));
    let o = amun(&args);
    assert!(o.status.success(), "train: {}", stderr(&o));
    assert!(t.join("model/training.png").exists());
    assert_fails_with(&amun(&args), "already exists");

    // Issue 19: a folder that a killed save left without checkpoint.json does not block a
    // rerun; a complete checkpoint still needs --force (above).
    let partial = t.join("model-partial");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("model.safetensors"), "cut short").unwrap();
    let mut again = vec![
        "train",
        "--config",
        p(&toml),
        "--epochs",
        "1",
        "--out",
        p(&partial),
        "--scenes",
    ];
    again.extend(scenes.iter().map(String::as_str));
    let o = amun(&again);
    assert!(
        o.status.success(),
        "train into a partial folder: {}",
        stderr(&o)
    );
    assert!(partial.join("manifest.json").exists());

    // Issue 20: a resume keeps the checkpoint's settings (the config's 0.003 and batch 16,
    // not the command line's defaults) and says which flags change them.
    let resumed = t.join("model-resumed");
    let mut resume = vec![
        "train",
        "--resume",
        p(&model),
        "--epochs",
        "9",
        "--out",
        p(&resumed),
        "--scenes",
    ];
    resume.extend(scenes.iter().map(String::as_str));
    let o = amun_command(&resume).output().unwrap();
    assert!(o.status.success(), "resume: {}", stderr(&o));
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(
        said.contains("the checkpoint's") && said.contains("epochs 8 → 9"),
        "{said}"
    );
    // stderr is a pipe here, as in a batch job: a log line per epoch, and one at the end.
    assert!(
        said.contains("train amun: ")
            && said.contains("— epoch 9: train")
            && said.contains(", lr 3.0e-3, ")
            && said.contains("— done"),
        "{said}"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(resumed.join("checkpoint.json")).unwrap()).unwrap();
    let saved = &meta["train_config"];
    assert_eq!(saved["learning_rate"], 0.003, "{saved}");
    assert_eq!(saved["batch_size"], 16, "{saved}");
    assert_eq!(saved["epochs"], 9, "{saved}");
    assert_eq!(meta["history"].as_array().map(Vec::len), Some(9), "{meta}");

    // downscale with conservation, and evaluate with JSON output.
    let fine = t.join("amun.tif");
    let o = amun(&[
        "downscale",
        "--checkpoint",
        p(&t.join("model")),
        "--scene",
        p(&t.join("scene-07")),
        "--out",
        p(&fine),
        "--tile",
        "64",
        "--conserve",
    ]);
    assert!(o.status.success(), "downscale: {}", stderr(&o));
    let truth = t.join("inputs-07/truth.tif");
    let lst = t.join("inputs-07/lst.tif");
    let o = amun(&[
        "evaluate",
        "--prediction",
        p(&fine),
        "--reference",
        p(&truth),
        "--coarse",
        p(&lst),
        "--figures",
        p(&t.join("figs")),
        "--json",
    ]);
    assert!(o.status.success(), "evaluate: {}", stderr(&o));
    let ev: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let amun_rmse = ev["reference"]["rmse"].as_f64().unwrap();
    // Conservation makes the aggregated prediction equal the coarse input (to 1e-3 K).
    assert!(
        ev["aggregated_back"]["rmse"].as_f64().unwrap() < 1e-3,
        "{ev}"
    );
    assert!(t.join("figs/evaluation_maps.png").exists());
    assert!(t.join("figs/evaluation_scatter.png").exists());

    // The written GeoTIFF is on the fine grid and beats bilinear interpolation of the
    // coarse input on the unseen month.
    let pred = read_band(&fine, 1).unwrap();
    let truth = read_band(&truth, 1).unwrap();
    let coarse = read_band(&lst, 1).unwrap();
    let bilinear = resample(&coarse, truth.grid(), Resampling::Bilinear).unwrap();
    let bl = score(&bilinear, &truth, None).unwrap().rmse;
    let am = score(&pred, &truth, None).unwrap().rmse;
    assert!((am - amun_rmse).abs() < 1e-6);
    assert!(am < bl, "AMUN RMSE {am:.3} K vs bilinear {bl:.3} K");

    // A scene without one of the checkpoint's covariates is refused with both lists named.
    let partial = t.join("scene-partial");
    let inp = Inputs {
        dir: t.join("inputs-07"),
    };
    let o = amun(&[
        "prepare",
        "--lst",
        &inp.f("lst"),
        "--factor",
        "8",
        "--ndvi",
        &inp.f("ndvi"),
        "--slope",
        &inp.f("slope"),
        "--out",
        p(&partial),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = amun(&[
        "downscale",
        "--checkpoint",
        p(&t.join("model")),
        "--scene",
        p(&partial),
        "--out",
        p(&t.join("x.tif")),
    ]);
    assert_fails_with(&o, "was trained on covariates");
    assert!(!t.join("x.tif").exists());

    // Issue 19: checkpoint files are readable by others as the umask allows (tempfile
    // created them 0600), and a user error stays one line with RUST_BACKTRACE=1 (a shape
    // mismatch printed candle's backtrace of several KB).
    for f in ["checkpoint.json", "model.safetensors"] {
        assert_umask_mode(&model.join(f));
    }
    let bad = t.join("model-bad");
    std::fs::create_dir_all(&bad).unwrap();
    for entry in std::fs::read_dir(&model).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), bad.join(entry.file_name())).unwrap();
    }
    // Edited by hand as a checkpoint from before manifests: the content checks speak.
    std::fs::remove_file(bad.join("manifest.json")).unwrap();
    let meta = std::fs::read_to_string(bad.join("checkpoint.json")).unwrap();
    let edited = meta.replacen("\"channels\": 8", "\"channels\": 12", 1);
    assert_ne!(meta, edited, "checkpoint.json names the channels");
    std::fs::write(bad.join("checkpoint.json"), edited).unwrap();
    let o = amun_command(&[
        "downscale",
        "--checkpoint",
        p(&bad),
        "--scene",
        p(&t.join("scene-07")),
        "--out",
        p(&t.join("y.tif")),
        "-q",
    ])
    .env("RUST_BACKTRACE", "1")
    .output()
    .unwrap();
    assert_fails_with(&o, "shape");
    assert!(stderr(&o).len() < 600, "{}", stderr(&o));

    // A covariate with no valid pixel gives an error naming it, not an all-nodata GeoTIFF
    // (issue 19, defect 4).
    let scene = amun_core::Scene::load(&t.join("scene-07")).unwrap();
    let mut blank = amun_core::raster::Stack::new(scene.fine_grid().clone());
    for (name, band) in scene.covariates().iter() {
        let band = if name == "ndvi" {
            band.map(|_| f32::NAN)
        } else {
            band.clone()
        };
        blank.push(name, band).unwrap();
    }
    amun_core::Scene::new("blank ndvi", scene.coarse_lst().clone(), blank)
        .unwrap()
        .save(&t.join("scene-blank"))
        .unwrap();
    let o = amun(&[
        "downscale",
        "--checkpoint",
        p(&t.join("model")),
        "--scene",
        p(&t.join("scene-blank")),
        "--out",
        p(&t.join("blank.tif")),
    ]);
    assert_fails_with(&o, "covariate `ndvi` has no valid pixel");
    assert!(!t.join("blank.tif").exists());

    // The default (memory-budget) tiling and a forced one give the same GeoTIFF pixels.
    let whole = t.join("whole.tif");
    let o = amun(&[
        "downscale",
        "--checkpoint",
        p(&t.join("model")),
        "--scene",
        p(&t.join("scene-07")),
        "--out",
        p(&whole),
        "--max-memory",
        "512MiB",
    ]);
    assert!(o.status.success(), "downscale: {}", stderr(&o));
    let tiled = t.join("tiled.tif");
    let o = amun(&[
        "downscale",
        "--checkpoint",
        p(&t.join("model")),
        "--scene",
        p(&t.join("scene-07")),
        "--out",
        p(&tiled),
        "--tile",
        "48",
    ]);
    assert!(o.status.success(), "downscale: {}", stderr(&o));
    let bits = |f: &Path| -> Vec<u32> {
        let r = read_band(f, 1).unwrap();
        r.data().iter().map(|v| v.to_bits()).collect()
    };
    assert_eq!(bits(&whole), bits(&tiled));
}

/// `amun downscale` checks that it can write its output before it loads anything: a
/// missing folder, a file where the folder should be, or a folder that refuses files is
/// reported (here with a checkpoint that does not exist either, which would be reported
/// first otherwise).
#[test]
fn downscale_fails_early_on_an_unwritable_output() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("file"), "not a folder").unwrap();
    let mut outs = vec![
        (
            t.join("no/such/folder/out.tif"),
            "is not an existing folder",
        ),
        (t.join("file/out.tif"), "is not an existing folder"),
    ];
    if cfg!(target_os = "linux") {
        // Not even root may create files in /proc.
        outs.push((
            PathBuf::from("/proc/amun-out.tif"),
            "cannot create a file in /proc",
        ));
    }
    for (out, needle) in outs {
        let o = amun(&[
            "downscale",
            "--checkpoint",
            p(&t.join("missing-checkpoint")),
            "--scene",
            p(&t.join("missing-scene")),
            "--out",
            p(&out),
        ]);
        assert_fails_with(&o, needle);
    }
}

/// The main job at toy size: every method scored on every test month, every output written,
/// and a second run into the same folder refused without `--force`.
#[test]
fn demo_writes_report_geotiffs_and_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let args = [
        "demo",
        "--experiment",
        "paper",
        "--size",
        "80",
        "--epochs",
        "1",
        "--out",
        p(&out),
    ];
    let o = amun(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let methods = report["methods"].as_array().expect("methods");
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "bilinear",
            "prior-covariates",
            "ridge",
            "rf",
            "rf-prior",
            "amun",
            "amun-conserved",
            "oracle-blind-noise",
            "oracle-blind-noise-moisture"
        ]
    );
    for m in methods {
        let rmse = m["fine"]["rmse"].as_f64().expect("pooled RMSE");
        assert!(rmse.is_finite() && rmse > 0.0 && rmse < 20.0, "{m}");
        assert_eq!(m["scenes"].as_array().unwrap().len(), 4, "{m}");
    }
    let back = |i: usize| methods[i]["aggregated_back"]["rmse"].as_f64().unwrap();
    assert!(
        back(6) < 1e-3,
        "conserved AMUN keeps the block means: {}",
        back(6)
    );
    // The prior and the oracles keep the block means, and blind only to noise none of the
    // methods reaches the floor.
    assert!(
        back(1) < 1e-3 && back(7) < 1e-3 && back(8) < 1e-3,
        "{} {} {}",
        back(1),
        back(7),
        back(8)
    );
    let fine = |i: usize| methods[i]["fine"]["rmse"].as_f64().unwrap();
    assert!((0..7).all(|i| fine(7) < fine(i)), "{methods:?}");
    for f in [
        "report.md",
        "geotiff/month-05_reference.tif",
        "geotiff/month-05_coarse.tif",
        "geotiff/month-05_amun.tif",
        "geotiff/month-05_amun-conserved.tif",
        "figures/month-08_rf_maps.png",
        "figures/month-11_amun_scatter.png",
        "figures/amun_training.png",
        "amun-checkpoint/checkpoint.json",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let again = amun(&args);
    assert_fails_with(&again, "--force");
}

fn geographic(west: f64, north: f64, res: f64, n: usize) -> Grid {
    Grid::geographic(west, north, res, n, n).unwrap()
}

#[test]
fn missing_file() {
    assert_fails_with(&amun(&["info", "/nonexistent/lst.tif"]), "no such file");
}

#[test]
fn not_a_geotiff() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("notes.tif");
    std::fs::write(&f, "this is not a TIFF").unwrap();
    assert_fails_with(&amun(&["info", p(&f)]), "not a readable TIFF");
}

#[test]
fn grids_that_do_not_nest() {
    let tmp = tempfile::tempdir().unwrap();
    let fine = tmp.path().join("fine.tif");
    let coarse = tmp.path().join("coarse.tif");
    write(
        &fine,
        &Raster::filled(geographic(10.0, 50.0, 0.01, 40), 290.0),
    );
    // 0.03° does not divide into whole 0.01° pixels from a shifted origin.
    write(
        &coarse,
        &Raster::filled(geographic(10.005, 50.0, 0.03, 4), 290.0),
    );
    let o = amun(&["evaluate", "--prediction", p(&fine), "--coarse", p(&coarse)]);
    assert_fails_with(&o, "aggregating");
}

/// Runs `amun prepare` on an LST and an NDVI raster written to a temporary folder.
fn prepare_lst_ndvi(lst: &Raster, ndvi: &Raster) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let (lst_path, ndvi_path) = (tmp.path().join("lst.tif"), tmp.path().join("ndvi.tif"));
    write(&lst_path, lst);
    write(&ndvi_path, ndvi);
    amun(&[
        "prepare",
        "--lst",
        p(&lst_path),
        "--ndvi",
        p(&ndvi_path),
        "--out",
        p(&tmp.path().join("s")),
    ])
}

#[test]
fn crs_mismatch_without_proj() {
    let utm = Grid::new(
        40,
        40,
        GeoTransform::new(500_000.0, 5_540_000.0, 1000.0, -1000.0).unwrap(),
        Some(Crs::Epsg(32632)),
    )
    .unwrap();
    let o = prepare_lst_ndvi(
        &Raster::filled(geographic(10.0, 50.0, 0.1, 4), 290.0),
        &Raster::filled(utm, 0.5),
    );
    if cfg!(feature = "proj") {
        return;
    }
    assert_fails_with(&o, "differs from the LST's");
}

#[test]
fn empty_overlap() {
    let o = prepare_lst_ndvi(
        &Raster::filled(geographic(10.0, 50.0, 0.1, 4), 290.0),
        &Raster::filled(geographic(30.0, 10.0, 0.01, 40), 0.5),
    );
    assert_fails_with(&o, "does not overlap");
}

#[test]
fn all_nodata() {
    let o = prepare_lst_ndvi(
        &Raster::filled(geographic(10.0, 50.0, 0.1, 4), f32::NAN).with_nodata(Some(-9999.0)),
        &Raster::filled(geographic(10.0, 50.0, 0.01, 40), 0.5),
    );
    assert_fails_with(&o, "every pixel is nodata");
}

#[test]
fn usage_errors_exit_2() {
    let o = amun(&["downscale", "--scene"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn zero_factor_is_a_usage_error() {
    // It used to reach a division by zero inside `synth` (a panic, reported as a bug).
    for cmd in [
        &["synth", "--factor", "0", "--out", "unused"][..],
        &[
            "prepare",
            "--lst",
            "unused.tif",
            "--out",
            "unused",
            "--factor",
            "0",
        ][..],
    ] {
        let o = amun(cmd);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("--factor"), "{cmd:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("internal error"), "{}", stderr(&o));
    }
}

/// The real-data experiment refuses a region too small to train one scale up before it
/// starts, saying the size it needs.
#[test]
fn a_real_experiment_too_small_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = amun(&[
        "demo",
        "--experiment",
        "real",
        "--size",
        "320",
        "--out",
        p(&out),
    ]);
    assert_fails_with(&o, "at least 400 px");
    assert!(!out.join("real-default-full").exists());
}

// ---- issue 19: a closed pipe, odd arguments, hostile and extreme files ----------------------

#[test]
fn a_closed_pipe_ends_quietly() {
    // `amun info f.tif | head -1`: the reader is gone before amun writes.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = amun_command(&["info", p(&fixture("raster/dem.tif"))])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}

#[test]
fn month_and_hour_out_of_range_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (lst, ndvi) = (tmp.path().join("lst.tif"), tmp.path().join("ndvi.tif"));
    write(&lst, &Raster::filled(geographic(10.0, 50.0, 0.1, 4), 290.0));
    write(
        &ndvi,
        &Raster::filled(geographic(10.0, 50.0, 0.01, 40), 0.5),
    );
    for (flag, value) in [("--month", "13"), ("--hour", "99")] {
        let out = tmp.path().join(format!("s{flag}"));
        let o = amun(&[
            "prepare",
            "--lst",
            p(&lst),
            "--ndvi",
            p(&ndvi),
            flag,
            value,
            "--out",
            p(&out),
        ]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {}", stderr(&o));
        assert!(stderr(&o).contains(flag), "{}", stderr(&o));
        assert!(!out.join("scene.json").exists());
    }
}

#[test]
fn scene_files_get_the_umask_mode() {
    // scene.json and stations.csv were created 0600 (tempfile's default).
    let tmp = tempfile::tempdir().unwrap();
    let (lst, ndvi, st) = (
        tmp.path().join("lst.tif"),
        tmp.path().join("ndvi.tif"),
        tmp.path().join("st.csv"),
    );
    write(&lst, &Raster::filled(geographic(10.0, 50.0, 0.1, 4), 290.0));
    write(
        &ndvi,
        &Raster::filled(geographic(10.0, 50.0, 0.01, 40), 0.5),
    );
    std::fs::write(&st, "id,lon,lat,value\na,10.15,49.85,291.0\n").unwrap();
    let out = tmp.path().join("s");
    let o = amun(&[
        "prepare",
        "--lst",
        p(&lst),
        "--ndvi",
        p(&ndvi),
        "--stations",
        p(&st),
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "scene.json",
        "stations.csv",
        "covariates.tif",
        "lst_coarse.tif",
    ] {
        assert_umask_mode(&out.join(f));
    }
}

#[test]
fn resampled_covariates_are_said_and_recorded() {
    // NDVI on 0.03° pixels shifted by half a fine pixel: they do not nest in the 0.01° grid.
    let tmp = tempfile::tempdir().unwrap();
    let (lst, ndvi) = (tmp.path().join("lst.tif"), tmp.path().join("ndvi.tif"));
    write(&lst, &Raster::filled(geographic(10.0, 50.0, 0.1, 4), 290.0));
    write(
        &ndvi,
        &Raster::from_fn(geographic(9.995, 50.005, 0.03, 15), |(r, c)| {
            (r * 15 + c) as f32 / 225.0
        }),
    );
    let out = tmp.path().join("s");
    let o = amun_command(&[
        "prepare",
        "--lst",
        p(&lst),
        "--ndvi",
        p(&ndvi),
        "--out",
        p(&out),
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("ndvi") && err.contains("Bilinear") && err.contains("do not nest"),
        "{err}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("scene.json")).unwrap()).unwrap();
    let r = &json["resampled"][0];
    assert_eq!(
        (&r["input"], &r["method"], &r["nested"]),
        (
            &serde_json::json!("ndvi"),
            &serde_json::json!("Bilinear"),
            &serde_json::json!(false)
        ),
        "{json}"
    );
}

#[test]
fn a_multi_band_reference_needs_band() {
    let tmp = tempfile::tempdir().unwrap();
    let g = geographic(10.0, 50.0, 0.01, 20);
    let pred = Raster::from_fn(g.clone(), |(r, c)| 280.0 + (r + c) as f32 * 0.1);
    let (pf, rf) = (tmp.path().join("pred.tif"), tmp.path().join("ref.tif"));
    write(&pf, &pred);
    let mut stack = amun_core::raster::Stack::new(g.clone());
    stack.push("other", Raster::filled(g, 300.0)).unwrap();
    stack.push("lst", pred).unwrap();
    amun_core::raster::write(&rf, &stack, &WriteOptions::default()).unwrap();
    let args = [
        "evaluate",
        "--prediction",
        p(&pf),
        "--reference",
        p(&rf),
        "--json",
    ];
    assert_fails_with(&amun(&args), "has 2 bands");
    let o = amun(&[&args[..], &["--band", "2"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let ev: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ev["reference"]["rmse"].as_f64(), Some(0.0), "{ev}");
}

#[test]
fn info_statistics_are_exact_and_nan_nodata_is_gdals() {
    // Exact references: fixtures/raster/hostile/stats.csv (Python, exact fractions).
    let refs = std::fs::read_to_string(fixture("raster/hostile/stats.csv")).unwrap();
    for line in refs.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let o = amun(&[
            "info",
            "--json",
            p(&fixture(&format!("raster/hostile/{}", f[0]))),
        ]);
        assert!(o.status.success(), "{line}: {}", stderr(&o));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let b = &j["bands"][0];
        for (key, col) in [("min", 2), ("max", 3), ("mean", 4), ("std_dev", 5)] {
            let want: f64 = f[col].parse().unwrap();
            let got = b[key].as_f64().unwrap_or(f64::NAN);
            assert!(
                (got - want).abs() <= 1e-13 * want.abs(),
                "{line}: {key} {b}"
            );
        }
    }
    // `gdalinfo -json` writes a NaN nodata as "NaN" (null would mean "no nodata").
    let o = amun(&[
        "info",
        "--json",
        p(&fixture("raster/hostile/nan_nodata.tif")),
    ]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["bands"][0]["nodata"], "NaN", "{j}");
}

#[test]
fn a_directory_or_a_damaged_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    assert_fails_with(&amun(&["info", p(tmp.path())]), "is a directory");
    assert_fails_with(
        &amun(&[
            "info",
            p(&fixture("raster/hostile/nodata_count_corrupt.tif")),
        ]),
        "GDAL_NODATA",
    );
    assert_fails_with(
        &amun(&[
            "info",
            p(&fixture("raster/hostile/huge_claim_i16_nodata.tif")),
        ]),
        "strip 0",
    );
}

#[test]
fn unusable_devices_are_one_line_errors() {
    // GPU 999 exists nowhere: without the `cuda` feature the error says how to rebuild, with it
    // CUDA's own error follows. Either way it names the device and comes before any input is
    // read (the scene and checkpoint folders here are empty).
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for cmd in [
        &["train", "--scenes", p(t), "--out", p(&t.join("m"))][..],
        &[
            "downscale",
            "--checkpoint",
            p(t),
            "--scene",
            p(t),
            "--out",
            p(&t.join("x.tif")),
        ][..],
    ] {
        let o = amun(&[cmd, &["--device", "cuda:999"][..]].concat());
        assert_fails_with(&o, "device cuda:999 unavailable: ");
        let err = stderr(&o);
        if err.contains("built without") {
            assert!(
                err.contains("rebuild with `cargo build --release -p amun-cli --features cuda`"),
                "{err}"
            );
        }
    }
    // A name that is no device is a usage error naming the flag.
    let o = amun(&[
        "downscale",
        "--checkpoint",
        "c",
        "--scene",
        "s",
        "--out",
        "o.tif",
        "--device",
        "gpu0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--device"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`cpu`, `cuda` or `cuda:N`"),
        "{}",
        stderr(&o)
    );
}

/// Issue 22: `amun tune` beside a random search of the same budget draws both searches'
/// best-so-far curves and writes its best trial as a `[train]` table that `amun train
/// --config` accepts.
#[test]
fn tune_against_random_search_writes_the_figure_and_a_usable_config() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let o = amun(&[
        "synth",
        "--out",
        p(&t.join("w")),
        "--size",
        "80",
        "--factor",
        "8",
        "--months",
        "1,4",
        "--stations",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (s1, s2) = (t.join("w/month-01"), t.join("w/month-04"));
    let scenes = [p(&s1), p(&s2)];
    let out = t.join("tune");
    // Without -q: the trials' lines are checked.
    let o = amun_command(&[
        "tune",
        "--scenes",
        scenes[0],
        scenes[1],
        "--out",
        p(&out),
        "--trials",
        "3",
        "--initial",
        "2",
        "--max-epochs",
        "1",
        "--random-baseline",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "tune: {}", stderr(&o));
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(
        said.contains("Bayesian trial 3/3") && said.contains("random trial 3/3"),
        "{said}"
    );
    assert!(said.contains("best after 3 trials: Bayesian"), "{said}");
    assert!(out.join("tune_best_so_far.png").exists());
    for hist in ["history.json", "random/history.json"] {
        let h: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(hist)).unwrap()).unwrap();
        assert_eq!(h["trials"].as_array().map(Vec::len), Some(3), "{hist}: {h}");
    }
    // The best trial trains again from its file.
    let best = std::fs::read_to_string(out.join("best.toml")).unwrap();
    assert!(
        best.contains("[train]") && best.contains("learning_rate"),
        "{best}"
    );
    let o = amun(&[
        "train",
        "--config",
        p(&out.join("best.toml")),
        "--epochs",
        "1",
        "--out",
        p(&t.join("model")),
        "--scenes",
        scenes[0],
        scenes[1],
    ]);
    assert!(o.status.success(), "train from best.toml: {}", stderr(&o));
    // --protocol does not mix with a config file's [train] table.
    assert_fails_with(
        &amun(&[
            "train",
            "--config",
            p(&out.join("best.toml")),
            "--protocol",
            "paper",
            "--out",
            p(&t.join("model2")),
            "--scenes",
            scenes[0],
        ]),
        "--protocol and a config file",
    );
}

/// `--scheme coarse-residual` learns from scenes without fine truth, at the target scale, on
/// the covariate prior with land cover as classes; it prints its check on held-out coarse
/// cells, and refuses stages.
#[test]
fn the_coarse_residual_scheme_trains_without_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let world = t.join("world");
    let o = amun(&[
        "synth",
        "--out",
        p(&world),
        "--size",
        "160",
        "--factor",
        "4",
        "--months",
        "1,4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let scenes: Vec<PathBuf> = ["month-01", "month-04"]
        .iter()
        .map(|m| world.join(m))
        .collect();
    // No truth: the references go, and the manifests say so.
    for s in &scenes {
        std::fs::remove_file(s.join("lst_reference.tif")).unwrap();
        let manifest = s.join("scene.json");
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(text.contains("\"has_reference\": true"), "{text}");
        std::fs::write(
            &manifest,
            text.replace("\"has_reference\": true", "\"has_reference\": false"),
        )
        .unwrap();
    }
    let model = t.join("model");
    let mut args = vec![
        "train",
        "--scheme",
        "coarse-residual",
        "--epochs",
        "1",
        "--out",
        p(&model),
        "--scenes",
    ];
    args.extend(scenes.iter().map(|s| p(s)));
    let o = amun(&args);
    assert!(o.status.success(), "train: {}", stderr(&o));
    let ckpt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("checkpoint.json")).unwrap())
            .unwrap();
    let cfg = &ckpt["config"];
    assert_eq!(cfg["supervision"], "coarse_residual", "{cfg}");
    // Checked on the held-out coarse cells, against the prior it corrects.
    let check = &ckpt["held_out"];
    assert!(
        check["scale"]
            .as_str()
            .is_some_and(|s| s.starts_with("target scale")),
        "{check}"
    );
    assert_eq!(
        check["scores"][1]["method"], "prior-covariates (the model's base)",
        "{check}"
    );
    assert_eq!(cfg["base"]["params"]["kind"], "covariates", "{cfg}");
    assert!(
        cfg["landcover_encoding"]["OneHot"]
            .as_array()
            .is_some_and(|c| c.len() >= 2),
        "{cfg}"
    );
    let out = t.join("fine.tif");
    let o = amun(&[
        "downscale",
        "--checkpoint",
        p(&model),
        "--scene",
        p(&scenes[1]),
        "--out",
        p(&out),
        "--conserve",
    ]);
    assert!(o.status.success(), "downscale: {}", stderr(&o));
    assert!(out.exists());
    let mut staged = args.clone();
    let other = t.join("staged");
    staged[6] = p(&other);
    staged.extend(["--stages", "2,2"]);
    assert_fails_with(
        &amun(&staged),
        "--stages and --ensemble are for the scale-up scheme",
    );
}
