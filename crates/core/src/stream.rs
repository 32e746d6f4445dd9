//! Downscaling a scene folder to a GeoTIFF without holding the fine grid in memory: the
//! covariates are read a window at a time from `covariates.tif`, the network's tiles are
//! written to the output as they finish, and coarse conservation gathers block statistics
//! on the way and corrects the output in a second pass.

use std::path::{Path, PathBuf};

use amun_net::{Amplitude, Checkpoint, Inference, InferencePlan, TileParams};
use amun_raster::{
    write_streamed, BlockStats, Compression, ConserveParams, Departure, GeoTiffReader, Grid,
    Raster, Window, WindowSource, WriteOptions,
};

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::scene::{layout, SceneManifest};

/// A scene folder (see [`crate::Scene::save`]) opened for reading window by window: the
/// coarse LST in memory, the covariates on disk.
#[derive(Debug)]
pub struct SceneReader {
    name: String,
    coarse_lst: Raster,
    covariates: GeoTiffReader,
    factor: usize,
}

impl SceneReader {
    /// Opens a scene folder, checking what [`crate::Scene::load`] checks without reading the
    /// covariates' pixels.
    ///
    /// # Errors
    /// [`Error::Io`]/[`Error::Json`] for a missing or broken `scene.json`; raster errors
    /// naming the file; [`Error::Scene`] if the files do not form a consistent scene.
    pub fn open(dir: &Path) -> Result<Self> {
        let m = SceneManifest::read(dir)?;
        let coarse_lst = amun_raster::read_band(dir.join(layout::COARSE_LST), 1)?;
        let covariates = GeoTiffReader::open(dir.join(layout::COVARIATES))?;
        let scene_err = |detail: String| Error::Scene {
            scene: m.name.clone(),
            detail,
        };
        if covariates.names() != m.covariates.as_slice() {
            return Err(scene_err(format!(
                "{} has bands [{}] but {} lists [{}]",
                layout::COVARIATES,
                covariates.names().join(", "),
                layout::MANIFEST,
                m.covariates.join(", ")
            )));
        }
        let factor = covariates
            .grid()
            .refinement_of(coarse_lst.grid())
            .map_err(|e| {
                scene_err(format!(
                    "the covariate grid does not refine the LST grid: {e}"
                ))
            })?;
        if factor != m.factor || factor < 2 {
            return Err(scene_err(format!(
                "grids nest by a factor {factor} but {} says {}",
                layout::MANIFEST,
                m.factor
            )));
        }
        Ok(Self {
            name: m.name,
            coarse_lst,
            covariates,
            factor,
        })
    }

    /// The scene's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The coarse LST.
    pub fn coarse_lst(&self) -> &Raster {
        &self.coarse_lst
    }

    /// The fine grid.
    pub fn fine_grid(&self) -> &Grid {
        self.covariates.grid()
    }

    /// Covariate band names.
    pub fn covariate_names(&self) -> &[String] {
        self.covariates.names()
    }

    /// Coarse-to-fine factor.
    pub fn factor(&self) -> usize {
        self.factor
    }
}

/// The covariates of a [`SceneReader`] as a [`WindowSource`]: land cover is categorical and
/// its fill codes missing, as [`crate::Scene::load`] makes them.
impl WindowSource for SceneReader {
    fn grid(&self) -> &Grid {
        self.covariates.grid()
    }

    fn names(&self) -> &[String] {
        self.covariates.names()
    }

    fn read_window(&self, name: &str, window: Window) -> amun_raster::Result<Raster> {
        let band = self.covariates.read_window(name, window)?;
        if name == amun_indices::Covariate::Landcover.name()
            || band.kind() == amun_raster::BandKind::Categorical
        {
            amun_indices::landcover_raster(band).map_err(|e| amun_raster::Error::InvalidOperation {
                detail: format!(
                    "band `{name}` of {} (cols {}..{}, rows {}..{}): {e}",
                    self.covariates.path().display(),
                    window.col0,
                    window.col1(),
                    window.row0,
                    window.row1()
                ),
            })
        } else {
            Ok(band)
        }
    }
}

/// Options of [`downscale_to_file`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StreamOptions {
    /// Tiling and the memory budget of the whole run (default: [`TileParams::default`],
    /// 1 GiB). The run's own buffers (conservation statistics, tiles waiting to be written)
    /// are taken from the budget before the network's windows are sized.
    pub tiles: TileParams,
    /// Coarse conservation of the output (default: none).
    pub conserve: Option<ConserveParams>,
}

/// What [`downscale_to_file`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSummary {
    /// The network's windows.
    pub plan: InferencePlan,
    /// Conservation steps, when conserving.
    pub conserve_iterations: Option<usize>,
    /// How far the network's raw output departs from the coarse LST at the coarse scale,
    /// next to bilinear interpolation (see [`amun_raster::BlockStats::departure`]).
    pub departure: Departure,
    /// How large the network's correction of its base was next to its training residuals
    /// (see [`amun_net::Amplitude`]; `None` for a model that is not residual).
    pub amplitude: Option<Amplitude>,
}

