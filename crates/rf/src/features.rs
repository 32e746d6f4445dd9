//! Feature columns built from a covariate stack, at the fine or the coarse scale.

use std::collections::BTreeSet;

use amun_raster::{BandKind, Grid, Raster, Stack};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a categorical (land-cover) band becomes features.
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
    /// The coarse LST bilinearly resampled to the fine grid (supervised mode).
    CoarseLst,
    /// A continuous band (block mean at the coarse scale).
    Band(usize),
    /// The fraction of `class` in a categorical band.
    Fraction(usize, i32),
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
}

/// The integer code of a class value.
fn code(band: &str, v: f32) -> Result<i32> {
    if v.fract() != 0.0 || v.abs() > 1e9 {
        return Err(Error::NotAClass {
            band: band.to_string(),
            value: v,
        });
    }
    Ok(v as i32)
}

impl FeatureSpec {
    /// Columns for `stacks` (all with the same bands): classes of categorical bands are
    /// those present in any of them.
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
        for (b, (name, band)) in first.iter().enumerate() {
            match (band.kind(), encoding) {
                (BandKind::Continuous, _) => columns.push(Column::Band(b)),
                (BandKind::Categorical, CategoricalEncoding::Mode) => columns.push(Column::Mode(b)),
                (BandKind::Categorical, CategoricalEncoding::Fractions) => {
                    let mut classes = BTreeSet::new();
                    for s in stacks {
                        for &v in s.bands()[b].data().iter().filter(|v| !v.is_nan()) {
                            classes.insert(code(name, v)?);
                        }
                    }
                    columns.extend(classes.into_iter().map(|c| Column::Fraction(b, c)));
                }
            }
        }
        if coordinates {
            columns.extend([Column::X, Column::Y]);
        }
        Ok(FeatureSpec { bands, columns })
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
                Column::CoarseLst => "lst_bilinear".to_string(),
                Column::Band(b) | Column::Mode(b) => self.bands[*b].clone(),
                Column::Fraction(b, k) => format!("{}={k}", self.bands[*b]),
                Column::X => "x".into(),
                Column::Y => "y".into(),
            })
            .collect()
    }

    /// Checks that a stack has the bands of the spec, in order.
    pub(crate) fn check(&self, stack: &Stack) -> Result<()> {
        check_bands(&self.bands, stack)
    }

    /// The feature rasters of `fine` aggregated onto `fine.grid().coarsen(k)` (block mean of
    /// continuous bands and of class indicators, block mode of class codes), as full coarse
    /// arrays, one per column. A coarse cell with fewer than `min_coverage` of its fine
    /// pixels valid is missing.
    pub(crate) fn coarse_columns(
        &self,
        fine: &Stack,
        k: usize,
        min_coverage: f64,
    ) -> Result<(Grid, Vec<Array2<f32>>)> {
        self.check(fine)?;
        let coarse = fine.grid().coarsen(k)?;
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
                Column::Fraction(b, class) => {
                    let band = &fine.bands()[*b];
                    let ind = indicator(band, *class)?;
                    ind.block_mean(k, min_coverage)?.into_data()
                }
                Column::Mode(b) => block_mode(&fine.bands()[*b], &self.bands[*b], k, min_coverage)?,
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
    /// `lst` is the bilinear coarse LST when the spec has that column.
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
                Column::Band(b) | Column::Mode(b) => stack.bands()[*b].data()[(row, col)],
                Column::Fraction(b, class) => {
                    let v = stack.bands()[*b].data()[(row, col)];
                    is_class(v, *class)
                }
                Column::X => grid.pixel_center(col, row).0 as f32,
                Column::Y => grid.pixel_center(col, row).1 as f32,
            };
        }
    }
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

/// 1 if `v` is the code `class`, 0 for another value, `NaN` if missing.
fn is_class(v: f32, class: i32) -> f32 {
    if v.is_nan() {
        f32::NAN
    } else {
        f32::from(u8::from(v.fract() == 0.0 && v as i32 == class))
    }
}

/// A continuous 0/1 raster: 1 where `band == class`, missing where `band` is missing.
fn indicator(band: &Raster, class: i32) -> Result<Raster> {
    let data = band.data().mapv(|v| is_class(v, class));
    Ok(Raster::new(band.grid().clone(), data)?)
}

/// The most frequent class in every `k × k` block among valid pixels (ties: smallest code);
/// missing when fewer than `min_coverage` of the block is valid.
fn block_mode(band: &Raster, name: &str, k: usize, min_coverage: f64) -> Result<Array2<f32>> {
    let coarse = band.grid().coarsen(k)?;
    let need = (min_coverage.clamp(0.0, 1.0) * (k * k) as f64).max(1.0);
    let d = band.data();
    let mut out = Array2::from_elem(coarse.shape(), f32::NAN);
    let mut counts: Vec<(i32, usize)> = Vec::new();
    for ((r, c), o) in out.indexed_iter_mut() {
        counts.clear();
        let mut n = 0usize;
        for &v in d
            .slice(ndarray::s![r * k..(r + 1) * k, c * k..(c + 1) * k])
            .iter()
            .filter(|v| !v.is_nan())
        {
            let cl = code(name, v)?;
            n += 1;
            match counts.iter_mut().find(|(k, _)| *k == cl) {
                Some(e) => e.1 += 1,
                None => counts.push((cl, 1)),
            }
        }
        if n as f64 >= need {
            counts.sort_unstable();
            if let Some(&(cl, _)) = counts.iter().rev().max_by_key(|(_, n)| *n) {
                *o = cl as f32;
            }
        }
    }
    Ok(out)
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
    }
}
