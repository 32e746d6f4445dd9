//! Errors of `amun-indices`.

/// Everything that can go wrong computing indices, terrain derivatives or covariate stacks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from `amun-raster` (grid mismatch, band not found, …).
    #[error(transparent)]
    Raster(#[from] amun_raster::Error),
    /// A categorical band was given where a continuous quantity is needed.
    #[error("band `{band}` is categorical; {operation} needs a continuous band")]
    CategoricalInput {
        /// The band (or argument) concerned.
        band: String,
        /// What was attempted.
        operation: &'static str,
    },
    /// A continuous band was given where class codes are needed.
    #[error("band `{band}` is continuous; {operation} needs class codes (a `BandKind::Categorical` raster, see `landcover_raster`)")]
    NotCategorical {
        /// The band (or argument) concerned.
        band: String,
        /// What was attempted.
        operation: &'static str,
    },
    /// A parameter is out of its valid range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// The valid range or rule.
        reason: &'static str,
    },
    /// The horizontal units of a DEM cannot be told from its CRS.
    #[error("cannot tell the horizontal units of the DEM (CRS: {crs}); choose `Spacing::Projected`, `Spacing::Geographic` or `Spacing::Scale` explicitly")]
    UnknownUnits {
        /// The CRS found, or "none".
        crs: String,
    },
    /// A geographic grid has a pixel centre outside −90…90° latitude.
    #[error("row {row} of a geographic grid is at latitude {lat}°, outside −90…90")]
    LatitudeOutOfRange {
        /// The row.
        row: usize,
        /// Its centre latitude in degrees.
        lat: f64,
    },
    /// A land-cover raster holds a value that is not an IGBP class code.
    #[error("land-cover value {value} at row {row}, col {col} is not an IGBP class code (1–17; 0 and 255 are read as missing)")]
    InvalidClassCode {
        /// The value found.
        value: f32,
        /// Its row.
        row: usize,
        /// Its column.
        col: usize,
    },
    /// A raster is too small for the operation.
    #[error("a {width}×{height} raster is too small for {operation} (needs at least {min}×{min})")]
    TooSmall {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// The smallest side accepted.
        min: usize,
        /// What was attempted.
        operation: &'static str,
    },
    /// A covariate stack was built with no band.
    #[error("no covariate given")]
    NoCovariates,
    /// A covariate was given twice (or an extra band reuses a covariate's name).
    #[error("covariate `{name}` is given twice")]
    DuplicateCovariate {
        /// The repeated name.
        name: String,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
