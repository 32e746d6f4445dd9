//! `amun prepare` and `amun downscale` in time-series mode, by hand and (when a Slurm
//! cluster answers) as a Slurm job array.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use amun_core::raster::{
    cog_layout, read, read_band, write, GeoTiffReader, Grid, Raster, Stack, WriteOptions,
};
use amun_core::series::SeriesIndex;
use amun_core::Scene;

use super::{amun, assert_fails_with, p, stderr};

/// A coarse 8×8 grid at 0.1°, refined 4×.
const K: usize = 4;

fn grids() -> (Grid, Grid) {
    let coarse = Grid::geographic(100.0, 30.0, 0.1, 8, 8).unwrap();
    let fine = coarse.refine(K).unwrap();
    (coarse, fine)
}

/// Inputs of a series: an LST with one band per time of `times` (descriptions = times), one
/// NDVI file per `ndvi_dates` in `ndvi/`, a static DEM.
fn series_inputs(
    dir: &Path,
    times: &[String],
    ndvi_dates: &[String],
) -> (PathBuf, PathBuf, PathBuf) {
    let (coarse, fine) = grids();
    let mut lst = Stack::new(coarse.clone());
    for (t, name) in times.iter().enumerate() {
        let band = Raster::from_fn(coarse.clone(), |(r, c)| {
            285.0 + 0.3 * t as f32 + 0.5 * r as f32 - 0.25 * c as f32
        });
        lst.push(name.clone(), band).unwrap();
    }
    let lst_path = dir.join("lst.tif");
    write(&lst_path, &lst, &WriteOptions::default()).unwrap();
    let ndvi = dir.join("ndvi");
    std::fs::create_dir_all(&ndvi).unwrap();
    for (i, d) in ndvi_dates.iter().enumerate() {
        write_ndvi(&ndvi.join(format!("ndvi_{d}.tif")), i, &fine);
    }
    let dem = dir.join("dem.tif");
    super::write(
        &dem,
        &Raster::from_fn(fine, |(r, c)| 50.0 + 2.0 * r as f32 + (c as f32).sqrt()),
    );
    (lst_path, ndvi, dem)
}

fn write_ndvi(path: &Path, i: usize, fine: &Grid) {
    super::write(
        path,
        &Raster::from_fn(fine.clone(), |(r, c)| {
            0.2 + 0.05 * i as f32 + 0.002 * (r * c % 17) as f32
        }),
    );
}

fn prepare_args<'a>(lst: &'a str, ndvi: &'a str, dem: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "prepare",
        "--lst",
        lst,
        "--factor",
        "4",
        "--dem",
        dem,
        "--covariate-series",
        ndvi,
        "--out",
        out,
    ]
}

/// Every file under `dir`, relative path → bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    out
}

fn hours(n: usize) -> Vec<String> {
    (0..n)
        .map(|h| format!("2020-07-31T{:02}:00:00", 16 + h))
        .collect()
}

