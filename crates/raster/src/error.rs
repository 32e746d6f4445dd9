//! Errors of `amun-raster`.

use std::path::PathBuf;

/// Everything that can go wrong reading, writing or transforming rasters.
///
/// Variants carry the file, band, grid or value at fault so that a user can act on the
/// message without a debugger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a TIFF, or its TIFF structure is broken.
    #[error("{path}: not a readable TIFF: {detail}")]
    NotTiff {
        /// The file concerned.
        path: PathBuf,
        /// What the decoder reported.
        detail: String,
    },
    /// The TIFF uses a feature this reader does not support.
    #[error("{path}: unsupported {what}: {detail}")]
    Unsupported {
        /// The file concerned.
        path: PathBuf,
        /// The kind of feature (compression, sample format, …).
        what: &'static str,
        /// The value found in the file.
        detail: String,
    },
    /// The file has no (usable) georeferencing.
    #[error("{path}: no georeferencing: {detail}")]
    NoGeoreference {
        /// The file concerned.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// The TIFF structure could be parsed but the `tiff` crate reported an error.
    #[error("{path}: TIFF error: {source}")]
    Tiff {
        /// The file concerned.
        path: PathBuf,
        /// The error reported by the `tiff` crate.
        #[source]
        source: tiff::TiffError,
    },
    /// Pixel data in the file is damaged: a chunk does not decompress or is too short.
    #[error("{path}: corrupt {what} {index}: {detail}")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is damaged (`tile`, `strip`, tag name, …).
        what: &'static str,
        /// Index of the damaged chunk (0 for tags).
        index: usize,
        /// What is wrong.
        detail: String,
    },
    /// Reading would exceed a safety limit (see [`crate::ReadOptions`]).
    #[error("{path}: {what} is {value}, above the limit of {limit}")]
    LimitExceeded {
        /// The file concerned.
        path: PathBuf,
        /// The quantity that is too large.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// Memory for data the file holds could not be allocated.
    #[error("{path}: cannot allocate {bytes} bytes for {what}")]
    OutOfMemory {
        /// The file concerned.
        path: PathBuf,
        /// What the memory was for.
        what: &'static str,
        /// How much was asked for.
        bytes: u64,
    },
    /// A value cannot be written in the requested data type.
    #[error("{path}: band {band}: value {} does not fit data type {data_type}", number(*value))]
    ValueOutOfRange {
        /// The file being written.
        path: PathBuf,
        /// The 1-based band.
        band: usize,
        /// The offending value.
        value: f64,
        /// The target data type.
        data_type: String,
    },
    /// Missing pixels cannot be written to an integer file without a nodata value.
    #[error("{path}: band {band} has missing pixels but no nodata value; integer type {data_type} cannot store NaN")]
    NodataRequired {
        /// The file being written.
        path: PathBuf,
        /// The 1-based band.
        band: usize,
        /// The integer data type.
        data_type: String,
    },
    /// A geotransform with rotation or shear terms, which amun does not support.
    #[error("{}rotated or sheared geotransform (row rotation {row_rotation}, column rotation {col_rotation}); only north-up grids are supported", in_file(path))]
    RotatedTransform {
        /// The file it was read from, if any.
        path: Option<PathBuf>,
        /// The x-shear term (GDAL geotransform element 2).
        row_rotation: f64,
        /// The y-shear term (GDAL geotransform element 4).
        col_rotation: f64,
    },
    /// A grid or transform parameter is invalid.
    #[error("invalid grid: {detail}")]
    InvalidGrid {
        /// What is wrong.
        detail: String,
    },
    /// Two grids that must be identical differ.
    #[error("grids differ: {detail}")]
    GridMismatch {
        /// What differs, with both values.
        detail: String,
    },
    /// Two grids that must nest (one refines the other) or share pixel edges do not.
    #[error("grids are not aligned: {detail}")]
    NotAligned {
        /// How they fail to align.
        detail: String,
    },
    /// Two rasters are in different coordinate reference systems.
    #[error("CRS mismatch: {left} vs {right}")]
    CrsMismatch {
        /// The first CRS.
        left: String,
        /// The second CRS.
        right: String,
    },
    /// A data array does not have the shape its grid requires.
    #[error(
        "data shape {got_rows}×{got_cols} (rows×cols) does not match grid {want_rows}×{want_cols}"
    )]
    ShapeMismatch {
        /// Rows expected from the grid.
        want_rows: usize,
        /// Columns expected from the grid.
        want_cols: usize,
        /// Rows found.
        got_rows: usize,
        /// Columns found.
        got_cols: usize,
    },
    /// A named band is not in a stack.
    #[error("band `{name}` not found (bands: {available})")]
    BandNotFound {
        /// The band asked for.
        name: String,
        /// The bands present, comma-separated.
        available: String,
    },
    /// A band name is used twice in a stack.
    #[error("band `{name}` is already in the stack")]
    DuplicateBand {
        /// The repeated name.
        name: String,
    },
    /// A band index is out of range for a file.
    #[error("{path}: band {band} requested but the file has {count} band(s)")]
    BandOutOfRange {
        /// The file concerned.
        path: PathBuf,
        /// The 1-based band asked for.
        band: usize,
        /// How many bands the file has.
        count: usize,
    },
    /// A window lies (partly) outside its grid.
    #[error(
        "window cols {col0}..{col1}, rows {row0}..{row1} is outside the {width}×{height} grid"
    )]
    WindowOutOfBounds {
        /// First column.
        col0: usize,
        /// One past the last column.
        col1: usize,
        /// First row.
        row0: usize,
        /// One past the last row.
        row1: usize,
        /// Grid width.
        width: usize,
        /// Grid height.
        height: usize,
    },
    /// The operation is not defined for these inputs (e.g. mean of a categorical band).
    #[error("invalid operation: {detail}")]
    InvalidOperation {
        /// Why.
        detail: String,
    },
    /// An iterative computation did not reach its tolerance.
    #[error(
        "{what} did not converge in {iterations} iterations (largest residual {residual:.3e})"
    )]
    NotConverged {
        /// What was computed.
        what: &'static str,
        /// Iterations allowed.
        iterations: usize,
        /// The largest residual left.
        residual: f64,
    },
    /// libnetcdf could not open or read a file (feature `netcdf`).
    #[cfg(feature = "netcdf")]
    #[error("{path}: {source}")]
    Netcdf {
        /// The file concerned.
        path: PathBuf,
        /// libnetcdf's error.
        #[source]
        source: netcdf::Error,
    },
    /// A NetCDF variable is not laid out as a time series of north-up rasters can be read
    /// from (a missing dimension, irregular coordinates, unknown time units, …).
    #[error("{path}: variable `{variable}`: {detail}")]
    NetcdfLayout {
        /// The file concerned.
        path: PathBuf,
        /// The variable (or coordinate) at fault.
        variable: String,
        /// What is wrong.
        detail: String,
    },
    /// Reprojection failed inside PROJ.
    #[error("reprojection from {from} to {to}: {detail}")]
    Projection {
        /// Source CRS.
        from: String,
        /// Target CRS.
        to: String,
        /// PROJ's message.
        detail: String,
    },
}

/// `"path: "` when there is a path, for messages of errors that may come from a file.
fn in_file(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map_or(String::new(), |p| format!("{}: ", p.display()))
}

/// A value for a message: plain for ordinary magnitudes, with an exponent otherwise.
fn number(v: f64) -> String {
    if v != 0.0 && !(1e-4..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
