//! Cloud-Optimized GeoTIFF: writing one (GDAL's COG layout) and checking a file's layout.
//!
//! The layout, as GDAL's COG driver writes it and its `validate_cloud_optimized_geotiff.py`
//! checks it:
//! ```text
//! header (8 bytes; 16 for BigTIFF)
//! GDAL_STRUCTURAL_METADATA_SIZE=000072 bytes   the "ghost area": what the layout promises
//! LAYOUT=IFDS_BEFORE_DATA …
//! IFD of the full image, then of each overview, largest first (each with its tag values)
//! tiles of the smallest overview, …, of the largest overview, of the full image
//! ```
//! Every image is tiled, the overviews halve the size until the smallest fits one tile, and
//! within each image the tiles are in the order of its tile table (band by band, row-major),
//! at ascending offsets. A reader that fetches byte ranges (GDAL's `/vsicurl/`, QGIS, web
//! maps) gets every directory in the first request and the tiles of any zoom level in few.
//!
//! Overviews are 2×2 averages of the level above, **nodata aware**: the mean of the pixels
//! that have a value, missing only where all four are missing (GDAL's `AVERAGE`).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::encode::{check_options, encode_tile, predictor_code};
use super::layout::{TAG_GDAL_METADATA, TAG_GDAL_NODATA};
use super::reader::GeoTiffReader;
use super::{geokeys, metadata, WriteOptions};
use crate::error::{Error, Result};
use crate::window::Window;

/// The ghost area GDAL's COG driver writes after the header. Only what this writer does is
/// promised: directories first, tiles row-major; no block leaders or trailers.
const GHOST_BODY: &str =
    "LAYOUT=IFDS_BEFORE_DATA\nBLOCK_ORDER=ROW_MAJOR\nKNOWN_INCOMPATIBLE_EDITION=NO\n";

fn ghost() -> String {
    format!(
        "GDAL_STRUCTURAL_METADATA_SIZE={:06} bytes\n{GHOST_BODY}",
        GHOST_BODY.len()
    )
}

/// The sizes of the full image (level 0) and its overviews: each half the one above
/// (rounded up), until one fits a tile.
fn level_sizes(width: usize, height: usize, tile: usize) -> Vec<(usize, usize)> {
    let mut sizes = vec![(width, height)];
    while let Some(&(w, h)) = sizes.last() {
        if w <= tile && h <= tile {
            break;
        }
        sizes.push((w.div_ceil(2), h.div_ceil(2)));
    }
    sizes
}

/// Averages `src` 2×2 into rows `row0 ..` of `dst` (`src` holds rows `2·row0 ..` of the level
/// above): the mean of the values present, `NaN` where none is.
fn halve_into(src: ArrayView2<'_, f32>, dst: &mut Array2<f32>, row0: usize) {
    let (h, w) = src.dim();
    for i in 0..h.div_ceil(2) {
        for j in 0..w.div_ceil(2) {
            let (mut sum, mut n) = (0f64, 0u32);
            for r in 2 * i..(2 * i + 2).min(h) {
                for c in 2 * j..(2 * j + 2).min(w) {
                    let v = src[(r, c)];
                    if !v.is_nan() {
                        sum += f64::from(v);
                        n += 1;
                    }
                }
            }
            // `dst` is sized by `level_sizes`: it has these rows and columns.
            dst[(row0 + i, j)] = if n == 0 {
                f32::NAN
            } else {
                (sum / f64::from(n)) as f32
            };
        }
    }
}

/// The encoded tiles of one tile row of `data` (whose rows are a strip of the image, at most
/// a tile high), left to right.
fn encode_strip(
    data: ArrayView2<'_, f32>,
    ts: usize,
    predictor: u16,
    opts: &WriteOptions,
) -> Result<Vec<Vec<u8>>> {
    let (rows, w) = data.dim();
    (0..w.div_ceil(ts))
        .into_par_iter()
        .map(|tx| {
            let values = (0..ts).flat_map(|r| {
                (tx * ts..(tx + 1) * ts).map(move |c| {
                    if r < rows && c < w {
                        data[(r, c)]
                    } else {
                        f32::NAN
                    }
                })
            });
            encode_tile(values, ts, f64::NAN, opts.data_type, predictor, opts)
        })
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(|detail| Error::InvalidOperation { detail })
}

/// A TIFF tag value.
enum Value {
    Short(Vec<u16>),
    Long(Vec<u32>),
    Long8(Vec<u64>),
    Double(Vec<f64>),
    Ascii(String),
}

impl Value {
    fn type_code(&self) -> u16 {
        match self {
            Value::Short(_) => 3,
            Value::Long(_) => 4,
            Value::Long8(_) => 16,
            Value::Double(_) => 12,
            Value::Ascii(_) => 2,
        }
    }

