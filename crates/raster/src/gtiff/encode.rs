//! Writing tiled GeoTIFFs through the `tiff` crate's low-level directory encoder.

use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use rayon::prelude::*;
use tiff::encoder::{TiffEncoder, TiffKind};
use tiff::tags::Tag;

use super::layout::{TAG_GDAL_METADATA, TAG_GDAL_NODATA};
use super::{codec, geokeys, metadata, Compression, DataType, WriteOptions};
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::raster::Raster;
use crate::stack::Stack;

/// Writes every band of a stack to one tiled GeoTIFF (band-interleaved when there are
/// several bands), with band names as GDAL band descriptions.
///
/// The file gets the grid's CRS as GeoKeys (EPSG codes, or the PROJ strings amun reads:
/// longlat, utm, tmerc, sinu, laea; WKT as an `ESRI PE String` citation) and a
/// `GDAL_NODATA` tag: the first band's nodata value, or `nan` for float files with missing
/// pixels. Missing pixels are written as that value. The file is written atomically with
/// the umask's permissions ([`crate::write_atomic_with`]).
///
/// # Errors
/// [`Error::InvalidOperation`] for an empty stack or invalid options,
/// [`Error::Unsupported`] for a CRS that cannot be expressed as GeoKeys,
/// [`Error::NodataRequired`] / [`Error::ValueOutOfRange`] for integer output that cannot
/// hold the data, [`Error::Io`] / [`Error::Tiff`] on write failure.
pub fn write(path: impl AsRef<Path>, stack: &Stack, opts: &WriteOptions) -> Result<()> {
    let bands: Vec<(Option<&str>, &Raster)> = stack.iter().map(|(n, r)| (Some(n), r)).collect();
    write_bands(path.as_ref(), stack.grid(), &bands, opts)
}

/// Writes one raster as a single-band GeoTIFF (no band description).
///
/// # Errors
/// As [`write()`].
pub fn write_raster(path: impl AsRef<Path>, raster: &Raster, opts: &WriteOptions) -> Result<()> {
    write_bands(path.as_ref(), raster.grid(), &[(None, raster)], opts)
}

fn invalid(detail: String) -> Error {
    Error::InvalidOperation { detail }
}

fn write_bands(
    path: &Path,
    grid: &Grid,
    bands: &[(Option<&str>, &Raster)],
    opts: &WriteOptions,
) -> Result<()> {
    if bands.is_empty() {
        return Err(invalid(format!(
            "{}: nothing to write (no bands)",
            path.display()
        )));
    }
    check_options(path, opts)?;
    let ts = opts.tile_size;
    let dt = opts.data_type;
    let nodata = file_nodata(path, bands, dt)?;
    if dt != DataType::F64 && dt != DataType::F32 {
        check_range(path, bands, dt)?;
    }
    let keys = geokeys::encode_crs(grid.crs()).map_err(|detail| Error::Unsupported {
        path: path.to_path_buf(),
        what: "CRS for GeoTIFF",
        detail,
    })?;
    let predictor = predictor_code(opts, dt);

    let (w, h) = (grid.width(), grid.height());
    let (across, down) = (w.div_ceil(ts), h.div_ceil(ts));
    let jobs: Vec<(usize, usize, usize)> = (0..bands.len())
        .flat_map(|b| (0..down).flat_map(move |ty| (0..across).map(move |tx| (b, ty, tx))))
        .collect();
    let pad = nodata.unwrap_or(0.0);
    let tiles = jobs
        .par_iter()
        .map(|&(b, ty, tx)| {
            let data = bands[b].1.data();
            let values = (ty * ts..(ty + 1) * ts)
                .flat_map(|r| (tx * ts..(tx + 1) * ts).map(move |c| (r, c)))
                .map(|ix| data.get(ix).copied().unwrap_or(f32::NAN));
            encode_tile(values, ts, pad, dt, predictor, opts)
        })
        .collect::<std::result::Result<Vec<Vec<u8>>, String>>()
        .map_err(|detail| Error::Unsupported {
            path: path.to_path_buf(),
            what: "compression for writing",
            detail,
        })?;

    let total: u64 = tiles.iter().map(|t| t.len() as u64).sum();
    let names: Vec<&str> = bands.iter().map(|(n, _)| n.unwrap_or("")).collect();
    let kinds: Vec<_> = bands.iter().map(|(_, r)| r.kind()).collect();
    let md = if bands
        .iter()
        .any(|(n, r)| n.is_some() || r.kind() != Default::default())
    {
        Some(metadata::format(&names, &kinds))
    } else {
        None
    };
    let header = Header {
        grid,
        samples: bands.len(),
        dt,
        compression: opts.compression,
        predictor,
        tile: ts,
        keys,
        nodata: nodata.map(metadata::format_nodata),
        gdal_metadata: md,
    };

    crate::atomic::write_atomic_with(path, |file| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        // Classic TIFF offsets are 32-bit: leave room for the directory and tags.
        if opts.bigtiff || total > u64::from(u32::MAX) - (64 << 20) {
            let enc = TiffEncoder::new_big(&mut out).map_err(|e| tiff_write(path, e))?;
            write_file(enc, &header, &tiles, path)?;
        } else {
            let enc = TiffEncoder::new(&mut out).map_err(|e| tiff_write(path, e))?;
            write_file(enc, &header, &tiles, path)?;
        }
        out.flush().map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// One tile's stored bytes from its `ts × ts` values in row order (`NaN` → `pad`): samples
/// of type `dt`, the predictor applied, compressed as `opts` says.
pub(crate) fn encode_tile(
    values: impl Iterator<Item = f32>,
    ts: usize,
    pad: f64,
    dt: DataType,
    predictor: u16,
    opts: &WriteOptions,
) -> std::result::Result<Vec<u8>, String> {
    let mut raw = Vec::with_capacity(ts * ts * dt.size());
    for v in values {
        let v = if v.is_nan() { pad } else { f64::from(v) };
        codec::push_sample(v, dt, &mut raw);
    }
    codec::predict(&mut raw, dt, predictor, ts * dt.size(), 1);
    codec::compress(opts.compression, opts.deflate_level, &raw)
}

/// The TIFF predictor `opts` asks for with samples of type `dt`.
pub(crate) fn predictor_code(opts: &WriteOptions, dt: DataType) -> u16 {
    match (opts.predictor, opts.compression) {
        (false, _) | (_, Compression::None) => 1,
        (true, _) if dt.is_float() => 3,
        (true, _) => 2,
    }
}

/// Checks the options that the writers share: compression and tile size.
pub(crate) fn check_options(path: &Path, opts: &WriteOptions) -> Result<()> {
    if !matches!(
        opts.compression,
        Compression::None | Compression::Deflate | Compression::Lzw
    ) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: "compression for writing",
            detail: opts.compression.to_string(),
        });
    }
    let ts = opts.tile_size;
    if ts == 0 || !ts.is_multiple_of(16) || ts > 4096 {
        return Err(invalid(format!(
            "tile size {ts}: must be a multiple of 16 between 16 and 4096"
        )));
    }
    Ok(())
}

