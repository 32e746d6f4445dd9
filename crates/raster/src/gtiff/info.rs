//! `inspect`: what `gdalinfo` shows about a GeoTIFF, without decoding pixels.

use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::decode::{guarded, open_file};
use super::layout::open;
use super::{geokeys, metadata, Compression, DataType, ReadOptions};
use crate::error::Result;
use crate::grid::{Crs, GeoTransform, Grid};
use crate::raster::BandKind;

/// How pixels are cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ChunkLayout {
    /// Strips of full rows.
    Strips {
        /// Rows per strip.
        rows_per_strip: usize,
    },
    /// Rectangular tiles.
    Tiles {
        /// Tile width in pixels.
        width: usize,
        /// Tile height in pixels.
        height: usize,
    },
}

/// How the samples of several bands are interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Interleave {
    /// All bands of a pixel together (TIFF PlanarConfiguration 1, GDAL `PIXEL`).
    Pixel,
    /// One band after the other (PlanarConfiguration 2, GDAL `BAND`).
    Band,
}

/// One band of a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BandInfo {
    /// 1-based band number.
    pub index: usize,
    /// GDAL band description, if any.
    pub description: Option<String>,
    /// Sample type.
    pub data_type: DataType,
    /// Continuous or categorical (as recorded by amun).
    pub kind: BandKind,
}

/// What a GeoTIFF holds, as `gdalinfo` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileInfo {
    /// The file.
    pub path: PathBuf,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The bands.
    pub bands: Vec<BandInfo>,
    /// Compression.
    pub compression: Compression,
    /// TIFF predictor (1 none, 2 horizontal, 3 floating point).
    pub predictor: u16,
    /// Strips or tiles.
    pub chunks: ChunkLayout,
    /// Pixel or band interleaving.
    pub interleave: Interleave,
    /// Whether the file is BigTIFF.
    pub bigtiff: bool,
    /// `GDAL_NODATA`, if set.
    pub nodata: Option<f64>,
    /// The CRS, if present and understood.
    pub crs: Option<Crs>,
    /// Why a CRS present in the file was not understood.
    pub crs_note: Option<String>,
    /// GDAL's six geotransform coefficients, if georeferenced (rotation possible here).
    pub gdal_transform: Option<[f64; 6]>,
    /// Whether the file declares `PixelIsPoint` (the transform is already shifted to corners).
    pub pixel_is_point: bool,
    /// Dataset-level GDAL metadata items.
    pub metadata: Vec<(String, String)>,
}

impl FileInfo {
    /// The grid, if the file has a north-up geotransform.
    pub fn grid(&self) -> Option<Grid> {
        let t = GeoTransform::from_gdal(self.gdal_transform?).ok()?;
        Grid::new(self.width, self.height, t, self.crs.clone()).ok()
    }
}

/// Describes a GeoTIFF without reading its pixels.
///
/// # Errors
/// [`crate::Error::Io`], [`crate::Error::NotTiff`], [`crate::Error::Corrupt`] or
/// [`crate::Error::Unsupported`] when the directory cannot be read. A missing or unknown CRS
/// or transform is reported in the result, not as an error.
pub fn inspect(path: impl AsRef<Path>) -> Result<FileInfo> {
    let path = path.as_ref();
    let file = open_file(path)?;
    guarded(path, || {
        let opened = open(BufReader::new(file), path, &ReadOptions::default())?;
        let l = &opened.layout;
        let geo = geokeys::georeference(&opened.tags, path)?;
        let md = metadata::parse(opened.tags.gdal_metadata.as_deref(), l.samples);
        let bands = (0..l.samples)
            .map(|b| BandInfo {
                index: b + 1,
                description: md.names[b].clone(),
                data_type: l.data_type,
                kind: md.kinds[b],
            })
            .collect();
        Ok(FileInfo {
            path: path.to_path_buf(),
            width: l.width,
            height: l.height,
            bands,
            compression: l.compression,
            predictor: l.predictor,
            chunks: if l.tiled {
                ChunkLayout::Tiles {
                    width: l.chunk_w,
                    height: l.chunk_h,
                }
            } else {
                ChunkLayout::Strips {
                    rows_per_strip: l.chunk_h,
                }
            },
            interleave: if l.planar {
                Interleave::Band
            } else {
                Interleave::Pixel
            },
            bigtiff: l.bigtiff,
            nodata: metadata::parse_nodata(opened.tags.nodata.as_deref()),
            crs: geo.crs,
            crs_note: geo.crs_note,
            gdal_transform: geo.gdal_transform,
            pixel_is_point: geo.pixel_is_point,
            metadata: md.items,
        })
    })
}

impl fmt::Display for FileInfo {
    /// A `gdalinfo`-like report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Driver: GTiff/GeoTIFF{}",
            if self.bigtiff { " (BigTIFF)" } else { "" }
        )?;
        writeln!(f, "Files: {}", self.path.display())?;
        writeln!(f, "Size is {}, {}", self.width, self.height)?;
        match (&self.crs, &self.crs_note) {
            (Some(crs), _) => writeln!(f, "Coordinate System is: {crs}")?,
            (None, Some(note)) => writeln!(f, "Coordinate System is not understood: {note}")?,
            (None, None) => writeln!(f, "Coordinate System is: none")?,
        }
        if let Some(gt) = self.gdal_transform {
            writeln!(f, "Origin = ({:.15},{:.15})", gt[0], gt[3])?;
            writeln!(f, "Pixel Size = ({:.15},{:.15})", gt[1], gt[5])?;
            if gt[2] != 0.0 || gt[4] != 0.0 {
                writeln!(
                    f,
                    "Rotation = ({}, {}) (not supported for reading)",
                    gt[2], gt[4]
                )?;
            }
        } else {
            writeln!(f, "No geotransform")?;
        }
        if self.pixel_is_point {
            writeln!(f, "AREA_OR_POINT=Point")?;
        }
        for (k, v) in &self.metadata {
            writeln!(f, "  {k}={v}")?;
        }
        writeln!(f, "Image Structure Metadata:")?;
        writeln!(f, "  COMPRESSION={}", self.compression)?;
        if self.predictor != 1 {
            writeln!(f, "  PREDICTOR={}", self.predictor)?;
        }
        writeln!(
            f,
            "  INTERLEAVE={}",
            match self.interleave {
                Interleave::Pixel => "PIXEL",
                Interleave::Band => "BAND",
            }
        )?;
        match self.chunks {
            ChunkLayout::Tiles { width, height } => {
                writeln!(f, "  Block={width}x{height} (tiled)")?
            }
            ChunkLayout::Strips { rows_per_strip } => {
                writeln!(f, "  Block={}x{rows_per_strip} (strips)", self.width)?
            }
        }
        for b in &self.bands {
            write!(f, "Band {} Type={}", b.index, b.data_type)?;
            if let Some(d) = &b.description {
                write!(f, ", Description = {d}")?;
            }
            if b.kind == BandKind::Categorical {
                write!(f, ", categorical")?;
            }
            writeln!(f)?;
            if let Some(nd) = self.nodata {
                writeln!(f, "  NoData Value={}", metadata::format_nodata(nd))?;
            }
        }
        Ok(())
    }
}
