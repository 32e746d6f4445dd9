//! The first image directory of a TIFF: pixel layout and the raw GeoTIFF/GDAL tags.
//!
//! The `tiff` crate parses the header and the directory (classic and BigTIFF, both byte
//! orders) and reads tag values within limits; everything is then validated here so that
//! the decoder can index chunks without further checks.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use tiff::decoder::{Decoder, Limits};
use tiff::tags::Tag;
use tiff::{TiffError, TiffFormatError};

use super::{Compression, DataType, ReadOptions};
use crate::error::{Error, Result};

/// GDAL's private tag holding an XML block of metadata (band names, …).
pub(crate) const TAG_GDAL_METADATA: u16 = 42112;
/// GDAL's private tag holding the nodata value as ASCII.
pub(crate) const TAG_GDAL_NODATA: u16 = 42113;

/// Where and how the pixels of the first image are stored.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub width: usize,
    pub height: usize,
    /// Samples per pixel (bands).
    pub samples: usize,
    pub data_type: DataType,
    pub compression: Compression,
    /// TIFF predictor: 1 none, 2 horizontal, 3 floating point.
    pub predictor: u16,
    /// `true` for PlanarConfiguration = 2 (band-interleaved: one set of chunks per band).
    pub planar: bool,
    pub tiled: bool,
    /// Chunk size: tile size, or (image width, rows per strip).
    pub chunk_w: usize,
    pub chunk_h: usize,
    pub offsets: Vec<u64>,
    pub byte_counts: Vec<u64>,
    pub little_endian: bool,
    pub bigtiff: bool,
    /// File length in bytes.
    pub file_len: u64,
}

impl Layout {
    /// Chunks across and down one plane.
    pub fn chunks_across(&self) -> usize {
        self.width.div_ceil(self.chunk_w)
    }

    pub fn chunks_down(&self) -> usize {
        self.height.div_ceil(self.chunk_h)
    }

    pub fn chunks_per_plane(&self) -> usize {
        self.chunks_across() * self.chunks_down()
    }

    /// Samples stored per pixel inside one chunk.
    pub fn samples_per_chunk_pixel(&self) -> usize {
        if self.planar {
            1
        } else {
            self.samples
        }
    }

    /// Rows of pixel data stored in chunk row `cy`: tiles are always full (padded); the last
    /// strip holds only the rows left.
    pub fn stored_rows(&self, cy: usize) -> usize {
        if self.tiled {
            self.chunk_h
        } else {
            self.chunk_h.min(self.height - cy * self.chunk_h)
        }
    }

    /// Bytes of one decoded row of a chunk.
    pub fn chunk_row_bytes(&self) -> usize {
        self.chunk_w * self.samples_per_chunk_pixel() * self.data_type.size()
    }

    /// Chunk kind for messages.
    pub fn chunk_name(&self) -> &'static str {
        if self.tiled {
            "tile"
        } else {
            "strip"
        }
    }
}

/// Raw GeoTIFF and GDAL tag values (not yet interpreted).
#[derive(Debug, Clone, Default)]
pub(crate) struct RawTags {
    pub geokeys: Option<Vec<u16>>,
    pub geo_doubles: Option<Vec<f64>>,
    pub geo_ascii: Option<String>,
    pub pixel_scale: Option<Vec<f64>>,
    pub tiepoints: Option<Vec<f64>>,
    pub transformation: Option<Vec<f64>>,
    pub nodata: Option<String>,
    pub gdal_metadata: Option<String>,
}

/// An opened TIFF: its decoder (for raw reads through `inner()`), layout and tags.
pub(crate) struct Opened<R: Read + Seek> {
    pub decoder: Decoder<R>,
    pub layout: Layout,
    pub tags: RawTags,
}

/// Maps a `tiff` error to ours, keeping the path.
pub(crate) fn tiff_error(path: &Path, e: TiffError) -> Error {
    match e {
        TiffError::FormatError(
            TiffFormatError::TiffSignatureNotFound | TiffFormatError::TiffSignatureInvalid,
        ) => Error::NotTiff {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        TiffError::UnsupportedError(u) => Error::Unsupported {
            path: path.to_path_buf(),
            what: "TIFF feature",
            detail: u.to_string(),
        },
        // `check_first_ifd` keeps the directory and tag values inside the file, so a short
        // read here is a damaged structure the check does not model.
        TiffError::IoError(source) => Error::Corrupt {
            path: path.to_path_buf(),
            what: "TIFF structure",
            index: 0,
            detail: format!("{source} while reading the first IFD or a tag value"),
        },
        other => Error::Tiff {
            path: path.to_path_buf(),
            source: other,
        },
    }
}

fn corrupt_tag(path: &Path, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        what: "tag",
        index: 0,
        detail: detail.into(),
    }
}

