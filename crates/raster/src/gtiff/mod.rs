//! GeoTIFF reading, writing and inspection.
//!
//! The TIFF structure (header, IFD, tag values, BigTIFF) is parsed by the `tiff` crate; the
//! GeoTIFF layer (GeoKeys, model transforms, GDAL nodata and metadata) and the pixel pipeline
//! (chunk reads, decompression, predictors, sample conversion, assembly of tiles and strips)
//! are ours. See `docs/geotiff.md` for why.

mod codec;
mod cog;
mod decode;
mod encode;
mod geokeys;
mod info;
mod layout;
mod metadata;
mod reader;
mod stats;
mod stream;

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use cog::{cog_layout, write_cog, CogLayout, IfdLayout};
pub use decode::{read, read_band, read_bytes, read_with};
pub use encode::{write, write_raster};
pub use info::{inspect, BandInfo, ChunkLayout, FileInfo, Interleave};
pub use reader::GeoTiffReader;
pub use stats::{statistics, statistics_with};
pub use stream::{write_streamed, write_streamed_bands, TileSink};

/// The sample type of a band on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DataType {
    /// Unsigned 8-bit integer (GDAL `Byte`).
    U8,
    /// Signed 8-bit integer (GDAL `Int8`).
    I8,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 32-bit integer.
    I32,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
}

impl DataType {
    /// Bytes per sample.
    pub fn size(self) -> usize {
        match self {
            DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::F64 => 8,
        }
    }

    /// Whether the type is a floating-point type (can store NaN).
    pub fn is_float(self) -> bool {
        matches!(self, DataType::F32 | DataType::F64)
    }

    /// The range of representable values (for integers), as `f64`.
    pub(crate) fn range(self) -> (f64, f64) {
        match self {
            DataType::U8 => (0.0, f64::from(u8::MAX)),
            DataType::I8 => (f64::from(i8::MIN), f64::from(i8::MAX)),
            DataType::U16 => (0.0, f64::from(u16::MAX)),
            DataType::I16 => (f64::from(i16::MIN), f64::from(i16::MAX)),
            DataType::U32 => (0.0, f64::from(u32::MAX)),
            DataType::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
            DataType::F32 => (f64::from(f32::MIN), f64::from(f32::MAX)),
            DataType::F64 => (f64::MIN, f64::MAX),
        }
    }

    /// TIFF `SampleFormat` (1 unsigned, 2 signed, 3 float).
    pub(crate) fn sample_format(self) -> u16 {
        match self {
            DataType::U8 | DataType::U16 | DataType::U32 => 1,
            DataType::I8 | DataType::I16 | DataType::I32 => 2,
            DataType::F32 | DataType::F64 => 3,
        }
    }

    /// From TIFF `SampleFormat` and `BitsPerSample`.
    pub(crate) fn from_tiff(sample_format: u16, bits: u16) -> Option<DataType> {
        Some(match (sample_format, bits) {
            (1, 8) => DataType::U8,
            (2, 8) => DataType::I8,
            (1, 16) => DataType::U16,
            (2, 16) => DataType::I16,
            (1, 32) => DataType::U32,
            (2, 32) => DataType::I32,
            (3, 32) => DataType::F32,
            (3, 64) => DataType::F64,
            _ => return None,
        })
    }
}

impl fmt::Display for DataType {
    /// GDAL's names (`Byte`, `Int16`, `Float32`, …).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataType::U8 => "Byte",
            DataType::I8 => "Int8",
            DataType::U16 => "UInt16",
            DataType::I16 => "Int16",
            DataType::U32 => "UInt32",
            DataType::I32 => "Int32",
            DataType::F32 => "Float32",
            DataType::F64 => "Float64",
        })
    }
}

/// TIFF compression schemes. Reading supports `None`, `Lzw`, `Deflate` and `PackBits`;
/// writing supports `None`, `Lzw` and `Deflate`. The others are recognised for
/// [`inspect`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Compression {
    /// No compression (TIFF code 1).
    None,
    /// LZW (code 5).
    Lzw,
    /// Deflate / zlib (codes 8 and 32946).
    Deflate,
    /// PackBits run-length coding (code 32773).
    PackBits,
    /// JPEG (codes 6 and 7): not readable here.
    Jpeg,
    /// Zstandard (code 50000): not readable here.
    Zstd,
    /// Any other code.
    Other(u16),
}

