#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::float_cmp)]
#![forbid(unsafe_code)]

mod error;
mod metrics;
mod scatter;
mod score;
mod ssim;
mod stations;
mod terrain;
mod uncertainty;

pub use error::{Error, Result};
pub use metrics::Metrics;
pub use scatter::{histogram2d, scatter_data, LinearFit, ScatterData};
pub use score::{
    aggregated_back, score, score_by_class, score_grouped, ClassMetrics, GroupMetrics, ScoredPair,
    Season,
};
pub use ssim::{ssim, ssim_map, SSIM_K1, SSIM_K2, SSIM_RADIUS, SSIM_SIGMA};
pub use stations::{
    read_stations, sample_point, score_stations, Sampling, SkipCounts, SkipReason, SkippedStation,
    Station, StationReport, StationResidual,
};
pub use terrain::{local_relief, terrain_classes, TerrainClass, TerrainThresholds};
pub use uncertainty::{
    crps_gaussian, crps_quantiles, crps_samples, fit_spread_model, fit_spread_scale, normal_cdf,
    normal_pdf, normal_quantile, pit_gaussian, score_uncertainty, spearman, PitHistogram,
    Predictive, Reliability, SpreadModel, UncertaintyMetrics, UncertaintyParams, Z_90,
};
