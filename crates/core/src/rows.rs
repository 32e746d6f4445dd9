//! One scene too large for one task, split into row bands: each task of a job downscales its
//! band ([`downscale_rows_to_file`]) into a GeoTIFF of its own, georeferenced where the band
//! lies, and [`mosaic`] joins the bands into the scene's GeoTIFF (or COG).
//!
//! **Identical to one process.** A band's rows are predicted with the windows the
//! whole-scene prediction would use around them (halos reaching into the neighbouring bands'
//! rows, the reflection margin only at the scene's edges; [`amun_net::InferencePlan::for_rows`]),
//! and the network's output does not depend on the tiling, so the mosaic's pixels are the
//! one-process output's, bit for bit. Band edges fall on multiples of the coarse factor and
//! of the network's size multiple ([`band_multiple`]): whole coarse pixels, and the lattice
//! the tiles need.
//!
//! **Not with conservation.** Coarse conservation solves one correction on the coarse grid
//! of the whole scene from the block means of the whole prediction; a band alone has neither,
//! so `conserve` is refused rather than made to differ from the one-process run.

use std::ops::Range;
use std::path::{Path, PathBuf};

use amun_net::{Checkpoint, InferencePlan};
use amun_raster::{write_cog, write_streamed, GeoTiffReader, Grid, Window, WriteOptions};

use crate::batch::BatchOptions;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::shard::Shard;
use crate::stream::{temp_dir_next_to, SceneReader};

/// Row bands start and end on multiples of this: the least common multiple of the coarse
/// factor and the network's size multiple.
pub fn band_multiple(checkpoint: &Checkpoint, scene: &SceneReader) -> usize {
    let (a, b) = (scene.factor(), checkpoint.config().size_multiple());
    let gcd = |mut x: usize, mut y: usize| {
        while y != 0 {
            (x, y) = (y, x % y);
        }
        x
    };
    a / gcd(a, b).max(1) * b
}

/// The file a band of rows `rows` of a scene of `height` rows is written to, in `dir`:
/// `rows-000128-000256-of-000512.tif` ([`mosaic`] reads the total from the names).
pub fn band_file(dir: &Path, rows: &Range<usize>, height: usize) -> PathBuf {
    dir.join(format!(
        "rows-{:06}-{:06}-of-{height:06}.tif",
        rows.start, rows.end
    ))
}

/// What [`downscale_rows_to_file`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct RowsSummary {
    /// The band's rows of the scene.
    pub rows: Range<usize>,
    /// The scene's height.
    pub height: usize,
    /// The network's windows for the band (`None` for an empty band: nothing written).
    pub plan: Option<InferencePlan>,
}

/// Downscales this task's band of rows of a scene into `dir` ([`band_file`]): a tiled
/// GeoTIFF of the band's rows, written atomically. A task left without rows (more tasks than
/// blocks of [`band_multiple`] rows) writes nothing.
///
/// # Errors
/// [`Error::Method`] with `conserve` (see the module documentation); as
/// [`Checkpoint::predict_rows`]; raster write errors naming the file.
pub fn downscale_rows_to_file(
    checkpoint: &Checkpoint,
    scene: &SceneReader,
    shard: Shard,
    dir: &Path,
    opts: &BatchOptions,
    progress: &dyn Progress,
) -> Result<RowsSummary> {
    if opts.stream.conserve.is_some() {
        return Err(Error::Method {
            method: "row bands".into(),
            detail: "coarse conservation solves one correction for the whole scene from the block means of the whole prediction, so a band cannot be conserved on its own and match the one-process run; downscale the bands without --conserve, or the scene in one process with it".into(),
        });
    }
    let grid = scene.fine_grid().clone();
    let height = grid.height();
    let rows = shard.rows(height, band_multiple(checkpoint, scene))?;
    let mut summary = RowsSummary {
        rows: rows.clone(),
        height,
        plan: None,
    };
    if rows.is_empty() {
        return Ok(summary);
    }
    let band_grid = grid.window(0, rows.start, grid.width(), rows.len())?;
    let out = band_file(dir, &rows, height);
    let write = |path: &Path| -> Result<InferencePlan> {
        let mut started = false;
        write_streamed(path, &band_grid, &WriteOptions::default(), |sink| {
            Ok(checkpoint
                .predict_rows(
                    scene.coarse_lst(),
                    scene,
                    &opts.stream.tiles,
                    rows.clone(),
                    |w, data| {
                        let local = Window::new(w.col0, w.row0 - rows.start, w.width, w.height);
                        Ok(sink.put(local, data.view())?)
                    },
                    |done, total| {
                        if !started {
                            progress.start("predict band", total as u64);
                            started = true;
                        }
                        progress.advance(1);
                        if done == total {
                            progress.finish();
                        }
                    },
                )?
                .plan)
        })
    };
    summary.plan = Some(if opts.cog {
        let tmp = temp_dir_next_to(&out, ".amun-tmp-")?;
        let plain = tmp.path().join("band.tif");
        let plan = write(&plain)?;
        write_cog(
            &out,
            &GeoTiffReader::open(&plain)?,
            &[],
            &WriteOptions::default(),
        )?;
        plan
    } else {
        write(&out)?
    });
    Ok(summary)
}

