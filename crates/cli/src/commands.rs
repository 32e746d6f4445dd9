//! The subcommands other than `demo`.

use std::path::{Path, PathBuf};

use amun_core::bayesopt::{Domain, Optimizer, Outcome, Params, Point, SearchSpace};
use amun_core::metrics::{
    aggregated_back, read_stations, scatter_data, score, score_by_class, score_stations, Metrics,
    Sampling, Station,
};
use amun_core::net::{AmunConfig, Checkpoint, TileParams, TrainConfig, Trainer};
use amun_core::raster::{inspect, read, read_band, write_raster, Raster, WriteOptions};
use amun_core::rf::RfParams;
use amun_core::synth::{World, WorldParams};
use amun_core::{
    conserve, run_trainer, training_scenes, AmunDownscaler, ConserveParams, Downscaler, Regression,
    RegressionMode, Scene, SceneInputs,
};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::figures::{self, MapPanel, Palette, ScatterPlot};
use crate::output::check_writable;
use crate::progress::Bars;
use crate::{
    DownscaleArgs, EvaluateArgs, InfoArgs, PrepareArgs, Preset, RfArgs, Scheme, SynthArgs,
    TrainArgs, TuneArgs,
};
use amun_core::write_atomic;

/// What every command gets: verbosity and the progress bars.
pub struct Ctx {
    /// `-v` count.
    pub verbose: u8,
    /// Progress bars (hidden with `-q`).
    pub bars: Bars,
}

impl Ctx {
    /// From the global flags.
    pub fn new(verbose: u8, quiet: bool) -> Self {
        Self {
            verbose,
            bars: Bars::new(quiet),
        }
    }

    /// A status line on stderr (hidden with `-q`).
    pub fn say(&self, msg: &str) {
        self.bars.println(msg);
    }

    /// A detail line on stderr, shown with `-v`.
    pub fn detail(&self, msg: &str) {
        if self.verbose > 0 {
            self.bars.println(msg);
        }
    }
}

/// Reads a scene folder with an error that says how to make one.
pub fn load_scene(dir: &Path) -> Result<Scene> {
    if !dir.is_dir() {
        bail!(
            "{}: no such scene folder (make one with `amun prepare` or `amun synth`)",
            dir.display()
        );
    }
    Scene::load(dir).with_context(|| format!("scene folder {}", dir.display()))
}

fn load_scenes(dirs: &[PathBuf]) -> Result<Vec<Scene>> {
    dirs.iter().map(|d| load_scene(d)).collect()
}

fn check_file(path: &Path) -> Result<()> {
    if !path.exists() {
        bail!("{}: no such file", path.display());
    }
    Ok(())
}

/// Writes one raster as a float32 Deflate-compressed tiled GeoTIFF (atomically).
pub fn write_geotiff(path: &Path, raster: &Raster, force: bool) -> Result<()> {
    check_writable(path, force)?;
    write_raster(path, raster, &WriteOptions::default())
        .with_context(|| format!("writing {}", path.display()))
}

// ---------------------------------------------------------------- info

#[derive(Serialize)]
struct InfoBand {
    band: usize,
    name: Option<String>,
    data_type: String,
    kind: String,
    nodata: Option<f64>,
    valid_pixels: usize,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    std_dev: Option<f64>,
}

#[derive(Serialize)]
struct InfoOut {
    file: PathBuf,
    width: usize,
    height: usize,
    crs: Option<String>,
    crs_note: Option<String>,
    geotransform: Option<[f64; 6]>,
    bounds: Option<[f64; 4]>,
    compression: String,
    layout: String,
    interleave: String,
    bigtiff: bool,
    bands: Vec<InfoBand>,
}

