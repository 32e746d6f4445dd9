//! Reading GeoTIFF pixels: chunk by chunk, decoded in parallel, assembled into bands.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use ndarray::Array2;
use rayon::prelude::*;

use super::layout::{open, Layout, Opened};
use super::{codec, geokeys, mem_path, metadata, ReadOptions};
use crate::error::{Error, Result};
use crate::grid::{GeoTransform, Grid};
use crate::raster::Raster;
use crate::stack::Stack;

/// Reads every band of a GeoTIFF into a [`Stack`].
///
/// Band names come from GDAL band descriptions (`GDAL_METADATA`), else `band_1`, `band_2`, …;
/// pixels equal to `GDAL_NODATA` become missing (`NaN`). Supports u8/i8/u16/i16/u32/i32/f32/f64
/// samples, strips and tiles, no/LZW/Deflate/PackBits compression, predictors 2 and 3,
/// pixel- and band-interleaved files and BigTIFF.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::NotTiff`], [`Error::Unsupported`],
/// [`Error::Corrupt`], [`Error::NoGeoreference`] (no transform),
/// [`Error::RotatedTransform`], [`Error::LimitExceeded`] (see [`ReadOptions`]).
pub fn read(path: impl AsRef<Path>) -> Result<Stack> {
    read_with(path, &ReadOptions::default())
}

/// [`read`] with explicit safety limits.
///
/// # Errors
/// As [`read`].
pub fn read_with(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Stack> {
    let path = path.as_ref();
    let file = open_file(path)?;
    guarded(path, || read_impl(BufReader::new(file), path, opts, None))
}

/// Reads a GeoTIFF held in memory (e.g. received over a network or from a fuzzer).
///
/// # Errors
/// As [`read`]; the path in errors is `<memory>`.
pub fn read_bytes(bytes: &[u8], opts: &ReadOptions) -> Result<Stack> {
    let path = mem_path();
    guarded(path, || read_impl(Cursor::new(bytes), path, opts, None))
}

/// Reads one band (1-based) of a GeoTIFF.
///
/// # Errors
/// [`Error::BandOutOfRange`] if the file has fewer bands; otherwise as [`read`].
pub fn read_band(path: impl AsRef<Path>, band: usize) -> Result<Raster> {
    let path = path.as_ref();
    let file = open_file(path)?;
    let stack = guarded(path, || {
        read_impl(
            BufReader::new(file),
            path,
            &ReadOptions::default(),
            Some(band),
        )
    })?;
    stack
        .bands()
        .first()
        .cloned()
        .ok_or_else(|| Error::BandOutOfRange {
            path: path.to_path_buf(),
            band,
            count: 0,
        })
}

pub(crate) fn open_file(path: &Path) -> Result<File> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // A directory opens on Unix and then reads as a file of 2^63 - 1 bytes.
    if file.metadata().map_err(io)?.is_dir() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory, not a GeoTIFF",
        )));
    }
    Ok(file)
}

/// Last line of defence: a panic inside a dependency on hostile input becomes an error.
/// (No input known to us reaches one: see `docs/reliability.md`.)
pub(crate) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Error::Corrupt {
            path: path.to_path_buf(),
            what: "file (decoder panicked)",
            index: 0,
            detail,
        })
    })
}

/// The grid of an opened file.
pub(crate) fn grid_of<R: Read + Seek>(opened: &Opened<R>, path: &Path) -> Result<Grid> {
    let geo = geokeys::georeference(&opened.tags, path)?;
    let Some(gt) = geo.gdal_transform else {
        return Err(Error::NoGeoreference {
            path: path.to_path_buf(),
            detail: "neither ModelPixelScale + ModelTiepoint nor ModelTransformation".into(),
        });
    };
    let transform = GeoTransform::from_gdal(gt).map_err(|e| match e {
        Error::RotatedTransform {
            row_rotation,
            col_rotation,
            ..
        } => Error::RotatedTransform {
            path: Some(path.to_path_buf()),
            row_rotation,
            col_rotation,
        },
        other => other,
    })?;
    Grid::new(
        opened.layout.width,
        opened.layout.height,
        transform,
        geo.crs,
    )
}