/// The rows and total height a [`band_file`] name gives, if it is one.
fn rows_in_name(path: &Path) -> Option<(usize, usize, usize)> {
    let stem = path.file_stem()?.to_str()?;
    let rest = stem.strip_prefix("rows-")?;
    let mut it = rest.split('-');
    let (a, b, of, h) = (it.next()?, it.next()?, it.next()?, it.next()?);
    (of == "of" && it.next().is_none()).then_some(())?;
    Some((a.parse().ok()?, b.parse().ok()?, h.parse().ok()?))
}

/// What [`mosaic`] joined.
#[derive(Debug, Clone, PartialEq)]
pub struct MosaicSummary {
    /// The mosaic's grid.
    pub grid: Grid,
    /// The bands, north to south, with their first row in the mosaic.
    pub bands: Vec<(PathBuf, usize)>,
}

/// Joins row bands (one-band GeoTIFFs on one column range and pixel size, stacked north to
/// south without gap or overlap, in any order) into one GeoTIFF at `out`, or with `cog` a
/// Cloud-Optimized GeoTIFF, streamed a strip at a time and written atomically. When the band
/// files carry [`band_file`] names, the rows they name must cover the whole scene.
///
/// # Errors
/// [`Error::Series`] naming the file for no band, a band off the others' columns, CRS or
/// pixel size, a gap or an overlap, or rows missing; raster errors naming the file.
pub fn mosaic(parts: &[PathBuf], out: &Path, cog: bool) -> Result<MosaicSummary> {
    let bad = |what: &Path, detail: String| Error::Series {
        what: what.display().to_string(),
        detail,
    };
    let mut readers = parts
        .iter()
        .map(|p| Ok((p.clone(), GeoTiffReader::open(p)?)))
        .collect::<Result<Vec<_>>>()?;
    if readers.is_empty() {
        return Err(bad(out, "no band to join".into()));
    }
    for (p, r) in &readers {
        if r.names().len() != 1 {
            return Err(bad(
                p,
                format!("has {} bands, a row band has one", r.names().len()),
            ));
        }
    }
    // North to south.
    // The first row's position in rows of the pixel height: grows southward either way up.
    let first_row = |g: &Grid| g.transform().origin_y / g.transform().pixel_height;
    readers.sort_by(|a, b| first_row(a.1.grid()).total_cmp(&first_row(b.1.grid())));
    let top = readers[0].1.grid().clone();
    let height: usize = readers.iter().map(|(_, r)| r.grid().height()).sum();
    let grid = Grid::new(top.width(), height, *top.transform(), top.crs().cloned())?;
    let mut bands = Vec::with_capacity(readers.len());
    let mut row0 = 0;
    for (p, r) in &readers {
        let h = r.grid().height();
        if let Some((a, b, total)) = rows_in_name(p) {
            if (a, b) != (row0, row0 + h) {
                let missing = if a > row0 {
                    format!(": rows {row0}..{a} are missing")
                } else {
                    String::new()
                };
                return Err(bad(
                    p,
                    format!(
                        "its name says rows {a}..{b} of {total}, but after the bands north of it it would be rows {row0}..{}{missing}",
                        row0 + h
                    ),
                ));
            }
        }
        let want = grid.window(0, row0, grid.width(), h)?;
        want.check_same(r.grid()).map_err(|e| {
            bad(
                p,
                format!(
                    "is not the band of rows {row0}..{} under the one before it (a gap, an overlap, or another grid): {e}",
                    row0 + h
                ),
            )
        })?;
        bands.push((p.clone(), row0));
        row0 += h;
    }
    if let Some((_, _, total)) = readers.iter().find_map(|(p, _)| rows_in_name(p)) {
        if total != height {
            return Err(bad(
                out,
                format!(
                    "the bands cover {height} rows of a scene of {total} (their names say so): rows {height}..{total} are missing"
                ),
            ));
        }
    }
    let opts = WriteOptions::default();
    let join = |path: &Path| -> Result<()> {
        write_streamed(path, &grid, &opts, |sink| -> Result<()> {
            for ((_, r), (_, row0)) in readers.iter().zip(&bands) {
                let h = r.grid().height();
                for s in (0..h).step_by(opts.tile_size) {
                    let n = opts.tile_size.min(h - s);
                    let data = r.read_band_window(1, Window::new(0, s, grid.width(), n))?;
                    sink.put(
                        Window::new(0, row0 + s, grid.width(), n),
                        data.data().view(),
                    )?;
                }
            }
            Ok(())
        })
    };
    if cog {
        let tmp = temp_dir_next_to(out, ".amun-tmp-")?;
        let plain = tmp.path().join("mosaic.tif");
        join(&plain)?;
        write_cog(out, &GeoTiffReader::open(&plain)?, &[], &opts)?;
    } else {
        join(out)?;
    }
    Ok(MosaicSummary { grid, bands })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_names_round_trip() {
        let p = band_file(Path::new("parts"), &(128..256), 512);
        assert_eq!(p, Path::new("parts/rows-000128-000256-of-000512.tif"));
        assert_eq!(rows_in_name(&p), Some((128, 256, 512)));
        assert_eq!(rows_in_name(Path::new("x/step.tif")), None);
        assert_eq!(rows_in_name(Path::new("rows-1-2-3.tif")), None);
    }
}