    fn count(&self) -> usize {
        match self {
            Value::Short(v) => v.len(),
            Value::Long(v) => v.len(),
            Value::Long8(v) => v.len(),
            Value::Double(v) => v.len(),
            Value::Ascii(s) => s.len() + 1,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            Value::Short(v) => v.iter().for_each(|x| b.extend(x.to_le_bytes())),
            Value::Long(v) => v.iter().for_each(|x| b.extend(x.to_le_bytes())),
            Value::Long8(v) => v.iter().for_each(|x| b.extend(x.to_le_bytes())),
            Value::Double(v) => v.iter().for_each(|x| b.extend(x.to_le_bytes())),
            Value::Ascii(s) => {
                b.extend(s.as_bytes());
                b.push(0);
            }
        }
        b
    }
}

/// An image file directory being laid out: its entries, sorted by tag.
struct Ifd {
    entries: Vec<(u16, Value)>,
}

impl Ifd {
    /// Bytes of the directory and its out-of-line values (each on a word boundary).
    fn size(&self, big: bool) -> u64 {
        let (head, entry, next, inline) = if big { (8, 20, 8, 8) } else { (2, 12, 4, 4) };
        let mut n = head + entry * self.entries.len() as u64 + next;
        for (_, v) in &self.entries {
            let len = v.bytes().len() as u64;
            if len > inline {
                n += len + len % 2;
            }
        }
        n
    }

    /// The directory at `at`, pointing to `next` (0: the last).
    fn encode(&self, at: u64, next: u64, big: bool) -> Vec<u8> {
        let (head, entry, link, inline) = if big { (8, 20, 8, 8) } else { (2, 12, 4, 4) };
        let mut out = Vec::new();
        let mut extra = Vec::new();
        let extra_at = at + head + entry * self.entries.len() as u64 + link;
        if big {
            out.extend((self.entries.len() as u64).to_le_bytes());
        } else {
            out.extend((self.entries.len() as u16).to_le_bytes());
        }
        let mut entries: Vec<&(u16, Value)> = self.entries.iter().collect();
        entries.sort_by_key(|(t, _)| *t);
        for (tag, v) in entries {
            out.extend(tag.to_le_bytes());
            out.extend(v.type_code().to_le_bytes());
            if big {
                out.extend((v.count() as u64).to_le_bytes());
            } else {
                out.extend((v.count() as u32).to_le_bytes());
            }
            let bytes = v.bytes();
            if bytes.len() as u64 <= inline {
                let mut field = bytes;
                field.resize(inline as usize, 0);
                out.extend(field);
            } else {
                let off = extra_at + extra.len() as u64;
                if big {
                    out.extend(off.to_le_bytes());
                } else {
                    out.extend((off as u32).to_le_bytes());
                }
                let odd = bytes.len() % 2 == 1;
                extra.extend(bytes);
                if odd {
                    extra.push(0);
                }
            }
        }
        if big {
            out.extend(next.to_le_bytes());
        } else {
            out.extend((next as u32).to_le_bytes());
        }
        out.extend(extra);
        out
    }
}

