//! Errors of `amun-synth`.

/// Everything that can go wrong generating or querying a synthetic world.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from `amun-raster` (grid construction, block mean, …).
    #[error(transparent)]
    Raster(#[from] amun_raster::Error),
    /// An error from `amun-indices` (indices, slope/aspect, covariate stack).
    #[error(transparent)]
    Indices(#[from] amun_indices::Error),
    /// A world parameter is out of its valid range.
    #[error("invalid world parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// The valid range.
        reason: &'static str,
    },
    /// A month outside 1–12.
    #[error("month {month} is outside 1–12")]
    InvalidMonth {
        /// The month given.
        month: u32,
    },
    /// An hour outside 0–23.
    #[error("hour {hour} is outside 0–23 (local solar time)")]
    InvalidHour {
        /// The hour given.
        hour: u32,
    },
    /// A coarsening factor that does not divide the world's size.
    #[error("factor {k} does not divide the {width}×{height} world (and must be ≥ 1)")]
    InvalidFactor {
        /// The factor given.
        k: usize,
        /// World width in pixels.
        width: usize,
        /// World height in pixels.
        height: usize,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