impl Compression {
    pub(crate) fn from_code(code: u16) -> Compression {
        match code {
            1 => Compression::None,
            5 => Compression::Lzw,
            8 | 32946 => Compression::Deflate,
            32773 => Compression::PackBits,
            6 | 7 => Compression::Jpeg,
            50000 => Compression::Zstd,
            other => Compression::Other(other),
        }
    }

    pub(crate) fn code(self) -> u16 {
        match self {
            Compression::None => 1,
            Compression::Lzw => 5,
            Compression::Deflate => 8,
            Compression::PackBits => 32773,
            Compression::Jpeg => 7,
            Compression::Zstd => 50000,
            Compression::Other(c) => c,
        }
    }
}

impl fmt::Display for Compression {
    /// GDAL's names (`DEFLATE`, `LZW`, …).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("NONE"),
            Compression::Lzw => f.write_str("LZW"),
            Compression::Deflate => f.write_str("DEFLATE"),
            Compression::PackBits => f.write_str("PACKBITS"),
            Compression::Jpeg => f.write_str("JPEG"),
            Compression::Zstd => f.write_str("ZSTD"),
            Compression::Other(c) => match c {
                2 => f.write_str("CCITTRLE"),
                3 => f.write_str("CCITTFAX3"),
                4 => f.write_str("CCITTFAX4"),
                34712 => f.write_str("JPEG2000"),
                34887 => f.write_str("LERC"),
                34925 => f.write_str("LZMA"),
                50001 => f.write_str("WEBP"),
                50002 => f.write_str("JXL"),
                _ => write!(f, "code {c}"),
            },
        }
    }
}

/// Safety limits applied while reading, so that a damaged or hostile file cannot make the
/// reader allocate without bound.
///
/// Whatever the limits, nothing sized by the file is allocated before the file is checked to
/// hold it: tag values must lie inside the file, and each tile or strip must hold its pixels
/// (its stored bytes times the compression's largest ratio). Large buffers are reserved
/// fallibly: memory that cannot be had is [`crate::Error::OutOfMemory`], not an abort.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// Most samples (pixels × bands read) decoded into memory. Default 2³⁰ (4 GiB of `f32`).
    pub max_samples: u64,
    /// Largest size of one tag value in memory: its bytes for text, 32 bytes per value for
    /// arrays (as the `tiff` crate holds them), so the default allows tables of up to 2²¹
    /// tile offsets. Default 64 MiB.
    pub max_tag_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_samples: 1 << 30,
            max_tag_bytes: 64 << 20,
        }
    }
}

impl ReadOptions {
    /// These options with another sample limit.
    pub fn with_max_samples(mut self, max_samples: u64) -> Self {
        self.max_samples = max_samples;
        self
    }
}

/// How [`write()`] lays a file out. Defaults: `Float32`, Deflate level 6 with a predictor,
/// 256×256 tiles, classic TIFF unless the data needs BigTIFF.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Sample type on disk. Default [`DataType::F32`]. Integer types round to nearest and
    /// refuse values outside their range.
    pub data_type: DataType,
    /// Compression: `None`, `Lzw` or `Deflate` (default).
    pub compression: Compression,
    /// Deflate level 1–9 (default 6, GDAL's default).
    pub deflate_level: u32,
    /// Use a predictor: horizontal differencing (TIFF predictor 2) for integers, the
    /// floating-point predictor (3) for floats. Default `true`; ignored without compression.
    pub predictor: bool,
    /// Square tile side in pixels, a multiple of 16 (default 256).
    pub tile_size: usize,
    /// Force BigTIFF even for small files (default `false`: BigTIFF only above 4 GiB).
    pub bigtiff: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            data_type: DataType::F32,
            compression: Compression::Deflate,
            deflate_level: 6,
            predictor: true,
            tile_size: 256,
            bigtiff: false,
        }
    }
}

impl WriteOptions {
    /// These options with another data type.
    pub fn with_data_type(mut self, data_type: DataType) -> Self {
        self.data_type = data_type;
        self
    }

    /// These options with another compression.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// These options with or without a predictor.
    pub fn with_predictor(mut self, predictor: bool) -> Self {
        self.predictor = predictor;
        self
    }

    /// These options with another tile size.
    pub fn with_tile_size(mut self, tile_size: usize) -> Self {
        self.tile_size = tile_size;
        self
    }

    /// These options writing BigTIFF.
    pub fn with_bigtiff(mut self, bigtiff: bool) -> Self {
        self.bigtiff = bigtiff;
        self
    }
}

/// A display name for a path in errors of in-memory reads.
pub(crate) fn mem_path() -> &'static Path {
    Path::new("<memory>")
}
