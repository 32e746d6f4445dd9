#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
#![forbid(unsafe_code)]

pub use amun_bayesopt as bayesopt;
pub use amun_indices as indices;
pub use amun_metrics as metrics;
pub use amun_net as net;
pub use amun_prior as prior;
pub use amun_raster as raster;
pub use amun_rf as rf;
pub use amun_synth as synth;
pub use jiff;
/// The array crate of every raster's data and mask (`Raster::data`, validation masks), so that
/// a program needs no version of its own.
pub use ndarray;

mod amun;
mod baselines;
mod batch;
mod downscale;
mod ensemble;
mod error;
mod experiment;
pub mod guard;
mod prepare;
mod progress;
mod report;
mod rows;
mod scene;
pub mod series;
mod shard;
mod staged;
mod stream;

pub use amun::{
    amun_trainer, finish_checked, frequent_classes, run_trainer, training_scenes, AmunDownscaler,
};
pub use amun_net::{flush_denormals, tune_allocator};
pub use amun_raster::{conserve, write_atomic, ConserveParams};
pub use baselines::{PhysicalPrior, Regression, RegressionMode};
pub use batch::{
    downscale_file, downscale_steps, join_bands, BatchOptions, BatchReport, BatchStep, StepDone,
    StepEvent,
};
pub use downscale::{Downscaler, Interpolation, Uncertain};
pub use ensemble::{EnsembleAmun, EnsembleManifest, Members, SpreadCalibration, ENSEMBLE_FILE};
pub use error::{Error, Result};
pub use experiment::{
    departure, paper_style, pooled, real, real_split, scale_transfer, score_method, RunOptions,
    RunOutput,
};
pub use prepare::SceneInputs;
pub use progress::{NoProgress, Progress};
pub use report::{write_json, MethodReport, Report, SceneScore};
pub use rows::{
    band_file, band_multiple, downscale_rows_to_file, mosaic, MosaicSummary, RowsSummary,
};
pub use scene::{layout, Resampled, Scene, SceneManifest};
pub use shard::Shard;
pub use staged::{StagedAmun, StagesManifest, STAGES_FILE};
pub use stream::{downscale_to_file, SceneReader, StreamOptions, StreamSummary};

/// The types most programs need: `use amun_core::prelude::*;`.
pub mod prelude {
    pub use crate::net::{AmunConfig, TrainConfig};
    pub use crate::prior::{Base, PriorParams};
    pub use crate::raster::{BandKind, Crs, Grid, Raster, Resampling, Stack};
    pub use crate::{
        conserve, AmunDownscaler, ConserveParams, Downscaler, Interpolation, NoProgress,
        PhysicalPrior, Progress, Regression, RegressionMode, Scene, SceneInputs,
    };
}
