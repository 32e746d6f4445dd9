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
pub use params::{WorldParams, WorldValidParams};
pub use world::{Reflectances, World, LST_TERMS};

/// The months the paper-style experiment trains on (`amun demo`, the accuracy example): two
/// of every three, so every season is seen.
pub const TRAIN_MONTHS: [u32; 8] = [1, 3, 4, 6, 7, 9, 10, 12];
/// The months it is scored on, one per season, never trained on.
pub const TEST_MONTHS: [u32; 4] = [2, 5, 8, 11];
