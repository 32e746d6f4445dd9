#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
// `deny`, not `forbid`: ndarray's `s!` macro expands to an `#[allow(unsafe_code)]` block,
// which `forbid` rejects (rust-ndarray/ndarray#838). No unsafe code is written here.
#![deny(unsafe_code)]

mod error;
mod noise;
mod params;
pub mod physics;
mod world;

pub use error::{Error, Result};
pub use params::{ValidWorldParams, WorldParams};
pub use world::{Reflectances, World, LST_TERMS};
