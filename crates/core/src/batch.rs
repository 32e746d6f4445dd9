//! Downscaling many scenes with one checkpoint — the steps of a time series or a list of
//! scene folders — one output GeoTIFF per step, resumable: each output is written atomically
//! ([`downscale_to_file`]), so a finished step is one whose output exists, and a rerun after
//! a kill or a failed job-array task skips it. A share of the steps ([`Shard`]) runs in one
//! process; one failed step does not stop the others.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use amun_net::Checkpoint;
use amun_raster::{write_cog, write_streamed_bands, GeoTiffReader, Window, WriteOptions};

use crate::error::{Error, Result};
use crate::progress::{NoProgress, Progress};
use crate::series::{format_time, SeriesIndex};
use crate::shard::Shard;
use crate::stream::{
    downscale_to_file, temp_dir_next_to, SceneReader, StreamOptions, StreamSummary,
};

/// One step of a batch: a scene folder and the GeoTIFF it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchStep {
    /// How logs, errors and a stacked file's band descriptions name the step: its time
    /// (`2020-07-01T13:00:00`) in a series, the folder's name otherwise.
    pub label: String,
    /// The scene folder.
    pub scene: PathBuf,
    /// The output GeoTIFF.
    pub out: PathBuf,
}

impl BatchStep {
    /// The steps of the series in `dir` (its [`SeriesIndex`]), each written to
    /// `out_dir/<scene folder>.tif`.
    ///
    /// # Errors
    /// As [`SeriesIndex::load`].
    pub fn from_series(dir: &Path, out_dir: &Path) -> Result<Vec<BatchStep>> {
        let index = SeriesIndex::load(dir)?;
        Ok(index
            .steps
            .iter()
            .map(|s| BatchStep {
                label: format_time(s.time),
                scene: dir.join(&s.scene),
                out: out_dir.join(format!("{}.tif", s.scene)),
            })
            .collect())
    }

    /// The steps of a list of scene folders, each written to `out_dir/<folder name>.tif`.
    ///
    /// # Errors
    /// [`Error::Series`] for a folder without a name (`/`, `..`) or two folders of the same
    /// name, whose outputs would collide.
    pub fn from_scenes(scenes: &[PathBuf], out_dir: &Path) -> Result<Vec<BatchStep>> {
        let mut steps: Vec<BatchStep> = Vec::with_capacity(scenes.len());
        for scene in scenes {
            let Some(name) = scene.file_name().and_then(|n| n.to_str()) else {
                return Err(Error::Series {
                    what: scene.display().to_string(),
                    detail: "a scene folder needs a (UTF-8) name to name its output".into(),
                });
            };
            if let Some(other) = steps.iter().find(|s| s.label == name) {
                return Err(Error::Series {
                    what: scene.display().to_string(),
                    detail: format!(
                        "has the same name as {}: both would be written to {name}.tif",
                        other.scene.display()
                    ),
                });
            }
            steps.push(BatchStep {
                label: name.to_string(),
                scene: scene.clone(),
                out: out_dir.join(format!("{name}.tif")),
            });
        }
        Ok(steps)
    }
}

/// A step that was downscaled.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDone {
    /// The step's label.
    pub label: String,
    /// The file written.
    pub out: PathBuf,
    /// Fine pixels of the output.
    pub pixels: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// What [`downscale_to_file`] reported.
    pub summary: StreamSummary,
}

/// What happened to one step, as [`downscale_steps`] reports it when it happens.
#[derive(Debug)]
pub enum StepEvent<'a> {
    /// Written now.
    Done(&'a StepDone),
    /// Its output existed (and no `force`): skipped.
    Skipped(&'a BatchStep),
    /// It failed; the next steps still run.
    Failed(&'a BatchStep, &'a Error),
}

/// What [`downscale_steps`] did.
#[derive(Debug)]
pub struct BatchReport {
    /// The number of steps of the whole batch.
    pub total: usize,
    /// This task's steps (indices into the batch).
    pub share: Range<usize>,
    /// Steps written now.
    pub written: Vec<StepDone>,
    /// Labels of the steps whose output existed.
    pub skipped: Vec<String>,
    /// Steps that failed, with their error ([`Error::Step`], naming the step and the file).
    pub failed: Vec<Error>,
    /// Seconds spent.
    pub seconds: f64,
}

impl BatchReport {
    /// Fine pixels written.
    pub fn pixels(&self) -> u64 {
        self.written.iter().map(|s| s.pixels).sum()
    }
}

/// How [`downscale_steps`] and [`downscale_file`] write.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BatchOptions {
    /// Tiling, memory and conservation of each step.
    pub stream: StreamOptions,
    /// Redo steps whose output exists.
    pub force: bool,
    /// Write Cloud-Optimized GeoTIFFs (tiled, with internal overviews; [`write_cog`]).
    pub cog: bool,
}

