//! A scene: coarse LST plus fine covariates on a grid that refines it.

use amun_raster::{resample, Grid, Raster, Resampling, Stack};

use crate::error::{Error, Result};

/// A coarse LST raster and a fine covariate stack whose grid refines the LST grid by an
/// integer factor, with an optional fine reference LST (for training and scoring) and an
/// optional month and hour.
#[derive(Debug, Clone)]
pub struct Scene {
    name: String,
    coarse_lst: Raster,
    covariates: Stack,
    reference: Option<Raster>,
    factor: usize,
    month: Option<u32>,
    hour: Option<u32>,
}

impl Scene {
    /// A scene from a coarse LST and fine covariates.
    ///
    /// # Errors
    /// [`Error::Scene`] if there are no covariates or the covariate grid is not an integer
    /// refinement of the LST grid covering the same area (the message says what differs).
    pub fn new(name: impl Into<String>, coarse_lst: Raster, covariates: Stack) -> Result<Self> {
        let name = name.into();
        if covariates.is_empty() {
            return Err(Error::Scene {
                scene: name,
                detail: "no covariate bands".into(),
            });
        }
        let factor = covariates
            .grid()
            .refinement_of(coarse_lst.grid())
            .map_err(|e| Error::Scene {
                scene: name.clone(),
                detail: format!("the covariate grid does not refine the LST grid: {e}"),
            })?;
        if factor < 2 {
            return Err(Error::Scene {
                scene: name,
                detail: "covariates are on the LST grid itself (factor 1): nothing to downscale"
                    .into(),
            });
        }
        Ok(Self {
            name,
            coarse_lst,
            covariates,
            reference: None,
            factor,
            month: None,
            hour: None,
        })
    }

    /// This scene with a fine reference LST (the truth, for training and scoring).
    ///
    /// # Errors
    /// [`Error::Scene`] if the reference is not on the fine grid.
    pub fn with_reference(mut self, reference: Raster) -> Result<Self> {
        reference
            .grid()
            .check_same(self.covariates.grid())
            .map_err(|e| Error::Scene {
                scene: self.name.clone(),
                detail: format!("reference LST is not on the fine grid: {e}"),
            })?;
        self.reference = Some(reference);
        Ok(self)
    }

    /// This scene with a month (1–12) and hour (0–23), when known.
    pub fn with_time(mut self, month: Option<u32>, hour: Option<u32>) -> Self {
        self.month = month;
        self.hour = hour;
        self
    }

    /// The scene's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Coarse LST (kelvin) on the coarse grid.
    pub fn coarse_lst(&self) -> &Raster {
        &self.coarse_lst
    }

    /// Fine covariates.
    pub fn covariates(&self) -> &Stack {
        &self.covariates
    }

    /// Fine reference LST, if known.
    pub fn reference(&self) -> Option<&Raster> {
        self.reference.as_ref()
    }

    /// The fine reference LST, or an error naming the method that needs it.
    ///
    /// # Errors
    /// [`Error::Method`] if the scene has no reference.
    pub fn require_reference(&self, method: &str) -> Result<&Raster> {
        self.reference.as_ref().ok_or_else(|| Error::Method {
            method: method.to_string(),
            detail: format!("scene `{}` has no fine reference LST", self.name),
        })
    }

    /// Ratio of coarse to fine pixel size.
    pub fn factor(&self) -> usize {
        self.factor
    }

    /// Month 1–12, if known.
    pub fn month(&self) -> Option<u32> {
        self.month
    }

    /// Hour 0–23, if known.
    pub fn hour(&self) -> Option<u32> {
        self.hour
    }

    /// The fine grid.
    pub fn fine_grid(&self) -> &Grid {
        self.covariates.grid()
    }

    /// The coarse grid.
    pub fn coarse_grid(&self) -> &Grid {
        self.coarse_lst.grid()
    }

    /// The coarse LST interpolated onto the fine grid.
    ///
    /// # Errors
    /// Resampling errors.
    pub fn interpolated_lst(&self, method: Resampling) -> Result<Raster> {
        Ok(resample(&self.coarse_lst, self.fine_grid(), method)?)
    }
}
