#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]

pub mod conserve;
mod error;
mod grid;
mod gtiff;
mod raster;
#[cfg(feature = "proj")]
mod reproject;
mod resample;
mod stack;
mod window;

#[cfg(test)]
mod fixture_tests;

pub use error::{Error, Result};
pub use grid::{Crs, GeoTransform, Grid};
pub use gtiff::{
    inspect, read, read_band, read_bytes, read_with, write, write_raster, write_streamed, BandInfo,
    ChunkLayout, Compression, DataType, FileInfo, GeoTiffReader, Interleave, ReadOptions, TileSink,
    WriteOptions,
};
pub use raster::{BandKind, Raster, Stats};
pub use resample::{average, resample, resample_window, Averaged, Resampling};
pub use stack::Stack;
pub use window::{Window, WindowSource};

#[cfg(feature = "proj")]
pub use reproject::reproject;
