//! Writing a tiled GeoTIFF block by block: each tile is compressed and written as soon as all
//! its pixels have arrived, and the image directory (with the tile offsets) goes at the end
//! of the file. Memory holds the tiles still waiting for pixels, not the image. Several
//! bands are stored band-interleaved (one set of tiles per band).

use std::collections::HashMap;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use ndarray::ArrayView2;
use rayon::prelude::*;
use tiff::encoder::{DirectoryEncoder, TiffEncoder};

use super::encode::{
    check_options, encode_tile, predictor_code, tiff_write, write_tags, Header, OffsetWidth,
};
use super::{geokeys, metadata, WriteOptions};
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::window::Window;

/// A tile that has received some of its pixels.
struct Pending {
    values: Vec<f32>,
    /// Which pixels have arrived.
    seen: Vec<bool>,
    filled: usize,
}

/// Where [`write_streamed`]'s producer puts blocks of pixels.
pub struct TileSink<'a> {
    write: &'a mut dyn FnMut(&[u8]) -> Result<u64>,
    grid: &'a Grid,
    opts: &'a WriteOptions,
    predictor: u16,
    bands: usize,
    /// Tiles waiting for pixels, by (band, tile row, tile column).
    pending: HashMap<(usize, usize, usize), Pending>,
    offsets: Vec<u64>,
    counts: Vec<u64>,
    tiles_written: usize,
    valid: u64,
    missing: u64,
}

impl std::fmt::Debug for TileSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileSink")
            .field("tiles_written", &self.tiles_written)
            .field("pending", &self.pending.len())
            .field("valid", &self.valid)
            .finish_non_exhaustive()
    }
}

impl TileSink<'_> {
    fn across(&self) -> usize {
        self.grid.width().div_ceil(self.opts.tile_size)
    }

    fn down(&self) -> usize {
        self.grid.height().div_ceil(self.opts.tile_size)
    }

    /// Pixels of tile (ty, tx) inside the image.
    fn tile_pixels(&self, ty: usize, tx: usize) -> usize {
        let ts = self.opts.tile_size;
        let rows = ts.min(self.grid.height() - ty * ts);
        let cols = ts.min(self.grid.width() - tx * ts);
        rows * cols
    }

    /// Puts the pixels of `window` (`NaN` for missing) of the first band. Every pixel of the
    /// image must be put exactly once, in any order; tiles are written as they complete.
    ///
    /// # Errors
    /// [`Error::WindowOutOfBounds`] for a window outside the image,
    /// [`Error::ShapeMismatch`] if `data` is not the window's size,
    /// [`Error::InvalidOperation`] if a pixel is put twice, write errors.
    pub fn put(&mut self, window: Window, data: ArrayView2<'_, f32>) -> Result<()> {
        self.put_band(0, window, data)
    }

    /// Puts the pixels of `window` of 0-based band `band`, as [`TileSink::put`] does for the
    /// first.
    ///
    /// # Errors
    /// As [`TileSink::put`], and [`Error::InvalidOperation`] for a band the file does not
    /// have.
    pub fn put_band(
        &mut self,
        band: usize,
        window: Window,
        data: ArrayView2<'_, f32>,
    ) -> Result<()> {
        if band >= self.bands {
            return Err(Error::InvalidOperation {
                detail: format!(
                    "band {} of a file of {} band(s) was written to",
                    band + 1,
                    self.bands
                ),
            });
        }
        window.check_inside(self.grid)?;
        if data.dim() != (window.height, window.width) {
            return Err(Error::ShapeMismatch {
                want_rows: window.height,
                want_cols: window.width,
                got_rows: data.nrows(),
                got_cols: data.ncols(),
            });
        }
        let ts = self.opts.tile_size;
        let mut complete = Vec::new();
        for ty in window.row0 / ts..=(window.row1() - 1) / ts {
            for tx in window.col0 / ts..=(window.col1() - 1) / ts {
                if self.counts[self.chunk(band, ty, tx)] > 0 {
                    return Err(twice(window));
                }
                let need = self.tile_pixels(ty, tx);
                let p = self
                    .pending
                    .entry((band, ty, tx))
                    .or_insert_with(|| Pending {
                        values: vec![f32::NAN; ts * ts],
                        seen: vec![false; ts * ts],
                        filled: 0,
                    });
                let rows = (ty * ts).max(window.row0)..((ty + 1) * ts).min(window.row1());
                let cols = (tx * ts).max(window.col0)..((tx + 1) * ts).min(window.col1());
                for r in rows.clone() {
                    let src = data.row(r - window.row0);
                    let at = (r - ty * ts) * ts;
                    let dst = &mut p.values[at..at + ts];
                    let seen = &mut p.seen[at..at + ts];
                    for c in cols.clone() {
                        if std::mem::replace(&mut seen[c - tx * ts], true) {
                            return Err(twice(window));
                        }
                        let v = src[c - window.col0];
                        if v.is_nan() {
                            self.missing += 1;
                        } else {
                            self.valid += 1;
                        }
                        dst[c - tx * ts] = v;
                    }
                }
                p.filled += rows.len() * cols.len();
                if p.filled == need {
                    complete.push((band, ty, tx));
                }
            }
        }
        self.flush(&complete)
    }

    /// The index of a tile in the file's tile table: band by band, each in row-major order.
    fn chunk(&self, band: usize, ty: usize, tx: usize) -> usize {
        (band * self.down() + ty) * self.across() + tx
    }

    /// Compresses the completed tiles in parallel and writes them.
    fn flush(&mut self, complete: &[(usize, usize, usize)]) -> Result<()> {
        let done: Vec<((usize, usize, usize), Pending)> = complete
            .iter()
            .filter_map(|k| self.pending.remove(k).map(|p| (*k, p)))
            .collect();
        let (ts, dt, predictor, opts) = (
            self.opts.tile_size,
            self.opts.data_type,
            self.predictor,
            self.opts,
        );
        let encoded = done
            .par_iter()
            .map(|(_, p)| encode_tile(p.values.iter().copied(), ts, f64::NAN, dt, predictor, opts))
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(|detail| Error::InvalidOperation { detail })?;
        for (((band, ty, tx), _), bytes) in done.iter().zip(encoded) {
            let i = self.chunk(*band, *ty, *tx);
            self.offsets[i] = (self.write)(&bytes)?;
            // A tile is at least a few bytes in every codec, so 0 means "not written".
            self.counts[i] = bytes.len() as u64;
            self.tiles_written += 1;
        }
        Ok(())
    }

    /// Pixels put so far that have a value.
    pub fn valid_count(&self) -> u64 {
        self.valid
    }

    /// Pixels put so far that are missing (`NaN`).
    pub fn missing_count(&self) -> u64 {
        self.missing
    }

    /// Whether every tile has been written.
    pub fn is_complete(&self) -> bool {
        self.tiles_written == self.bands * self.across() * self.down()
    }
}

