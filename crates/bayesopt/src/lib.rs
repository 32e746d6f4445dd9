#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
#![forbid(unsafe_code)]

mod acquisition;
mod design;
mod error;
pub mod gp;
mod linalg;
mod optimizer;
mod space;
pub mod test_functions;

pub use acquisition::{
    expected_improvement, log_expected_improvement, normal_cdf, normal_pdf, Acquisition,
};
pub use design::InitialDesign;
pub use error::{Error, Result};
pub use gp::{FitReport, Gp, GpParams, GpValidParams, Hyperparameters, Prediction};
pub use optimizer::{minimize, Optimizer, Outcome, Params, Trial, ValidParams};
pub use space::{Dimension, Domain, Point, Scale, SearchSpace, Value};