pub(crate) fn tiff_write(path: &Path, e: tiff::TiffError) -> Error {
    match e {
        tiff::TiffError::IoError(source) => Error::Io {
            path: path.to_path_buf(),
            source,
        },
        other => Error::Tiff {
            path: path.to_path_buf(),
            source: other,
        },
    }
}

/// The nodata value to tag the file with.
fn file_nodata(
    path: &Path,
    bands: &[(Option<&str>, &Raster)],
    dt: DataType,
) -> Result<Option<f64>> {
    let declared = bands.iter().find_map(|(_, r)| r.nodata());
    let missing = bands
        .iter()
        .position(|(_, r)| r.data().iter().any(|v| v.is_nan()));
    match declared {
        Some(nd) => {
            if !dt.is_float() {
                let (lo, hi) = dt.range();
                if nd.is_nan() || nd.round() < lo || nd.round() > hi {
                    return Err(Error::ValueOutOfRange {
                        path: path.to_path_buf(),
                        band: 1,
                        value: nd,
                        data_type: dt.to_string(),
                    });
                }
            }
            Ok(Some(nd))
        }
        None => match missing {
            Some(_) if dt.is_float() => Ok(Some(f64::NAN)),
            Some(b) => Err(Error::NodataRequired {
                path: path.to_path_buf(),
                band: b + 1,
                data_type: dt.to_string(),
            }),
            None => Ok(None),
        },
    }
}

fn check_range(path: &Path, bands: &[(Option<&str>, &Raster)], dt: DataType) -> Result<()> {
    let (lo, hi) = dt.range();
    for (b, (_, r)) in bands.iter().enumerate() {
        if let Some(&v) = r
            .data()
            .iter()
            .find(|v| !v.is_nan() && (f64::from(**v).round() < lo || f64::from(**v).round() > hi))
        {
            return Err(Error::ValueOutOfRange {
                path: path.to_path_buf(),
                band: b + 1,
                value: f64::from(v),
                data_type: dt.to_string(),
            });
        }
    }
    Ok(())
}

/// Everything the image directory records besides the tile offsets.
pub(crate) struct Header<'a> {
    pub grid: &'a Grid,
    pub samples: usize,
    pub dt: DataType,
    pub compression: Compression,
    pub predictor: u16,
    pub tile: usize,
    pub keys: Option<geokeys::EncodedKeys>,
    pub nodata: Option<String>,
    pub gdal_metadata: Option<String>,
}

/// Offsets in the width of the TIFF kind: `u32` for classic TIFF, `u64` for BigTIFF.
pub(crate) trait OffsetWidth: TiffKind {
    fn write_offsets<W: Write + Seek>(
        dir: &mut tiff::encoder::DirectoryEncoder<'_, W, Self>,
        tag: Tag,
        values: &[u64],
    ) -> tiff::TiffResult<()>
    where
        Self: Sized;
}