fn twice(window: Window) -> Error {
    Error::InvalidOperation {
        detail: format!(
            "pixels of window cols {}..{}, rows {}..{} were written twice",
            window.col0,
            window.col1(),
            window.row0,
            window.row1()
        ),
    }
}

/// Writes a one-band floating-point tiled GeoTIFF on `grid` from the blocks that `produce`
/// puts into a [`TileSink`], without holding the image in memory.
///
/// The file is written to a temporary file next to `path` and renamed into place only when
/// `produce` returns `Ok` and every pixel has been put; on any error nothing is left at
/// `path` (an existing file there is untouched). Missing pixels are stored as NaN with a
/// `GDAL_NODATA` of `nan` (when there are any), as [`write_raster`](crate::write_raster)
/// does; tiles are in the order they completed, the directory at the end (BigTIFF when the
/// uncompressed image might not fit in 4 GiB, or when `opts` asks for it).
///
/// # Errors
/// [`Error::InvalidOperation`] for an integer data type or a producer that leaves pixels
/// out; [`Error::Unsupported`] for options or a CRS that cannot be written; I/O and TIFF
/// errors naming `path`; and whatever `produce` returns.
pub fn write_streamed<T, E: From<Error>>(
    path: impl AsRef<Path>,
    grid: &Grid,
    opts: &WriteOptions,
    produce: impl FnOnce(&mut TileSink<'_>) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    stream_file(path.as_ref(), grid, &[], opts, produce)
}

/// [`write_streamed`] for a file of several bands named `names` (GDAL band descriptions,
/// e.g. the time of each step of a series), stored band-interleaved; the producer puts each
/// band's pixels with [`TileSink::put_band`].
///
/// # Errors
/// As [`write_streamed`]; [`Error::InvalidOperation`] for no band at all.
pub fn write_streamed_bands<T, E: From<Error>>(
    path: impl AsRef<Path>,
    grid: &Grid,
    names: &[&str],
    opts: &WriteOptions,
    produce: impl FnOnce(&mut TileSink<'_>) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let path = path.as_ref();
    if names.is_empty() {
        return Err(Error::InvalidOperation {
            detail: format!("{}: nothing to write (no bands)", path.display()),
        }
        .into());
    }
    stream_file(path, grid, names, opts, produce)
}

/// The streamed writer of one band (`names` empty: no description) or of `names.len()`.
fn stream_file<T, E: From<Error>>(
    path: &Path,
    grid: &Grid,
    names: &[&str],
    opts: &WriteOptions,
    produce: impl FnOnce(&mut TileSink<'_>) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    check_options(path, opts)?;
    if !opts.data_type.is_float() {
        return Err(Error::InvalidOperation {
            detail: format!(
                "{}: streamed writing needs a floating-point type, got {}",
                path.display(),
                opts.data_type
            ),
        }
        .into());
    }
    let keys = geokeys::encode_crs(grid.crs()).map_err(|detail| Error::Unsupported {
        path: path.to_path_buf(),
        what: "CRS for GeoTIFF",
        detail,
    })?;
    let bands = names.len().max(1);
    let gdal_metadata = (!names.is_empty()).then(|| {
        metadata::format(
            names,
            &vec![crate::raster::BandKind::Continuous; names.len()],
        )
    });
    let header = Header {
        grid,
        samples: bands,
        dt: opts.data_type,
        compression: opts.compression,
        predictor: predictor_code(opts, opts.data_type),
        tile: opts.tile_size,
        keys,
        nodata: None,
        gdal_metadata,
    };
    let raw_bytes = (grid.len() as u64)
        .saturating_mul(opts.data_type.size() as u64)
        .saturating_mul(bands as u64);
    // The producer's own error is kept aside; the raster error that stands in for it only
    // makes the atomic write drop the temporary file.
    let mut failure: Option<E> = None;
    let written = crate::atomic::write_atomic_with(path, |file| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        // Classic TIFF offsets are 32-bit: leave room for the directory and tags.
        let result = if opts.bigtiff || raw_bytes > u64::from(u32::MAX) - (64 << 20) {
            TiffEncoder::new_big(&mut out)
                .map_err(|e| E::from(tiff_write(path, e)))
                .and_then(|enc| stream_into(enc, header, opts, path, produce))
        } else {
            TiffEncoder::new(&mut out)
                .map_err(|e| E::from(tiff_write(path, e)))
                .and_then(|enc| stream_into(enc, header, opts, path, produce))
        };
        match result {
            Ok(v) => {
                out.flush().map_err(|source| Error::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                Ok(v)
            }
            Err(e) => {
                failure = Some(e);
                Err(Error::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::other("the streamed write was abandoned"),
                })
            }
        }
    });
    match (written, failure) {
        (_, Some(e)) => Err(e),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(e.into()),
    }
}

fn stream_into<W: Write + Seek, K: OffsetWidth, T, E: From<Error>>(
    mut enc: TiffEncoder<W, K>,
    mut header: Header<'_>,
    opts: &WriteOptions,
    path: &Path,
    produce: impl FnOnce(&mut TileSink<'_>) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let e = |err| tiff_write(path, err);
    let mut dir: DirectoryEncoder<'_, W, K> = enc.image_directory().map_err(e)?;
    let n = header.samples
        * header.grid.width().div_ceil(opts.tile_size)
        * header.grid.height().div_ceil(opts.tile_size);
    let (result, offsets, counts, missing) = {
        let mut write = |bytes: &[u8]| dir.write_data(bytes).map_err(e);
        let mut sink = TileSink {
            write: &mut write,
            grid: header.grid,
            opts,
            predictor: header.predictor,
            bands: header.samples,
            pending: HashMap::new(),
            offsets: vec![0; n],
            counts: vec![0; n],
            tiles_written: 0,
            valid: 0,
            missing: 0,
        };
        let result = produce(&mut sink)?;
        if !sink.is_complete() {
            return Err(Error::InvalidOperation {
                detail: format!(
                    "{}: {} of {n} tiles were never completed",
                    path.display(),
                    n - sink.tiles_written
                ),
            }
            .into());
        }
        (result, sink.offsets, sink.counts, sink.missing)
    };
    if missing > 0 {
        header.nodata = Some(metadata::format_nodata(f64::NAN));
    }
    write_tags(&mut dir, &header, &offsets, &counts, path)?;
    dir.finish().map_err(e)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gtiff::{read_band, write_raster, Compression};
    use crate::raster::Raster;
    use ndarray::s;

    fn raster(w: usize, h: usize) -> Raster {
        let g = Grid::geographic(100.0, 30.0, 0.01, w, h).unwrap();
        Raster::from_fn(g, |(r, c)| {
            if r == 3 && c > 5 {
                f32::NAN
            } else {
                280.0 + (r as f32 * 0.3).sin() * 4.0 + c as f32 * 0.01
            }
        })
    }

    /// Streaming blocks of any shape, in any order, gives the same file content as writing
    /// the whole raster at once.
    #[test]
    fn streamed_blocks_read_back_as_the_whole_write() {
        let r = raster(83, 50);
        let dir = tempfile::tempdir().unwrap();
        for opts in [
            WriteOptions::default().with_tile_size(32),
            WriteOptions::default()
                .with_tile_size(16)
                .with_compression(Compression::None),
        ] {
            let whole = dir.path().join("whole.tif");
            let streamed = dir.path().join("streamed.tif");
            write_raster(&whole, &r, &opts).unwrap();
            // Blocks of 20×13 from the bottom right to the top left.
            let valid = write_streamed(&streamed, r.grid(), &opts, |sink| {
                let mut blocks = Vec::new();
                for r0 in (0..50).step_by(13) {
                    for c0 in (0..83).step_by(20) {
                        blocks.push(Window::new(c0, r0, 20.min(83 - c0), 13.min(50 - r0)));
                    }
                }
                for w in blocks.iter().rev() {
                    let d = r.data().slice(s![w.row0..w.row1(), w.col0..w.col1()]);
                    sink.put(*w, d)?;
                }
                Ok::<_, Error>(sink.valid_count())
            })
            .unwrap();
            assert_eq!(valid as usize, r.valid_count());
            let (a, b) = (
                read_band(&whole, 1).unwrap(),
                read_band(&streamed, 1).unwrap(),
            );
            assert_eq!(a.grid(), b.grid());
            assert_eq!(b.nodata().map(f64::is_nan), Some(true));
            let bits = |r: &Raster| r.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b));
        }
    }

    /// Bands streamed one window at a time, interleaved across bands, read back as the
    /// in-memory multi-band writer's file, with the names as band descriptions.
    #[test]
    fn streamed_bands_read_back_as_the_stack() {
        let a = raster(70, 40);
        let b = Raster::from_fn(a.grid().clone(), |(r, c)| 300.0 - (r * c) as f32 * 0.01);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bands.tif");
        let opts = WriteOptions::default().with_tile_size(32);
        let names = ["2020-07-01T13:00:00", "2020-07-01T14:00:00"];
        write_streamed_bands(&path, a.grid(), &names, &opts, |sink| {
            for r0 in (0..40).step_by(16) {
                let w = Window::new(0, r0, 70, 16.min(40 - r0));
                for (i, r) in [&b, &a].iter().enumerate() {
                    let d = r.data().slice(s![w.row0..w.row1(), ..]);
                    sink.put_band(1 - i, w, d)?;
                }
            }
            let e = sink.put_band(2, Window::new(0, 0, 1, 1), a.data().slice(s![0..1, 0..1]));
            assert!(e.unwrap_err().to_string().contains("band 3 of a file of 2"));
            Ok::<_, Error>(())
        })
        .unwrap();
        let back = crate::gtiff::read(&path).unwrap();
        assert_eq!(back.names(), names);
        let bits = |r: &Raster| r.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(back.band(names[0]).unwrap()), bits(&a));
        assert_eq!(bits(back.band(names[1]).unwrap()), bits(&b));
        // A band left out is an incomplete file: nothing is written.
        let e = write_streamed_bands(&path, a.grid(), &names, &opts, |sink| {
            sink.put_band(0, Window::of(a.grid()), a.data().view())
        })
        .unwrap_err();
        assert!(e.to_string().contains("never completed"), "{e}");
    }

    #[test]
    fn an_incomplete_or_failed_stream_leaves_nothing() {
        let r = raster(40, 40);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.tif");
        let opts = WriteOptions::default().with_tile_size(16);
        let e = write_streamed(&path, r.grid(), &opts, |sink| {
            sink.put(Window::new(0, 0, 40, 20), r.data().slice(s![0..20, ..]))
        })
        .unwrap_err();
        assert!(e.to_string().contains("never completed"), "{e}");
        let e = write_streamed(&path, r.grid(), &opts, |sink| {
            let w = Window::new(0, 0, 10, 10);
            sink.put(w, r.data().slice(s![0..10, 0..10]))?;
            sink.put(w, r.data().slice(s![0..10, 0..10]))
        })
        .unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let e = write_streamed(&path, r.grid(), &opts, |_| {
            Err::<(), _>(Error::InvalidOperation {
                detail: "producer failed".into(),
            })
        })
        .unwrap_err();
        assert!(e.to_string().contains("producer failed"), "{e}");
        assert!(!path.exists());
        // No temporary files left behind either.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
