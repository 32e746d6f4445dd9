#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
#![forbid(unsafe_code)]

mod covariates;
mod error;
mod landcover;
mod spectral;
mod terrain;

pub use covariates::{coarsen_stack, encode_landcover, Covariate, Covariates};
pub use error::{Error, Result};
pub use landcover::{
    block_mode, class_fractions, encode_scaled, landcover_raster, one_hot, Igbp, LandcoverEncoding,
};
pub use spectral::{mndwi, ndbi, ndvi, normalized_difference, Reflectance};
pub use terrain::{slope_aspect, Ellipsoid, SlopeAspect, SlopeParams, Spacing, ValidSlopeParams};
