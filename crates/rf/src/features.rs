//! Feature columns built from a covariate stack, at the fine or the coarse scale.

use std::collections::{BTreeMap, BTreeSet};

use amun_indices::{block_mode, class_fractions, landcover_raster, Igbp};
use amun_raster::{BandKind, Grid, Raster, Stack};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a categorical (land-cover, IGBP codes) band becomes features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CategoricalEncoding {
    /// One feature per class seen in training: the fraction of the class in a coarse cell
    /// (a 0/1 indicator at a fine pixel). The scale-consistent choice of Hutengs & Vohland.
    #[default]
    Fractions,
    /// One feature holding the class code: the majority (mode) class of a coarse cell, the
    /// class of a fine pixel.
    Mode,
}

/// One feature column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Column {
    /// The base field on the fine grid: the coarse LST resampled bilinearly, or a prior
    /// (supervised mode).
    CoarseLst,
    /// A continuous band (block mean at the coarse scale).
    Band(usize),
    /// The fraction of `class` in a categorical band.
    Fraction(usize, Igbp),
    /// The class code (block mode at the coarse scale) of a categorical band.
    Mode(usize),
    /// x (longitude) of the pixel centre.
    X,
    /// y (latitude) of the pixel centre.
    Y,
}

/// The feature columns of a model and how to compute them from a covariate stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FeatureSpec {
    bands: Vec<String>,
    columns: Vec<Column>,
    /// The name of the base field in the `lst_<base>` column (`bilinear` or a prior's).
    #[serde(default = "bilinear")]
    pub base: String,
}

impl FeatureSpec {
    /// Columns for `stacks` (all with the same bands): classes of categorical bands are
    /// those present in any of them. Categorical bands hold IGBP land-cover codes, read as
    /// `amun_indices::landcover_raster` does (0 and 255 missing, other codes an error).
    pub(crate) fn new(
        stacks: &[&Stack],
        encoding: CategoricalEncoding,
        coarse_lst: bool,
        coordinates: bool,
    ) -> Result<FeatureSpec> {
        let first = stacks
            .first()
            .ok_or(Error::TooFewSamples { got: 0, needed: 1 })?;
        let bands: Vec<String> = first.names().to_vec();
        for s in stacks {
            check_bands(&bands, s)?;
        }
        let mut columns = Vec::new();
        if coarse_lst {
            columns.push(Column::CoarseLst);
        }
        for (b, (_, band)) in first.iter().enumerate() {
            if band.kind() == BandKind::Continuous {
                columns.push(Column::Band(b));
                continue;
            }
            let mut classes = BTreeSet::new();
            for s in stacks {
                let codes = landcover_raster(s.bands()[b].clone())?;
                classes.extend(codes.data().iter().filter_map(|&v| Igbp::from_value(v)));
            }
            match encoding {
                CategoricalEncoding::Mode => columns.push(Column::Mode(b)),
                CategoricalEncoding::Fractions => {
                    columns.extend(classes.into_iter().map(|c| Column::Fraction(b, c)));
                }
            }
        }
        if coordinates {
            columns.extend([Column::X, Column::Y]);
        }
        Ok(FeatureSpec {
            bands,
            columns,
            base: bilinear(),
        })
    }

    /// Number of features.
    pub(crate) fn len(&self) -> usize {
        self.columns.len()
    }

