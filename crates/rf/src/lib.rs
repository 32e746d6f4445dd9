#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
// `deny`, not `forbid`: ndarray's `s!` macro expands to an `#[allow(unsafe_code)]` block,
// which `forbid` rejects (rust-ndarray/ndarray#838). No unsafe code is written here.
#![deny(unsafe_code)]

mod downscale;
mod error;
mod features;
mod forest;
mod ridge;
mod tree;

pub use downscale::{
    residual_correct, DownscaleParams, DownscaleValidParams, FittedDownscaler, Model, ModelParams,
    ResidualCorrection, SupervisedDownscaler, SupervisedScene, SupervisedTarget,
};
pub use error::{Error, Result};
pub use features::CategoricalEncoding;
pub use forest::{Mtry, RandomForest, RfParams, RfValidParams};
/// The `ndarray` version of this crate's array arguments.
pub use ndarray;
pub use ridge::{RidgeModel, RidgeParams, RidgeValidParams};