/// Reads the header and first directory of a TIFF.
pub(crate) fn open<R: Read + Seek>(
    mut reader: R,
    path: &Path,
    opts: &ReadOptions,
) -> Result<Opened<R>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let (file_len, little_endian, bigtiff) = read_header(&mut reader, path)?;
    check_first_ifd(&mut reader, path, file_len, little_endian, bigtiff, opts)?;
    reader.seek(SeekFrom::Start(0)).map_err(io)?;

    // The checks above bound every value the `tiff` crate reads; these limits repeat them
    // for the values read below (we never use its image decoder).
    let mut limits = Limits::default();
    limits.ifd_value_size = opts.max_tag_bytes;
    limits.decoding_buffer_size = opts.max_tag_bytes;
    limits.intermediate_buffer_size = opts.max_tag_bytes;
    let decoder = Decoder::new(reader).map_err(|e| tiff_error(path, e))?;
    let mut decoder = decoder.with_limits(limits);

    let (width, height) = decoder.dimensions().map_err(|e| tiff_error(path, e))?;
    let (width, height) = (width as usize, height as usize);
    let find = |dec: &mut Decoder<R>, tag: Tag| dec.find_tag(tag).map_err(|e| tiff_error(path, e));
    let (samples, data_type) = sample_type(&mut decoder, path)?;
    let compression = Compression::from_code(match find(&mut decoder, Tag::Compression)? {
        Some(v) => v.into_u16().map_err(|e| tiff_error(path, e))?,
        None => 1,
    });
    let predictor = match find(&mut decoder, Tag::Predictor)? {
        Some(v) => v.into_u16().map_err(|e| tiff_error(path, e))?,
        None => 1,
    };
    let planar = match find(&mut decoder, Tag::PlanarConfiguration)? {
        Some(v) => v.into_u16().map_err(|e| tiff_error(path, e))? == 2,
        None => false,
    } && samples > 1;
    let (tiled, chunk_w, chunk_h, offsets, byte_counts) =
        chunk_tags(&mut decoder, path, width, height)?;
    if width == 0 || height == 0 || chunk_w == 0 || chunk_h == 0 || samples == 0 {
        return Err(corrupt_tag(
            path,
            format!("empty image or chunk: {width}×{height}, chunk {chunk_w}×{chunk_h}, {samples} samples"),
        ));
    }
    let layout = Layout {
        width,
        height,
        samples,
        data_type,
        compression,
        predictor,
        planar,
        tiled,
        chunk_w,
        chunk_h,
        offsets,
        byte_counts,
        little_endian,
        bigtiff,
        file_len,
    };
    check_layout(&layout, path)?;
    let tags = read_raw_tags(&mut decoder, path)?;
    Ok(Opened {
        decoder,
        layout,
        tags,
    })
}

/// The file's length, byte order and whether it is a BigTIFF, from its header.
fn read_header<R: Read + Seek>(reader: &mut R, path: &Path) -> Result<(u64, bool, bool)> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_len = reader.seek(SeekFrom::End(0)).map_err(io)?;
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut header = [0u8; 4];
    if file_len < 8 || reader.read_exact(&mut header).is_err() {
        return Err(Error::NotTiff {
            path: path.to_path_buf(),
            detail: format!("{file_len} bytes, too short for a TIFF header"),
        });
    }
    let little_endian = match &header[..2] {
        b"II" => true,
        b"MM" => false,
        _ => {
            return Err(Error::NotTiff {
                path: path.to_path_buf(),
                detail: "no II/MM byte-order mark".into(),
            })
        }
    };
    let magic = if little_endian {
        u16::from_le_bytes([header[2], header[3]])
    } else {
        u16::from_be_bytes([header[2], header[3]])
    };
    Ok((file_len, little_endian, magic == 43))
}

