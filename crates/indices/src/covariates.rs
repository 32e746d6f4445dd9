//! The model's covariate stack: band names in a fixed, recorded order.

use amun_raster::{BandKind, Grid, Raster, Stack};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::landcover::{
    block_mode, class_fractions, encode_scaled, landcover_raster, LandcoverEncoding,
};

/// The AMUN paper's seven covariates, in the order they enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Covariate {
    /// NDVI (NIR, red).
    Ndvi,
    /// Land cover (IGBP codes, or their encoding).
    Landcover,
    /// Surface reflectance (one band; in synthetic worlds the broadband albedo).
    Reflectance,
    /// MNDWI (green, SWIR).
    Mndwi,
    /// NDBI (SWIR, NIR).
    Ndbi,
    /// Slope in degrees.
    Slope,
    /// Aspect in degrees clockwise from north.
    Aspect,
}

impl Covariate {
    /// The paper's order: ndvi, landcover, reflectance, mndwi, ndbi, slope, aspect.
    pub const ORDER: [Covariate; 7] = [
        Covariate::Ndvi,
        Covariate::Landcover,
        Covariate::Reflectance,
        Covariate::Mndwi,
        Covariate::Ndbi,
        Covariate::Slope,
        Covariate::Aspect,
    ];

    /// The band name in a stack.
    pub fn name(self) -> &'static str {
        match self {
            Covariate::Ndvi => "ndvi",
            Covariate::Landcover => "landcover",
            Covariate::Reflectance => "reflectance",
            Covariate::Mndwi => "mndwi",
            Covariate::Ndbi => "ndbi",
            Covariate::Slope => "slope",
            Covariate::Aspect => "aspect",
        }
    }

    /// The covariate with this band name.
    pub fn from_name(name: &str) -> Option<Covariate> {
        Self::ORDER.into_iter().find(|c| c.name() == name)
    }
}

/// Builds the model's covariate stack from the bands a user has.
///
/// Any subset of the seven [`Covariate`]s may be given, plus extra named bands (e.g.
/// `elevation`). [`Covariates::build`] orders them as [`Covariate::ORDER`] (missing ones
/// skipped), then the extras in the order they were added; the stack's
/// [`Stack::names`] is the record of that order. Land cover is checked (IGBP codes) and
/// encoded as chosen with [`Covariates::landcover_encoding`].
///
/// ```
/// use amun_indices::{Covariates, Covariate};
/// use amun_raster::{Grid, Raster};
/// let g = Grid::geographic(10.0, 45.0, 0.01, 4, 4)?;
/// let stack = Covariates::new()
///     .with(Covariate::Slope, Raster::filled(g.clone(), 3.0))
///     .extra("elevation", Raster::filled(g.clone(), 250.0))
///     .with(Covariate::Ndvi, Raster::filled(g.clone(), 0.4))
///     .build()?;
/// assert_eq!(stack.names(), ["ndvi", "slope", "elevation"]);
/// # Ok::<(), amun_indices::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Covariates {
    known: Vec<(Covariate, Raster)>,
    extras: Vec<(String, Raster)>,
    encoding: LandcoverEncoding,
}

impl Covariates {
    /// An empty builder (land cover as codes).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one of the seven covariates (a second call for the same one is an error at
    /// [`Covariates::build`]).
    pub fn with(mut self, which: Covariate, raster: Raster) -> Self {
        self.known.push((which, raster));
        self
    }

    /// Adds an extra band after the seven (e.g. `elevation`).
    pub fn extra(mut self, name: impl Into<String>, raster: Raster) -> Self {
        self.extras.push((name.into(), raster));
        self
    }