/// Bytes of the run's own buffers besides the network's windows: tiles of the output
/// waiting for their pixels (at most a row of them), chunks being decoded, and the block
/// statistics.
fn pipeline_bytes(scene: &SceneReader, opts: &StreamOptions) -> u64 {
    let width = scene.fine_grid().width() as u64;
    let tile = WriteOptions::default().tile_size as u64;
    let writer = 2 * width * tile * 4;
    let reader = 32 << 20;
    // Block statistics are always gathered (the departure check); conservation adds its
    // coarse solve.
    let cells = scene.coarse_lst().grid().len() as u64;
    let stats = cells * (8 + 4 + 36) + opts.conserve.map_or(0, |_| cells * 16);
    writer + reader + stats
}

/// Downscales a scene folder with a checkpoint into a float32 tiled GeoTIFF at `out`,
/// streaming: memory follows the window, not the scene (see the module documentation).
///
/// `out` appears only when complete (a temporary file renamed into place). With
/// conservation the uncorrected output goes to a temporary file next to `out` first.
///
/// # Errors
/// Network errors (among them [`amun_net::Error::NoValidOutput`] when no pixel has every
/// input), raster read and write errors naming the file (among them
/// [`amun_raster::Error::NotConverged`] when conservation does not converge).
pub fn downscale_to_file(
    checkpoint: &Checkpoint,
    scene: &SceneReader,
    out: &Path,
    opts: &StreamOptions,
    progress: &dyn Progress,
) -> Result<StreamSummary> {
    let grid = scene.fine_grid().clone();
    let mut tiles = opts.tiles;
    // The allocator's slack on top of the live bytes: without this share, multi-window
    // scenes peaked 1–5 % above the budget (2000² and 6000², `docs/benchmarks/amun-net.md`).
    let slack = tiles.max_memory / 16;
    tiles.max_memory = tiles
        .max_memory
        .saturating_sub(pipeline_bytes(scene, opts))
        .saturating_sub(slack);
    let write_opts = WriteOptions::default();
    let mut started = false;
    let mut report = |done: usize, total: usize| {
        if !started {
            progress.start("predict amun", total as u64);
            started = true;
        }
        progress.advance(1);
        if done == total {
            progress.finish();
        }
    };
    // The network's output streamed to `path`, block statistics gathered on the way.
    let mut predict_into = |path: &Path, opts: &WriteOptions| -> Result<(Inference, BlockStats)> {
        let mut stats = BlockStats::new(&grid, scene.coarse_lst().grid())?;
        let inference = write_streamed(path, &grid, opts, |sink| -> Result<Inference> {
            Ok(checkpoint.predict_windows(
                scene.coarse_lst(),
                scene,
                &tiles,
                |w, data| {
                    stats.add(w, data.view())?;
                    Ok(sink.put(w, data.view())?)
                },
                &mut report,
            )?)
        })?;
        Ok((inference, stats))
    };
    let Some(params) = opts.conserve else {
        let (inference, stats) = predict_into(out, &write_opts)?;
        return Ok(StreamSummary {
            plan: inference.plan,
            conserve_iterations: None,
            departure: stats.departure(scene.coarse_lst())?,
            amplitude: inference.amplitude,
        });
    };
    // Pass 1: the uncorrected output to a temporary file.
    let tmp = temp_dir_next_to(out, ".amun-unconserved-")?;
    let raw = tmp.path().join("raw.tif");
    let raw_opts = WriteOptions::default().with_compression(Compression::None);
    let (inference, stats) = predict_into(&raw, &raw_opts)?;
    let departure = stats.departure(scene.coarse_lst())?;
    let correction = stats.solve(scene.coarse_lst(), &params)?;
    drop(stats);
    // Pass 2: bands of whole tile rows, corrected and written.
    let reader = GeoTiffReader::open(&raw)?;
    let band_rows = write_opts.tile_size;
    progress.start("conserve", grid.height().div_ceil(band_rows) as u64);
    write_streamed(out, &grid, &write_opts, |sink| -> Result<()> {
        for row0 in (0..grid.height()).step_by(band_rows) {
            let w = Window::new(0, row0, grid.width(), band_rows.min(grid.height() - row0));
            let mut band = reader.read_band_window(1, w)?.into_data();
            correction.apply(w, band.view_mut())?;
            sink.put(w, band.view())?;
            progress.advance(1);
        }
        Ok(())
    })?;
    progress.finish();
    Ok(StreamSummary {
        plan: inference.plan,
        conserve_iterations: Some(correction.iterations()),
        departure,
        amplitude: inference.amplitude,
    })
}

/// A temporary folder named `prefix…` in the folder of `out`, for files that are turned into
/// `out` (same file system, so the final rename is atomic); removed when dropped.
pub(crate) fn temp_dir_next_to(out: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&dir)
        .map_err(|source| Error::Io { path: dir, source })
}
