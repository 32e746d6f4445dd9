#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
// `deny`, not `forbid`: ndarray's `s!` macro expands to an `#[allow(unsafe_code)]` block,
// which `forbid` rejects (rust-ndarray/ndarray#838). No unsafe code is written here.
#![deny(unsafe_code)]

pub mod check;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod infer;
pub mod init;
pub mod model;
pub mod optim;
#[cfg(test)]
mod testutil;
pub mod train;

pub use amun_kernels::{flush_denormals, tune_allocator};
pub use check::{HeldOutCheck, MethodScore, Verdict};
pub use checkpoint::{Checkpoint, CheckpointMeta};
pub use config::{Ablation, AmunConfig, AspectEncoding, Base, PAPER_COVARIATES};
pub use data::{ChannelStats, NodataPolicy, Normalization, TrainingScene};
pub use device::DeviceSpec;
pub use error::{Error, Result};
pub use infer::{
    base_window, predict, window_bytes_per_pixel, InferencePlan, TileParams, BASELINE_BYTES,
    DEFAULT_MARGIN,
};
pub use init::SeededVarMap;
pub use model::{count_parameters, Amun};
pub use optim::{Optim, OptimConfig, Solver};
pub use train::{
    train, EpochRecord, LossKind, Progress, TrainConfig, Trained, Trainer, ValidTrainConfig,
};
