//! Errors of `amun-rf`.

/// Everything that can go wrong fitting or applying a downscaling model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A raster operation failed (grids not nested, CRS differ, band missing, …).
    #[error(transparent)]
    Raster(#[from] amun_raster::Error),
    /// A land-cover operation of `amun-indices` failed (a value that is not an IGBP class
    /// code, …).
    #[error(transparent)]
    Indices(#[from] amun_indices::Error),
    /// Physical-prior error (the base field).
    #[error(transparent)]
    Prior(#[from] amun_prior::Error),
    /// smartcore refused to fit or predict.
    #[error("model: {0}")]
    Model(#[from] smartcore::error::Failed),
    /// smartcore's fitted trees could not be read into amun-rf's prediction layout (a
    /// smartcore whose tree layout differs from 0.7's).
    #[error("unexpected smartcore tree layout: {detail}")]
    TreeLayout {
        /// What was inconsistent.
        detail: &'static str,
    },
    /// The thread pool asked for could not be built.
    #[error("thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
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
    /// Arrays that must agree in size do not.
    #[error("{what}: expected {expected}, got {got}")]
    SizeMismatch {
        /// What was compared (`rows of x and y`, `feature columns`, …).
        what: &'static str,
        /// Expected size.
        expected: usize,
        /// Size found.
        got: usize,
    },
    /// A training value is `NaN` or infinite.
    #[error("{what} at row {row}, column {col} is not finite")]
    NonFinite {
        /// `feature` or `target`.
        what: &'static str,
        /// Row of the sample.
        row: usize,
        /// Column (0 for the target).
        col: usize,
    },
    /// Too few samples have every feature and the target valid.
    #[error("only {got} training sample(s) have all features and the target valid; at least {needed} needed")]
    TooFewSamples {
        /// Samples found.
        got: usize,
        /// Samples needed.
        needed: usize,
    },
    /// The covariate stack given for prediction has other bands than the one used in fitting.
    #[error(
        "covariate bands differ from those used in fitting: expected [{expected}], got [{got}]"
    )]
    BandMismatch {
        /// Bands at fit time, comma-separated.
        expected: String,
        /// Bands given, comma-separated.
        got: String,
    },
    /// A spread was asked of a model fitted without one.
    #[error("this random forest was fitted without leaf moments: fit it with RfParams::uncertainty(true) to predict a spread")]
    NoUncertainty,
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
