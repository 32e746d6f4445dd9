#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]

mod downscale;
mod error;
mod features;
mod forest;
mod ridge;

pub use downscale::{
    residual_correct, DownscaleParams, DownscaleValidParams, FittedDownscaler, Model, ModelParams,
    ResidualCorrection, SupervisedDownscaler, TrainingScene,
};
pub use error::{Error, Result};
pub use features::CategoricalEncoding;
pub use forest::{Mtry, RandomForest, RfParams, RfValidParams};
pub use ridge::{RidgeModel, RidgeParams, RidgeValidParams};