pub fn info(_ctx: &Ctx, a: &InfoArgs) -> Result<()> {
    check_file(&a.file)?;
    let fi = inspect(&a.file)?;
    let stack = read(&a.file)?;
    let bands: Vec<InfoBand> = fi
        .bands
        .iter()
        .zip(stack.bands())
        .map(|(b, r)| {
            let s = r.stats();
            InfoBand {
                band: b.index,
                name: b.description.clone(),
                data_type: format!("{:?}", b.data_type),
                kind: format!("{:?}", r.kind()),
                nodata: fi.nodata,
                valid_pixels: r.valid_count(),
                min: s.map(|s| s.min),
                max: s.map(|s| s.max),
                mean: s.map(|s| s.mean),
                std_dev: s.map(|s| s.std),
            }
        })
        .collect();
    let out = InfoOut {
        file: a.file.clone(),
        width: fi.width,
        height: fi.height,
        crs: fi.crs.as_ref().map(|c| c.to_string()),
        crs_note: fi.crs_note.clone(),
        geotransform: fi.gdal_transform,
        bounds: fi.grid().map(|g| {
            let (a, b, c, d) = g.bounds();
            [a, b, c, d]
        }),
        compression: format!("{:?}", fi.compression),
        layout: format!("{:?}", fi.chunks),
        interleave: format!("{:?}", fi.interleave),
        bigtiff: fi.bigtiff,
        bands,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("File: {}", out.file.display());
    println!("Size is {}, {}", out.width, out.height);
    println!(
        "Coordinate system: {}",
        out.crs.as_deref().unwrap_or("none")
    );
    if let Some(n) = &out.crs_note {
        println!("  note: {n}");
    }
    if let Some(gt) = out.geotransform {
        println!("Origin = ({:.15}, {:.15})", gt[0], gt[3]);
        println!("Pixel Size = ({:.15}, {:.15})", gt[1], gt[5]);
    } else {
        println!("No georeferencing");
    }
    if let Some(b) = out.bounds {
        println!(
            "Bounds: xmin {} ymin {} xmax {} ymax {}",
            b[0], b[1], b[2], b[3]
        );
    }
    println!(
        "Layout: {} {} {}{}",
        out.compression,
        out.layout,
        out.interleave,
        if out.bigtiff { " BigTIFF" } else { "" }
    );
    for b in &out.bands {
        println!(
            "Band {} {}Type={} ({})",
            b.band,
            b.name
                .as_deref()
                .map_or(String::new(), |n| format!("\"{n}\" ")),
            b.data_type,
            b.kind
        );
        if let Some(nd) = b.nodata {
            println!("  NoData Value={nd}");
        }
        match (b.min, b.max, b.mean, b.std_dev) {
            (Some(mn), Some(mx), Some(me), Some(sd)) => println!(
                "  Minimum={mn:.3}, Maximum={mx:.3}, Mean={me:.3}, StdDev={sd:.3} ({} valid pixels)",
                b.valid_pixels
            ),
            _ => println!("  every pixel is nodata"),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- synth

/// Builds the scene of one month of a synthetic world (with its fine truth).
pub fn synth_scene(world: &World, month: u32, hour: u32, factor: usize) -> Result<Scene> {
    // The paper's seven covariates plus elevation, as `amun prepare --dem … --elevation`
    // gives: temperature follows terrain, and every method should see the DEM.
    let mut covariates = world.covariates(month)?;
    covariates.push("elevation", world.elevation().clone())?;
    Ok(Scene::new(
        format!("month-{month:02}"),
        world.coarse_lst(month, hour, factor)?,
        covariates,
    )?
    .with_reference(world.lst(month, hour)?)?
    .with_time(Some(month), Some(hour)))
}

/// Stations at pseudo-random pixel centres of the truth (deterministic for a seed).
pub fn synth_stations(truth: &Raster, n: usize, seed: u64) -> Vec<Station> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let g = truth.grid();
    let mut out = Vec::with_capacity(n);
    let mut tries = 0;
    while out.len() < n && tries < 100 * n.max(1) {
        tries += 1;
        let (c, r) = (
            rng.random_range(0..g.width()),
            rng.random_range(0..g.height()),
        );
        if let Some(v) = truth.get(r, c) {
            let (lon, lat) = g.pixel_center(c, r);
            out.push(Station {
                id: format!("S{:03}", out.len() + 1),
                lon,
                lat,
                value: Some(f64::from(v)),
                time: None,
            });
        }
    }
    out
}

/// Writes stations as `id,lon,lat,value` CSV.
pub fn write_stations(path: &Path, stations: &[Station]) -> Result<()> {
    let mut s = String::from("id,lon,lat,value\n");
    for st in stations {
        s.push_str(&format!(
            "{},{:.6},{:.6},{}\n",
            st.id,
            st.lon,
            st.lat,
            st.value.map_or(String::new(), |v| format!("{v:.3}"))
        ));
    }
    Ok(write_atomic(path, s.as_bytes())?)
}

pub fn synth(ctx: &Ctx, a: &SynthArgs) -> Result<()> {
    if !a.size.is_multiple_of(a.factor) {
        bail!(
            "--size {} is not a multiple of --factor {}",
            a.size,
            a.factor
        );
    }
    if let Some(m) = a.months.iter().find(|m| !(1..=12).contains(*m)) {
        bail!("month {m} is not in 1–12");
    }
    let params = WorldParams::new().seed(a.seed).size(a.size, a.size);
    ctx.say(&format!(
        "generating a {0}×{0} world (seed {1})",
        a.size, a.seed
    ));
    let world = World::generate(&params)?;
    for &m in &a.months {
        let dir = a.out.join(format!("month-{m:02}"));
        check_writable(&dir.join(amun_core::layout::MANIFEST), a.force)?;
        let scene = synth_scene(&world, m, a.hour, a.factor)?;
        scene.save(&dir)?;
        if a.stations > 0 {
            let truth = scene.reference().ok_or_else(|| anyhow!("no truth"))?;
            write_stations(
                &dir.join("stations.csv"),
                &synth_stations(truth, a.stations, a.seed ^ u64::from(m)),
            )?;
        }
        ctx.say(&format!("wrote {}", dir.display()));
    }
    Ok(())
}

// ---------------------------------------------------------------- prepare

pub fn prepare(ctx: &Ctx, a: &PrepareArgs) -> Result<()> {
    for p in [
        Some(&a.lst),
        a.ndvi.as_ref(),
        a.landcover.as_ref(),
        a.reflectance.as_ref(),
        a.mndwi.as_ref(),
        a.ndbi.as_ref(),
        a.slope.as_ref(),
        a.aspect.as_ref(),
        a.dem.as_ref(),
        a.green.as_ref(),
        a.red.as_ref(),
        a.nir.as_ref(),
        a.swir.as_ref(),
        a.reference.as_ref(),
        a.stations.as_ref(),
    ]
    .into_iter()
    .flatten()
    .chain(a.extra.iter().map(|(_, p)| p))
    {
        check_file(p)?;
    }
    check_writable(&a.out.join(amun_core::layout::MANIFEST), a.force)?;
    let inputs = SceneInputs {
        name: a.name.clone(),
        lst: a.lst.clone(),
        factor: a.factor,
        month: a.month,
        hour: a.hour,
        ndvi: a.ndvi.clone(),
        landcover: a.landcover.clone(),
        reflectance: a.reflectance.clone(),
        mndwi: a.mndwi.clone(),
        ndbi: a.ndbi.clone(),
        slope: a.slope.clone(),
        aspect: a.aspect.clone(),
        dem: a.dem.clone(),
        elevation_band: a.elevation,
        green: a.green.clone(),
        red: a.red.clone(),
        nir: a.nir.clone(),
        swir: a.swir.clone(),
        band_scaling: if a.modis_scale {
            amun_core::indices::Reflectance::modis()
        } else {
            amun_core::indices::Reflectance::unscaled()
        },
        extra: a.extra.clone(),
        reference: a.reference.clone(),
    };
    let scene = inputs.build()?;
    scene.save(&a.out)?;
    if let Some(st) = &a.stations {
        // Validate before copying, so a broken CSV is reported now.
        read_stations(st)?;
        let bytes = std::fs::read(st).with_context(|| format!("reading {}", st.display()))?;
        write_atomic(&a.out.join("stations.csv"), &bytes)?;
    }
    ctx.say(&format!(
        "wrote {} ({}×{} fine pixels, factor {}, covariates: {})",
        a.out.display(),
        scene.fine_grid().width(),
        scene.fine_grid().height(),
        scene.factor(),
        scene.covariates().names().join(", ")
    ));
    Ok(())
}

// ---------------------------------------------------------------- train

#[derive(serde::Deserialize, Default)]
struct TrainFile {
    model: Option<AmunConfig>,
    train: Option<TrainConfig>,
}

fn preset(p: Preset) -> AmunConfig {
    match p {
        Preset::Small => AmunConfig::small(),
        Preset::Paper => AmunConfig::paper(),
    }
}

/// Training scenes under a scheme: as they are, or one scale up.
pub fn scheme_scenes(scenes: Vec<Scene>, scheme: Scheme) -> Result<Vec<Scene>> {
    match scheme {
        Scheme::Supervised => Ok(scenes),
        Scheme::ScaleUp => Ok(scenes
            .iter()
            .map(Scene::coarsened)
            .collect::<amun_core::Result<Vec<_>>>()?),
    }
}

pub fn train(ctx: &Ctx, a: &TrainArgs) -> Result<()> {
    check_writable(&a.out, a.force)?;
    let file: TrainFile = match &a.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("{}: invalid config", p.display()))?
        }
        None => TrainFile::default(),
    };
    let scenes = scheme_scenes(load_scenes(&a.scenes)?, a.scheme)?;
    let first = scenes.first().ok_or_else(|| anyhow!("no training scene"))?;
    let model = file
        .model
        .unwrap_or_else(|| preset(a.preset).with_covariates(first.covariates().names()));
    let mut tc = match file.train {
        Some(tc) => tc,
        // Without a config, 30 epochs rather than the paper's 99 (which assume a GPU).
        None => TrainConfig {
            epochs: 30,
            ..TrainConfig::default()
        },
    };
    if let Some(e) = a.epochs {
        tc.epochs = e;
    }
    if let Some(lr) = a.lr {
        tc.learning_rate = lr;
    }
    if let Some(b) = a.batch {
        tc.batch_size = b;
    }
    if let Some(s) = a.seed {
        tc.seed = s;
    }
    let data = training_scenes(&scenes)?;
    let mut trainer = match &a.resume {
        Some(dir) => {
            let ckpt = Checkpoint::load(dir)
                .with_context(|| format!("loading checkpoint {}", dir.display()))?;
            ctx.say(&format!(
                "resuming from {} after epoch {}",
                dir.display(),
                ckpt.history().len()
            ));
            Trainer::resume(&ckpt, &tc, &data)?
        }
        None => Trainer::new(&model, &tc, &data)?,
    };
    let (ntrain, nval) = trainer.patch_counts();
    ctx.say(&format!(
        "training on {} scenes: {ntrain} training and {nval} validation patches, {} epochs",
        scenes.len(),
        tc.epochs
    ));
    run_trainer(&mut trainer, &tc, &ctx.bars)?;
    let ckpt = trainer.finish()?;
    ckpt.save(&a.out)?;
    let h = ckpt.history();
    if let Some(last) = h.last() {
        ctx.say(&format!(
            "epoch {}: train RMSE {:.3} K, validation RMSE {:.3} K",
            last.epoch + 1,
            last.train_rmse_k,
            last.val_rmse_k
        ));
    }
    let tr: Vec<f64> = h.iter().map(|r| r.train_rmse_k).collect();
    let va: Vec<f64> = h.iter().map(|r| r.val_rmse_k).collect();
    figures::curves_png(&a.out.join("training.png"), "AMUN training", &tr, &va)?;
    ctx.say(&format!("wrote checkpoint {}", a.out.display()));
    Ok(())
}

