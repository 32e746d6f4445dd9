#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
#![forbid(unsafe_code)]

mod error;
mod params;
mod prior;
mod regression;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use params::{Base, PriorKind, PriorParams, PriorValidParams};
pub use prior::{FitReport, Prior, Term, Transform};
