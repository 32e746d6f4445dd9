//! The random-forest and ridge baselines as [`Downscaler`]s.

use amun_raster::Raster;
use amun_rf::{DownscaleParams, RfParams, RidgeParams, SupervisedDownscaler, TrainingScene};

use crate::downscale::Downscaler;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::scene::Scene;

/// How a regression baseline learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegressionMode {
    /// Paper-style: learn from fine pixels of training scenes with a fine reference
    /// (features: bilinear coarse LST + covariates), predict other scenes.
    Supervised,
    /// Hutengs & Vohland (`docs/design.md` §6): fit on the coarse pixels of the scene being
    /// downscaled (covariates aggregated to the coarse grid), predict from the fine covariates,
    /// add the coarse residual. Needs no training scene and no reference.
    PerScene,
}

/// A random-forest or ridge-regression baseline (from `amun-rf`) as a [`Downscaler`].
pub struct Regression {
    name: String,
    params: DownscaleParams,
    mode: RegressionMode,
    fitted: Option<SupervisedDownscaler>,
}

impl Regression {
    /// A random forest (`rf`).
    pub fn random_forest(params: RfParams, mode: RegressionMode) -> Self {
        Self::new("rf", DownscaleParams::random_forest(params), mode)
    }

    /// Ridge regression on the covariates (`ridge`): a TsHARP/DisTrad-style linear baseline;
    /// with slope, aspect and elevation among the covariates it includes a lapse-rate term.
    pub fn ridge(params: RidgeParams, mode: RegressionMode) -> Self {
        Self::new("ridge", DownscaleParams::ridge(params), mode)
    }

    /// Any `amun-rf` downscaling flow under a name of your choice.
    pub fn new(name: impl Into<String>, params: DownscaleParams, mode: RegressionMode) -> Self {
        Self {
            name: name.into(),
            params,
            mode,
            fitted: None,
        }
    }
}

impl Downscaler for Regression {
    fn name(&self) -> &str {
        &self.name
    }

    fn fit(&mut self, train: &[Scene], progress: &dyn Progress) -> Result<()> {
        if self.mode == RegressionMode::PerScene {
            return Ok(());
        }
        let mut scenes = Vec::with_capacity(train.len());
        for s in train {
            scenes.push(TrainingScene {
                coarse_lst: s.coarse_lst(),
                covariates: s.covariates(),
                truth: s.require_reference(&self.name)?,
            });
        }
        progress.start(&format!("fit {}", self.name), 0);
        let fitted = self.params.clone().fit_supervised(&scenes)?;
        progress.finish();
        self.fitted = Some(fitted);
        Ok(())
    }

    fn predict(&self, scene: &Scene, _progress: &dyn Progress) -> Result<Raster> {
        match self.mode {
            RegressionMode::PerScene => Ok(self
                .params
                .clone()
                .fit(scene.coarse_lst(), scene.covariates())?
                .predict(scene.covariates())?),
            RegressionMode::Supervised => {
                let fitted = self.fitted.as_ref().ok_or_else(|| Error::Method {
                    method: self.name.clone(),
                    detail: "predict called before fit".into(),
                })?;
                Ok(fitted.predict(scene.coarse_lst(), scene.covariates())?)
            }
        }
    }
}