fn read_impl<R: Read + Seek>(
    reader: R,
    path: &Path,
    opts: &ReadOptions,
    only_band: Option<usize>,
) -> Result<Stack> {
    let mut opened = open(reader, path, opts)?;
    let layout = opened.layout.clone();
    check_readable(&layout, path)?;
    let bands: Vec<usize> = match only_band {
        Some(b) if b == 0 || b > layout.samples => {
            return Err(Error::BandOutOfRange {
                path: path.to_path_buf(),
                band: b,
                count: layout.samples,
            })
        }
        Some(b) => vec![b - 1],
        None => (0..layout.samples).collect(),
    };
    let samples = (layout.width as u64)
        .checked_mul(layout.height as u64)
        .and_then(|n| n.checked_mul(bands.len() as u64))
        .unwrap_or(u64::MAX);
    if samples > opts.max_samples {
        return Err(Error::LimitExceeded {
            path: path.to_path_buf(),
            what: "samples to decode",
            value: samples,
            limit: opts.max_samples,
        });
    }
    let grid = grid_of(&opened, path)?;
    let nodata = metadata::parse_nodata(opened.tags.nodata.as_deref());
    let md = metadata::parse(opened.tags.gdal_metadata.as_deref(), layout.samples);

    let data = decode_bands(&mut opened, path, &bands, nodata, opts)?;

    let mut stack = Stack::new(grid.clone());
    for (&b, values) in bands.iter().zip(data) {
        // The vector holds width × height samples by construction in `decode_bands`.
        let arr = Array2::from_shape_vec(grid.shape(), values).map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            what: "band",
            index: b + 1,
            detail: e.to_string(),
        })?;
        let raster = Raster::new(grid.clone(), arr)?
            .with_nodata(nodata)
            .with_kind(md.kinds[b]);
        let name = metadata::band_name(md.names[b].as_deref(), b, |n| stack.get(n).is_some());
        stack.push(name, raster)?;
    }
    Ok(stack)
}

/// One chunk to decode: its index in the offset table, plane, and position.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkRef {
    pub index: usize,
    pub plane: usize,
    pub cx: usize,
    pub cy: usize,
}

/// Decodes the requested bands (0-based) into row-major `f32` vectors.
fn decode_bands<R: Read + Seek>(
    opened: &mut Opened<R>,
    path: &Path,
    bands: &[usize],
    nodata: Option<f64>,
    opts: &ReadOptions,
) -> Result<Vec<Vec<f32>>> {
    let l = opened.layout.clone();
    let spc = l.samples_per_chunk_pixel();
    let chunk_samples_max = (l.chunk_w as u64)
        .checked_mul(l.chunk_h as u64)
        .and_then(|n| n.checked_mul(spc as u64))
        .unwrap_or(u64::MAX);
    if chunk_samples_max > opts.max_samples {
        return Err(Error::LimitExceeded {
            path: path.to_path_buf(),
            what: "samples in one chunk",
            value: chunk_samples_max,
            limit: opts.max_samples,
        });
    }
    // The planes (chunk sets) to visit: each requested band, or the single interleaved one.
    let planes: Vec<usize> = if l.planar { bands.to_vec() } else { vec![0] };
    // Every chunk must be able to hold its pixels before the bands are allocated.
    check_chunks(&l, path, &planes)?;
    let n = l.width * l.height;
    let fill = nodata.map_or(0.0, |v| v as f32);
    let mut out: Vec<Vec<f32>> = Vec::with_capacity(bands.len());
    for _ in bands {
        let mut band = try_vec(path, "a decoded band", n)?;
        band.resize(n, fill);
        out.push(band);
    }
    for batch in batches(&l, &planes) {
        let raws = batch
            .iter()
            .map(|c| read_raw(opened, path, &l, c.index))
            .collect::<Result<Vec<_>>>()?;
        let decoded = batch
            .par_iter()
            .zip(raws.par_iter())
            .map(|(c, raw)| decode_chunk(&l, path, c, raw.as_deref()))
            .collect::<Result<Vec<_>>>()?;
        for (c, values) in batch.iter().zip(decoded) {
            if let Some(values) = values {
                place(&l, c, &values, bands, &mut out);
            }
        }
    }
    Ok(out)
}

/// An empty vector with room for `n` elements, or [`Error::OutOfMemory`].
pub(crate) fn try_vec<T>(path: &Path, what: &'static str, n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        path: path.to_path_buf(),
        what,
        bytes: (n as u64).saturating_mul(std::mem::size_of::<T>() as u64),
    })?;
    Ok(v)
}

