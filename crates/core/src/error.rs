//! Errors of `amun-core`.

use std::path::PathBuf;

/// Everything the pipeline can report. Errors of the member crates are wrapped unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Raster I/O, grid or resampling error.
    #[error(transparent)]
    Raster(#[from] amun_raster::Error),
    /// Index, terrain or land-cover error.
    #[error(transparent)]
    Indices(#[from] amun_indices::Error),
    /// Synthetic-world error.
    #[error(transparent)]
    Synth(#[from] amun_synth::Error),
    /// Scoring error.
    #[error(transparent)]
    Metrics(#[from] amun_metrics::Error),
    /// Random-forest or ridge baseline error.
    #[error(transparent)]
    Rf(#[from] amun_rf::Error),
    /// Physical-prior error.
    #[error(transparent)]
    Prior(#[from] amun_prior::Error),
    /// AMUN network error.
    #[error(transparent)]
    Net(#[from] amun_net::Error),
    /// Bayesian-optimisation error.
    #[error(transparent)]
    Bayesopt(#[from] amun_bayesopt::Error),
    /// A scene is inconsistent (missing band, grids that do not nest, …).
    #[error("scene `{scene}`: {detail}")]
    Scene {
        /// The scene's name (or folder).
        scene: String,
        /// What is wrong.
        detail: String,
    },
    /// A method needs something the scene does not have (e.g. a fine reference for training).
    #[error("{method}: {detail}")]
    Method {
        /// The downscaling method.
        method: String,
        /// What is missing or wrong.
        detail: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be parsed or written.
    #[error("{path}: {source}")]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
