#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
#![forbid(unsafe_code)]

mod error;
mod noise;
mod params;
pub mod physics;
mod world;

pub use error::{Error, Result};
pub use params::{ValidWorldParams, WorldParams};
pub use world::{Reflectances, World, LST_TERMS};