/// Refuses compressions this reader cannot decode, before any chunk is read.
pub(crate) fn check_readable(l: &Layout, path: &Path) -> Result<()> {
    if codec::max_ratio(l.compression).is_none() {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: "compression",
            detail: format!(
                "{} (amun reads NONE, LZW, DEFLATE and PACKBITS; convert with e.g. `gdal_translate -co COMPRESS=DEFLATE`)",
                l.compression
            ),
        });
    }
    Ok(())
}

/// Checks, before anything sized by the image is allocated, that every non-empty chunk of
/// `planes` lies inside the file and that its stored bytes can hold its pixels: at least
/// as many bytes uncompressed, at most the codec's maximum ratio compressed.
pub(crate) fn check_chunks(l: &Layout, path: &Path, planes: &[usize]) -> Result<()> {
    let ratio = codec::max_ratio(l.compression).unwrap_or(1);
    let across = l.chunks_across();
    for &plane in planes {
        for cy in 0..l.chunks_down() {
            let need = (l.chunk_row_bytes() as u64).saturating_mul(l.stored_rows(cy) as u64);
            for cx in 0..across {
                let index = plane * l.chunks_per_plane() + cy * across + cx;
                let (offset, count) = (l.offsets[index], l.byte_counts[index]);
                if count == 0 {
                    continue; // sparse: GDAL's empty chunk, read as nodata
                }
                let corrupt = |detail: String| Error::Corrupt {
                    path: path.to_path_buf(),
                    what: l.chunk_name(),
                    index,
                    detail,
                };
                if offset.checked_add(count).is_none_or(|e| e > l.file_len) {
                    return Err(corrupt(format!(
                        "bytes {offset}..+{count} run past the end of the {}-byte file",
                        l.file_len
                    )));
                }
                let can_hold = if ratio == 1 {
                    count
                } else {
                    count.saturating_mul(ratio).saturating_add(4096)
                };
                if need > can_hold {
                    return Err(corrupt(format!(
                        "{count} stored bytes cannot hold the {need} bytes of its {} rows of {} pixels ({} expands at most {ratio}:1)",
                        l.stored_rows(cy),
                        l.chunk_w,
                        l.compression
                    )));
                }
            }
        }
    }
    Ok(())
}

/// At most this many stored and decoded bytes are held at once while reading.
const BATCH_BYTES: u64 = 256 << 20;

/// The chunks of `planes` in reading order, cut into batches with enough chunks to keep
/// every core busy (64) and not more than [`BATCH_BYTES`] of data (at least one chunk).
pub(crate) fn batches(l: &Layout, planes: &[usize]) -> Vec<Vec<ChunkRef>> {
    let across = l.chunks_across();
    let decoded = |cy: usize| (l.chunk_row_bytes() * l.stored_rows(cy)) as u64 * 3;
    let mut out: Vec<Vec<ChunkRef>> = Vec::new();
    let (mut batch, mut bytes) = (Vec::new(), 0u64);
    // Rows of chunks across all planes together, so that a band-interleaved file is read
    // band after band only within a batch.
    let rows_per_batch = (64 / (across * planes.len()).max(1)).max(1);
    let mut cy0 = 0;
    while cy0 < l.chunks_down() {
        let cy1 = (cy0 + rows_per_batch).min(l.chunks_down());
        for &plane in planes {
            for cy in cy0..cy1 {
                for cx in 0..across {
                    let index = plane * l.chunks_per_plane() + cy * across + cx;
                    let size = l.byte_counts[index].saturating_add(decoded(cy));
                    if !batch.is_empty() && bytes.saturating_add(size) > BATCH_BYTES {
                        out.push(std::mem::take(&mut batch));
                        bytes = 0;
                    }
                    batch.push(ChunkRef {
                        index,
                        plane,
                        cx,
                        cy,
                    });
                    bytes = bytes.saturating_add(size);
                }
            }
        }
        if !batch.is_empty() {
            out.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        cy0 = cy1;
    }
    out
}

/// Reads a chunk's stored bytes; `None` for a sparse chunk (no bytes, GDAL's empty tile).
pub(crate) fn read_raw<R: Read + Seek>(
    opened: &mut Opened<R>,
    path: &Path,
    l: &Layout,
    index: usize,
) -> Result<Option<Vec<u8>>> {
    let (offset, count) = (l.offsets[index], l.byte_counts[index]);
    if count == 0 {
        return Ok(None);
    }
    let end = offset.checked_add(count);
    if end.is_none_or(|e| e > l.file_len) {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            what: l.chunk_name(),
            index,
            detail: format!(
                "bytes {offset}..+{count} run past the end of the {}-byte file",
                l.file_len
            ),
        });
    }
    let r = opened.decoder.inner();
    let unreadable = |e: std::io::Error| Error::Corrupt {
        path: path.to_path_buf(),
        what: l.chunk_name(),
        index,
        detail: format!("{e} reading bytes {offset}..+{count}"),
    };
    r.seek(SeekFrom::Start(offset)).map_err(unreadable)?;
    // `count` is bounded by the file length checked above.
    let mut buf = try_vec(path, "a chunk's stored bytes", count as usize)?;
    buf.resize(count as usize, 0);
    r.read_exact(&mut buf).map_err(unreadable)?;
    Ok(Some(buf))
}