/// Writes the bands of `source` as a Cloud-Optimized GeoTIFF at `path` (see the module
/// documentation), atomically: tiled as `opts` says, with internal overviews averaged
/// (nodata aware), band descriptions `names` (none when empty). Missing pixels are `NaN`
/// with a `GDAL_NODATA` of `nan`.
///
/// The source is read twice, a strip of tiles at a time; memory holds the first overview of
/// one band (a quarter of a band) and the encoded overviews, not the image.
///
/// # Errors
/// [`Error::InvalidOperation`] for an integer data type or `names` of the wrong length;
/// [`Error::Unsupported`] for options or a CRS that cannot be written; read errors naming
/// the source, write errors naming `path`.
pub fn write_cog(
    path: impl AsRef<Path>,
    source: &GeoTiffReader,
    names: &[&str],
    opts: &WriteOptions,
) -> Result<()> {
    let path = path.as_ref();
    check_cog_request(path, source, names, opts)?;
    let bands = source.names().len();
    let grid = source.grid().clone();
    let keys = geokeys::encode_crs(grid.crs()).map_err(|detail| Error::Unsupported {
        path: path.to_path_buf(),
        what: "CRS for GeoTIFF",
        detail,
    })?;
    let ts = opts.tile_size;
    let predictor = predictor_code(opts, opts.data_type);
    let sizes = level_sizes(grid.width(), grid.height(), ts);
    let tiles_of = |(w, h): (usize, usize)| w.div_ceil(ts) * h.div_ceil(ts);

    // Pass 1: the overviews, encoded, band by band: ovr[level − 1][band][tile].
    let (ovr, missing) = encode_overviews(source, &sizes, predictor, opts)?;

    // The directories, with offsets to be filled in.
    let md = (!names.is_empty())
        .then(|| metadata::format(names, &vec![crate::raster::BandKind::Continuous; bands]));
    let nodata = missing.then(|| metadata::format_nodata(f64::NAN));
    let bits = (opts.data_type.size() * 8) as u16;
    let main_tiles = bands * tiles_of(sizes[0]);
    let ovr_bytes: u64 = ovr.iter().flatten().flatten().map(|t| t.len() as u64).sum();
    // Classic TIFF offsets are 32-bit: BigTIFF when the uncompressed image might not fit.
    let raw = (grid.len() as u64)
        .saturating_mul(opts.data_type.size() as u64)
        .saturating_mul(bands as u64);
    let big = opts.bigtiff || raw.saturating_add(ovr_bytes) > u64::from(u32::MAX) - (64 << 20);
    let tags = DirectoryTags {
        bits,
        predictor,
        keys: keys.as_ref(),
        metadata: md.as_deref(),
        nodata: nodata.as_deref(),
    };
    let mut ifds = directories(&grid, &sizes, bands, big, &tags, opts);
    let header_len: u64 = if big { 16 } else { 8 };
    let ghost = ghost();
    let first_ifd = {
        let at = header_len + ghost.len() as u64;
        at + at % 2
    };
    let mut ifd_at = Vec::with_capacity(ifds.len());
    let mut at = first_ifd;
    for ifd in &ifds {
        ifd_at.push(at);
        at += ifd.size(big);
        at += at % 2;
    }
    let data_start = at;

    // Overview tiles, smallest level first, each in its table's order; their offsets.
    let mut offset = data_start;
    for l in (1..sizes.len()).rev() {
        let tiles: Vec<&Vec<u8>> = ovr[l - 1].iter().flatten().collect();
        let offsets: Vec<u64> = tiles
            .iter()
            .map(|t| {
                let o = offset;
                offset += t.len() as u64;
                o
            })
            .collect();
        let counts: Vec<u64> = tiles.iter().map(|t| t.len() as u64).collect();
        set_table(&mut ifds[l], &offsets, &counts, big)?;
    }
    let main_start = offset;

    crate::atomic::write_atomic_with(path, |file| {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        // The header, the ghost area and room for the directories, which are written last.
        if big {
            out.write_all(b"II\x2b\x00\x08\x00\x00\x00").map_err(io)?;
            out.write_all(&first_ifd.to_le_bytes()).map_err(io)?;
        } else {
            out.write_all(b"II\x2a\x00").map_err(io)?;
            out.write_all(&(first_ifd as u32).to_le_bytes())
                .map_err(io)?;
        }
        out.write_all(ghost.as_bytes()).map_err(io)?;
        let pad = (data_start - header_len - ghost.len() as u64) as usize;
        out.write_all(&vec![0u8; pad]).map_err(io)?;
        for l in (1..sizes.len()).rev() {
            for t in ovr[l - 1].iter().flatten() {
                out.write_all(t).map_err(io)?;
            }
        }
        // Pass 2: the full image, strip by strip, band by band.
        let mut offsets = Vec::with_capacity(main_tiles);
        let mut counts = Vec::with_capacity(main_tiles);
        let mut pos = main_start;
        for b in 0..bands {
            for row0 in (0..grid.height()).step_by(ts) {
                let w = Window::new(0, row0, grid.width(), ts.min(grid.height() - row0));
                let strip = source.read_band_window(b + 1, w)?;
                for t in encode_strip(strip.data().view(), ts, predictor, opts)? {
                    out.write_all(&t).map_err(io)?;
                    offsets.push(pos);
                    counts.push(t.len() as u64);
                    pos += t.len() as u64;
                }
            }
        }
        if !big && pos > u64::from(u32::MAX) {
            return Err(Error::InvalidOperation {
                detail: format!(
                    "{}: {pos} bytes do not fit a classic TIFF (set bigtiff)",
                    path.display()
                ),
            });
        }
        set_table(&mut ifds[0], &offsets, &counts, big)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        for (i, ifd) in ifds.iter().enumerate() {
            let next = ifd_at.get(i + 1).copied().unwrap_or(0);
            file.seek(SeekFrom::Start(ifd_at[i])).map_err(io)?;
            file.write_all(&ifd.encode(ifd_at[i], next, big))
                .map_err(io)?;
        }
        file.flush().map_err(io)
    })
}

