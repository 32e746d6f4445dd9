#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
// `deny`, not `forbid`: ndarray's `s!` macro expands to an `#[allow(unsafe_code)]` block,
// which `forbid` rejects (rust-ndarray/ndarray#838). No unsafe code is written here.
#![deny(unsafe_code)]

mod check;
mod checkpoint;
mod config;
mod data;
mod device;
mod error;
mod health;
mod infer;
mod init;
mod model;
mod optim;
mod settings;
#[cfg(test)]
mod testutil;
mod train;

pub use amun_kernels::{flush_denormals, tune_allocator};
pub use check::{Amplitude, HeldOutCheck, MethodScore, Verdict, AMPLITUDE_LIMIT};
pub use checkpoint::{Checkpoint, CheckpointMeta, OptimizerMeta, FORMAT_VERSION};
pub use config::{Ablation, AmunConfig, AspectEncoding, Base, Supervision, PAPER_COVARIATES};
pub use data::{ChannelStats, NodataPolicy, Normalization, TrainingScene};
pub use device::DeviceSpec;
pub use error::{Error, Result};
pub use health::{collapsed_levels, level_of, LevelHealth, COLLAPSED_SHARE, NEAR_ZERO};
pub use infer::{
    base_window, predict, window_bytes_per_pixel, Inference, InferencePlan, TileParams,
    BASELINE_BYTES, DEFAULT_MARGIN,
};
pub use init::SeededVarMap;
pub use model::{count_parameters, Amun, Conv, Ffrdb, Gmfca, Rdb, UNet, UpConv};
pub use optim::{Optim, OptimConfig, Solver};
pub use settings::{EpochRecord, LossKind, LrSchedule, TrainConfig, TrainValidConfig};
pub use train::{train, TrainEvent, Trained, Trainer};
