#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
// `deny`, not `forbid`: ndarray's `s!` macro expands to an `#[allow(unsafe_code)]` block,
// which `forbid` rejects (rust-ndarray/ndarray#838). No unsafe code is written here.
#![deny(unsafe_code)]

mod atomic;
mod conserve;
mod error;
mod grid;
mod gtiff;
#[cfg(feature = "netcdf")]
mod netcdf;
mod raster;
#[cfg(feature = "proj")]
mod reproject;
mod resample;
mod stack;
mod window;

#[cfg(test)]
mod fixture_tests;

pub use atomic::{write_atomic, write_atomic_with};
pub use conserve::{bilinear_spread, conserve, BlockStats, ConserveParams, Correction, Departure};
pub use error::{Error, Result};
pub use grid::{Crs, GeoTransform, Grid};
pub use gtiff::{
    cog_layout, inspect, read, read_band, read_bytes, read_with, statistics, statistics_with,
    write, write_cog, write_raster, write_streamed, write_streamed_bands, BandInfo, ChunkLayout,
    CogLayout, Compression, DataType, FileInfo, GeoTiffReader, IfdLayout, Interleave, ReadOptions,
    TileSink, WriteOptions,
};
pub use raster::{BandKind, Raster, Stats};
pub use resample::{average, resample, resample_window, Averaged, Resampling};
pub use stack::Stack;
pub use window::{Window, WindowSource};

#[cfg(feature = "netcdf")]
pub use self::netcdf::NetcdfVariable;
#[cfg(feature = "proj")]
pub use reproject::reproject;