/// Decompresses one chunk (checked by [`check_chunks`]) and undoes its predictor: native-order
/// samples, `stored rows × chunk_w × spc`.
pub(crate) fn chunk_samples(l: &Layout, path: &Path, c: &ChunkRef, raw: &[u8]) -> Result<Vec<u8>> {
    let row_bytes = l.chunk_row_bytes();
    let expected = row_bytes * l.stored_rows(c.cy);
    let mut buf = try_vec(path, "a decoded chunk", expected)?;
    buf.resize(expected, 0);
    codec::decompress_into(l.compression, raw, &mut buf).map_err(|detail| Error::Corrupt {
        path: path.to_path_buf(),
        what: l.chunk_name(),
        index: c.index,
        detail,
    })?;
    codec::unpredict(
        &mut buf,
        l.data_type,
        l.predictor,
        l.little_endian,
        row_bytes,
        l.samples_per_chunk_pixel(),
    );
    Ok(buf)
}

/// Decompresses and converts one chunk to `f32` samples (`stored rows × chunk_w × spc`).
pub(crate) fn decode_chunk(
    l: &Layout,
    path: &Path,
    c: &ChunkRef,
    raw: Option<&[u8]>,
) -> Result<Option<Vec<f32>>> {
    let Some(raw) = raw else { return Ok(None) };
    let buf = chunk_samples(l, path, c, raw)?;
    if l.data_type == super::DataType::F64 {
        check_f32_range(l, path, c, &buf)?;
    }
    let mut values = try_vec(path, "a decoded chunk", buf.len() / l.data_type.size())?;
    codec::samples_to_f32(&buf, l.data_type, &mut values);
    Ok(Some(values))
}

/// Refuses a finite Float64 sample that `f32` cannot hold (it would become infinite).
fn check_f32_range(l: &Layout, path: &Path, c: &ChunkRef, buf: &[u8]) -> Result<()> {
    let spc = l.samples_per_chunk_pixel();
    for (i, s) in buf.chunks_exact(8).enumerate() {
        let v = f64::from_ne_bytes(s.try_into().unwrap_or_default());
        if v.is_finite() && v.abs() > f64::from(f32::MAX) {
            return Err(Error::ValueOutOfRange {
                path: path.to_path_buf(),
                band: if l.planar { c.plane + 1 } else { i % spc + 1 },
                value: v,
                data_type: "Float32, the type amun reads samples as".into(),
            });
        }
    }
    Ok(())
}

/// Copies a decoded chunk's valid pixels into the output bands.
fn place(l: &Layout, c: &ChunkRef, values: &[f32], bands: &[usize], out: &mut [Vec<f32>]) {
    let (r0, c0) = (c.cy * l.chunk_h, c.cx * l.chunk_w);
    let rows = l.chunk_h.min(l.height - r0);
    let cols = l.chunk_w.min(l.width - c0);
    let spc = l.samples_per_chunk_pixel();
    for (bi, &band) in bands.iter().enumerate() {
        if l.planar && band != c.plane {
            continue;
        }
        let dst = &mut out[bi];
        for r in 0..rows {
            let src_row = &values[r * l.chunk_w * spc..(r + 1) * l.chunk_w * spc];
            let dst_row = &mut dst[(r0 + r) * l.width + c0..(r0 + r) * l.width + c0 + cols];
            if spc == 1 {
                dst_row.copy_from_slice(&src_row[..cols]);
            } else {
                for (d, px) in dst_row.iter_mut().zip(src_row.chunks_exact(spc)) {
                    *d = px[band];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_tiff() {
        let e = read_bytes(b"hello world, not a tiff", &ReadOptions::default()).unwrap_err();
        assert!(matches!(e, Error::NotTiff { .. }), "{e}");
        let e = read("/definitely/not/here.tif").unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        assert!(e.to_string().contains("/definitely/not/here.tif"), "{e}");
    }
}