    /// Feature names (`lst_bilinear`, band names, `<band>=<class>`, `x`, `y`).
    pub(crate) fn names(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| match c {
                Column::CoarseLst => format!("lst_{}", self.base),
                Column::Band(b) | Column::Mode(b) => self.bands[*b].clone(),
                Column::Fraction(b, k) => format!("{}={}", self.bands[*b], k.code()),
                Column::X => "x".into(),
                Column::Y => "y".into(),
            })
            .collect()
    }

    /// Checks that a stack has the bands of the spec, in order, and valid land-cover codes in
    /// the bands used as classes.
    pub(crate) fn check(&self, stack: &Stack) -> Result<()> {
        check_bands(&self.bands, stack)?;
        for b in self.class_bands().keys() {
            landcover_raster(stack.bands()[*b].clone())?;
        }
        Ok(())
    }

    /// The categorical bands used as classes, each with the classes of its fraction columns.
    fn class_bands(&self) -> BTreeMap<usize, Vec<Igbp>> {
        let mut out = BTreeMap::<usize, Vec<Igbp>>::new();
        for c in &self.columns {
            match c {
                Column::Fraction(b, class) => out.entry(*b).or_default().push(*class),
                Column::Mode(b) => {
                    out.entry(*b).or_default();
                }
                _ => {}
            }
        }
        out
    }

    /// The feature rasters of `fine` aggregated onto `fine.grid().coarsen(k)` (block mean of
    /// continuous bands, `amun_indices`' class fractions and block mode of land cover), as
    /// full coarse arrays, one per column. A coarse cell with fewer than `min_coverage` of
    /// its fine pixels valid is missing.
    pub(crate) fn coarse_columns(
        &self,
        fine: &Stack,
        k: usize,
        min_coverage: f64,
    ) -> Result<(Grid, Vec<Array2<f32>>)> {
        self.check(fine)?;
        let coarse = fine.grid().coarsen(k)?;
        // Land cover: the class fractions of a band in one pass, masked by coverage.
        let mut fractions = BTreeMap::new();
        for (b, classes) in self.class_bands() {
            let band = &fine.bands()[b];
            let covered = coverage(band, k, min_coverage)?;
            for (class, f) in classes
                .iter()
                .zip(class_fractions(band, k, &classes)?.bands())
            {
                fractions.insert((b, *class), f.data() * &covered);
            }
        }
        let mut out = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let a = match c {
                Column::CoarseLst => {
                    return Err(Error::InvalidParameter {
                        name: "features",
                        value: "lst_bilinear".into(),
                        reason: "a supervised model has no coarse-scale features",
                    })
                }
                Column::Band(b) => fine.bands()[*b].block_mean(k, min_coverage)?.into_data(),
                // `class_bands` lists every fraction column, so the entry is there.
                Column::Fraction(b, class) => fractions
                    .remove(&(*b, *class))
                    .unwrap_or_else(|| Array2::from_elem(coarse.shape(), f32::NAN)),
                Column::Mode(b) => {
                    let band = &fine.bands()[*b];
                    block_mode(band, k)?.into_data() * coverage(band, k, min_coverage)?
                }
                Column::X | Column::Y => Array2::from_shape_fn(coarse.shape(), |(r, col)| {
                    let (x, y) = coarse.pixel_center(col, r);
                    (if matches!(c, Column::X) { x } else { y }) as f32
                }),
            };
            out.push(a);
        }
        Ok((coarse, out))
    }

    /// Writes the features of fine pixel `(row, col)` into `dst` (length [`Self::len`]);
    /// `lst` is the base field (bilinear coarse LST or a prior) when the spec has that
    /// column.
    pub(crate) fn fine_row(
        &self,
        stack: &Stack,
        lst: Option<&Raster>,
        row: usize,
        col: usize,
        dst: &mut [f32],
    ) {
        let grid = stack.grid();
        for (d, c) in dst.iter_mut().zip(&self.columns) {
            *d = match c {
                Column::CoarseLst => lst.map_or(f32::NAN, |l| l.data()[(row, col)]),
                Column::Band(b) => stack.bands()[*b].data()[(row, col)],
                // Checked codes (`check`); 0 and 255 are missing.
                Column::Mode(b) => Igbp::from_value(stack.bands()[*b].data()[(row, col)])
                    .map_or(f32::NAN, |c| f32::from(c.code())),
                Column::Fraction(b, class) => {
                    Igbp::from_value(stack.bands()[*b].data()[(row, col)])
                        .map_or(f32::NAN, |c| f32::from(u8::from(c == *class)))
                }
                Column::X => grid.pixel_center(col, row).0 as f32,
                Column::Y => grid.pixel_center(col, row).1 as f32,
            };
        }
    }
}

fn bilinear() -> String {
    "bilinear".into()
}

/// Checks that `stack` has `bands`, in order.
fn check_bands(bands: &[String], stack: &Stack) -> Result<()> {
    if stack.names() != bands {
        return Err(Error::BandMismatch {
            expected: bands.join(", "),
            got: stack.names().join(", "),
        });
    }
    Ok(())
}