/// The overviews of every band, encoded tile by tile (`[level − 1][band][tile]`), and
/// whether the source has a missing pixel.
#[allow(clippy::type_complexity)]
fn encode_overviews(
    source: &GeoTiffReader,
    sizes: &[(usize, usize)],
    predictor: u16,
    opts: &WriteOptions,
) -> Result<(Vec<Vec<Vec<Vec<u8>>>>, bool)> {
    let grid = source.grid();
    let bands = source.names().len();
    let ts = opts.tile_size;
    let tiles_of = |(w, h): (usize, usize)| w.div_ceil(ts) * h.div_ceil(ts);
    let mut ovr: Vec<Vec<Vec<Vec<u8>>>> = vec![Vec::with_capacity(bands); sizes.len() - 1];
    let mut missing = false;
    for b in 0..bands {
        let mut level = match sizes.get(1) {
            Some(&(w1, h1)) => Array2::from_elem((h1, w1), f32::NAN),
            None => {
                // No overview: only look for missing pixels.
                for row0 in (0..grid.height()).step_by(ts) {
                    let w = Window::new(0, row0, grid.width(), ts.min(grid.height() - row0));
                    missing |= source
                        .read_band_window(b + 1, w)?
                        .data()
                        .iter()
                        .any(|v| v.is_nan());
                }
                continue;
            }
        };
        for row0 in (0..grid.height()).step_by(2 * ts) {
            let w = Window::new(0, row0, grid.width(), (2 * ts).min(grid.height() - row0));
            let strip = source.read_band_window(b + 1, w)?;
            missing |= strip.data().iter().any(|v| v.is_nan());
            halve_into(strip.data().view(), &mut level, row0 / 2);
        }
        for (l, &(_, h)) in sizes.iter().enumerate().skip(1) {
            let mut tiles = Vec::with_capacity(tiles_of(sizes[l]));
            for row0 in (0..h).step_by(ts) {
                let rows = level.slice(ndarray::s![row0..(row0 + ts).min(h), ..]);
                tiles.extend(encode_strip(rows, ts, predictor, opts)?);
            }
            ovr[l - 1].push(tiles);
            if let Some(&(nw, nh)) = sizes.get(l + 1) {
                let mut next = Array2::from_elem((nh, nw), f32::NAN);
                halve_into(level.view(), &mut next, 0);
                level = next;
            }
        }
    }

    Ok((ovr, missing))
}

/// The tags of [`directories`] besides the sizes.
struct DirectoryTags<'a> {
    bits: u16,
    predictor: u16,
    keys: Option<&'a geokeys::EncodedKeys>,
    metadata: Option<&'a str>,
    nodata: Option<&'a str>,
}

/// One directory per level, full image first, with zeroed tile tables.
fn directories(
    grid: &crate::Grid,
    sizes: &[(usize, usize)],
    bands: usize,
    big: bool,
    tags: &DirectoryTags,
    opts: &WriteOptions,
) -> Vec<Ifd> {
    let ts = opts.tile_size;
    let tiles_of = |(w, h): (usize, usize)| w.div_ceil(ts) * h.div_ceil(ts);
    let (bits, predictor, spp) = (tags.bits, tags.predictor, bands as u16);
    let table = |n: usize| {
        if big {
            Value::Long8(vec![0; n])
        } else {
            Value::Long(vec![0; n])
        }
    };
    sizes
        .iter()
        .enumerate()
        .map(|(l, &(w, h))| {
            let n = bands * tiles_of((w, h));
            let mut e: Vec<(u16, Value)> = vec![
                (254, Value::Long(vec![u32::from(l > 0)])),
                (256, Value::Long(vec![w as u32])),
                (257, Value::Long(vec![h as u32])),
                (258, Value::Short(vec![bits; bands])),
                (259, Value::Short(vec![opts.compression.code()])),
                (262, Value::Short(vec![1])),
                (277, Value::Short(vec![spp])),
                (284, Value::Short(vec![if bands > 1 { 2 } else { 1 }])),
                (322, Value::Long(vec![ts as u32])),
                (323, Value::Long(vec![ts as u32])),
                (324, table(n)),
                (325, table(n)),
                (
                    339,
                    Value::Short(vec![opts.data_type.sample_format(); bands]),
                ),
            ];
            if predictor != 1 {
                e.push((317, Value::Short(vec![predictor])));
            }
            if bands > 1 {
                e.push((338, Value::Short(vec![0; bands - 1])));
            }
            if l == 0 {
                let t = grid.transform();
                e.push((
                    33550,
                    Value::Double(vec![t.pixel_width, -t.pixel_height, 0.0]),
                ));
                e.push((
                    33922,
                    Value::Double(vec![0.0, 0.0, 0.0, t.origin_x, t.origin_y, 0.0]),
                ));
                if let Some(k) = tags.keys {
                    e.push((34735, Value::Short(k.directory.clone())));
                    if !k.doubles.is_empty() {
                        e.push((34736, Value::Double(k.doubles.clone())));
                    }
                    if !k.ascii.is_empty() {
                        e.push((34737, Value::Ascii(k.ascii.clone())));
                    }
                }
                if let Some(md) = tags.metadata {
                    e.push((TAG_GDAL_METADATA, Value::Ascii(md.to_string())));
                }
            }
            if let Some(nd) = tags.nodata {
                e.push((TAG_GDAL_NODATA, Value::Ascii(nd.to_string())));
            }
            Ifd { entries: e }
        })
        .collect()
}

/// The options are writable, as floating point, with one description per band or none.
fn check_cog_request(
    path: &Path,
    source: &GeoTiffReader,
    names: &[&str],
    opts: &WriteOptions,
) -> Result<()> {
    check_options(path, opts)?;
    let invalid = |detail: String| Error::InvalidOperation { detail };
    if !opts.data_type.is_float() {
        return Err(invalid(format!(
            "{}: a COG is written as floating point, got {}",
            path.display(),
            opts.data_type
        )));
    }
    let bands = source.names().len();
    if !names.is_empty() && names.len() != bands {
        return Err(invalid(format!(
            "{}: {} band description(s) for {bands} band(s)",
            path.display(),
            names.len()
        )));
    }
    Ok(())
}