#[cfg(test)]
mod mosaic_tests {
    use super::*;
    use amun_raster::{read_band, write_raster, Raster};

    /// Bands of a 40×30 grid cut at rows 0, 8, 24, 30, written as `band_file`s.
    fn bands(dir: &Path) -> (Raster, Vec<PathBuf>) {
        let g = Grid::geographic(100.0, 30.0, 0.01, 40, 30).unwrap();
        let whole = Raster::from_fn(g.clone(), |(r, c)| (r * 100 + c) as f32);
        let mut files = Vec::new();
        for (a, b) in [(0, 8), (8, 24), (24, 30)] {
            let part = whole.window(0, a, 40, b - a).unwrap();
            let p = band_file(dir, &(a..b), 30);
            write_raster(&p, &part, &WriteOptions::default()).unwrap();
            files.push(p);
        }
        (whole, files)
    }

    #[test]
    fn bands_in_any_order_join_into_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (whole, mut files) = bands(dir.path());
        files.reverse();
        let out = dir.path().join("joined.tif");
        let s = mosaic(&files, &out, false).unwrap();
        assert_eq!(s.bands.iter().map(|b| b.1).collect::<Vec<_>>(), [0, 8, 24]);
        let back = read_band(&out, 1).unwrap();
        assert_eq!(back.grid(), whole.grid());
        let bits = |r: &Raster| r.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&whole));
    }

    #[test]
    fn gaps_and_missing_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (_, files) = bands(dir.path());
        let out = dir.path().join("x.tif");
        // The middle band missing: a gap between rows 8 and 24.
        let e = mosaic(&[files[0].clone(), files[2].clone()], &out, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rows 8..24 are missing") || e.contains("a gap"),
            "{e}"
        );
        // The last band missing: the names say the scene has 30 rows.
        let e = mosaic(&files[..2], &out, false).unwrap_err().to_string();
        assert!(e.contains("rows 24..30 are missing"), "{e}");
        assert!(mosaic(&[], &out, false).is_err());
        assert!(!out.exists());
    }
}
