//! The `Downscaler` trait and the interpolation baselines.

use amun_net::{Amplitude, HeldOutCheck};
use amun_raster::{Raster, Resampling};

use crate::error::Result;
use crate::progress::Progress;
use crate::scene::Scene;

/// A downscaling method: learns from scenes, then predicts fine LST for a scene.
///
/// Implemented by the interpolation baselines ([`Interpolation`]), the random forest and ridge
/// baselines and AMUN.
pub trait Downscaler {
    /// A short name for tables and file names (`bilinear`, `rf`, `amun`, …).
    fn name(&self) -> &str;

    /// Learns from training scenes. Supervised methods need scenes with a fine reference.
    ///
    /// # Errors
    /// Method-specific; [`crate::Error::Method`] when a scene lacks what the method needs.
    fn fit(&mut self, train: &[Scene], progress: &dyn Progress) -> Result<()>;

    /// Predicts fine LST (kelvin) on the scene's fine grid.
    ///
    /// # Errors
    /// Method-specific; [`crate::Error::Method`] if called before `fit` when fitting is needed.
    fn predict(&self, scene: &Scene, progress: &dyn Progress) -> Result<Raster>;

    /// [`Downscaler::predict`], with the size of a learned correction next to the residuals
    /// the method was trained on, for methods that correct a base field (AMUN; see
    /// [`Amplitude`]). The default predicts and reports nothing.
    ///
    /// # Errors
    /// As [`Downscaler::predict`].
    fn predict_checked(
        &self,
        scene: &Scene,
        progress: &dyn Progress,
    ) -> Result<(Raster, Option<Amplitude>)> {
        Ok((self.predict(scene, progress)?, None))
    }

    /// The prediction with its per-pixel standard deviation, when the method has one
    /// (`None` otherwise, the default). Whether the spread is calibrated is the method's to
    /// say in its documentation.
    ///
    /// # Errors
    /// As [`Downscaler::predict`].
    fn predict_with_spread(
        &self,
        _scene: &Scene,
        _progress: &dyn Progress,
    ) -> Result<Option<Uncertain>> {
        Ok(None)
    }

    /// How the method fared where the truth was known, next to interpolation and the
    /// physical prior (see [`crate::guard`]): AMUN on the pixels its training held out, a
    /// per-scene method one scale up on the scenes it predicted. `None` when the method was
    /// not checked.
    fn check(&self) -> Option<HeldOutCheck> {
        None
    }

    /// Whether the method learns at the target scale from the coarse cells alone (AMUN with
    /// [`amun_net::Supervision::CoarseResidual`]): the experiments that train the others one
    /// scale up give it the scenes themselves, without their reference (default false).
    fn learns_at_target_scale(&self) -> bool {
        false
    }
}

/// A prediction with its per-pixel spread, on one grid.
#[derive(Debug, Clone)]
pub struct Uncertain {
    /// The predictive mean (the prediction).
    pub mean: Raster,
    /// The predictive standard deviation, in the unit of the mean; missing where the mean is.
    pub std: Raster,
}

/// Interpolation of the coarse LST onto the fine grid, ignoring the covariates: the floor any
/// learned method must beat.
#[derive(Debug, Clone)]
pub struct Interpolation {
    method: Resampling,
    name: &'static str,
}

impl Interpolation {
    /// Bilinear interpolation.
    pub fn bilinear() -> Self {
        Self {
            method: Resampling::Bilinear,
            name: "bilinear",
        }
    }

    /// Bicubic interpolation.
    pub fn bicubic() -> Self {
        Self {
            method: Resampling::Bicubic,
            name: "bicubic",
        }
    }
}

impl Downscaler for Interpolation {
    fn name(&self) -> &str {
        self.name
    }

    fn fit(&mut self, _train: &[Scene], _progress: &dyn Progress) -> Result<()> {
        Ok(())
    }

    fn predict(&self, scene: &Scene, _progress: &dyn Progress) -> Result<Raster> {
        scene.interpolated_lst(self.method)
    }
}

/// A borrowed downscaler is a downscaler, so a caller can keep a method (e.g. to save AMUN's
/// checkpoint) while an experiment runs it.
impl<T: Downscaler + ?Sized> Downscaler for &mut T {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn fit(&mut self, train: &[Scene], progress: &dyn Progress) -> Result<()> {
        (**self).fit(train, progress)
    }

    fn predict(&self, scene: &Scene, progress: &dyn Progress) -> Result<Raster> {
        (**self).predict(scene, progress)
    }

    fn predict_checked(
        &self,
        scene: &Scene,
        progress: &dyn Progress,
    ) -> Result<(Raster, Option<Amplitude>)> {
        (**self).predict_checked(scene, progress)
    }

    fn predict_with_spread(
        &self,
        scene: &Scene,
        progress: &dyn Progress,
    ) -> Result<Option<Uncertain>> {
        (**self).predict_with_spread(scene, progress)
    }

    fn check(&self) -> Option<HeldOutCheck> {
        (**self).check()
    }

    fn learns_at_target_scale(&self) -> bool {
        (**self).learns_at_target_scale()
    }
}