/// Fills a directory's tile offsets and byte counts.
fn set_table(ifd: &mut Ifd, offsets: &[u64], counts: &[u64], big: bool) -> Result<()> {
    let value = |v: &[u64]| -> Result<Value> {
        if big {
            Ok(Value::Long8(v.to_vec()))
        } else {
            v.iter()
                .map(|&o| u32::try_from(o))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(Value::Long)
                .map_err(|_| Error::InvalidOperation {
                    detail: "an offset past 4 GiB in a classic TIFF".into(),
                })
        }
    };
    for (tag, v) in [(324, offsets), (325, counts)] {
        if let Some(e) = ifd.entries.iter_mut().find(|(t, _)| *t == tag) {
            e.1 = value(v)?;
        }
    }
    Ok(())
}

/// One image directory of a TIFF as [`cog_layout`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfdLayout {
    /// Byte offset of the directory.
    pub offset: u64,
    /// Byte offset just past the directory's entries and next-directory link.
    pub end: u64,
    /// `NewSubfileType` (1: a reduced-resolution image, i.e. an overview; 0: a full image).
    pub subfile_type: u32,
    /// Width and height in pixels.
    pub size: (u64, u64),
    /// Tile width and height, `None` for a stripped image.
    pub tile: Option<(u64, u64)>,
    /// Offsets of the tiles (or strips), in the order of the table.
    pub offsets: Vec<u64>,
    /// Their byte counts.
    pub counts: Vec<u64>,
}

/// The layout of a TIFF's directories and data, to check it is a COG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CogLayout {
    /// BigTIFF.
    pub bigtiff: bool,
    /// The body of GDAL's ghost area after the header (`LAYOUT=IFDS_BEFORE_DATA …`), if any.
    pub ghost: Option<String>,
    /// Where the first directory is expected: right after the header and ghost area.
    pub expected_first_ifd: u64,
    /// The directories in file order (the chain from the header).
    pub ifds: Vec<IfdLayout>,
}

impl CogLayout {
    /// What keeps the file from being a COG with GDAL's layout; empty when it is one:
    /// - the first directory right after the header (and ghost area);
    /// - every image tiled; the first the full image, the others overviews
    ///   (`NewSubfileType` 1) of decreasing size;
    /// - directories at increasing offsets, all before any tile;
    /// - the tiles of each overview before those of the larger one, the full image's last;
    /// - within each image, tile offsets ascending in table order.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let Some(first) = self.ifds.first() else {
            return vec!["no image directory".into()];
        };
        if first.offset != self.expected_first_ifd {
            p.push(format!(
                "the first IFD is at byte {}, not right after the header at {}",
                first.offset, self.expected_first_ifd
            ));
        }
        let last_ifd_end = self.ifds.iter().map(|i| i.end).max().unwrap_or(0);
        for (i, ifd) in self.ifds.iter().enumerate() {
            let name = if i == 0 {
                "the full image".to_string()
            } else {
                format!("overview {i}")
            };
            if ifd.tile.is_none() {
                p.push(format!("{name} is not tiled"));
            }
            if i > 0 {
                let prev = &self.ifds[i - 1];
                if ifd.subfile_type & 1 == 0 {
                    p.push(format!("{name} is not marked a reduced-resolution image"));
                }
                if ifd.offset <= prev.offset {
                    p.push(format!("the IFD of {name} comes before the previous one"));
                }
                if ifd.size.0 > prev.size.0 || ifd.size.1 > prev.size.1 {
                    p.push(format!("{name} is larger than the image before it"));
                }
            } else if ifd.subfile_type & 1 != 0 {
                p.push("the first image is an overview".into());
            }
            let present: Vec<u64> = ifd
                .offsets
                .iter()
                .zip(&ifd.counts)
                .filter(|(_, &c)| c > 0)
                .map(|(&o, _)| o)
                .collect();
            if present.windows(2).any(|w| w[1] <= w[0]) {
                p.push(format!("the tiles of {name} are not at ascending offsets"));
            }
            if present.first().is_some_and(|&o| o < last_ifd_end) {
                p.push(format!("tiles of {name} come before the last IFD ends"));
            }
        }
        let firsts: Vec<Option<u64>> = self
            .ifds
            .iter()
            .map(|i| {
                i.offsets
                    .iter()
                    .zip(&i.counts)
                    .find(|(_, &c)| c > 0)
                    .map(|(&o, _)| o)
            })
            .collect();
        for i in 0..firsts.len().saturating_sub(1) {
            if let (Some(a), Some(b)) = (firsts[i], firsts[i + 1]) {
                if a < b {
                    p.push(format!(
                        "the tiles of image {i} come before those of the smaller image {}",
                        i + 1
                    ));
                }
            }
        }
        p
    }
}

