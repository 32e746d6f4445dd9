//! Parameters of the prior (builder → `check()` → valid parameters).

use amun_raster::ConserveParams;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which covariates the prior's linear model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorKind {
    /// Elevation only: the lapse-rate prior `β·(z_fine − z_coarse)`.
    #[default]
    Elevation,
    /// Every covariate of the scene (continuous bands as they are, aspect as its cosine and
    /// sine, land cover as class indicators), with a ridge penalty: a TsHARP/DisTrad-style
    /// linear model on covariate anomalies. Falls back to [`PriorKind::Elevation`] when the
    /// scene has too few coarse cells for so many terms.
    Covariates,
}

impl PriorKind {
    /// `elevation` or `covariates`.
    pub fn name(self) -> &'static str {
        match self {
            PriorKind::Elevation => "elevation",
            PriorKind::Covariates => "covariates",
        }
    }
}

/// Parameters of the physical prior (builder).
///
/// | field | default | meaning |
/// |---|---|---|
/// | `kind` | [`PriorKind::Elevation`] | which covariates enter the linear model |
/// | `elevation_band` | `elevation` | the covariate holding elevation in metres |
/// | `fallback_lapse_rate` | −0.0065 K/m | β when the fit is unreliable (the standard atmosphere) |
/// | `lapse_rate_range` | −0.015 … +0.010 K/m | fitted β outside it is unreliable |
/// | `max_lapse_rate_se` | 0.003 K/m | a standard error of β above it is unreliable |
/// | `min_cells` | 16 | fewer usable coarse cells is unreliable |
/// | `min_elevation_spread` | 10 m | a smaller spread of local elevation anomalies is unreliable |
/// | `neighbourhood` | 2 | radius (coarse cells) of the box whose mean is removed before fitting |
/// | `robust` | true | Huber weights (iteratively reweighted) instead of plain least squares |
/// | `alpha` | 1.0 | ridge penalty on the standardised covariate terms ([`PriorKind::Covariates`]) |
/// | `min_coverage` | 0.5 | valid fraction of a block for its covariate mean to count |
/// | `conserve` | tolerance 1e-4 K, 500 iterations | how exactly block means are kept |
///
/// The model is fitted on *local anomalies* of the coarse cells (each field minus its mean
/// over the surrounding `(2·neighbourhood + 1)²` box, with the cell coordinates as nuisance
/// terms), so that a large-scale gradient (latitude, distance to the sea) is not mistaken
/// for a lapse rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PriorParams {
    /// Which covariates enter the model.
    pub kind: PriorKind,
    /// The elevation covariate's name.
    pub elevation_band: String,
    /// β (K/m) used when the fit is unreliable.
    pub fallback_lapse_rate: f64,
    /// Plausible β (K/m), low and high.
    pub lapse_rate_range: (f64, f64),
    /// Largest acceptable standard error of β (K/m).
    pub max_lapse_rate_se: f64,
    /// Fewest usable coarse cells.
    pub min_cells: usize,
    /// Smallest standard deviation (m) of the local elevation anomalies.
    pub min_elevation_spread: f64,
    /// Radius (coarse cells) of the local-mean box.
    pub neighbourhood: usize,
    /// Huber-robust fit.
    pub robust: bool,
    /// Ridge penalty on standardised covariate terms (sum-of-squares scale).
    pub alpha: f64,
    /// Valid fraction of a block for its covariate mean to count (0–1].
    pub min_coverage: f64,
    /// Conservation of the coarse block means.
    pub conserve: ConserveParams,
}

impl Default for PriorParams {
    fn default() -> Self {
        Self {
            kind: PriorKind::Elevation,
            elevation_band: "elevation".into(),
            fallback_lapse_rate: -0.0065,
            lapse_rate_range: (-0.015, 0.010),
            max_lapse_rate_se: 0.003,
            min_cells: 16,
            min_elevation_spread: 10.0,
            neighbourhood: 2,
            robust: true,
            alpha: 1.0,
            min_coverage: 0.5,
            conserve: ConserveParams::default(),
        }
    }
}

/// [`PriorParams`] that passed [`PriorParams::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorValidParams(pub(crate) PriorParams);

impl std::ops::Deref for PriorValidParams {
    type Target = PriorParams;
    fn deref(&self) -> &PriorParams {
        &self.0
    }
}

impl PriorParams {
    /// The defaults: the elevation (lapse-rate) prior.
    pub fn elevation() -> Self {
        Self::default()
    }

    /// The ridge prior on every covariate's anomalies.
    pub fn covariates() -> Self {
        Self {
            kind: PriorKind::Covariates,
            ..Self::default()
        }
    }

    /// The elevation covariate's name.
    pub fn elevation_band(mut self, name: impl Into<String>) -> Self {
        self.elevation_band = name.into();
        self
    }

