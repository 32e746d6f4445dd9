//! Errors of `amun-metrics`.

use std::path::PathBuf;

/// Everything that can go wrong while scoring a prediction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A raster operation failed (grids differ, not aligned, …).
    #[error(transparent)]
    Raster(#[from] amun_raster::Error),
    /// No pixel or point was valid in both the prediction and the reference.
    #[error("nothing to score: no {what} is valid in both the prediction and the reference")]
    NothingToScore {
        /// What was counted (`pixel`, `point`, …).
        what: &'static str,
    },
    /// Two arrays that must have one length or shape do not.
    #[error("{what}: expected {expected} values, got {got}")]
    LengthMismatch {
        /// The array concerned.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Length found.
        got: usize,
    },
    /// A mask or class raster does not have the shape of the rasters it applies to.
    #[error(
        "{what}: shape {got_rows}×{got_cols} (rows×cols) does not match {want_rows}×{want_cols}"
    )]
    ShapeMismatch {
        /// The array concerned.
        what: &'static str,
        /// Rows expected.
        want_rows: usize,
        /// Columns expected.
        want_cols: usize,
        /// Rows found.
        got_rows: usize,
        /// Columns found.
        got_cols: usize,
    },
    /// A parameter is outside its valid range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// The value given, printed.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// A station file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A station file is not valid CSV.
    #[error("{path}: {source}")]
    Csv {
        /// The file concerned.
        path: PathBuf,
        /// The CSV reader's error.
        #[source]
        source: csv::Error,
    },
    /// A station file lacks a required column.
    #[error("{path}: missing column `{column}` (header: {header})")]
    MissingColumn {
        /// The file concerned.
        path: PathBuf,
        /// The column asked for.
        column: &'static str,
        /// The header found, comma-separated.
        header: String,
    },
    /// A field of a station file cannot be parsed.
    #[error("{path}, line {line}: column `{column}`: cannot parse {value:?} as a number")]
    BadField {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number in the file.
        line: u64,
        /// The column.
        column: &'static str,
        /// The text found.
        value: String,
    },
    /// Station coordinates are longitude/latitude but the raster is in a projected CRS.
    #[error("stations are given in longitude/latitude but the raster's CRS is projected ({crs}); reproject the raster to a geographic CRS first")]
    ProjectedRaster {
        /// The raster's CRS.
        crs: String,
    },
    /// A raster that must hold class codes holds a non-integer value.
    #[error("class raster: value {value} at row {row}, col {col} is not an integer class code")]
    NotAClass {
        /// The value found.
        value: f32,
        /// Row of the pixel.
        row: usize,
        /// Column of the pixel.
        col: usize,
    },
    /// A standard deviation is negative, or an interval's lower bound exceeds its upper bound.
    #[error("{band}: value {value} at row {row}, col {col} is not a valid spread (must be ≥ 0)")]
    NegativeSpread {
        /// The band (or pair of bands) concerned.
        band: &'static str,
        /// Row of the pixel.
        row: usize,
        /// Column of the pixel.
        col: usize,
        /// The value found (for an interval: upper − lower).
        value: f64,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