// ---------------------------------------------------------------- downscale

pub fn downscale(ctx: &Ctx, a: &DownscaleArgs) -> Result<()> {
    check_writable(&a.out, a.force)?;
    if !a.checkpoint.is_dir() {
        bail!("{}: no such checkpoint folder", a.checkpoint.display());
    }
    let ckpt = Checkpoint::load(&a.checkpoint)
        .with_context(|| format!("loading checkpoint {}", a.checkpoint.display()))?;
    let scene = load_scene(&a.scene)?;
    let missing: Vec<&String> = ckpt
        .config()
        .covariates
        .iter()
        .filter(|c| scene.covariates().get(c).is_none())
        .collect();
    if !missing.is_empty() {
        bail!(
            "checkpoint {} was trained on covariates [{}] but scene {} has [{}] (missing: {})",
            a.checkpoint.display(),
            ckpt.config().covariates.join(", "),
            a.scene.display(),
            scene.covariates().names().join(", "),
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let model = AmunDownscaler::from_checkpoint(ckpt).with_tiles(TileParams {
        tile: a.tile,
        ..TileParams::default()
    });
    let mut out = model.predict(&scene, &ctx.bars)?;
    if a.conserve {
        let (c, it) = conserve(&out, scene.coarse_lst(), &ConserveParams::default())?;
        ctx.detail(&format!("coarse conservation: {it} iterations"));
        out = c;
    }
    write_geotiff(&a.out, &out, a.force)?;
    ctx.say(&format!("wrote {}", a.out.display()));
    Ok(())
}

// ---------------------------------------------------------------- evaluate

#[derive(Serialize)]
struct EvalOut {
    prediction: PathBuf,
    reference: Option<Metrics>,
    aggregated_back: Option<Metrics>,
    stations: Option<amun_core::metrics::StationReport>,
    classes: Option<Vec<amun_core::metrics::ClassMetrics>>,
}

fn metrics_row(name: &str, m: &Metrics) -> String {
    let f = |v: Option<f64>| v.map_or("–".into(), |x| format!("{x:.4}"));
    format!(
        "{name:<16} {:>8.3} {:>8.3} {:>8.3} {:>8} {:>8} {:>8} {:>9}",
        m.rmse,
        m.mae,
        m.bias,
        f(m.r2),
        f(m.pearson_r),
        f(m.ssim),
        m.n
    )
}

/// The header of [`metrics_row`] tables.
pub fn metrics_header() -> String {
    format!(
        "{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "", "RMSE K", "MAE K", "bias K", "R²", "r", "SSIM", "pixels"
    )
}

/// Draws the reference / prediction / bias maps and the scatter of a prediction.
pub fn prediction_figures(
    dir: &Path,
    stem: &str,
    title: &str,
    prediction: &Raster,
    reference: &Raster,
    coarse_input: Option<&Raster>,
    force: bool,
) -> Result<()> {
    let range = figures::robust_range(&[reference, prediction])
        .ok_or_else(|| anyhow!("nothing valid to draw"))?;
    let bias = Raster::new(
        prediction.grid().clone(),
        prediction.data() - reference.data(),
    )?;
    let bmax = figures::robust_range(&[&bias]).map_or(1.0, |(a, b)| a.abs().max(b.abs()).max(0.1));
    let mut panels = vec![MapPanel {
        raster: reference,
        title: "Reference LST".into(),
        palette: Palette::Temperature,
        range,
        units: "K",
    }];
    let up;
    if let Some(c) = coarse_input {
        up = amun_core::raster::resample(
            c,
            prediction.grid(),
            amun_core::raster::Resampling::Nearest,
        )?;
        panels.push(MapPanel {
            raster: &up,
            title: "Coarse input".into(),
            palette: Palette::Temperature,
            range,
            units: "K",
        });
    }
    panels.push(MapPanel {
        raster: prediction,
        title: title.into(),
        palette: Palette::Temperature,
        range,
        units: "K",
    });
    panels.push(MapPanel {
        raster: &bias,
        title: "Prediction − reference".into(),
        palette: Palette::Diverging,
        range: (-bmax, bmax),
        units: "K",
    });
    let maps = dir.join(format!("{stem}_maps.png"));
    check_writable(&maps, force)?;
    figures::maps_png(&maps, &panels)?;
    let m = score(prediction, reference, None)?;
    let sd = scatter_data(prediction, reference, 120, Some(range))?;
    let counts: Vec<Vec<u64>> = sd.counts.outer_iter().map(|r| r.to_vec()).collect();
    let sc = dir.join(format!("{stem}_scatter.png"));
    check_writable(&sc, force)?;
    figures::scatter_png(
        &sc,
        &ScatterPlot {
            title: title.into(),
            counts: &counts,
            range: (sd.min, sd.max),
            line: sd.fit.map(|f| (f.slope, f.intercept)),
            text: vec![
                format!("R² = {}", m.r2.map_or("–".into(), |v| format!("{v:.3}"))),
                format!("RMSE = {:.3} K", m.rmse),
                format!("MAE = {:.3} K", m.mae),
                format!("bias = {:+.3} K", m.bias),
                format!("n = {}", m.n),
            ],
        },
    )?;
    Ok(())
}

pub fn evaluate(ctx: &Ctx, a: &EvaluateArgs) -> Result<()> {
    check_file(&a.prediction)?;
    let pred = read_band(&a.prediction, 1)?;
    if pred.valid_count() == 0 {
        bail!("{}: every pixel is nodata", a.prediction.display());
    }
    if a.reference.is_none() && a.coarse.is_none() && a.stations.is_none() {
        bail!("nothing to evaluate against: give --reference, --coarse and/or --stations");
    }
    let reference = match &a.reference {
        Some(p) => {
            check_file(p)?;
            Some(read_band(p, 1)?)
        }
        None => None,
    };
    let coarse = match &a.coarse {
        Some(p) => {
            check_file(p)?;
            Some(read_band(p, 1)?)
        }
        None => None,
    };
    let mut out = EvalOut {
        prediction: a.prediction.clone(),
        reference: None,
        aggregated_back: None,
        stations: None,
        classes: None,
    };
    if let Some(r) = &reference {
        out.reference = Some(score(&pred, r, None).with_context(|| {
            format!(
                "scoring {} against {}",
                a.prediction.display(),
                a.reference.as_deref().unwrap_or(Path::new("")).display()
            )
        })?);
        if let Some(cp) = &a.classes {
            check_file(cp)?;
            let classes = read_band(cp, 1)?;
            out.classes = Some(score_by_class(&pred, r, &classes)?);
        }
    }
    if let Some(c) = &coarse {
        out.aggregated_back = Some(aggregated_back(&pred, c, 0.5).with_context(|| {
            format!(
                "aggregating {} back onto the coarse grid",
                a.prediction.display()
            )
        })?);
    }
    if let Some(sp) = &a.stations {
        check_file(sp)?;
        let st = read_stations(sp)?;
        let sampling = if a.bilinear {
            Sampling::Bilinear
        } else {
            Sampling::Nearest
        };
        out.stations = Some(score_stations(&pred, &st, sampling)?);
    }
    if let (Some(dir), Some(r)) = (&a.figures, &reference) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        prediction_figures(
            dir,
            "evaluation",
            "Prediction",
            &pred,
            r,
            coarse.as_ref(),
            a.force,
        )?;
        ctx.say(&format!("wrote figures into {}", dir.display()));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{}", metrics_header());
    if let Some(m) = &out.reference {
        println!("{}", metrics_row("reference", m));
    }
    if let Some(m) = &out.aggregated_back {
        println!("{}", metrics_row("aggregated back", m));
    }
    if let Some(s) = &out.stations {
        match &s.metrics {
            Some(m) => println!("{}", metrics_row("stations", m)),
            None => println!("stations: none scored"),
        }
        println!(
            "stations skipped: {} outside the grid, {} on nodata, {} without a value",
            s.skip_counts.outside_grid, s.skip_counts.nodata, s.skip_counts.missing_value
        );
    }
    if let Some(cl) = &out.classes {
        println!("\nper class:");
        for c in cl {
            println!("{}", metrics_row(&format!("class {}", c.class), &c.metrics));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- tune

/// The paper's search space ([`SearchSpace::amun_paper`]) with the epoch range capped at
/// `max_epochs` (the paper's range, 10–150, is meant for GPU budgets).
fn tune_space(max_epochs: i64) -> Result<SearchSpace> {
    let paper = SearchSpace::amun_paper();
    if max_epochs >= 150 {
        return Ok(paper);
    }
    let low = if max_epochs > 10 { 10 } else { 1 };
    let mut space = SearchSpace::new();
    for d in paper.dimensions() {
        space = match (d.name(), d.domain()) {
            ("epochs", Domain::Integer { scale, .. }) => {
                space.integer("epochs", low, max_epochs.max(low + 1), *scale)?
            }
            (n, Domain::Integer { low, high, scale }) => space.integer(n, *low, *high, *scale)?,
            (n, Domain::Real { low, high, scale }) => space.real(n, *low, *high, *scale)?,
            (n, Domain::Categorical { choices }) => space.categorical(n, choices.clone())?,
        };
    }
    Ok(space)
}

fn train_config_for(point: &Point, seed: u64) -> Result<TrainConfig> {
    let mut tc = TrainConfig {
        seed,
        ..TrainConfig::default()
    };
    tc.solver = match point.category("solver") {
        Some("sgdm") => amun_core::net::Solver::SGDM,
        Some("adam") => amun_core::net::Solver::ADAM,
        Some("rmsprop") => amun_core::net::Solver::RMSPROP,
        other => bail!("unknown solver {other:?}"),
    };
    tc.learning_rate = point
        .real("learning_rate")
        .ok_or_else(|| anyhow!("no learning_rate"))?;
    tc.epochs = point
        .integer("epochs")
        .ok_or_else(|| anyhow!("no epochs"))? as usize;
    tc.batch_size = point
        .integer("batch_size")
        .ok_or_else(|| anyhow!("no batch_size"))? as usize;
    tc.l2 = point.real("l2").ok_or_else(|| anyhow!("no l2"))?;
    Ok(tc)
}

pub fn tune(ctx: &Ctx, a: &TuneArgs) -> Result<()> {
    let hist = a.out.join("history.json");
    if !a.resume {
        check_writable(&hist, a.force)?;
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let scenes = load_scenes(&a.scenes)?;
    let data = training_scenes(&scenes)?;
    let model = preset(a.preset).with_covariates(scenes[0].covariates().names());
    let mut opt = if a.resume && hist.exists() {
        Optimizer::load(&hist)?
    } else {
        Optimizer::new(
            tune_space(a.max_epochs)?,
            Params::new()
                .seed(a.seed)
                .n_initial(a.trials.clamp(1, 10))
                .check()?,
        )?
    };
    while opt.history().len() < a.trials {
        let point = opt.ask()?;
        let n = opt.history().len() + 1;
        ctx.say(&format!("trial {n}/{}: {point}", a.trials));
        let outcome = match train_config_for(&point, a.seed).and_then(|tc| {
            let mut t = Trainer::new(&model, &tc, &data)?;
            run_trainer(&mut t, &tc, &ctx.bars)?;
            let best = t
                .history()
                .iter()
                .map(|r| r.val_rmse_k)
                .filter(|v| v.is_finite())
                .fold(f64::INFINITY, f64::min);
            Ok(best)
        }) {
            Ok(v) if v.is_finite() => Outcome::Value(v),
            Ok(_) => Outcome::Failed {
                reason: "no finite validation RMSE".into(),
            },
            Err(e) => Outcome::Failed {
                reason: crate::one_line(&e),
            },
        };
        ctx.say(&format!(
            "  → {}",
            outcome.value().map_or_else(
                || "failed".to_string(),
                |v| format!("validation RMSE {v:.3} K")
            )
        ));
        opt.tell(point, outcome)?;
        opt.save(&hist)?;
    }
    let mut rows: Vec<_> = opt.history().iter().enumerate().collect();
    rows.sort_by(|a, b| {
        let v = |t: &amun_core::bayesopt::Trial| t.outcome.value().unwrap_or(f64::INFINITY);
        v(a.1).total_cmp(&v(b.1))
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(opt.history())?);
    } else {
        let mut md = String::from(
            "| rank | trial | validation RMSE (K) | parameters |\n|---|---|---|---|\n",
        );
        for (rank, (i, t)) in rows.iter().enumerate() {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                rank + 1,
                i + 1,
                t.outcome
                    .value()
                    .map_or("failed".into(), |v| format!("{v:.3}")),
                t.point
            ));
        }
        print!("{md}");
        write_atomic(&a.out.join("results.md"), md.as_bytes())?;
    }
    Ok(())
}

// ---------------------------------------------------------------- baseline rf

pub fn baseline_rf(ctx: &Ctx, a: &RfArgs) -> Result<()> {
    check_writable(&a.out, a.force)?;
    let scene = load_scene(&a.scene)?;
    let train = load_scenes(&a.train)?;
    let mode = if train.is_empty() {
        RegressionMode::PerScene
    } else {
        RegressionMode::Supervised
    };
    let mut rf = Regression::random_forest(RfParams::new().n_trees(a.trees).seed(a.seed), mode);
    rf.fit(&train, &ctx.bars)?;
    let out = rf.predict(&scene, &ctx.bars)?;
    write_geotiff(&a.out, &out, a.force)?;
    if let Some(r) = scene.reference() {
        let m = score(&out, r, None)?;
        ctx.say(&format!("{}\n{}", metrics_header(), metrics_row("rf", &m)));
    }
    ctx.say(&format!("wrote {}", a.out.display()));
    Ok(())
}
