//! Errors of `amun-bayesopt`.

use std::path::PathBuf;

/// Everything that can go wrong defining a search space, fitting the surrogate model or
/// running the optimiser.
///
/// Variants name the dimension, parameter or file at fault so that a user can act on the
/// message without a debugger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A search space has no dimensions.
    #[error("the search space has no dimensions")]
    EmptySpace,
    /// Two dimensions of a search space share a name.
    #[error("dimension `{name}` is defined twice")]
    DuplicateDimension {
        /// The repeated name.
        name: String,
    },
    /// The bounds of a real or integer dimension are unusable.
    #[error("dimension `{name}`: invalid bounds [{low}, {high}]: {reason}")]
    InvalidBounds {
        /// The dimension.
        name: String,
        /// Lower bound given.
        low: f64,
        /// Upper bound given.
        high: f64,
        /// Why they are invalid.
        reason: &'static str,
    },
    /// A categorical dimension with no choices, or with a repeated choice.
    #[error("dimension `{name}`: invalid choices ({reason})")]
    InvalidChoices {
        /// The dimension.
        name: String,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// A point names a dimension the search space does not have.
    #[error("point has dimension `{name}`, which is not in the search space")]
    UnknownDimension {
        /// The dimension named by the point.
        name: String,
    },
    /// A point lacks a value for a dimension of the search space.
    #[error("point has no value for dimension `{name}`")]
    MissingDimension {
        /// The dimension without a value.
        name: String,
    },
    /// A point gives a value of the wrong kind for a dimension.
    #[error("dimension `{name}`: expected a {expected} value, got a {got} value")]
    WrongValueType {
        /// The dimension.
        name: String,
        /// The kind the dimension holds (`real`, `integer`, `categorical`).
        expected: &'static str,
        /// The kind given.
        got: &'static str,
    },
    /// A numeric value lies outside its dimension's bounds (or is not finite).
    #[error("dimension `{name}`: value {value} is outside [{low}, {high}]")]
    OutOfBounds {
        /// The dimension.
        name: String,
        /// The value given.
        value: f64,
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// A categorical value is not one of the dimension's choices.
    #[error("dimension `{name}`: `{value}` is not one of: {choices}")]
    UnknownChoice {
        /// The dimension.
        name: String,
        /// The value given.
        value: String,
        /// The valid choices, comma-separated.
        choices: String,
    },
    /// An optimiser or model parameter is invalid.
    #[error("parameter `{name}` = {value} is invalid: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// The value given, as text.
        value: String,
        /// The constraint it breaks.
        reason: &'static str,
    },
    /// Training data of inconsistent shape or with non-finite values.
    #[error("invalid training data: {what} (expected {expected}, got {got})")]
    InvalidData {
        /// What is wrong.
        what: &'static str,
        /// What was expected.
        expected: usize,
        /// What was found.
        got: usize,
    },
    /// The kernel matrix stayed numerically indefinite even with the largest jitter.
    #[error("{size}×{size} kernel matrix is not positive definite even with jitter {jitter:e}")]
    NotPositiveDefinite {
        /// Matrix size (number of observations).
        size: usize,
        /// The largest jitter tried.
        jitter: f64,
    },
    /// Every start of a numerical optimisation (argmin) failed.
    #[error("{stage}: all {starts} optimiser start(s) failed; last error: {message}")]
    Solver {
        /// Which optimisation failed (`kernel hyperparameters`, …).
        stage: &'static str,
        /// How many starts were tried.
        starts: usize,
        /// argmin's message for the last failure.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Saved optimiser state could not be (de)serialised.
    #[error("optimiser state (JSON): {0}")]
    Json(#[from] serde_json::Error),
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