/// Samples per pixel and their type (one type for all samples).
fn sample_type<R: Read + Seek>(decoder: &mut Decoder<R>, path: &Path) -> Result<(usize, DataType)> {
    let find = |dec: &mut Decoder<R>, tag: Tag| dec.find_tag(tag).map_err(|e| tiff_error(path, e));
    let samples = match find(decoder, Tag::SamplesPerPixel)? {
        Some(v) => v.into_u16().map_err(|e| tiff_error(path, e))?,
        None => 1,
    } as usize;
    let bits = match find(decoder, Tag::BitsPerSample)? {
        Some(v) => v.into_u16_vec().map_err(|e| tiff_error(path, e))?,
        None => vec![1],
    };
    let formats = match find(decoder, Tag::SampleFormat)? {
        Some(v) => v.into_u16_vec().map_err(|e| tiff_error(path, e))?,
        None => vec![1],
    };
    let (Some(&b0), Some(&f0)) = (bits.first(), formats.first()) else {
        return Err(corrupt_tag(path, "empty BitsPerSample or SampleFormat"));
    };
    if bits.iter().any(|&b| b != b0) || formats.iter().any(|&f| f != f0) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: "mixed sample types",
            detail: format!("BitsPerSample {bits:?}, SampleFormat {formats:?}"),
        });
    }
    let data_type = DataType::from_tiff(f0, b0).ok_or_else(|| Error::Unsupported {
        path: path.to_path_buf(),
        what: "sample type",
        detail: format!(
            "{b0}-bit {}",
            match f0 {
                1 => "unsigned integer",
                2 => "signed integer",
                3 => "float",
                _ => "unknown format",
            }
        ),
    })?;
    Ok((samples, data_type))
}

/// Whether the image is tiled, its chunk size, and the chunks' offsets and byte counts.
#[allow(clippy::type_complexity)]
fn chunk_tags<R: Read + Seek>(
    decoder: &mut Decoder<R>,
    path: &Path,
    width: usize,
    height: usize,
) -> Result<(bool, usize, usize, Vec<u64>, Vec<u64>)> {
    let find = |dec: &mut Decoder<R>, tag: Tag| dec.find_tag(tag).map_err(|e| tiff_error(path, e));
    let tile_w = find(decoder, Tag::TileWidth)?;
    Ok(if let Some(tw) = tile_w {
        let tw = tw.into_u32().map_err(|e| tiff_error(path, e))? as usize;
        let th = match find(decoder, Tag::TileLength)? {
            Some(v) => v.into_u32().map_err(|e| tiff_error(path, e))? as usize,
            None => return Err(corrupt_tag(path, "TileWidth without TileLength")),
        };
        let off = find(decoder, Tag::TileOffsets)?;
        let cnt = find(decoder, Tag::TileByteCounts)?;
        let (Some(off), Some(cnt)) = (off, cnt) else {
            return Err(corrupt_tag(
                path,
                "tiled image without TileOffsets/TileByteCounts",
            ));
        };
        (
            true,
            tw,
            th,
            off.into_u64_vec().map_err(|e| tiff_error(path, e))?,
            cnt.into_u64_vec().map_err(|e| tiff_error(path, e))?,
        )
    } else {
        let rps = match find(decoder, Tag::RowsPerStrip)? {
            Some(v) => v.into_u32().map_err(|e| tiff_error(path, e))? as usize,
            None => height,
        };
        let off = find(decoder, Tag::StripOffsets)?;
        let cnt = find(decoder, Tag::StripByteCounts)?;
        let (Some(off), Some(cnt)) = (off, cnt) else {
            return Err(corrupt_tag(
                path,
                "image without StripOffsets/StripByteCounts",
            ));
        };
        (
            false,
            width,
            rps.clamp(1, height.max(1)),
            off.into_u64_vec().map_err(|e| tiff_error(path, e))?,
            cnt.into_u64_vec().map_err(|e| tiff_error(path, e))?,
        )
    })
}