#[test]
fn prepare_series_by_month_with_lines_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // Six hourly steps 2020-07-31T16 … T21 and a seventh on 1 August: monthly NDVI.
    let mut times = hours(6);
    times.push("2020-08-01T05:00:00".into());
    let (lst, ndvi, dem) = series_inputs(tmp.path(), &times, &["2020-07".into(), "2020-08".into()]);
    let out = tmp.path().join("series");
    let spec = format!("ndvi={}", p(&ndvi));
    // Without -q and with stderr a pipe: one line per step with an ETA, then the summary.
    let o = Command::new(env!("CARGO_BIN_EXE_amun"))
        .args(prepare_args(p(&lst), &spec, p(&dem), p(&out)))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("prepare 1/7: 2020-07-31T16:00:00"), "{err}");
    assert!(
        err.contains("prepare 7/7: 2020-08-01T05:00:00, eta 0 s"),
        "{err}"
    );
    assert!(
        err.contains("prepared 7 scene(s), 0 already done, of 7 steps"),
        "{err}"
    );

    let index = SeriesIndex::load(&out).unwrap();
    assert_eq!(index.steps.len(), 7);
    assert_eq!(
        index.steps[6].covariates["ndvi"],
        ndvi.join("ndvi_2020-08.tif")
    );
    let last = Scene::load(&out.join("2020-08-01T0500")).unwrap();
    assert_eq!((last.month(), last.hour()), (Some(8), Some(5)));
    assert_eq!(last.covariates().names(), ["ndvi", "slope", "aspect"]);

    // Rerun: nothing to do. With --force: everything again.
    let o = amun(&prepare_args(p(&lst), &spec, p(&dem), p(&out)));
    assert!(o.status.success(), "{}", stderr(&o));
    let mut force = prepare_args(p(&lst), &spec, p(&dem), p(&out));
    force.push("--force");
    assert!(amun(&force).status.success());

    // A missing month: one line naming the date, the step and the folder.
    std::fs::remove_file(ndvi.join("ndvi_2020-08.tif")).unwrap();
    let o = amun(&prepare_args(
        p(&lst),
        &spec,
        p(&dem),
        p(&tmp.path().join("other")),
    ));
    assert_fails_with(&o, "covariate series `ndvi` has no file for 2020-08");
    assert!(stderr(&o).contains("2020-08-01T05:00:00"), "{}", stderr(&o));
    assert!(stderr(&o).contains(p(&ndvi)), "{}", stderr(&o));

    // A multi-band LST without series mode is refused, not read as band 1.
    let o = amun(&[
        "prepare",
        "--lst",
        p(&lst),
        "--factor",
        "4",
        "--dem",
        p(&dem),
        "--out",
        p(&tmp.path().join("x")),
    ]);
    assert_fails_with(&o, "has 7 bands: prepare one scene per band with --series");
    // Series mode refuses the options of one scene.
    let mut month = prepare_args(p(&lst), &spec, p(&dem), p(&out));
    month.extend(["--month", "7"]);
    assert_fails_with(&amun(&month), "--month is for one scene");
    // --times must give one time per band.
    let mut t = prepare_args(p(&lst), &spec, p(&dem), p(&out));
    t.extend(["--times", "2020-07-01T00:00,2020-07-01T01:00"]);
    assert_fails_with(&amun(&t), "2 times given for 7 bands");
    // --times @FILE: one time per line, `#` comments; the index takes them, not the bands'.
    let list = tmp.path().join("times.txt");
    let given: Vec<String> = (0..7)
        .map(|d| format!("2020-07-{:02} 13:00", d + 1))
        .collect();
    std::fs::write(&list, format!("# local noon\n{}\n", given.join("\n"))).unwrap();
    let at = format!("@{}", p(&list));
    let relabelled = tmp.path().join("relabelled");
    let mut t = prepare_args(p(&lst), &spec, p(&dem), p(&relabelled));
    t.extend(["--times", &at]);
    let o = amun(&t);
    assert!(o.status.success(), "{}", stderr(&o));
    let index = SeriesIndex::load(&relabelled).unwrap();
    assert_eq!(index.steps[6].scene, "2020-07-07T1300");
    let mut t = prepare_args(p(&lst), &spec, p(&dem), p(&out));
    t.extend(["--times", "yesterday"]);
    assert_fails_with(&amun(&t), "--times: time 1 `yesterday` is not a date-time");
    // A bad shard is a usage error.
    let mut s = prepare_args(p(&lst), &spec, p(&dem), p(&out));
    s.extend(["--shard", "4/4"]);
    let o = amun(&s);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("task index 4 is not below the number of tasks 4"),
        "{}",
        stderr(&o)
    );
}

#[cfg(not(feature = "netcdf"))]
#[test]
fn netcdf_without_the_feature_says_how_to_get_it() {
    let nc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/netcdf/era5_skt.nc");
    let o = amun(&[
        "prepare",
        "--lst",
        p(&nc),
        "--variable",
        "skt",
        "--factor",
        "2",
        "--out",
        "unused",
    ]);
    assert_fails_with(
        &o,
        "built without NetCDF support: rebuild with `--features netcdf`",
    );
}