impl OffsetWidth for tiff::encoder::TiffKindStandard {
    fn write_offsets<W: Write + Seek>(
        dir: &mut tiff::encoder::DirectoryEncoder<'_, W, Self>,
        tag: Tag,
        values: &[u64],
    ) -> tiff::TiffResult<()> {
        let v: Vec<u32> = values
            .iter()
            .map(|&o| u32::try_from(o))
            .collect::<std::result::Result<_, _>>()?;
        dir.write_tag(tag, &v[..])
    }
}

impl OffsetWidth for tiff::encoder::TiffKindBig {
    fn write_offsets<W: Write + Seek>(
        dir: &mut tiff::encoder::DirectoryEncoder<'_, W, Self>,
        tag: Tag,
        values: &[u64],
    ) -> tiff::TiffResult<()> {
        dir.write_tag(tag, values)
    }
}

fn write_file<W: Write + Seek, K: OffsetWidth>(
    mut enc: TiffEncoder<W, K>,
    h: &Header<'_>,
    tiles: &[Vec<u8>],
    path: &Path,
) -> Result<()> {
    let e = |err| tiff_write(path, err);
    let mut dir = enc.image_directory().map_err(e)?;
    let mut offsets = Vec::with_capacity(tiles.len());
    for t in tiles {
        offsets.push(dir.write_data(&t[..]).map_err(e)?);
    }
    let counts: Vec<u64> = tiles.iter().map(|t| t.len() as u64).collect();
    write_tags(&mut dir, h, &offsets, &counts, path)?;
    dir.finish().map_err(e)?;
    Ok(())
}

/// Writes the image directory's tags: the header's and the tile offsets and byte counts.
pub(crate) fn write_tags<W: Write + Seek, K: OffsetWidth>(
    dir: &mut tiff::encoder::DirectoryEncoder<'_, W, K>,
    h: &Header<'_>,
    offsets: &[u64],
    counts: &[u64],
    path: &Path,
) -> Result<()> {
    let e = |err| tiff_write(path, err);
    let spp = h.samples;
    let bits = (h.dt.size() * 8) as u16;
    let to_u32 =
        |v: usize| u32::try_from(v).map_err(|_| invalid(format!("{v} pixels do not fit a TIFF")));
    dir.write_tag(Tag::ImageWidth, to_u32(h.grid.width())?)
        .map_err(e)?;
    dir.write_tag(Tag::ImageLength, to_u32(h.grid.height())?)
        .map_err(e)?;
    dir.write_tag(Tag::BitsPerSample, &vec![bits; spp][..])
        .map_err(e)?;
    dir.write_tag(Tag::Compression, h.compression.code())
        .map_err(e)?;
    dir.write_tag(Tag::PhotometricInterpretation, 1u16)
        .map_err(e)?;
    dir.write_tag(Tag::SamplesPerPixel, spp as u16).map_err(e)?;
    dir.write_tag(Tag::PlanarConfiguration, if spp > 1 { 2u16 } else { 1u16 })
        .map_err(e)?;
    if h.predictor != 1 {
        dir.write_tag(Tag::Predictor, h.predictor).map_err(e)?;
    }
    dir.write_tag(Tag::TileWidth, h.tile as u32).map_err(e)?;
    dir.write_tag(Tag::TileLength, h.tile as u32).map_err(e)?;
    K::write_offsets(dir, Tag::TileOffsets, offsets).map_err(e)?;
    K::write_offsets(dir, Tag::TileByteCounts, counts).map_err(e)?;
    if spp > 1 {
        dir.write_tag(Tag::ExtraSamples, &vec![0u16; spp - 1][..])
            .map_err(e)?;
    }
    dir.write_tag(Tag::SampleFormat, &vec![h.dt.sample_format(); spp][..])
        .map_err(e)?;
    let t = h.grid.transform();
    dir.write_tag(
        Tag::ModelPixelScaleTag,
        &[t.pixel_width, -t.pixel_height, 0.0][..],
    )
    .map_err(e)?;
    dir.write_tag(
        Tag::ModelTiepointTag,
        &[0.0, 0.0, 0.0, t.origin_x, t.origin_y, 0.0][..],
    )
    .map_err(e)?;
    if let Some(k) = &h.keys {
        dir.write_tag(Tag::GeoKeyDirectoryTag, &k.directory[..])
            .map_err(e)?;
        if !k.doubles.is_empty() {
            dir.write_tag(Tag::GeoDoubleParamsTag, &k.doubles[..])
                .map_err(e)?;
        }
        if !k.ascii.is_empty() {
            dir.write_tag(Tag::GeoAsciiParamsTag, k.ascii.as_str())
                .map_err(e)?;
        }
    }
    if let Some(md) = &h.gdal_metadata {
        dir.write_tag(Tag::from_u16_exhaustive(TAG_GDAL_METADATA), md.as_str())
            .map_err(e)?;
    }
    if let Some(nd) = &h.nodata {
        dir.write_tag(Tag::from_u16_exhaustive(TAG_GDAL_NODATA), nd.as_str())
            .map_err(e)?;
    }
    Ok(())
}
