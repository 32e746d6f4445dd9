//! Reading windows of a GeoTIFF: only the chunks (tiles or strips) under the window are read
//! and decoded, so that memory follows the window, not the file.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndarray::Array2;
use rayon::prelude::*;

use super::decode::{decode_chunk, grid_of, guarded, open_file, read_raw, ChunkRef};
use super::layout::{open, Layout, Opened};
use super::{metadata, ReadOptions};
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::raster::{BandKind, Raster};
use crate::window::{Window, WindowSource};

/// An open GeoTIFF whose bands are read a window at a time.
///
/// Bands, names, nodata and kinds are those [`read`](crate::read) gives; a window's pixels
/// are bit-identical to the same window of the whole band read at once.
pub struct GeoTiffReader {
    path: PathBuf,
    opened: Mutex<Opened<BufReader<File>>>,
    layout: Layout,
    grid: Grid,
    nodata: Option<f64>,
    names: Vec<String>,
    kinds: Vec<BandKind>,
    opts: ReadOptions,
}

impl std::fmt::Debug for GeoTiffReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoTiffReader")
            .field("path", &self.path)
            .field("grid", &self.grid)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl GeoTiffReader {
    /// Opens a GeoTIFF and reads its header and first directory (no pixels).
    ///
    /// # Errors
    /// As [`read`](crate::read), except that limits on the whole image's size do not apply
    /// (only the chunks of each window are decoded).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let opts = ReadOptions::default();
        let file = open_file(path)?;
        let opened = guarded(path, || open(BufReader::new(file), path, &opts))?;
        let grid = grid_of(&opened, path)?;
        let samples = opened.layout.samples;
        let nodata = metadata::parse_nodata(opened.tags.nodata.as_deref());
        let md = metadata::parse(opened.tags.gdal_metadata.as_deref(), samples);
        let mut names: Vec<String> = Vec::with_capacity(samples);
        for b in 0..samples {
            let name =
                metadata::band_name(md.names[b].as_deref(), b, |n| names.iter().any(|m| m == n));
            names.push(name);
        }
        Ok(Self {
            path: path.to_path_buf(),
            layout: opened.layout.clone(),
            opened: Mutex::new(opened),
            grid,
            nodata,
            names,
            kinds: md.kinds,
            opts,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Band names, in band order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The file's nodata value, if any.
    pub fn nodata(&self) -> Option<f64> {
        self.nodata
    }

    /// The pixels of band `band` (1-based) under `window`, missing pixels `NaN`.
    ///
    /// # Errors
    /// [`Error::BandOutOfRange`], [`Error::WindowOutOfBounds`]; read errors naming the file
    /// and the chunk.
    pub fn read_band_window(&self, band: usize, window: Window) -> Result<Raster> {
        let samples = self.names.len();
        if band == 0 || band > samples {
            return Err(Error::BandOutOfRange {
                path: self.path.clone(),
                band,
                count: samples,
            });
        }
        window.check_inside(&self.grid)?;
        let data = guarded(&self.path, || self.decode_window(band - 1, window))?;
        Ok(Raster::new(
            self.grid
                .window(window.col0, window.row0, window.width, window.height)?,
            data,
        )?
        .with_nodata(self.nodata)
        .with_kind(self.kinds[band - 1]))
    }

    /// Decodes the chunks of 0-based `band` under `window` and copies their part of it.
    fn decode_window(&self, band: usize, window: Window) -> Result<Array2<f32>> {
        // A panic while the lock was held left no partial state that matters: every read
        // seeks first.
        let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        let l = &self.layout;
        let path = self.path.as_path();
        let spc = l.samples_per_chunk_pixel();
        let chunk_samples = (l.chunk_w as u64)
            .saturating_mul(l.chunk_h as u64)
            .saturating_mul(spc as u64);
        if chunk_samples > self.opts.max_samples {
            return Err(Error::LimitExceeded {
                path: path.to_path_buf(),
                what: "samples in one chunk",
                value: chunk_samples,
                limit: self.opts.max_samples,
            });
        }
        let plane = if l.planar { band } else { 0 };
        let (cx0, cx1) = (window.col0 / l.chunk_w, (window.col1() - 1) / l.chunk_w);
        let (cy0, cy1) = (window.row0 / l.chunk_h, (window.row1() - 1) / l.chunk_h);
        let chunks: Vec<ChunkRef> = (cy0..=cy1)
            .flat_map(|cy| (cx0..=cx1).map(move |cx| (cy, cx)))
            .map(|(cy, cx)| ChunkRef {
                index: plane * l.chunks_per_plane() + cy * l.chunks_across() + cx,
                plane,
                cx,
                cy,
            })
            .collect();
        let fill = self.nodata.map_or(0.0, |v| v as f32);
        let mut out = Array2::from_elem((window.height, window.width), fill);
        // Batches of about as many chunks as `read` decodes at once, to bound the raw bytes
        // held while the batch decodes in parallel.
        for batch in chunks.chunks(64) {
            let raws = batch
                .iter()
                .map(|c| read_raw(&mut opened, path, l, c.index))
                .collect::<Result<Vec<_>>>()?;
            let decoded = batch
                .par_iter()
                .zip(raws.par_iter())
                .map(|(c, raw)| decode_chunk(l, path, c, raw.as_deref()))
                .collect::<Result<Vec<_>>>()?;
            for (c, values) in batch.iter().zip(decoded) {
                let Some(values) = values else { continue };
                // The chunk's pixels inside both the image and the window.
                let (r0, c0) = (c.cy * l.chunk_h, c.cx * l.chunk_w);
                let rows = r0.max(window.row0)..(r0 + l.chunk_h).min(l.height).min(window.row1());
                let cols = c0.max(window.col0)..(c0 + l.chunk_w).min(l.width).min(window.col1());
                for r in rows {
                    let src = &values[((r - r0) * l.chunk_w) * spc..];
                    let mut dst = out.row_mut(r - window.row0);
                    for col in cols.clone() {
                        dst[col - window.col0] =
                            src[(col - c0) * spc + band * usize::from(!l.planar)];
                    }
                }
            }
        }
        Ok(out)
    }
}

impl WindowSource for GeoTiffReader {
    fn grid(&self) -> &Grid {
        &self.grid
    }

    fn names(&self) -> &[String] {
        &self.names
    }

    fn read_window(&self, name: &str, window: Window) -> Result<Raster> {
        let band =
            self.names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| Error::BandNotFound {
                    name: name.to_string(),
                    available: self.names.join(", "),
                })?;
        self.read_band_window(band + 1, window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gtiff::{write, Compression, DataType, WriteOptions};
    use crate::stack::Stack;

    fn stack(w: usize, h: usize) -> Stack {
        let g = Grid::geographic(10.0, 50.0, 0.01, w, h).unwrap();
        let a = Raster::from_fn(g.clone(), |(r, c)| (r * 1000 + c) as f32);
        let b = Raster::from_fn(g.clone(), |(r, c)| {
            if (r + c) % 7 == 0 {
                f32::NAN
            } else {
                (r as f32 * 0.5 - c as f32).sin()
            }
        });
        Stack::new(g).with("a", a).unwrap().with("b", b).unwrap()
    }

    /// GDAL-written layouts (pixel- and band-interleaved, strips and tiles, integer types,
    /// nodata): every window reads as the same window of the whole file.
    #[test]
    fn windows_of_gdal_files_equal_the_whole_read() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/raster");
        for name in [
            "l7.tif",
            "l7_u8_pixel_lzw.tif",
            "l7_u8_band_tiled.tif",
            "l7_u16_band_strips.tif",
            "dem_i16_tiled_nodata.tif",
            "dem_f32_strips_lzw_p2.tif",
        ] {
            let path = dir.join(name);
            let whole = crate::read(&path).unwrap();
            let r = GeoTiffReader::open(&path).unwrap();
            assert_eq!(r.names(), whole.names(), "{name}");
            let (h, w) = whole.grid().shape();
            for win in [
                Window::of(whole.grid()),
                Window::new(1, 2, w - 3, h - 5),
                Window::new(w / 2, h / 3, w - w / 2, 7.min(h - h / 3)),
            ] {
                for (b, band) in whole.bands().iter().enumerate() {
                    let got = r.read_band_window(b + 1, win).unwrap();
                    let want = band
                        .window(win.col0, win.row0, win.width, win.height)
                        .unwrap();
                    let bits =
                        |r: &Raster| r.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{name} band {} {win:?}", b + 1);
                    assert_eq!(got.kind(), want.kind());
                }
            }
        }
    }

    /// Every window of a file written by `write`, in every layout we write, equals the
    /// same window of the whole band read by `read` (itself checked against GDAL in
    /// `fixture_tests`).
    #[test]
    fn windows_equal_the_whole_read() {
        let s = stack(70, 45);
        let dir = tempfile::tempdir().unwrap();
        for (i, opts) in [
            WriteOptions::default().with_tile_size(16),
            WriteOptions::default()
                .with_tile_size(32)
                .with_compression(Compression::None),
            WriteOptions::default()
                .with_tile_size(16)
                .with_compression(Compression::Lzw)
                .with_data_type(DataType::F64),
        ]
        .iter()
        .enumerate()
        {
            let path = dir.path().join(format!("s{i}.tif"));
            write(&path, &s, opts).unwrap();
            let whole = crate::read(&path).unwrap();
            let r = GeoTiffReader::open(&path).unwrap();
            assert_eq!(r.names(), ["a", "b"]);
            assert_eq!(r.grid(), whole.grid());
            for w in [
                Window::new(0, 0, 70, 45),
                Window::new(3, 5, 17, 30),
                Window::new(69, 44, 1, 1),
                Window::new(16, 16, 16, 16),
            ] {
                for name in ["a", "b"] {
                    let got = r.read_window(name, w).unwrap();
                    let want = whole
                        .band(name)
                        .unwrap()
                        .window(w.col0, w.row0, w.width, w.height)
                        .unwrap();
                    assert_eq!(got.grid(), want.grid());
                    let bits =
                        |r: &Raster| r.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{opts:?} {w:?} {name}");
                }
            }
            assert!(matches!(
                r.read_window("a", Window::new(60, 0, 11, 1)),
                Err(Error::WindowOutOfBounds { .. })
            ));
            assert!(matches!(
                r.read_band_window(3, Window::new(0, 0, 1, 1)),
                Err(Error::BandOutOfRange { .. })
            ));
        }
    }
}