#[cfg(feature = "netcdf")]
#[test]
fn era5_netcdf_feeds_the_series() {
    // fixtures/netcdf/era5_skt.nc: 6×5 pixels at 0.1° from (99.95, 30.45), four steps
    // 2020-07-31T12 … 2020-08-01T06 (see its make_fixtures.sh).
    let nc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/netcdf/era5_skt.nc");
    let tmp = tempfile::tempdir().unwrap();
    let fine = Grid::geographic(99.95, 30.45, 0.05, 12, 10).unwrap();
    let ndvi = tmp.path().join("ndvi");
    std::fs::create_dir_all(&ndvi).unwrap();
    write_ndvi(&ndvi.join("MOD13A3.A2020183.h27v05.tif"), 0, &fine);
    write_ndvi(&ndvi.join("MOD13A3.A2020214.h27v05.tif"), 1, &fine);
    let out = tmp.path().join("era5");
    let spec = format!("ndvi={}", p(&ndvi));
    let o = amun(&[
        "prepare",
        "--lst",
        p(&nc),
        "--variable",
        "skt",
        "--factor",
        "2",
        "--covariate-series",
        &spec,
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let index = SeriesIndex::load(&out).unwrap();
    let scenes: Vec<_> = index.steps.iter().map(|s| s.scene.as_str()).collect();
    assert_eq!(
        scenes,
        [
            "2020-07-31T1200",
            "2020-07-31T1800",
            "2020-08-01T0000",
            "2020-08-01T0600"
        ]
    );
    assert_eq!(index.variable.as_deref(), Some("skt"));
    // Day 214 of 2020 is 1 August.
    assert_eq!(
        index.steps[2].covariates["ndvi"],
        ndvi.join("MOD13A3.A2020214.h27v05.tif")
    );
    let s = Scene::load(&out.join("2020-07-31T1200")).unwrap();
    // Step 0, row 0, column 0: −9000 · 0.001 + 290 = 281 K (as in make_fixtures.sh).
    assert!((s.coarse_lst().data()[[0, 0]] - 281.0).abs() < 1e-4);
    assert_eq!(s.fine_grid(), &fine);
}

/// A tiny checkpoint on the covariates of the series scenes (ndvi, slope, aspect): one
/// epoch on a synthetic 80×80 scene, seconds. Its quality does not matter here; the tests
/// compare runs of it with each other.
fn tiny_checkpoint(dir: &Path) -> PathBuf {
    let world = dir.join("world");
    let o = amun(&[
        "synth",
        "--out",
        p(&world),
        "--size",
        "80",
        "--factor",
        "8",
        "--months",
        "7",
    ]);
    assert!(o.status.success(), "synth: {}", stderr(&o));
    let toml = dir.join("tiny.toml");
    std::fs::write(&toml, TINY).unwrap();
    let model = dir.join("model");
    let o = amun(&[
        "train",
        "--config",
        p(&toml),
        "--out",
        p(&model),
        "--scenes",
        p(&world.join("month-07")),
    ]);
    assert!(o.status.success(), "train: {}", stderr(&o));
    model
}

const TINY: &str = r#"
[model]
covariates = ["ndvi", "slope", "aspect"]
channels = 8
rdb_growth = 8
rdb_count = 1
rdb_layers = 2
unet_widths = [8, 16]
unet_bridge = 16

[train]
learning_rate = 0.003
epochs = 1
batch_size = 16
patch = 32
stride = 32
split_block = 64
seed = 3
"#;

/// Bits of band `b` (1-based) of a GeoTIFF.
fn bits(path: &Path, b: usize) -> Vec<u32> {
    read_band(path, b)
        .unwrap()
        .data()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn downscale_args<'a>(model: &'a str, out: &'a str) -> Vec<&'a str> {
    vec!["downscale", "--checkpoint", model, "--out", out]
}

#[test]
fn downscale_a_series_resumes_shards_and_stacks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let times = hours(4);
    let (lst, ndvi, dem) = series_inputs(dir, &times, &["2020-07".into()]);
    let series = dir.join("series");
    let spec = format!("ndvi={}", p(&ndvi));
    let o = amun(&prepare_args(p(&lst), &spec, p(&dem), p(&series)));
    assert!(o.status.success(), "{}", stderr(&o));
    let model = tiny_checkpoint(dir);
    let m = p(&model);
    let folders: Vec<String> = (16..20).map(|h| format!("2020-07-31T{h}00")).collect();

    // An --out folder that does not exist is refused before the model is loaded (the
    // checkpoint named here does not exist either, and is not what is reported).
    let out = dir.join("fine");
    let mut args = downscale_args("no-such-model", p(&out));
    args.extend(["--series", p(&series)]);
    assert_fails_with(&amun(&args), "no such folder");

    // One process: one file per step, one log line per step with an ETA, a summary.
    std::fs::create_dir(&out).unwrap();
    let mut args = downscale_args(m, p(&out));
    args.extend(["--series", p(&series)]);
    let o = super::amun_command(&args).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("downscale: 1/4 (25 %)"), "{err}");
    assert!(err.contains("ETA"), "{err}");
    assert!(err.contains("— 2020-07-31T16:00:00 ("), "{err}");
    assert!(
        err.contains("downscaled 4 step(s), 0 already done, 0 failed, of 4 steps"),
        "{err}"
    );
    // 4 steps of 32×32 fine pixels.
    assert!(err.contains(": 4096 pixels in"), "{err}");
    // Each step is what a one-scene run of its folder writes, bit for bit.
    for f in &folders {
        let single = dir.join(format!("single-{f}.tif"));
        let mut one = downscale_args(m, p(&single));
        let scene = series.join(f);
        one.extend(["--scene", p(&scene)]);
        let o = amun(&one);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            bits(&single, 1),
            bits(&out.join(format!("{f}.tif")), 1),
            "{f}"
        );
    }

    // A rerun skips every step and says so; --force redoes them.
    let o = super::amun_command(&args).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("skipped 4 step(s) already done"), "{err}");
    assert!(
        err.contains("downscaled 0 step(s), 4 already done"),
        "{err}"
    );
    let mut force = args.clone();
    force.push("--force");
    let o = super::amun_command(&force).output().unwrap();
    assert!(
        stderr(&o).contains("downscaled 4 step(s), 0 already done"),
        "{}",
        stderr(&o)
    );

    // Two shares: steps 1–2 and 3–4; together the one-process run.
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    for (task, range) in [("0/2", "steps 1–2 of 4"), ("1/2", "steps 3–4 of 4")] {
        let mut args = downscale_args(m, p(&shared));
        args.extend(["--series", p(&series), "--shard", task]);
        let o = super::amun_command(&args).output().unwrap();
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        assert!(err.contains(&format!("(task {task}: {range})")), "{err}");
        assert!(err.contains("downscaled 2 step(s)"), "{err}");
    }
    for f in &folders {
        let name = format!("{f}.tif");
        assert_eq!(
            std::fs::read(out.join(&name)).unwrap(),
            std::fs::read(shared.join(&name)).unwrap()
        );
    }

    // --stack: one file, band descriptions = the times, bands = the steps' files.
    let stack = dir.join("stack.tif");
    let mut args = downscale_args(m, p(&stack));
    args.extend(["--series", p(&series), "--stack"]);
    let o = amun(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dir.join("stack.steps").exists());
    let s = read(&stack).unwrap();
    assert_eq!(s.names(), times);
    for (b, f) in folders.iter().enumerate() {
        assert_eq!(
            bits(&stack, b + 1),
            bits(&out.join(format!("{f}.tif")), 1),
            "band {b}"
        );
    }
    // GDAL reads the times as band descriptions (when GDAL is installed).
    if let Ok(o) = Command::new("gdalinfo").arg(&stack).output() {
        let info = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{info}");
        assert!(info.contains("Description = 2020-07-31T19:00:00"), "{info}");
    }
    let o = amun(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    // As a COG: GDAL's layout, the same bands.
    let cog = dir.join("stack-cog.tif");
    let mut args = downscale_args(m, p(&cog));
    args.extend(["--series", p(&series), "--stack", "--cog"]);
    let o = amun(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(cog_layout(&cog).unwrap().problems(), Vec::<String>::new());
    assert_eq!(read(&cog).unwrap().names(), times);
    for b in 1..=4 {
        assert_eq!(bits(&cog, b), bits(&stack, b));
    }

    // Several --scene folders: one file each, named by the folder.
    let two = dir.join("two");
    std::fs::create_dir(&two).unwrap();
    let (s0, s1) = (series.join(&folders[0]), series.join(&folders[3]));
    let mut args = downscale_args(m, p(&two));
    args.extend(["--scene", p(&s0), "--scene", p(&s1)]);
    let o = amun(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [&folders[0], &folders[3]] {
        let name = format!("{f}.tif");
        assert_eq!(
            std::fs::read(out.join(&name)).unwrap(),
            std::fs::read(two.join(&name)).unwrap()
        );
    }

    // A broken scene fails its step, naming it and the file; the others are written; the
    // rerun after the repair redoes only that step.
    let cov = series.join(&folders[1]).join("covariates.tif");
    let good = std::fs::read(&cov).unwrap();
    std::fs::write(&cov, b"not a GeoTIFF").unwrap();
    let broken = dir.join("broken");
    std::fs::create_dir(&broken).unwrap();
    let mut args = downscale_args(m, p(&broken));
    args.extend(["--series", p(&series)]);
    let o = super::amun_command(&args).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("amun: error: 1 of 4 step(s) failed"), "{err}");
    assert!(err.contains("step 2020-07-31T17:00:00 (scene "), "{err}");
    assert!(err.contains("covariates.tif"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!broken.join(format!("{}.tif", folders[1])).exists());
    assert_eq!(
        std::fs::read_dir(&broken).unwrap().count(),
        3,
        "no temporary file left"
    );
    std::fs::write(&cov, good).unwrap();
    let o = super::amun_command(&args).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("downscaled 1 step(s), 3 already done, 0 failed"),
        "{err}"
    );
    for f in &folders {
        let name = format!("{f}.tif");
        assert_eq!(
            std::fs::read(out.join(&name)).unwrap(),
            std::fs::read(broken.join(&name)).unwrap()
        );
    }
    // The array script: 4 steps of 32×32 pixels, 2 tasks: 2048 pixels per task at 1024
    // pixels/s is 2 s, × 1.5 + 300 s = 303 s → 6 minutes; 10⁹ bytes × 1.15 = 1097 MiB.
    let script = dir.join("job.sh");
    let o = amun(&[
        "slurm-script",
        "--checkpoint",
        m,
        "--series",
        p(&series),
        "--out",
        p(&out),
        "--tasks",
        "2",
        "--throughput",
        "1024",
        "--script",
        p(&script),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&script).unwrap();
    for line in [
        "#SBATCH --array=0-1",
        "#SBATCH --mem=1097M",
        "#SBATCH --time=0-00:06:00",
        "--shard slurm/2 --max-memory 1000000000",
        "# Time per task: 2048 pixels / 1024 pixels/s = 2 s",
    ] {
        assert!(text.contains(line), "{line} not in {text}");
    }
}

/// The issue's acceptance run: a 24-step series prepared and downscaled with two commands;
/// the downscale killed (SIGKILL) after its first outputs leaves only whole files, and the
/// rerun skips them and ends with what one uninterrupted run writes.
#[test]
fn a_killed_series_downscale_resumes_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let times: Vec<String> = (0..24)
        .map(|h| format!("2020-07-31T{h:02}:00:00"))
        .collect();
    let (lst, ndvi, dem) = series_inputs(dir, &times, &["2020-07".into()]);
    let series = dir.join("series");
    let spec = format!("ndvi={}", p(&ndvi));
    let o = amun(&prepare_args(p(&lst), &spec, p(&dem), p(&series)));
    assert!(o.status.success(), "{}", stderr(&o));
    let model = tiny_checkpoint(dir);
    let (whole, killed) = (dir.join("whole"), dir.join("killed"));
    for d in [&whole, &killed] {
        std::fs::create_dir(d).unwrap();
    }
    let mut args = downscale_args(p(&model), p(&whole));
    args.extend(["--series", p(&series)]);
    assert!(amun(&args).status.success());

    let mut args = downscale_args(p(&model), p(&killed));
    args.extend(["--series", p(&series)]);
    let mut child = super::amun_command(&args)
        .arg("-q")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let outputs = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "tif"))
            .collect()
    };
    let start = Instant::now();
    while outputs(&killed).is_empty() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = outputs(&killed);
    assert!(!done.is_empty(), "no output within a minute");
    // Every file present is whole (it reads back as the uninterrupted run's).
    for f in &done {
        let name = f.file_name().unwrap();
        assert_eq!(bits(f, 1), bits(&whole.join(name), 1), "{}", f.display());
    }
    let o = super::amun_command(&args).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    if done.len() < 24 {
        assert!(
            err.contains(&format!("skipped {} step(s) already done", done.len())),
            "{} done before the kill: {err}",
            done.len()
        );
        assert!(
            err.contains(&format!("downscaled {} step(s)", 24 - done.len())),
            "{err}"
        );
    }
    println!(
        "killed after {} of 24 steps; the rerun did the rest",
        done.len()
    );
    let (a, b) = (files(&whole), files(&killed));
    let extra: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    println!("left by the kill: {extra:?}");
    for (k, v) in &a {
        assert!(b.get(k) == Some(v), "{} differs", k.display());
    }
}