/// 1 where at least `min_coverage` of the fine land-cover pixels of a `k × k` block are
/// valid codes, `NaN` elsewhere (the rule `Raster::block_mean` applies to continuous bands).
fn coverage(band: &Raster, k: usize, min_coverage: f64) -> Result<Array2<f32>> {
    Ok(band
        .map(|v| Igbp::from_value(v).map_or(f32::NAN, |_| 1.0))
        .with_kind(BandKind::Continuous)
        .block_mean(k, min_coverage)?
        .into_data())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[allow(clippy::float_cmp)] // fractions of 4 pixels and class codes are exact
    #[test]
    fn coarse_and_fine_features() {
        let g = Grid::geographic(0.0, 2.0, 0.5, 4, 2).unwrap();
        let ndvi = Raster::new(
            g.clone(),
            array![[0.1, 0.3, 0.5, 0.5], [0.1, 0.3, f32::NAN, 0.5]],
        )
        .unwrap();
        let lc = Raster::new(
            g.clone(),
            array![[1.0, 2.0, 3.0, 3.0], [2.0, 2.0, f32::NAN, 1.0]],
        )
        .unwrap()
        .with_kind(BandKind::Categorical);
        let stack = Stack::new(g)
            .with("ndvi", ndvi)
            .unwrap()
            .with("lc", lc)
            .unwrap();
        let spec =
            FeatureSpec::new(&[&stack], CategoricalEncoding::Fractions, false, true).unwrap();
        assert_eq!(spec.names(), ["ndvi", "lc=1", "lc=2", "lc=3", "x", "y"]);
        let (cg, cols) = spec.coarse_columns(&stack, 2, 0.0).unwrap();
        assert_eq!(cg.shape(), (1, 2));
        // Left block: ndvi mean 0.2, classes {1, 2, 2, 2}; right block: 3 valid pixels.
        assert!((cols[0][(0, 0)] - 0.2).abs() < 1e-6);
        assert_eq!((cols[1][(0, 0)], cols[2][(0, 0)]), (0.25, 0.75));
        assert!((cols[3][(0, 1)] - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!((cols[4][(0, 0)], cols[5][(0, 0)]), (0.5, 1.5));
        let mut row = vec![0.0; spec.len()];
        spec.fine_row(&stack, None, 1, 3, &mut row);
        assert_eq!(row, vec![0.5, 1.0, 0.0, 0.0, 1.75, 1.25]);
        spec.fine_row(&stack, None, 1, 2, &mut row);
        assert!(row[0].is_nan() && row[1].is_nan());

        let spec = FeatureSpec::new(&[&stack], CategoricalEncoding::Mode, false, false).unwrap();
        let (_, cols) = spec.coarse_columns(&stack, 2, 0.0).unwrap();
        assert_eq!((cols[1][(0, 0)], cols[1][(0, 1)]), (2.0, 3.0));
        let other = stack.select(&["lc", "ndvi"]).unwrap();
        assert!(matches!(
            spec.check(&other),
            Err(Error::BandMismatch { .. })
        ));
        // Coverage: the right block has 3 of 4 valid land-cover pixels.
        let (_, cols) = spec.coarse_columns(&stack, 2, 0.9).unwrap();
        assert_eq!(cols[1][(0, 0)], 2.0);
        assert!(cols[1][(0, 1)].is_nan() && cols[0][(0, 1)].is_nan());
    }

    #[allow(clippy::float_cmp)] // 0/1 indicators are exact
    #[test]
    fn land_cover_codes_are_igbp() {
        // amun-indices' rule (`landcover_raster`): 0 and 255 are missing, other values that
        // are not IGBP codes 1–17 are errors.
        let g = Grid::geographic(0.0, 1.0, 0.5, 2, 2).unwrap();
        let stack_of = |a: f32| {
            let lc = Raster::new(g.clone(), array![[a, 12.0], [12.0, 10.0]]).unwrap();
            Stack::new(g.clone())
                .with("lc", lc.with_kind(BandKind::Categorical))
                .unwrap()
        };
        let stack = stack_of(255.0);
        let spec =
            FeatureSpec::new(&[&stack], CategoricalEncoding::Fractions, false, false).unwrap();
        assert_eq!(spec.names(), ["lc=10", "lc=12"]);
        let (_, cols) = spec.coarse_columns(&stack, 2, 0.0).unwrap();
        assert!((cols[1][(0, 0)] - 2.0 / 3.0).abs() < 1e-6, "255 is missing");
        let mut row = [0.0; 2];
        spec.fine_row(&stack, None, 0, 0, &mut row);
        assert!(row[0].is_nan() && row[1].is_nan());
        spec.fine_row(&stack, None, 1, 1, &mut row);
        assert_eq!(row, [1.0, 0.0]);
        let bad = stack_of(42.0);
        assert!(matches!(
            FeatureSpec::new(&[&bad], CategoricalEncoding::Mode, false, false),
            Err(Error::Indices(amun_indices::Error::InvalidClassCode {
                col: 0,
                ..
            }))
        ));
        assert!(matches!(
            spec.check(&bad),
            Err(Error::Indices(amun_indices::Error::InvalidClassCode { .. }))
        ));
    }
}