/// Reads the chain of image directories of a TIFF (no pixel), for [`CogLayout::problems`].
///
/// # Errors
/// [`Error::NotTiff`] for a file that is not a TIFF; [`Error::Corrupt`] for directories
/// or tag values outside the file, a directory chain that loops, or more than 64 images;
/// [`Error::Io`] naming the file.
pub fn cog_layout(path: impl AsRef<Path>) -> Result<CogLayout> {
    let path = path.as_ref();
    let f = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let len = f
        .metadata()
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut t = TiffBytes {
        f,
        len,
        le: true,
        path,
    };
    let head = t.read_at(0, 16.min(len as usize))?;
    t.le = match head.get(..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => {
            return Err(Error::NotTiff {
                path: path.to_path_buf(),
                detail: "no II/MM byte-order mark".into(),
            })
        }
    };
    let big = match t.num(&head[2..4.min(head.len())]) {
        42 => false,
        43 => true,
        m => {
            return Err(Error::NotTiff {
                path: path.to_path_buf(),
                detail: format!("TIFF version {m}, not 42 or 43"),
            })
        }
    };
    let header_len = if big { 16u64 } else { 8 };
    if head.len() < header_len as usize {
        return Err(t.corrupt("the header is cut short".into()));
    }
    let mut next = if big {
        t.num(&head[8..16])
    } else {
        t.num(&head[4..8])
    };
    let (ghost, expected) = t.ghost(header_len)?;
    let mut ifds: Vec<IfdLayout> = Vec::new();
    while next != 0 {
        if ifds.len() >= 64 || ifds.iter().any(|i| i.offset == next) {
            return Err(t.corrupt(format!(
                "the IFD chain loops or is longer than 64 images (at byte {next})"
            )));
        }
        let (ifd, after) = t.ifd(next, big)?;
        ifds.push(ifd);
        next = after;
    }
    Ok(CogLayout {
        bigtiff: big,
        ghost,
        expected_first_ifd: expected,
        ifds,
    })
}

/// A TIFF file read by offset, for [`cog_layout`].
struct TiffBytes<'a> {
    f: std::fs::File,
    len: u64,
    /// Little-endian.
    le: bool,
    path: &'a Path,
}