/// [`downscale_to_file`], or with `cog` a Cloud-Optimized GeoTIFF: the plain output goes to
/// a temporary folder next to `out` and is rewritten with overviews into `out` (atomically;
/// the temporary folder is removed whatever happens).
///
/// # Errors
/// As [`downscale_to_file`] and [`write_cog`]; [`Error::Io`] if the temporary folder cannot
/// be made.
pub fn downscale_file(
    checkpoint: &Checkpoint,
    scene: &SceneReader,
    out: &Path,
    opts: &StreamOptions,
    cog: bool,
    progress: &dyn Progress,
) -> Result<StreamSummary> {
    if !cog {
        return downscale_to_file(checkpoint, scene, out, opts, progress);
    }
    let tmp = temp_dir_next_to(out, ".amun-cog-")?;
    let plain = tmp.path().join("plain.tif");
    let summary = downscale_to_file(checkpoint, scene, &plain, opts, progress)?;
    write_cog(
        out,
        &GeoTiffReader::open(&plain)?,
        &[],
        &WriteOptions::default(),
    )?;
    Ok(summary)
}

/// Downscales this task's share of `steps` with one checkpoint (loaded once by the caller).
///
/// A step whose output exists is skipped unless `opts.force`; the others are written with
/// [`downscale_file`] (atomically, so a killed run leaves only whole files). A step that
/// fails is reported ([`StepEvent::Failed`], [`BatchReport::failed`]) and the next steps run.
/// `progress` counts the steps to do (skipped ones are not work: they would spoil the ETA),
/// with a message per step; `each` hears of every step as it ends.
pub fn downscale_steps(
    checkpoint: &Checkpoint,
    steps: &[BatchStep],
    shard: Shard,
    opts: &BatchOptions,
    progress: &dyn Progress,
    mut each: impl FnMut(StepEvent<'_>),
) -> BatchReport {
    let started = Instant::now();
    let share = shard.range(steps.len());
    let mut report = BatchReport {
        total: steps.len(),
        share: share.clone(),
        written: Vec::new(),
        skipped: Vec::new(),
        failed: Vec::new(),
        seconds: 0.0,
    };
    let mut todo = Vec::new();
    for step in &steps[share] {
        if !opts.force && step.out.exists() {
            report.skipped.push(step.label.clone());
            each(StepEvent::Skipped(step));
        } else {
            todo.push(step);
        }
    }
    progress.start("downscale", todo.len() as u64);
    for step in todo {
        let t = Instant::now();
        let result = SceneReader::open(&step.scene).and_then(|scene| {
            let summary = downscale_file(
                checkpoint,
                &scene,
                &step.out,
                &opts.stream,
                opts.cog,
                &NoProgress,
            )?;
            Ok((scene.fine_grid().len() as u64, summary))
        });
        progress.advance(1);
        match result {
            Ok((pixels, summary)) => {
                let done = StepDone {
                    label: step.label.clone(),
                    out: step.out.clone(),
                    pixels,
                    seconds: t.elapsed().as_secs_f64(),
                    summary,
                };
                progress.message(&format!("{} ({:.1} s)", step.label, done.seconds));
                each(StepEvent::Done(&done));
                report.written.push(done);
            }
            Err(e) => {
                let e = Error::Step {
                    step: format!("{} (scene {})", step.label, step.scene.display()),
                    source: Box::new(e),
                };
                progress.message(&format!("{} FAILED", step.label));
                each(StepEvent::Failed(step, &e));
                report.failed.push(e);
            }
        }
    }
    progress.finish();
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// Joins one-band GeoTIFFs on one grid (the outputs of the steps) into one multi-band
/// GeoTIFF at `out`, band `i` described by `parts[i].0` (the step's time), streamed a strip of
/// tile rows at a time and written atomically; with `cog`, a Cloud-Optimized GeoTIFF (joined
/// in a temporary folder next to `out` first).
///
/// # Errors
/// [`Error::Series`] for no parts or parts on different grids (naming the file); raster
/// errors naming the file.
pub fn join_bands(
    parts: &[(String, PathBuf)],
    out: &Path,
    opts: &WriteOptions,
    cog: bool,
) -> Result<()> {
    if cog {
        let tmp = temp_dir_next_to(out, ".amun-cog-")?;
        let plain = tmp.path().join("stack.tif");
        join_bands(parts, &plain, opts, false)?;
        let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
        write_cog(out, &GeoTiffReader::open(&plain)?, &names, opts)?;
        return Ok(());
    }
    let readers = parts
        .iter()
        .map(|(_, p)| GeoTiffReader::open(p))
        .collect::<amun_raster::Result<Vec<_>>>()?;
    let Some(first) = readers.first() else {
        return Err(Error::Series {
            what: out.display().to_string(),
            detail: "no step to stack".into(),
        });
    };
    let grid = first.grid().clone();
    for (r, (label, path)) in readers.iter().zip(parts) {
        if let Err(e) = r.grid().check_same(&grid) {
            return Err(Error::Series {
                what: path.display().to_string(),
                detail: format!(
                    "step {label} is not on the grid of {}: {e}",
                    parts[0].1.display()
                ),
            });
        }
    }
    let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
    let strip = opts.tile_size;
    write_streamed_bands(out, &grid, &names, opts, |sink| -> Result<()> {
        for row0 in (0..grid.height()).step_by(strip) {
            let w = Window::new(0, row0, grid.width(), strip.min(grid.height() - row0));
            for (b, r) in readers.iter().enumerate() {
                let band = r.read_band_window(1, w)?;
                sink.put_band(b, w, band.data().view())?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::{read, write_raster, Grid, Raster};

    #[test]
    fn scene_lists_name_their_outputs_and_refuse_collisions() {
        let out = Path::new("fine");
        let steps =
            BatchStep::from_scenes(&[PathBuf::from("a/s1"), PathBuf::from("b/s2")], out).unwrap();
        assert_eq!(steps[1].out, Path::new("fine/s2.tif"));
        assert_eq!(steps[1].label, "s2");
        let e = BatchStep::from_scenes(&[PathBuf::from("a/s1"), PathBuf::from("b/s1")], out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("both would be written to s1.tif"), "{e}");
        assert!(BatchStep::from_scenes(&[PathBuf::from("/")], out).is_err());
    }

    #[test]
    fn bands_join_in_order_on_one_grid_only() {
        let dir = tempfile::tempdir().unwrap();
        let g = Grid::geographic(100.0, 30.0, 0.01, 40, 30).unwrap();
        let mut parts = Vec::new();
        for i in 0..3 {
            let p = dir.path().join(format!("{i}.tif"));
            let r = Raster::from_fn(g.clone(), |(r, c)| (i * 1000 + r * 40 + c) as f32);
            write_raster(&p, &r, &WriteOptions::default()).unwrap();
            parts.push((format!("2020-07-01T{i:02}:00:00"), p));
        }
        let out = dir.path().join("stack.tif");
        let opts = WriteOptions::default().with_tile_size(16);
        join_bands(&parts, &out, &opts, false).unwrap();
        let s = read(&out).unwrap();
        assert_eq!(
            s.names(),
            parts.iter().map(|p| p.0.clone()).collect::<Vec<_>>()
        );
        // Band 3, row 2, column 5: 2000 + 2·40 + 5 (by construction).
        let v = s.band("2020-07-01T02:00:00").unwrap().data()[[2, 5]];
        assert_eq!(v.to_bits(), 2085f32.to_bits());
        // A part on another grid is named.
        let other = dir.path().join("other.tif");
        let g2 = Grid::geographic(100.0, 30.0, 0.01, 40, 31).unwrap();
        write_raster(&other, &Raster::filled(g2, 1.0), &WriteOptions::default()).unwrap();
        parts.push(("late".into(), other));
        let e = join_bands(&parts, &dir.path().join("x.tif"), &opts, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("other.tif") && e.contains("step late"), "{e}");
        assert!(!dir.path().join("x.tif").exists());
    }
}