    /// How land cover enters the stack (default [`LandcoverEncoding::Codes`]).
    pub fn landcover_encoding(mut self, encoding: LandcoverEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The stack, on the grid of the first band.
    ///
    /// # Errors
    /// [`Error::NoCovariates`]; [`Error::DuplicateCovariate`]; grid errors if the bands are not
    /// on one grid; [`Error::CategoricalInput`] if a continuous covariate is categorical;
    /// [`Error::InvalidClassCode`] for bad land-cover codes.
    pub fn build(self) -> Result<Stack> {
        let grid: Grid = match (self.known.first(), self.extras.first()) {
            (Some((_, r)), _) | (None, Some((_, r))) => r.grid().clone(),
            (None, None) => return Err(Error::NoCovariates),
        };
        let mut stack = Stack::new(grid);
        for which in Covariate::ORDER {
            let mut given = self.known.iter().filter(|(c, _)| *c == which);
            let Some((_, raster)) = given.next() else {
                continue;
            };
            if given.next().is_some() {
                return Err(Error::DuplicateCovariate {
                    name: which.name().into(),
                });
            }
            if which == Covariate::Landcover {
                let lc = landcover_raster(raster.clone())?;
                match &self.encoding {
                    LandcoverEncoding::Codes => stack.push(which.name(), lc)?,
                    LandcoverEncoding::Scaled => stack.push(which.name(), encode_scaled(&lc)?)?,
                    LandcoverEncoding::OneHot(classes) => {
                        for (name, band) in class_fractions(&lc, 1, classes)?.iter() {
                            stack.push(name, band.clone())?;
                        }
                    }
                }
            } else {
                if raster.kind() == BandKind::Categorical {
                    return Err(Error::CategoricalInput {
                        band: which.name().into(),
                        operation: "a continuous covariate",
                    });
                }
                stack.push(which.name(), raster.clone())?;
            }
        }
        for (name, raster) in self.extras {
            if stack.get(&name).is_some() {
                return Err(Error::DuplicateCovariate { name });
            }
            stack.push(name, raster)?;
        }
        Ok(stack)
    }
}

/// Aggregates a stack to `grid.coarsen(k)`: continuous bands by block mean ignoring missing
/// pixels (a coarse pixel needs at least `min_coverage`, 0–1, of its fine pixels), categorical
/// bands by [`block_mode`] — never by a mean.
///
/// # Errors
/// Grid errors if the size is not a multiple of `k`; [`Error::InvalidClassCode`].
pub fn coarsen_stack(stack: &Stack, k: usize, min_coverage: f64) -> Result<Stack> {
    let mut out = Stack::new(stack.grid().coarsen(k)?);
    for (name, band) in stack.iter() {
        let coarse = match band.kind() {
            BandKind::Categorical => block_mode(band, k)?,
            BandKind::Continuous => band.block_mean(k, min_coverage)?,
        };
        out.push(name, coarse)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landcover::Igbp;

    fn g() -> Grid {
        Grid::geographic(10.0, 45.0, 0.01, 4, 4).unwrap()
    }

    #[test]
    fn order_is_fixed_and_extras_follow() {
        let lc = Raster::filled(g(), 12.0);
        let s = Covariates::new()
            .extra("elevation", Raster::filled(g(), 100.0))
            .with(Covariate::Aspect, Raster::filled(g(), 90.0))
            .with(Covariate::Landcover, lc.clone())
            .with(Covariate::Ndvi, Raster::filled(g(), 0.5))
            .build()
            .unwrap();
        assert_eq!(s.names(), ["ndvi", "landcover", "aspect", "elevation"]);
        assert_eq!(s.band("landcover").unwrap().kind(), BandKind::Categorical);
        let s = Covariates::new()
            .with(Covariate::Landcover, lc.clone())
            .landcover_encoding(LandcoverEncoding::OneHot(vec![Igbp::Cropland, Igbp::Water]))
            .build()
            .unwrap();
        assert_eq!(s.names(), ["lc_cropland", "lc_water"]);
        let s = Covariates::new()
            .with(Covariate::Landcover, lc)
            .landcover_encoding(LandcoverEncoding::Scaled)
            .build()
            .unwrap();
        assert!((s.band("landcover").unwrap().data()[(0, 0)] - 12.0 / 17.0).abs() < 1e-7);
    }

    #[test]
    fn mistakes_are_errors() {
        assert!(matches!(
            Covariates::new().build(),
            Err(Error::NoCovariates)
        ));
        let twice = Covariates::new()
            .with(Covariate::Ndvi, Raster::filled(g(), 0.5))
            .with(Covariate::Ndvi, Raster::filled(g(), 0.5))
            .build();
        assert!(matches!(twice, Err(Error::DuplicateCovariate { .. })));
        let clash = Covariates::new()
            .with(Covariate::Slope, Raster::filled(g(), 0.5))
            .extra("slope", Raster::filled(g(), 0.5))
            .build();
        assert!(matches!(clash, Err(Error::DuplicateCovariate { .. })));
        let other = Grid::geographic(10.0, 45.0, 0.02, 4, 4).unwrap();
        let mixed = Covariates::new()
            .with(Covariate::Slope, Raster::filled(g(), 0.5))
            .with(Covariate::Ndvi, Raster::filled(other, 0.5))
            .build();
        assert!(matches!(mixed, Err(Error::Raster(_))));
        let cat = Covariates::new()
            .with(
                Covariate::Ndvi,
                Raster::filled(g(), 0.5).with_kind(BandKind::Categorical),
            )
            .build();
        assert!(matches!(cat, Err(Error::CategoricalInput { .. })));
    }

    #[test]
    fn coarsening_uses_mode_for_categories() {
        let lc = Raster::from_fn(g(), |(r, c)| if r + c == 0 { 17.0 } else { 12.0 });
        let s = Covariates::new()
            .with(Covariate::Landcover, lc)
            .with(Covariate::Ndvi, Raster::from_fn(g(), |(r, _)| r as f32))
            .build()
            .unwrap();
        let c = coarsen_stack(&s, 2, 0.0).unwrap();
        assert_eq!(c.band("landcover").unwrap().get(0, 0), Some(12.0));
        // Rows 0 and 1 average to 0.5; rows 2 and 3 to 2.5.
        assert_eq!(c.band("ndvi").unwrap().get(1, 0), Some(2.5));
    }
}
