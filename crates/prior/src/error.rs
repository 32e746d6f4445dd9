//! Errors of `amun-prior`.

/// Everything that can go wrong fitting or applying a prior.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Raster, grid or resampling error.
    #[error(transparent)]
    Raster(#[from] amun_raster::Error),
    /// Land-cover error (a class code that is not IGBP).
    #[error(transparent)]
    Indices(#[from] amun_indices::Error),
    /// A parameter is out of range.
    #[error("invalid prior parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A covariate the prior needs is not in the stack.
    #[error("the prior needs covariate `{name}` (bands: {available})")]
    MissingCovariate {
        /// The band asked for.
        name: String,
        /// The bands present.
        available: String,
    },
    /// The coarse LST has no valid cell.
    #[error("the coarse LST ({width}×{height}) has no valid cell")]
    NoValidCell {
        /// Coarse grid width.
        width: usize,
        /// Coarse grid height.
        height: usize,
    },
    /// A grid given to [`crate::Prior::field`] is not the fine grid the prior was fitted on,
    /// nor a window of it.
    #[error("grid {grid} is not a window of the fine grid {fine} the prior was fitted on")]
    NotAWindow {
        /// The grid given.
        grid: String,
        /// The prior's fine grid.
        fine: String,
    },
    /// A linear solve failed (a singular system that the ridge term could not save).
    #[error("the prior's least-squares system is singular: {detail}")]
    Singular {
        /// smartcore's message.
        detail: String,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
