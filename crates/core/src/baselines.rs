//! The physical prior and the random-forest and ridge baselines as [`Downscaler`]s.

use std::sync::Mutex;

use amun_net::HeldOutCheck;
use amun_prior::{Base, FitReport, PriorParams};
use amun_raster::Raster;
use amun_rf::{DownscaleParams, RfParams, RidgeParams, SupervisedDownscaler, SupervisedScene};

use crate::downscale::{Downscaler, Uncertain};
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
    /// Per-scene mode: the one-scale-up check of every scene predicted.
    checks: Mutex<Vec<HeldOutCheck>>,
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

    /// This baseline correcting another base field (bilinear by default; a physical prior).
    pub fn with_base(mut self, base: Base) -> Self {
        self.params = self.params.base(base);
        self
    }

    /// Any `amun-rf` downscaling flow under a name of your choice.
    pub fn new(name: impl Into<String>, params: DownscaleParams, mode: RegressionMode) -> Self {
        Self {
            name: name.into(),
            params,
            mode,
            fitted: None,
            checks: Mutex::new(Vec::new()),
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
            scenes.push(SupervisedScene {
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
            RegressionMode::PerScene => {
                let run = |s: &Scene| -> Result<Raster> {
                    Ok(self
                        .params
                        .clone()
                        .fit(s.coarse_lst(), s.covariates())?
                        .predict(s.covariates())?)
                };
                // A scene too small to aggregate once more is simply not checked.
                if let Ok(c) = crate::guard::check_one_scale_up(scene, run) {
                    if let Ok(mut checks) = self.checks.lock() {
                        checks.push(c);
                    }
                }
                run(scene)
            }
            RegressionMode::Supervised => {
                let fitted = self.fitted.as_ref().ok_or_else(|| Error::Method {
                    method: self.name.clone(),
                    detail: "predict called before fit".into(),
                })?;
                Ok(fitted.predict(scene.coarse_lst(), scene.covariates())?)
            }
        }
    }

    /// The quantile regression forest's spread for a forest fitted with
    /// [`RfParams::uncertainty`] (`None` without it), the residual standard deviation for
    /// ridge; see `amun_rf`'s `predict_with_std`. Not recalibrated.
    fn predict_with_spread(
        &self,
        scene: &Scene,
        _progress: &dyn Progress,
    ) -> Result<Option<Uncertain>> {
        let out = match self.mode {
            RegressionMode::PerScene => self
                .params
                .clone()
                .fit(scene.coarse_lst(), scene.covariates())?
                .predict_with_std(scene.covariates()),
            RegressionMode::Supervised => {
                let fitted = self.fitted.as_ref().ok_or_else(|| Error::Method {
                    method: self.name.clone(),
                    detail: "predict called before fit".into(),
                })?;
                fitted.predict_with_std(scene.coarse_lst(), scene.covariates())
            }
        };
        match out {
            Ok((mean, std)) => Ok(Some(Uncertain { mean, std })),
            Err(amun_rf::Error::NoUncertainty) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn check(&self) -> Option<HeldOutCheck> {
        pooled(&self.checks)
    }
}

/// The physical prior of `amun-prior` as a downscaler of its own: fitted on each scene's
/// coarse cells when it is downscaled (no training), conserving the coarse block means.
pub struct PhysicalPrior {
    name: String,
    params: PriorParams,
    last: Mutex<Option<FitReport>>,
    checks: Mutex<Vec<HeldOutCheck>>,
}

impl PhysicalPrior {
    /// The prior with these parameters, named `prior-elevation` or `prior-covariates`.
    pub fn new(params: PriorParams) -> Self {
        Self {
            name: format!("prior-{}", params.kind.name()),
            params,
            last: Mutex::new(None),
            checks: Mutex::new(Vec::new()),
        }
    }

    /// The same prior under another name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The fit report of the last scene predicted.
    pub fn last_report(&self) -> Option<FitReport> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

impl Downscaler for PhysicalPrior {
    fn name(&self) -> &str {
        &self.name
    }

    fn fit(&mut self, _train: &[Scene], _progress: &dyn Progress) -> Result<()> {
        Ok(())
    }

    fn predict(&self, scene: &Scene, _progress: &dyn Progress) -> Result<Raster> {
        let run = |s: &Scene| -> Result<Raster> {
            Ok(self
                .params
                .fit(s.coarse_lst(), s.covariates())?
                .field(s.covariates())?)
        };
        if let Ok(c) = crate::guard::check_one_scale_up(scene, run) {
            if let Ok(mut checks) = self.checks.lock() {
                checks.push(c);
            }
        }
        let prior = self.params.fit(scene.coarse_lst(), scene.covariates())?;
        let field = prior.field(scene.covariates())?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some(prior.report().clone());
        }
        Ok(field)
    }

    /// The prior and its residual standard deviation per scene ([`amun_prior::Prior::spread`]),
    /// not recalibrated.
    fn predict_with_spread(
        &self,
        scene: &Scene,
        _progress: &dyn Progress,
    ) -> Result<Option<Uncertain>> {
        let prior = self.params.fit(scene.coarse_lst(), scene.covariates())?;
        Ok(Some(Uncertain {
            mean: prior.field(scene.covariates())?,
            std: prior.spread(scene.covariates())?,
        }))
    }

    fn check(&self) -> Option<HeldOutCheck> {
        pooled(&self.checks)
    }
}

/// The checks gathered so far, pooled.
fn pooled(checks: &Mutex<Vec<HeldOutCheck>>) -> Option<HeldOutCheck> {
    let checks = checks.lock().ok()?;
    crate::guard::pool(
        &checks,
        format!("coarse scale (one scale up), {} scene(s)", checks.len()),
    )
}