    /// β (K/m) used when the fit is unreliable.
    pub fn fallback_lapse_rate(mut self, beta: f64) -> Self {
        self.fallback_lapse_rate = beta;
        self
    }

    /// Robust (Huber) or plain least squares.
    pub fn robust(mut self, on: bool) -> Self {
        self.robust = on;
        self
    }

    /// Ridge penalty of the covariate prior.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Radius of the local-mean box, in coarse cells.
    pub fn neighbourhood(mut self, cells: usize) -> Self {
        self.neighbourhood = cells;
        self
    }

    /// Conservation settings.
    pub fn conserve(mut self, params: ConserveParams) -> Self {
        self.conserve = params;
        self
    }

    /// Validates every field.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first bad field.
    pub fn check(self) -> Result<PriorValidParams> {
        let bad = |name, value: String, reason| {
            Err(Error::InvalidParameter {
                name,
                value,
                reason,
            })
        };
        let (lo, hi) = self.lapse_rate_range;
        if !self.fallback_lapse_rate.is_finite() {
            return bad(
                "fallback_lapse_rate",
                self.fallback_lapse_rate.to_string(),
                "must be finite (K/m)",
            );
        }
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return bad(
                "lapse_rate_range",
                format!("{lo}..{hi}"),
                "must be a finite range low < high (K/m)",
            );
        }
        if self.max_lapse_rate_se.is_nan() || self.max_lapse_rate_se <= 0.0 {
            return bad(
                "max_lapse_rate_se",
                self.max_lapse_rate_se.to_string(),
                "must be positive (K/m)",
            );
        }
        if self.min_cells < 4 {
            return bad(
                "min_cells",
                self.min_cells.to_string(),
                "must be at least 4",
            );
        }
        if self.min_elevation_spread.is_nan() || self.min_elevation_spread < 0.0 {
            return bad(
                "min_elevation_spread",
                self.min_elevation_spread.to_string(),
                "must be ≥ 0 (m)",
            );
        }
        if self.neighbourhood == 0 {
            return bad(
                "neighbourhood",
                "0".into(),
                "must be at least 1 coarse cell",
            );
        }
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return bad("alpha", self.alpha.to_string(), "must be finite and ≥ 0");
        }
        if !(self.min_coverage > 0.0 && self.min_coverage <= 1.0) {
            return bad(
                "min_coverage",
                self.min_coverage.to_string(),
                "must be in (0, 1]",
            );
        }
        if self.conserve.tolerance.is_nan()
            || self.conserve.tolerance <= 0.0
            || self.conserve.max_iterations == 0
        {
            return bad(
                "conserve",
                format!("{:?}", self.conserve),
                "tolerance must be positive and max_iterations ≥ 1",
            );
        }
        Ok(PriorValidParams(self))
    }
}

/// The field a learned method corrects: it predicts `base + residual` and learns the
/// residual.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "params")]
pub enum Base {
    /// Bilinear interpolation of the coarse LST (the AMUN paper's choice).
    #[default]
    Bilinear,
    /// A physical prior fitted on each scene (see [`PriorParams`]).
    Prior(PriorParams),
}

impl Base {
    /// `bilinear`, `prior-elevation` or `prior-covariates`.
    pub fn name(&self) -> String {
        match self {
            Base::Bilinear => "bilinear".into(),
            Base::Prior(p) => format!("prior-{}", p.kind.name()),
        }
    }

    /// The base field of a scene on the covariates' grid, with the prior's fit report.
    ///
    /// # Errors
    /// Resampling errors; as [`PriorParams::fit`].
    pub fn field(
        &self,
        coarse_lst: &amun_raster::Raster,
        fine_covariates: &amun_raster::Stack,
    ) -> Result<(amun_raster::Raster, Option<crate::FitReport>)> {
        self.field_fitted_on(None, coarse_lst, fine_covariates)
    }

    /// [`Base::field`], with a prior's coefficients fitted on `fit_lst` when given (see
    /// [`PriorValidParams::fit_on`]: a training pair one scale up fits them on its label,
    /// where the target scale's prior fits them); bilinear ignores it.
    ///
    /// # Errors
    /// As [`Base::field`].
    pub fn field_fitted_on(
        &self,
        fit_lst: Option<&amun_raster::Raster>,
        coarse_lst: &amun_raster::Raster,
        fine_covariates: &amun_raster::Stack,
    ) -> Result<(amun_raster::Raster, Option<crate::FitReport>)> {
        match self {
            Base::Bilinear => Ok((
                amun_raster::resample(
                    coarse_lst,
                    fine_covariates.grid(),
                    amun_raster::Resampling::Bilinear,
                )?,
                None,
            )),
            Base::Prior(p) => {
                let prior = p.fit_on(fit_lst.unwrap_or(coarse_lst), coarse_lst, fine_covariates)?;
                let field = prior.field(fine_covariates)?;
                Ok((field, Some(prior.report().clone())))
            }
        }
    }
}