impl TiffBytes<'_> {
    fn corrupt(&self, detail: String) -> Error {
        Error::Corrupt {
            path: self.path.to_path_buf(),
            what: "TIFF structure",
            index: 0,
            detail,
        }
    }

    /// `n` bytes at `at`, which must lie within the file.
    fn read_at(&mut self, at: u64, n: usize) -> Result<Vec<u8>> {
        let len = self.len;
        if at.checked_add(n as u64).is_none_or(|end| end > len) {
            return Err(self.corrupt(format!(
                "{n} bytes at {at} lie past the end of the {len}-byte file"
            )));
        }
        let io = |source| Error::Io {
            path: self.path.to_path_buf(),
            source,
        };
        let mut b = vec![0u8; n];
        self.f.seek(SeekFrom::Start(at)).map_err(io)?;
        self.f.read_exact(&mut b).map_err(io)?;
        Ok(b)
    }

    /// An unsigned integer in the file's byte order.
    fn num(&self, b: &[u8]) -> u64 {
        let mut v = 0u64;
        if self.le {
            for (i, x) in b.iter().enumerate() {
                v |= u64::from(*x) << (8 * i);
            }
        } else {
            for x in b {
                v = (v << 8) | u64::from(*x);
            }
        }
        v
    }

    /// GDAL's ghost area after the header, if any, and where the first IFD is then expected.
    fn ghost(&mut self, header_len: u64) -> Result<(Option<String>, u64)> {
        let pattern = "GDAL_STRUCTURAL_METADATA_SIZE=000000 bytes\n".len();
        let Ok(g) = self.read_at(header_len, pattern) else {
            return Ok((None, header_len));
        };
        let Some(size) = std::str::from_utf8(&g)
            .ok()
            .and_then(|s| s.strip_prefix("GDAL_STRUCTURAL_METADATA_SIZE="))
            .and_then(|s| s.get(..6))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            return Ok((None, header_len));
        };
        let body = self.read_at(header_len + pattern as u64, size)?;
        let mut expected = header_len + (pattern + size) as u64;
        expected += expected % 2;
        Ok((Some(String::from_utf8_lossy(&body).into_owned()), expected))
    }

    /// The IFD at `at` (the tags `cog_layout` reports) and the offset of the next one.
    fn ifd(&mut self, at: u64, big: bool) -> Result<(IfdLayout, u64)> {
        let word = if big { 8 } else { 4 };
        let count_bytes = self.read_at(at, if big { 8 } else { 2 })?;
        let n = self.num(&count_bytes);
        if n > 4096 {
            return Err(self.corrupt(format!("an IFD at byte {at} claims {n} entries")));
        }
        let entry = if big { 20 } else { 12 };
        let first = at + if big { 8 } else { 2 };
        let body = self.read_at(first, n as usize * entry + word)?;
        let mut ifd = IfdLayout {
            offset: at,
            end: first + body.len() as u64,
            subfile_type: 0,
            size: (0, 0),
            tile: None,
            offsets: Vec::new(),
            counts: Vec::new(),
        };
        let (mut tw, mut th) = (None, None);
        for k in 0..n as usize {
            let e = &body[k * entry..(k + 1) * entry];
            let tag = self.num(&e[0..2]) as u16;
            let ty = self.num(&e[2..4]) as u16;
            let (count, field) = if big {
                (self.num(&e[4..12]), &e[12..20])
            } else {
                (self.num(&e[4..8]), &e[8..12])
            };
            if !matches!(tag, 254 | 256 | 257 | 322 | 323 | 324 | 325 | 273 | 279) {
                continue;
            }
            let size = match ty {
                3 => 2,
                4 => 4,
                16 => 8,
                _ => {
                    return Err(self.corrupt(format!(
                        "tag {tag} of the IFD at byte {at} has type {ty}, not an integer"
                    )))
                }
            };
            if count > (1 << 24) {
                return Err(self.corrupt(format!("tag {tag} claims {count} values")));
            }
            let bytes = count as usize * size;
            let raw = if bytes <= word {
                field[..bytes].to_vec()
            } else {
                let at = self.num(field);
                self.read_at(at, bytes)?
            };
            let values: Vec<u64> = raw.chunks(size).map(|c| self.num(c)).collect();
            let one = values.first().copied().unwrap_or(0);
            match tag {
                254 => ifd.subfile_type = one as u32,
                256 => ifd.size.0 = one,
                257 => ifd.size.1 = one,
                322 => tw = Some(one),
                323 => th = Some(one),
                324 | 273 => ifd.offsets = values,
                _ => ifd.counts = values,
            }
        }
        if let (Some(w), Some(h)) = (tw, th) {
            ifd.tile = Some((w, h));
        }
        let next = self.num(&body[n as usize * entry..]);
        Ok((ifd, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gtiff::{read_band, write_raster};
    use crate::{Grid, Raster};
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/raster/cog")
            .join(name)
    }

    /// The COGs GDAL's COG driver made (`fixtures/raster/cog/make_fixtures.sh`; GDAL's
    /// validator calls them valid) pass; the tiled file whose overviews `gdaladdo` added after
    /// its tiles (the validator: "The offset of the first block of the main resolution image
    /// should be after the one of the overview of index 0") does not.
    #[test]
    fn gdal_cogs_pass_and_overviews_added_later_do_not() {
        // Image sizes as `gdalinfo` reports them ("Size is", "Overviews:").
        for (name, sizes, big) in [
            ("gdal_cog_dem.tif", vec![(37, 29), (18, 14), (9, 7)], false),
            (
                "gdal_cog_dem_bigtiff.tif",
                vec![(37, 29), (18, 14), (9, 7)],
                true,
            ),
            (
                "gdal_cog_dem4.tif",
                vec![(148, 116), (74, 58), (37, 29), (18, 14)],
                false,
            ),
            ("gdal_cog_l7.tif", vec![(45, 33), (22, 16), (11, 8)], false),
        ] {
            let l = cog_layout(fixture(name)).unwrap();
            assert_eq!(l.problems(), Vec::<String>::new(), "{name}");
            assert_eq!(l.bigtiff, big, "{name}");
            let got: Vec<(u64, u64)> = l.ifds.iter().map(|i| i.size).collect();
            assert_eq!(got, sizes, "{name}");
            assert!(
                l.ghost
                    .as_deref()
                    .unwrap_or("")
                    .contains("LAYOUT=IFDS_BEFORE_DATA"),
                "{name}"
            );
        }
        let l = cog_layout(fixture("gdal_tiled_then_overviews.tif")).unwrap();
        let p = l.problems();
        assert!(
            p.iter().any(
                |m| m.contains("the tiles of image 0 come before those of the smaller image 1")
            ),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("come before the last IFD ends")),
            "{p:?}"
        );
    }

    #[test]
    fn averages_skip_missing_pixels() {
        // 3×3 → 2×2 by hand: [1 2 | 3], [NaN 4 | NaN], [5 NaN | NaN].
        let nan = f32::NAN;
        let src = ndarray::arr2(&[[1.0, 2.0, 3.0], [nan, 4.0, nan], [5.0, nan, nan]]);
        let mut dst = Array2::from_elem((2, 2), 0.0);
        halve_into(src.view(), &mut dst, 0);
        let bits = |v: f32| v.to_bits();
        assert_eq!(bits(dst[(0, 0)]), bits(7.0 / 3.0));
        assert_eq!(bits(dst[(0, 1)]), bits(3.0));
        assert_eq!(bits(dst[(1, 0)]), bits(5.0));
        assert!(dst[(1, 1)].is_nan());
        assert_eq!(
            level_sizes(150, 100, 32),
            [(150, 100), (75, 50), (38, 25), (19, 13)]
        );
        assert_eq!(level_sizes(32, 20, 32), [(32, 20)]);
    }

    /// Ours: GDAL's layout (checked as on GDAL's files above), the full image bit for bit the
    /// source, in classic and BigTIFF, one band and several.
    #[test]
    fn written_cogs_have_the_layout_and_the_pixels() {
        let g = Grid::geographic(100.0, 30.0, 0.01, 150, 100).unwrap();
        let a = Raster::from_fn(g.clone(), |(r, c)| {
            if (40..60).contains(&r) && c < 30 {
                f32::NAN
            } else {
                280.0 + (r as f32 * 0.1).sin() + 0.01 * c as f32
            }
        });
        let b = Raster::from_fn(g.clone(), |(r, c)| (r * c) as f32);
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.tif");
        let opts = WriteOptions::default().with_tile_size(32);
        write_raster(&src, &a, &opts).unwrap();
        let two = dir.path().join("two.tif");
        let stack = {
            let mut s = crate::Stack::new(g.clone());
            s.push("t0", a.clone()).unwrap();
            s.push("t1", b.clone()).unwrap();
            s
        };
        crate::gtiff::write(&two, &stack, &opts).unwrap();
        let bits = |r: &Raster| r.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for (source, names, big) in [
            (&src, vec![], false),
            (&src, vec![], true),
            (&two, vec!["t0", "t1"], false),
        ] {
            let out = dir.path().join("cog.tif");
            let reader = GeoTiffReader::open(source).unwrap();
            write_cog(&out, &reader, &names, &opts.clone().with_bigtiff(big)).unwrap();
            let l = cog_layout(&out).unwrap();
            assert_eq!(l.problems(), Vec::<String>::new());
            assert_eq!(l.bigtiff, big);
            let sizes: Vec<(u64, u64)> = l.ifds.iter().map(|i| i.size).collect();
            assert_eq!(sizes, [(150, 100), (75, 50), (38, 25), (19, 13)]);
            assert_eq!(bits(&read_band(&out, 1).unwrap()), bits(&a));
            if !names.is_empty() {
                assert_eq!(bits(&read_band(&out, 2).unwrap()), bits(&b));
                assert_eq!(crate::gtiff::read(&out).unwrap().names(), ["t0", "t1"]);
            }
        }
        // Wrong descriptions, integer types: refused, nothing written.
        let reader = GeoTiffReader::open(&src).unwrap();
        let bad = dir.path().join("bad.tif");
        assert!(write_cog(&bad, &reader, &["x", "y"], &opts).is_err());
        let int = opts.clone().with_data_type(crate::DataType::I16);
        assert!(write_cog(&bad, &reader, &[], &int).is_err());
        assert!(!bad.exists());
    }

    /// `fixtures/raster/cog/amun_cog.tif` is what `write_cog` writes today from this source
    /// (two bands named by times, a missing block, 32×32 tiles, three overviews), byte for
    /// byte; `fixtures/raster/cog/validate.sh` checks it with GDAL's validator (its README
    /// records the result). `AMUN_WRITE_FIXTURES=1` rewrites it.
    #[test]
    fn the_committed_amun_cog_is_what_write_cog_writes() {
        let g = Grid::geographic(100.0, 30.0, 0.01, 150, 100).unwrap();
        let mut s = crate::Stack::new(g.clone());
        for t in 0..2 {
            let band = Raster::from_fn(g.clone(), |(r, c)| {
                if (40..60).contains(&r) && (20..50).contains(&c) {
                    f32::NAN
                } else {
                    285.0 + t as f32 + 3.0 * (r as f32 * 0.07).sin() + 0.02 * c as f32
                }
            });
            s.push(format!("2020-07-01T{:02}:00:00", 13 + t), band)
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.tif");
        let opts = WriteOptions::default().with_tile_size(32);
        crate::gtiff::write(&src, &s, &opts).unwrap();
        let out = dir.path().join("amun_cog.tif");
        let names: Vec<&str> = s.names().iter().map(String::as_str).collect();
        write_cog(&out, &GeoTiffReader::open(&src).unwrap(), &names, &opts).unwrap();
        if std::env::var("AMUN_WRITE_FIXTURES").as_deref() == Ok("1") {
            std::fs::copy(&out, fixture("amun_cog.tif")).unwrap();
        }
        let committed = std::fs::read(fixture("amun_cog.tif")).unwrap();
        assert!(
            committed == std::fs::read(&out).unwrap(),
            "amun_cog.tif differs"
        );
        assert_eq!(
            cog_layout(fixture("amun_cog.tif")).unwrap().problems(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_damaged_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(fixture("gdal_cog_dem.tif")).unwrap();
        for cut in [0, 3, 8, 20, 200, 600, 1200] {
            let p = dir.path().join("cut.tif");
            std::fs::write(&p, &bytes[..cut.min(bytes.len())]).unwrap();
            // Any answer but a panic; a cut inside the directories is an error.
            let r = cog_layout(&p);
            if cut < 1200 {
                assert!(r.is_err(), "cut at {cut}");
            }
        }
    }
}
