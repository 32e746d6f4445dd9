#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
// `deny`, not `forbid`: ndarray's `s!` macro expands to an `#[allow(unsafe_code)]` block,
// which `forbid` rejects (rust-ndarray/ndarray#838). No unsafe code is written here.
#![deny(unsafe_code)]

mod covariates;
mod error;
mod landcover;
mod spectral;
mod terrain;

pub use covariates::{
    block_mean_direction, coarsen_stack, encode_landcover, Covariate, Covariates,
};
pub use error::{Error, Result};
pub use landcover::{
    block_mode, class_fractions, encode_scaled, landcover_raster, one_hot, Igbp, LandcoverEncoding,
};
pub use spectral::{mndwi, ndbi, ndvi, normalized_difference, Reflectance};
pub use terrain::{slope_aspect, Ellipsoid, SlopeAspect, SlopeParams, SlopeValidParams, Spacing};
