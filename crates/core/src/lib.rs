#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]

pub use amun_bayesopt as bayesopt;
pub use amun_indices as indices;
pub use amun_metrics as metrics;
pub use amun_net as net;
pub use amun_raster as raster;
pub use amun_rf as rf;
pub use amun_synth as synth;

mod conserve;
mod downscale;
mod error;
mod progress;
mod scene;

pub use conserve::{conserve, ConserveParams};
pub use downscale::{Downscaler, Interpolation};
pub use error::{Error, Result};
pub use progress::{NoProgress, Progress};
pub use scene::Scene;

/// The types most programs need: `use amun_core::prelude::*;`.
pub mod prelude {
    pub use crate::raster::{BandKind, Crs, Grid, Raster, Resampling, Stack};
    pub use crate::{
        conserve, ConserveParams, Downscaler, Interpolation, NoProgress, Progress, Scene,
    };
}