/// `--cog`: GDAL's COG layout (checked here and, when `python3-gdal` is installed, by GDAL's
/// own validator through `fixtures/raster/cog/validate.sh`), the full image bit for bit the
/// plain output, and the first overview what `gdaladdo -r average` computes from it.
#[test]
fn downscale_writes_a_cloud_optimized_geotiff() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = tiny_checkpoint(dir);
    // A 320×320 scene: with 256×256 tiles, one overview (160×160).
    let world = dir.join("big");
    let o = amun(&[
        "synth",
        "--out",
        p(&world),
        "--size",
        "320",
        "--factor",
        "8",
        "--months",
        "7",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let scene = world.join("month-07");
    let (plain, cog) = (dir.join("plain.tif"), dir.join("cog.tif"));
    for (out, extra) in [(&plain, None), (&cog, Some("--cog"))] {
        let mut args = downscale_args(p(&model), p(out));
        args.extend(["--scene", p(&scene)]);
        args.extend(extra);
        let o = amun(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let layout = cog_layout(&cog).unwrap();
    assert_eq!(layout.problems(), Vec::<String>::new());
    let sizes: Vec<(u64, u64)> = layout.ifds.iter().map(|i| i.size).collect();
    assert_eq!(sizes, [(320, 320), (160, 160)]);
    assert_eq!(bits(&cog, 1), bits(&plain, 1));
    assert!(GeoTiffReader::open(&cog).is_ok());
    // No temporary file is left next to the output.
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".amun"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let validate =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/raster/cog/validate.sh");
    let o = Command::new("bash")
        .arg(&validate)
        .arg(&cog)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{said}{}", stderr(&o));
    if said.contains("SKIPPED") {
        println!("GDAL's COG validator: {said}");
        return;
    }
    assert!(
        said.contains("is a valid cloud optimized GeoTIFF"),
        "{said}"
    );
    assert!(said.contains("Overviews: 160x160"), "{said}");
    // GDAL's average of the plain output, against ours.
    let gdal = dir.join("gdal.tif");
    std::fs::copy(&plain, &gdal).unwrap();
    let run = |cmd: &str, args: &[&str]| {
        let o = Command::new(cmd).args(args).output().unwrap();
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
    };
    run("gdaladdo", &["-q", "-r", "average", p(&gdal), "2"]);
    let (ours1, gdal1) = (dir.join("ours-ovr.tif"), dir.join("gdal-ovr.tif"));
    run("gdal_translate", &["-q", "-ovr", "0", p(&cog), p(&ours1)]);
    run("gdal_translate", &["-q", "-ovr", "0", p(&gdal), p(&gdal1)]);
    let (a, b) = (read_band(&ours1, 1).unwrap(), read_band(&gdal1, 1).unwrap());
    assert_eq!(a.grid(), b.grid());
    let worst = a
        .data()
        .iter()
        .zip(b.data().iter())
        .map(|(x, y)| {
            if x.is_nan() && y.is_nan() {
                0.0
            } else {
                (x - y).abs()
            }
        })
        .fold(0f32, f32::max);
    assert!(
        worst < 1e-4,
        "overview differs from gdaladdo's by {worst} K"
    );
}

/// One scene in row bands, each downscaled by its own process (`--rows --shard i/3`, small
/// tiles), joined by `amun mosaic`: the one-process output's pixels bit for bit, and with
/// `--cog` the same file byte for byte.
#[test]
fn row_bands_join_into_the_one_process_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = tiny_checkpoint(dir);
    let m = p(&model);
    let world = dir.join("big");
    let o = amun(&[
        "synth",
        "--out",
        p(&world),
        "--size",
        "320",
        "--factor",
        "8",
        "--months",
        "7",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let scene = world.join("month-07");
    let (one, one_cog) = (dir.join("one.tif"), dir.join("one-cog.tif"));
    for (out, extra) in [(&one, None), (&one_cog, Some("--cog"))] {
        let mut args = downscale_args(m, p(out));
        args.extend(["--scene", p(&scene)]);
        args.extend(extra);
        let o = amun(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let parts = dir.join("parts");
    std::fs::create_dir(&parts).unwrap();
    for i in 0..3 {
        let shard = format!("{i}/3");
        let mut args = downscale_args(m, p(&parts));
        args.extend([
            "--scene",
            p(&scene),
            "--rows",
            "--shard",
            &shard,
            "--tile",
            "64",
        ]);
        let o = super::amun_command(&args).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("(task {i}/3: rows ")),
            "{}",
            stderr(&o)
        );
    }
    // 320 rows in blocks of 8 (the coarse factor and the lattice): 40 blocks, shares of
    // 13, 13, 14 blocks.
    let names: Vec<String> = std::fs::read_dir(&parts)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        names,
        [
            "rows-000000-000104-of-000320.tif",
            "rows-000104-000208-of-000320.tif",
            "rows-000208-000320-of-000320.tif"
        ]
    );
    let joined = dir.join("joined.tif");
    let o = amun(&["mosaic", p(&parts), "--out", p(&joined)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(bits(&joined, 1), bits(&one, 1));
    assert_eq!(
        read_band(&joined, 1).unwrap().grid(),
        read_band(&one, 1).unwrap().grid()
    );
    let joined_cog = dir.join("joined-cog.tif");
    let o = amun(&["mosaic", p(&parts), "--out", p(&joined_cog), "--cog"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read(&joined_cog).unwrap() == std::fs::read(&one_cog).unwrap(),
        "the mosaic COG differs from the one-process COG"
    );

    // A band done is skipped; conservation is refused; a missing band is named.
    let mut args = downscale_args(m, p(&parts));
    args.extend(["--scene", p(&scene), "--rows", "--shard", "1/3"]);
    let o = super::amun_command(&args).output().unwrap();
    assert!(stderr(&o).contains("done before"), "{}", stderr(&o));
    args.push("--conserve");
    assert_fails_with(&amun(&args), "--conserve cannot be split into row bands");
    std::fs::remove_file(parts.join("rows-000000-000104-of-000320.tif")).unwrap();
    let o = amun(&["mosaic", p(&parts), "--out", p(&dir.join("x.tif"))]);
    assert_fails_with(&o, "rows 0..104 are missing");
}

/// Whether a Slurm cluster answers; the reason when not. With `AMUN_SLURM_REQUIRED=1` (set by
/// `.ci/run` after `.ci/slurm-up` succeeded) a missing cluster fails the test instead.
fn slurm_ready() -> Result<(), String> {
    let o = Command::new("sinfo").args(["-h", "-o", "%t"]).output();
    let reason = match o {
        Err(e) => format!("sinfo cannot run ({e})"),
        Ok(o) if !o.status.success() => format!(
            "sinfo failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(o) => {
            let states = String::from_utf8_lossy(&o.stdout).into_owned();
            if states
                .lines()
                .any(|s| s.starts_with("idle") || s.starts_with("mix") || s.starts_with("alloc"))
            {
                return Ok(());
            }
            format!("no node is up (sinfo: {})", states.trim())
        }
    };
    assert!(
        std::env::var("AMUN_SLURM_REQUIRED").as_deref() != Ok("1"),
        "AMUN_SLURM_REQUIRED=1 but {reason}"
    );
    Err(reason)
}

/// Submits `script` as a job array of `tasks` tasks and waits until none is queued or
/// running (`squeue` every 0.2 s, at most `limit`).
fn run_array(script: &Path, tasks: usize, logs: &Path, limit: Duration) {
    let o = Command::new("sbatch")
        .args([
            "--parsable",
            &format!("--array=0-{}", tasks - 1),
            "--time=5",
            "--mem=500",
        ])
        .arg(format!("--output={}/%a.log", p(logs)))
        .arg(script)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "sbatch: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let start = Instant::now();
    loop {
        let q = Command::new("squeue")
            .args(["-h", "-j", &id])
            .output()
            .unwrap();
        if q.stdout.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "array {id} still queued after {limit:?}: {}",
            String::from_utf8_lossy(&q.stdout)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn slurm_array_prepares_what_one_process_prepares() {
    if let Err(reason) = slurm_ready() {
        println!("SKIPPED slurm_array_prepares_what_one_process_prepares: {reason} (start one with .ci/slurm-up)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Eight daily steps at 13:00, 1–8 July, with daily NDVI: each task's share has its own files.
    let days: Vec<String> = (1..=8).map(|d| format!("2020-07-{d:02}")).collect();
    let times: Vec<String> = days.iter().map(|d| format!("{d}T13:00:00")).collect();
    let (lst, ndvi, dem) = series_inputs(dir, &times, &days);
    let spec = format!("ndvi:day={}", p(&ndvi));
    let one = dir.join("one");
    let o = amun(&prepare_args(p(&lst), &spec, p(&dem), p(&one)));
    assert!(o.status.success(), "{}", stderr(&o));

    // Task 2 of 4 has steps ⌊2·8/4⌋ … ⌊3·8/4⌋ − 1 = 4, 5 (5 and 6 July): break 6 July's NDVI.
    let broken = ndvi.join("ndvi_2020-07-06.tif");
    let good = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, b"not a GeoTIFF").unwrap();
    let split = dir.join("split");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let script = dir.join("job.sh");
    let mut args = prepare_args(p(&lst), &spec, p(&dem), p(&split));
    args.extend(["--shard", "slurm"]);
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\n{} {}\necho $? > {}/rc-$SLURM_ARRAY_TASK_ID\n",
            env!("CARGO_BIN_EXE_amun"),
            args.join(" "),
            p(&logs)
        ),
    )
    .unwrap();
    let limit = Duration::from_secs(120);
    run_array(&script, 4, &logs, limit);
    let task = |i: usize| {
        let rc = std::fs::read_to_string(logs.join(format!("rc-{i}"))).unwrap_or_default();
        let log = std::fs::read_to_string(logs.join(format!("{i}.log"))).unwrap_or_default();
        (rc.trim().to_string(), log)
    };
    for i in [0, 1, 3] {
        let (rc, log) = task(i);
        assert_eq!(rc, "0", "task {i}: {log}");
        assert!(
            log.contains("prepared 2 scene(s), 0 already done, of 8 steps"),
            "task {i}: {log}"
        );
        assert!(
            log.contains(&format!(
                "(task {i}/4: steps {}–{} of 8)",
                2 * i + 1,
                2 * i + 2
            )),
            "task {i}: {log}"
        );
    }
    let (rc, log) = task(2);
    assert_eq!(rc, "1", "task 2: {log}");
    assert!(
        log.contains("amun: error: step 2020-07-06T13:00:00"),
        "{log}"
    );
    assert!(log.contains("ndvi_2020-07-06.tif"), "{log}");
    assert!(!split.join("2020-07-06T1300").join("scene.json").exists());
    assert!(split.join("2020-07-05T1300").join("scene.json").exists());

    // Repair the file and rerun the whole array: only task 2's failed step is prepared.
    std::fs::write(&broken, good).unwrap();
    for i in 0..4 {
        std::fs::remove_file(logs.join(format!("rc-{i}"))).unwrap();
    }
    run_array(&script, 4, &logs, limit);
    for i in [0, 1, 3] {
        let (rc, log) = task(i);
        assert_eq!(rc, "0", "task {i}: {log}");
        assert!(
            log.contains("prepared 0 scene(s), 2 already done"),
            "task {i}: {log}"
        );
    }
    let (rc, log) = task(2);
    assert_eq!(rc, "0", "task 2: {log}");
    assert!(
        log.contains("prepared 1 scene(s), 1 already done"),
        "task 2: {log}"
    );

    // Bit for bit what one process wrote.
    let (a, b) = (files(&one), files(&split));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(b[k] == *v, "{} differs", k.display());
    }
    println!("slurm: 2 arrays of 4 tasks over 8 steps matched the one-process run");
}

/// A 4-task array downscales an 8-step series and a 2-task array the two row bands of one
/// scene; both match the one-process run bit for bit. One task's scene is broken: it fails
/// naming the step and the file, the others finish, and after the repair a rerun of the
/// whole array redoes only the failed step.
#[test]
fn slurm_array_downscales_what_one_process_downscales() {
    if let Err(reason) = slurm_ready() {
        println!("SKIPPED slurm_array_downscales_what_one_process_downscales: {reason} (start one with .ci/slurm-up)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let times = hours(8);
    let (lst, ndvi, dem) = series_inputs(dir, &times, &["2020-07".into()]);
    let series = dir.join("series");
    let spec = format!("ndvi={}", p(&ndvi));
    let o = amun(&prepare_args(p(&lst), &spec, p(&dem), p(&series)));
    assert!(o.status.success(), "{}", stderr(&o));
    let model = tiny_checkpoint(dir);
    let m = p(&model);
    let one = dir.join("one");
    std::fs::create_dir(&one).unwrap();
    let mut args = downscale_args(m, p(&one));
    args.extend(["--series", p(&series)]);
    let o = amun(&args);
    assert!(o.status.success(), "{}", stderr(&o));

    // Task 2 of 4 has steps ⌊2·8/4⌋ … ⌊3·8/4⌋ − 1 = 4, 5 (T20, T21): break T21's scene.
    let cov = series.join("2020-07-31T2100").join("covariates.tif");
    let good = std::fs::read(&cov).unwrap();
    std::fs::write(&cov, b"not a GeoTIFF").unwrap();
    let split = dir.join("split");
    std::fs::create_dir(&split).unwrap();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let script = dir.join("job.sh");
    let mut args = downscale_args(m, p(&split));
    args.extend([
        "--series",
        p(&series),
        "--shard",
        "slurm",
        "--max-memory",
        "400MB",
    ]);
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\n{} {}\necho $? > {}/rc-$SLURM_ARRAY_TASK_ID\n",
            env!("CARGO_BIN_EXE_amun"),
            args.join(" "),
            p(&logs)
        ),
    )
    .unwrap();
    let limit = Duration::from_secs(180);
    run_array(&script, 4, &logs, limit);
    let task = |i: usize| {
        let rc = std::fs::read_to_string(logs.join(format!("rc-{i}"))).unwrap_or_default();
        let log = std::fs::read_to_string(logs.join(format!("{i}.log"))).unwrap_or_default();
        (rc.trim().to_string(), log)
    };
    for i in [0, 1, 3] {
        let (rc, log) = task(i);
        assert_eq!(rc, "0", "task {i}: {log}");
        assert!(
            log.contains("downscaled 2 step(s), 0 already done, 0 failed, of 8 steps"),
            "task {i}: {log}"
        );
        assert!(
            log.contains(&format!(
                "(task {i}/4: steps {}–{} of 8)",
                2 * i + 1,
                2 * i + 2
            )),
            "task {i}: {log}"
        );
    }
    let (rc, log) = task(2);
    assert_eq!(rc, "1", "task 2: {log}");
    assert!(log.contains("amun: error: 1 of 2 step(s) failed"), "{log}");
    assert!(log.contains("step 2020-07-31T21:00:00 (scene "), "{log}");
    assert!(log.contains("covariates.tif"), "{log}");
    assert!(split.join("2020-07-31T2000.tif").exists());
    assert!(!split.join("2020-07-31T2100.tif").exists());

    // Repair the scene and rerun the whole array: only the failed step is downscaled.
    std::fs::write(&cov, good).unwrap();
    for i in 0..4 {
        std::fs::remove_file(logs.join(format!("rc-{i}"))).unwrap();
    }
    run_array(&script, 4, &logs, limit);
    for i in [0, 1, 3] {
        let (rc, log) = task(i);
        assert_eq!(rc, "0", "task {i}: {log}");
        assert!(
            log.contains("downscaled 0 step(s), 2 already done"),
            "task {i}: {log}"
        );
    }
    let (rc, log) = task(2);
    assert_eq!(rc, "0", "task 2: {log}");
    assert!(
        log.contains("downscaled 1 step(s), 1 already done"),
        "task 2: {log}"
    );
    let (a, b) = (files(&one), files(&split));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(b[k] == *v, "{} differs", k.display());
    }

    // The script `amun slurm-script` writes, submitted as it is (sbatch --wait), does the same.
    let scripted = dir.join("scripted");
    let script = dir.join("scripted.sh");
    let o = amun(&[
        "slurm-script",
        "--checkpoint",
        m,
        "--series",
        p(&series),
        "--out",
        p(&scripted),
        "--tasks",
        "4",
        "--max-memory",
        "400MB",
        "--script",
        p(&script),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = Command::new("sbatch")
        .args(["--parsable", "--wait"])
        .arg(&script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "sbatch --wait: {}", stderr(&o));
    let b = files(&scripted);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(b[k] == *v, "{} differs", k.display());
    }

    // Two row bands of one step's scene, one per task, joined: the one-process file's pixels.
    let scene = series.join("2020-07-31T1600");
    let parts = dir.join("parts");
    std::fs::create_dir(&parts).unwrap();
    let band_logs = dir.join("band-logs");
    std::fs::create_dir(&band_logs).unwrap();
    let mut args = downscale_args(m, p(&parts));
    args.extend([
        "--scene",
        p(&scene),
        "--rows",
        "--shard",
        "slurm",
        "--max-memory",
        "400MB",
    ]);
    let script = dir.join("bands.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\n{} {}\n",
            env!("CARGO_BIN_EXE_amun"),
            args.join(" ")
        ),
    )
    .unwrap();
    run_array(&script, 2, &band_logs, limit);
    let bands: Vec<_> = std::fs::read_dir(&parts).unwrap().flatten().collect();
    let logs: Vec<String> = (0..2)
        .map(|i| std::fs::read_to_string(band_logs.join(format!("{i}.log"))).unwrap_or_default())
        .collect();
    assert_eq!(bands.len(), 2, "{logs:?}");
    let joined = dir.join("joined.tif");
    let o = amun(&["mosaic", p(&parts), "--out", p(&joined)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(bits(&joined, 1), bits(&one.join("2020-07-31T1600.tif"), 1));
    println!("slurm: 2 arrays of 4 tasks over 8 steps and an array of 2 row bands matched the one-process run");
}
