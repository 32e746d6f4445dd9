//! Errors of `amun-net`.

use std::path::PathBuf;

use crate::device::DeviceSpec;

/// Everything that can go wrong building, training, saving or running an AMUN network.
///
/// Variants carry the setting, band, file or epoch at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// A raster operation (alignment, resampling, windows) failed.
    #[error(transparent)]
    Raster(#[from] amun_raster::Error),
    /// The physical prior used as the base field could not be fitted.
    #[error(transparent)]
    Prior(#[from] amun_prior::Error),
    /// Scenes are too small to cut a training and a validation patch from.
    #[error(
        "scenes are {side} px on their smallest side at the training scale; AMUN needs at least {needed} px (two patches of {multiple}): use the physical prior (`amun baseline prior`) or split the factor into stages so each stage trains on more pixels"
    )]
    RegionTooSmall {
        /// The smallest side, in training-scale pixels.
        side: usize,
        /// The least side that works.
        needed: usize,
        /// The model's size multiple.
        multiple: usize,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid setting `{field}`: {detail}")]
    InvalidConfig {
        /// The setting at fault (e.g. `patch`, `unet_widths`).
        field: &'static str,
        /// Why it is invalid, with the value found.
        detail: String,
    },
    /// A covariate the model needs is missing from the input stack.
    #[error("covariate `{name}` missing from the input stack (bands present: {available})")]
    MissingCovariate {
        /// The covariate the model was trained with.
        name: String,
        /// The bands present, comma-separated.
        available: String,
    },
    /// Two inputs that must share a grid or shape do not.
    #[error("{what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which input.
        what: &'static str,
        /// What was expected.
        expected: String,
        /// What was found.
        got: String,
    },
    /// No training (or validation) patch survived extraction and the nodata policy.
    #[error("no {split} patches: {detail}")]
    NoPatches {
        /// `training` or `validation`.
        split: &'static str,
        /// Why (scene sizes, patch size, nodata policy).
        detail: String,
    },
    /// The loss became NaN or exploded; training was stopped.
    #[error("training diverged at epoch {epoch}, batch {batch}: loss {loss} (first-epoch mean {reference}); lower the learning rate or change the optimiser")]
    Diverged {
        /// 0-based epoch.
        epoch: usize,
        /// 0-based batch within the epoch.
        batch: usize,
        /// The offending loss value.
        loss: f64,
        /// The reference loss it was compared with.
        reference: f64,
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
    /// A checkpoint's JSON could not be parsed or written.
    #[error("{path}: {source}")]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A checkpoint is incomplete or inconsistent with its configuration.
    #[error("checkpoint {path}: {detail}")]
    BadCheckpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A prediction would have no valid pixel: every fine pixel misses an input.
    #[error("no valid output pixel: {detail}")]
    NoValidOutput {
        /// Which inputs have no valid pixel.
        detail: String,
    },
    /// The memory budget cannot hold the smallest window inference needs.
    #[error("a memory budget of {budget} bytes is too small: {detail}")]
    MemoryBudget {
        /// The budget asked for.
        budget: u64,
        /// What it must hold.
        detail: String,
    },
    /// The requested GPU could not be opened (no GPU or driver, or no GPU of that number).
    #[error("device {device} unavailable: {source}")]
    Device {
        /// The device asked for.
        device: DeviceSpec,
        /// CUDA's error.
        #[source]
        source: candle_core::Error,
    },
    /// A GPU was asked for in a build without the `cuda` feature.
    #[error(
        "device {device} unavailable: built without the `cuda` feature: rebuild with \
         `cargo build --release -p amun-cli --features cuda`"
    )]
    NoCudaSupport {
        /// The device asked for.
        device: DeviceSpec,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn config(field: &'static str, detail: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field,
            detail: detail.into(),
        }
    }
}