/// The chunk count matches the offsets and byte counts; the predictor is one we decode.
fn check_layout(layout: &Layout, path: &Path) -> Result<()> {
    let (planar, samples, predictor, data_type) = (
        layout.planar,
        layout.samples,
        layout.predictor,
        layout.data_type,
    );
    let planes = if planar { samples } else { 1 };
    let want = layout
        .chunks_per_plane()
        .checked_mul(planes)
        .ok_or_else(|| corrupt_tag(path, "chunk count overflows"))?;
    if layout.offsets.len() != want || layout.byte_counts.len() != want {
        return Err(corrupt_tag(
            path,
            format!(
                "{} offsets and {} byte counts for {want} {}s",
                layout.offsets.len(),
                layout.byte_counts.len(),
                layout.chunk_name()
            ),
        ));
    }
    if !matches!(predictor, 1..=3) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: "predictor",
            detail: predictor.to_string(),
        });
    }
    if predictor == 3 && !data_type.is_float() {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: "predictor",
            detail: format!("floating-point predictor on {data_type} samples"),
        });
    }

    Ok(())
}

/// The tags whose values amun or the `tiff` crate's `Decoder::new` read, with their names.
const READ_TAGS: [(u16, &str); 27] = [
    (256, "ImageWidth"),
    (257, "ImageLength"),
    (258, "BitsPerSample"),
    (259, "Compression"),
    (262, "PhotometricInterpretation"),
    (273, "StripOffsets"),
    (277, "SamplesPerPixel"),
    (278, "RowsPerStrip"),
    (279, "StripByteCounts"),
    (284, "PlanarConfiguration"),
    (317, "Predictor"),
    (322, "TileWidth"),
    (323, "TileLength"),
    (324, "TileOffsets"),
    (325, "TileByteCounts"),
    (338, "ExtraSamples"),
    (339, "SampleFormat"),
    (347, "JPEGTables"),
    (530, "YCbCrSubSampling"),
    (33550, "ModelPixelScale"),
    (33922, "ModelTiepoint"),
    (34264, "ModelTransformation"),
    (34735, "GeoKeyDirectory"),
    (34736, "GeoDoubleParams"),
    (34737, "GeoAsciiParams"),
    (TAG_GDAL_METADATA, "GDAL_METADATA"),
    (TAG_GDAL_NODATA, "GDAL_NODATA"),
];

/// Bytes per value of a TIFF field type; `None` for types the `tiff` crate skips.
fn type_size(field_type: u16) -> Option<u64> {
    Some(match field_type {
        1 | 2 | 6 | 7 => 1,         // BYTE, ASCII, SBYTE, UNDEFINED
        3 | 8 => 2,                 // SHORT, SSHORT
        4 | 9 | 11 | 13 => 4,       // LONG, SLONG, FLOAT, IFD
        5 | 10 | 12 | 16..=18 => 8, // RATIONAL, SRATIONAL, DOUBLE, LONG8, SLONG8, IFD8
        _ => return None,
    })
}

