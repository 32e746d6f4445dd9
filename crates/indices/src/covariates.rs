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

/// Re-encodes the `landcover` band of a stack (e.g. one from `Covariates::build` or a
/// synthetic world, which hold IGBP codes) as `encoding`, keeping the band order: the
/// encoded band(s) take the place of `landcover`. A stack without `landcover` is returned
/// unchanged.
///
/// # Errors
/// [`Error::InvalidClassCode`] for bad codes; [`Error::NotCategorical`] if `landcover` is
/// not categorical.
pub fn encode_landcover(stack: &Stack, encoding: &LandcoverEncoding) -> Result<Stack> {
    let mut out = Stack::new(stack.grid().clone());
    for (name, band) in stack.iter() {
        if name != Covariate::Landcover.name() {
            out.push(name, band.clone())?;
            continue;
        }
        if band.kind() != BandKind::Categorical {
            return Err(Error::NotCategorical {
                band: name.into(),
                operation: "land-cover encoding",
            });
        }
        let lc = landcover_raster(band.clone())?;
        match encoding {
            LandcoverEncoding::Codes => out.push(name, lc)?,
            LandcoverEncoding::Scaled => out.push(name, encode_scaled(&lc)?)?,
            LandcoverEncoding::OneHot(classes) => {
                for (n, b) in class_fractions(&lc, 1, classes)?.iter() {
                    out.push(n, b.clone())?;
                }
            }
        }
    }
    Ok(out)
}

/// Aggregates a stack to `grid.coarsen(k)`: continuous bands by block mean ignoring missing
/// pixels (a coarse pixel needs at least `min_coverage`, 0–1, of its fine pixels), the
/// `aspect` band by its mean direction ([`block_mean_direction`]), categorical bands by
/// [`block_mode`] — never by a mean.
///
/// # Errors
/// Grid errors if the size is not a multiple of `k`; [`Error::InvalidClassCode`].
pub fn coarsen_stack(stack: &Stack, k: usize, min_coverage: f64) -> Result<Stack> {
    let mut out = Stack::new(stack.grid().coarsen(k)?);
    for (name, band) in stack.iter() {
        let coarse = match band.kind() {
            BandKind::Categorical => block_mode(band, k)?,
            BandKind::Continuous if name == Covariate::Aspect.name() => {
                block_mean_direction(band, k, min_coverage)?
            }
            BandKind::Continuous => band.block_mean(k, min_coverage)?,
        };
        out.push(name, coarse)?;
    }
    Ok(out)
}

/// Block mean of a direction in degrees (clockwise from north, as aspect): the direction
/// of the mean unit vector, in `[0, 360)`. The arithmetic mean would turn a block facing
/// 350° and 10° into one facing south. Missing where fewer than `min_coverage` of the
/// block's pixels are valid or the directions cancel (a mean vector shorter than 1e-6).
///
/// # Errors
/// Grid errors if the size is not a multiple of `k`.
pub fn block_mean_direction(band: &Raster, k: usize, min_coverage: f64) -> Result<Raster> {
    let rad = |f: fn(f64) -> f64| band.map(move |a| f(f64::from(a).to_radians()) as f32);
    let (sin, cos) = (
        rad(f64::sin).block_mean(k, min_coverage)?,
        rad(f64::cos).block_mean(k, min_coverage)?,
    );
    let mut out = sin.clone();
    ndarray::Zip::from(out.data_mut())
        .and(sin.data())
        .and(cos.data())
        .for_each(|o, &s, &c| {
            let (s, c) = (f64::from(s), f64::from(c));
            *o = if s.is_nan() || c.is_nan() || s.hypot(c) < 1e-6 {
                f32::NAN
            } else {
                s.atan2(c).to_degrees().rem_euclid(360.0) as f32
            };
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landcover::Igbp;

    fn g() -> Grid {
        Grid::geographic(10.0, 45.0, 0.01, 4, 4).unwrap()
    }

    /// Hand-computed: 350° and 10° average to north (the arithmetic mean says south), 80°
    /// and 100° to east, two opposite pairs to nothing; `coarsen_stack` uses it for aspect
    /// and the plain mean for other bands.
    #[test]
    fn aspect_is_averaged_on_the_circle() {
        let grid = Grid::geographic(10.0, 45.0, 0.01, 6, 2).unwrap();
        let aspect = Raster::new(
            grid.clone(),
            ndarray::array![
                [350.0, 10.0, 80.0, 260.0, 80.0, 100.0],
                [10.0, 350.0, 100.0, 280.0, 80.0, 100.0]
            ],
        )
        .unwrap();
        let mean = block_mean_direction(&aspect, 2, 0.5).unwrap();
        let m = mean.data();
        assert!(m[(0, 0)].min(360.0 - m[(0, 0)]) < 1e-3, "{}", m[(0, 0)]);
        assert!(m[(0, 1)].is_nan(), "opposite pairs cancel: {}", m[(0, 1)]);
        assert!((m[(0, 2)] - 90.0).abs() < 1e-3, "{}", m[(0, 2)]);
        let s = Stack::new(grid)
            .with("aspect", aspect.clone())
            .unwrap()
            .with("slope", aspect)
            .unwrap();
        let c = coarsen_stack(&s, 2, 0.5).unwrap();
        let a = c.band("aspect").unwrap().data();
        assert!(a.iter().zip(m).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!((c.band("slope").unwrap().data()[(0, 0)] - 180.0).abs() < 1e-4);
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
    fn re_encoding_keeps_the_order() {
        let s = Covariates::new()
            .with(Covariate::Ndvi, Raster::filled(g(), 0.5))
            .with(Covariate::Landcover, Raster::filled(g(), 17.0))
            .with(Covariate::Slope, Raster::filled(g(), 2.0))
            .build()
            .unwrap();
        let one = encode_landcover(
            &s,
            &LandcoverEncoding::OneHot(vec![Igbp::Water, Igbp::Barren]),
        )
        .unwrap();
        assert_eq!(one.names(), ["ndvi", "lc_water", "lc_barren", "slope"]);
        assert_eq!(one.band("lc_water").unwrap().get(0, 0), Some(1.0));
        let scaled = encode_landcover(&s, &LandcoverEncoding::Scaled).unwrap();
        assert_eq!(scaled.band("landcover").unwrap().get(1, 1), Some(1.0));
        let mut bad = s.clone();
        let lc = bad.remove("landcover").unwrap();
        bad.push("landcover", lc.with_kind(BandKind::Continuous))
            .unwrap();
        assert!(matches!(
            encode_landcover(&bad, &LandcoverEncoding::Scaled),
            Err(Error::NotCategorical { .. })
        ));
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
