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
    /// A shard specification (`I/N`, `slurm`, `slurm/N`) is invalid.
    #[error("shard `{spec}`: {detail}")]
    Shard {
        /// The specification as given.
        spec: String,
        /// What is wrong.
        detail: String,
    },
    /// A Slurm job-array variable is missing, malformed or inconsistent (`--shard slurm`).
    #[error("{variable} {}: {detail}", value.as_ref().map_or_else(|| "is not set".to_string(), |v| format!("= `{v}`")))]
    SlurmEnv {
        /// The environment variable(s).
        variable: String,
        /// Its value, if set.
        value: Option<String>,
        /// What is wrong.
        detail: String,
    },
    /// A time series is inconsistent: a file without a date, a band without a time, two
    /// files for one date, an index this version cannot read, …
    #[error("{what}: {detail}")]
    Series {
        /// The series, file or band at fault.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// A covariate series has no file for the date a time step needs.
    #[error("covariate series `{covariate}` has no file for {date}, needed by the step at {step}; it has {files}")]
    MissingDate {
        /// The covariate.
        covariate: String,
        /// The missing period (`2020-08`).
        date: String,
        /// The time step that needs it.
        step: String,
        /// What dates the series has, and where it was read from (`7 files from 2020-01 to
        /// 2020-07 in ndvi/`).
        files: String,
    },
    /// A step of a series failed.
    #[error("step {step}: {source}")]
    Step {
        /// The step's time.
        step: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
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