/// Walks the first directory before the `tiff` crate reads it, so that a damaged or hostile
/// file is reported by structure (IFD, tag) and no value is allocated for that the file
/// cannot hold: the directory and every value amun or `tiff` reads must lie inside the file,
/// and a value may have at most `max_tag_bytes` bytes. (The `tiff` crate allocates a tag's
/// values from its count before reading them, up to 256 MiB, and prints a `dbg!` line on
/// stderr for an ASCII value above its limit: tiff 0.11.3, `decoder/ifd.rs:723`.)
fn check_first_ifd<R: Read + Seek>(
    r: &mut R,
    path: &Path,
    file_len: u64,
    little_endian: bool,
    bigtiff: bool,
    opts: &ReadOptions,
) -> Result<()> {
    let ifd_err = |detail: String| Error::Corrupt {
        path: path.to_path_buf(),
        what: "IFD",
        index: 0,
        detail,
    };
    // Reads `n` bytes at `at`; the caller has checked that they lie inside the file.
    let mut bytes = |at: u64, n: usize| -> Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        r.seek(SeekFrom::Start(at))
            .and_then(|_| r.read_exact(&mut buf))
            .map_err(|e| ifd_err(format!("{e} reading {n} bytes at offset {at}")))?;
        Ok(buf)
    };
    let uint = |b: &[u8]| -> u64 {
        let fold = |acc: u64, &x: &u8| acc << 8 | u64::from(x);
        if little_endian {
            b.iter().rev().fold(0, fold)
        } else {
            b.iter().fold(0, fold)
        }
    };
    // Header: classic 8 bytes (offset at 4), BigTIFF 16 bytes (offset at 8).
    let (header_len, count_len, entry_len, word) = if bigtiff {
        (16u64, 8u64, 20u64, 8u64)
    } else {
        (8, 2, 12, 4)
    };
    if file_len < header_len {
        return Err(ifd_err(format!(
            "the {file_len}-byte file is too short for a {}TIFF header",
            if bigtiff { "Big" } else { "" }
        )));
    }
    let head = bytes(0, header_len as usize)?;
    let ifd = uint(&head[header_len as usize - word as usize..]);
    if ifd < header_len || ifd.saturating_add(count_len) > file_len {
        return Err(ifd_err(format!(
            "at offset {ifd}, past the end of the {file_len}-byte file"
        )));
    }
    let n = uint(&bytes(ifd, count_len as usize)?);
    let table = n
        .checked_mul(entry_len)
        .filter(|&t| ifd + count_len + t <= file_len)
        .ok_or_else(|| {
            ifd_err(format!(
                "{n} entries at offset {ifd} run past the end of the {file_len}-byte file"
            ))
        })?;
    // `table` is within the file length checked above.
    let entries = bytes(ifd + count_len, table as usize)?;
    let value_size = std::mem::size_of::<tiff::decoder::ifd::Value>() as u64;
    for e in entries.chunks_exact(entry_len as usize) {
        let code = uint(&e[..2]) as u16;
        let Some(&(_, name)) = READ_TAGS.iter().find(|(c, _)| *c == code) else {
            continue;
        };
        let Some(size) = type_size(uint(&e[2..4]) as u16) else {
            continue;
        };
        let (count, field) = (uint(&e[4..4 + word as usize]), &e[4 + word as usize..]);
        let tag_err = |detail: String| Error::Corrupt {
            path: path.to_path_buf(),
            what: "tag",
            index: usize::from(code),
            detail: format!("{name}: {detail}"),
        };
        let Some(len) = count.checked_mul(size) else {
            return Err(tag_err(format!("{count} values of {size} bytes overflow")));
        };
        if len > word {
            let at = uint(field);
            if at.checked_add(len).is_none_or(|end| end > file_len) {
                return Err(tag_err(format!(
                    "{count} values of {size} byte(s) at offset {at} run past the end of the {file_len}-byte file"
                )));
            }
        }
        // ASCII values become one string; the others a vector of `tiff`'s `Value`s.
        let in_memory = if size == 1 && uint(&e[2..4]) == 2 {
            len
        } else {
            count.saturating_mul(value_size)
        };
        if len > opts.max_tag_bytes as u64 || in_memory > opts.max_tag_bytes as u64 {
            return Err(Error::LimitExceeded {
                path: path.to_path_buf(),
                what: "bytes of one tag value in memory",
                value: len.max(in_memory),
                limit: opts.max_tag_bytes as u64,
            });
        }
    }
    Ok(())
}

fn read_raw_tags<R: Read + Seek>(dec: &mut Decoder<R>, path: &Path) -> Result<RawTags> {
    let mut find = |code: u16| {
        dec.find_tag(Tag::from_u16_exhaustive(code))
            .map_err(|e| tiff_error(path, e))
    };
    let err = |e| tiff_error(path, e);
    let ascii = |v: tiff::decoder::ifd::Value| -> Result<String> {
        let s = v.into_string().map_err(err)?;
        Ok(s.trim_end_matches('\0').to_string())
    };
    let mut tags = RawTags::default();
    if let Some(v) = find(34735)? {
        tags.geokeys = Some(v.into_u16_vec().map_err(err)?);
    }
    if let Some(v) = find(34736)? {
        tags.geo_doubles = Some(v.into_f64_vec().map_err(err)?);
    }
    if let Some(v) = find(34737)? {
        tags.geo_ascii = Some(ascii(v)?);
    }
    if let Some(v) = find(33550)? {
        tags.pixel_scale = Some(v.into_f64_vec().map_err(err)?);
    }
    if let Some(v) = find(33922)? {
        tags.tiepoints = Some(v.into_f64_vec().map_err(err)?);
    }
    if let Some(v) = find(34264)? {
        tags.transformation = Some(v.into_f64_vec().map_err(err)?);
    }
    if let Some(v) = find(TAG_GDAL_NODATA)? {
        tags.nodata = Some(ascii(v)?);
    }
    if let Some(v) = find(TAG_GDAL_METADATA)? {
        tags.gdal_metadata = Some(ascii(v)?);
    }
    Ok(tags)
}
