//! Small hand-made scenes and a tiny configuration for unit tests.

use amun_raster::{Grid, Raster, Stack};

use crate::config::AmunConfig;
use crate::data::TrainingScene;

/// [`AmunConfig::tiny`] with two blocks of two layers, so that the blocks' inner wiring is
/// exercised.
pub(crate) fn tiny_config() -> AmunConfig {
    AmunConfig {
        rdb_count: 2,
        rdb_layers: 2,
        ..AmunConfig::tiny()
    }
    .with_covariates(&["ndvi", "height", "aspect"])
}

/// A scene of `side × side` fine pixels at factor `k` whose fine LST is a known function of
/// the covariates: `290 + month − 6·ndvi − 0.004·height + 0.8·cos(aspect)`.
pub(crate) fn scene(side: usize, k: usize, month: f32) -> TrainingScene {
    let coarse_grid = Grid::geographic(5.0, 45.0, 0.01 * k as f64, side / k, side / k).unwrap();
    let fine = coarse_grid.refine(k).unwrap();
    let f = |r: usize, c: usize| (r as f32, c as f32);
    let ndvi = Raster::from_fn(fine.clone(), |(r, c)| {
        let (r, c) = f(r, c);
        0.5 + 0.3 * (0.37 * r + 0.11 * c).sin() * (0.23 * c - 0.05 * r).cos()
    });
    let height = Raster::from_fn(fine.clone(), |(r, c)| {
        let (r, c) = f(r, c);
        500.0 + 200.0 * (0.09 * r).sin() + 150.0 * (0.13 * c + 0.3 * (0.05 * r).sin()).cos()
    });
    let aspect = Raster::from_fn(fine.clone(), |(r, c)| {
        let (r, c) = f(r, c);
        (180.0 + 170.0 * (0.17 * r + 0.07 * c).sin()).rem_euclid(360.0)
    });
    let label = Raster::from_fn(fine.clone(), |(r, c)| {
        290.0 + month - 6.0 * ndvi.data()[(r, c)] - 0.004 * height.data()[(r, c)]
            + 0.8 * aspect.data()[(r, c)].to_radians().cos()
    });
    let coarse_lst = label.block_mean(k, 1.0).unwrap();
    let covariates = Stack::new(fine)
        .with("ndvi", ndvi)
        .unwrap()
        .with("height", height)
        .unwrap()
        .with("aspect", aspect)
        .unwrap();
    TrainingScene {
        coarse_lst,
        covariates,
        label: Some(label),
        fit_prior_on_label: false,
    }
}

/// [`scene`] without fine truth and with a land-cover band (cropland, urban stripes): its
/// coarse LST is the block mean of that scene's fine LST plus a term no linear model of the
/// covariates holds, `3·(ndvi − 0.5)²`, and 1.5 K over urban pixels.
pub(crate) fn coarse_cell_scene(side: usize, k: usize, month: f32) -> TrainingScene {
    let mut sc = scene(side, k, month);
    let fine = sc.covariates.grid().clone();
    let landcover = Raster::from_fn(fine.clone(), |(r, c)| {
        if (r / 3 + c / 5) % 4 == 0 {
            13.0
        } else {
            12.0
        }
    });
    let landcover = amun_indices::landcover_raster(landcover).unwrap();
    let ndvi = sc.covariates.band("ndvi").unwrap().data().clone();
    let label = sc.label.take().unwrap();
    let truth = Raster::from_fn(fine, |ix| {
        let urban = if landcover.data()[ix] as u8 == 13 {
            1.5
        } else {
            0.0
        };
        label.data()[ix] + 3.0 * (ndvi[ix] - 0.5).powi(2) + urban
    });
    sc.coarse_lst = truth.block_mean(k, 1.0).unwrap();
    sc.covariates = sc.covariates.with("landcover", landcover).unwrap();
    sc
}
