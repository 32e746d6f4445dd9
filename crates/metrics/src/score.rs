//! Scoring rasters: whole scene, per class, per group of scenes, aggregated back.

use std::collections::BTreeMap;

use amun_raster::Raster;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::{Accumulator, Metrics};
use crate::ssim::{data_range, ssim_map};

/// Checks that an optional mask has the grid's shape.
fn check_mask(mask: Option<&Array2<bool>>, shape: (usize, usize)) -> Result<()> {
    match mask {
        Some(m) if m.dim() != shape => Err(Error::ShapeMismatch {
            what: "mask",
            want_rows: shape.0,
            want_cols: shape.1,
            got_rows: m.nrows(),
            got_cols: m.ncols(),
        }),
        _ => Ok(()),
    }
}

/// Running SSIM sum over one stratum.
#[derive(Debug, Clone, Copy, Default)]
struct SsimSum {
    n: usize,
    sum: f64,
}

impl SsimSum {
    fn push(&mut self, v: f32) {
        if !v.is_nan() {
            self.n += 1;
            self.sum += f64::from(v);
        }
    }
    fn merge(&mut self, o: &SsimSum) {
        self.n += o.n;
        self.sum += o.sum;
    }
    fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

/// Scores `prediction` against `reference` over the pixels valid in both (and `true` in
/// `mask`, if given): RMSE, MAE, bias, R², Pearson r, SSIM (data range of the whole
/// reference, averaged over the scored pixels that have a complete window) and the count.
///
/// # Errors
/// Grid errors if the rasters are not on the same grid; [`Error::ShapeMismatch`] for a mask
/// of another shape; [`Error::NothingToScore`] if no pixel is valid in both.
pub fn score(
    prediction: &Raster,
    reference: &Raster,
    mask: Option<&Array2<bool>>,
) -> Result<Metrics> {
    let (acc, ss) = accumulate(prediction, reference, mask)?;
    acc.finish(ss.mean())
        .ok_or(Error::NothingToScore { what: "pixel" })
}

fn accumulate(
    prediction: &Raster,
    reference: &Raster,
    mask: Option<&Array2<bool>>,
) -> Result<(Accumulator, SsimSum)> {
    prediction.grid().check_same(reference.grid())?;
    check_mask(mask, prediction.grid().shape())?;
    let map = ssim_map(
        prediction,
        reference,
        data_range(reference).unwrap_or(f64::NAN),
    )?;
    let mut acc = Accumulator::default();
    let mut ss = SsimSum::default();
    for ((idx, &p), &r) in prediction.data().indexed_iter().zip(reference.data()) {
        if mask.is_some_and(|m| !m[idx]) {
            continue;
        }
        acc.push(f64::from(p), f64::from(r));
        ss.push(map[idx]);
    }
    Ok((acc, ss))
}

/// Metrics of one class of a categorical raster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class code.
    pub class: i32,
    /// The metrics over the pixels of that class.
    pub metrics: Metrics,
}

/// Scores `prediction` against `reference` separately for each class of `classes` (a raster
/// of integer codes on the same grid, e.g. land cover or [`crate::terrain_classes`]).
/// Pixels whose class is missing are left out; classes without a scored pixel are omitted.
/// SSIM per class is the mean of the scene's SSIM map over the class's pixels.
///
/// # Errors
/// Grid errors if the rasters are not on one grid; [`Error::NotAClass`] for a non-integer
/// class value; [`Error::NothingToScore`] if no pixel is scored in any class.
pub fn score_by_class(
    prediction: &Raster,
    reference: &Raster,
    classes: &Raster,
) -> Result<Vec<ClassMetrics>> {
    prediction.grid().check_same(reference.grid())?;
    prediction.grid().check_same(classes.grid())?;
    let map = ssim_map(
        prediction,
        reference,
        data_range(reference).unwrap_or(f64::NAN),
    )?;
    let mut strata: BTreeMap<i32, (Accumulator, SsimSum)> = BTreeMap::new();
    for ((idx, &c), (&p, &r)) in classes
        .data()
        .indexed_iter()
        .zip(prediction.data().iter().zip(reference.data()))
    {
        if c.is_nan() || p.is_nan() || r.is_nan() {
            continue;
        }
        let code = class_code(c, idx)?;
        let (acc, ss) = strata.entry(code).or_default();
        acc.push(f64::from(p), f64::from(r));
        ss.push(map[idx]);
    }
    let out: Vec<ClassMetrics> = strata
        .into_iter()
        .filter_map(|(class, (acc, ss))| {
            acc.finish(ss.mean())
                .map(|metrics| ClassMetrics { class, metrics })
        })
        .collect();
    if out.is_empty() {
        return Err(Error::NothingToScore { what: "pixel" });
    }
    Ok(out)
}

/// The integer code of a class value.
pub(crate) fn class_code(v: f32, (row, col): (usize, usize)) -> Result<i32> {
    if v.fract() != 0.0 || v.abs() > i32::MAX as f32 {
        return Err(Error::NotAClass { value: v, row, col });
    }
    Ok(v as i32)
}

/// Meteorological season (three-month groups of the calendar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Season {
    /// December, January, February (boreal winter).
    Djf,
    /// March, April, May.
    Mam,
    /// June, July, August (boreal summer).
    Jja,
    /// September, October, November.
    Son,
}

impl Season {
    /// The season of a month (1 = January … 12 = December).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a month outside 1–12.
    pub fn from_month(month: u8) -> Result<Season> {
        match month {
            12 | 1 | 2 => Ok(Season::Djf),
            3..=5 => Ok(Season::Mam),
            6..=8 => Ok(Season::Jja),
            9..=11 => Ok(Season::Son),
            _ => Err(Error::InvalidParameter {
                name: "month",
                value: month.to_string(),
                reason: "must be 1 (January) to 12 (December)",
            }),
        }
    }
}

/// Metrics pooled over the scenes of one group (a month, a season, a year, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics<K> {
    /// The group key.
    pub key: K,
    /// Number of scenes ([`score_grouped`]) or stations
    /// ([`crate::StationReport::by_month`]) pooled.
    pub members: usize,
    /// Metrics over all scored pixels of those scenes; SSIM is the mean of the SSIM maps
    /// over all of them.
    pub metrics: Metrics,
}

/// One prediction and its reference to score in [`score_grouped`], with a group key.
#[derive(Debug, Clone, Copy)]
pub struct ScoredPair<'a, K> {
    /// The group the scene belongs to (e.g. its month or [`Season`]).
    pub key: K,
    /// The prediction.
    pub prediction: &'a Raster,
    /// The reference on the same grid.
    pub reference: &'a Raster,
}

/// Scores several scenes and pools the pixels of the scenes that share a key (e.g. metrics
/// per month or per [`Season`]), in key order. Groups without a scored pixel are omitted.
///
/// # Errors
/// As [`score`] for each scene (grid mismatch); [`Error::NothingToScore`] if nothing at all
/// is scored.
pub fn score_grouped<K: Ord + Clone>(scenes: &[ScoredPair<'_, K>]) -> Result<Vec<GroupMetrics<K>>> {
    let mut groups: BTreeMap<K, (usize, Accumulator, SsimSum)> = BTreeMap::new();
    for s in scenes {
        let (acc, ss) = accumulate(s.prediction, s.reference, None)?;
        let g = groups.entry(s.key.clone()).or_default();
        g.0 += 1;
        g.1.merge(&acc);
        g.2.merge(&ss);
    }
    let out: Vec<_> = groups
        .into_iter()
        .filter_map(|(key, (members, acc, ss))| {
            acc.finish(ss.mean()).map(|metrics| GroupMetrics {
                key,
                members,
                metrics,
            })
        })
        .collect();
    if out.is_empty() {
        return Err(Error::NothingToScore { what: "pixel" });
    }
    Ok(out)
}

/// Aggregated-back validation (the paper's real experiment): the fine prediction is averaged
/// over each coarse cell (block mean of its valid pixels; a cell with fewer than
/// `min_coverage` (0–1) of its fine pixels valid is missing) and scored against the coarse
/// input.
///
/// # Errors
/// Grid errors if the fine grid is not an integer refinement of the coarse grid;
/// [`Error::InvalidParameter`] if `min_coverage` is outside 0–1; [`Error::NothingToScore`].
pub fn aggregated_back(
    fine_prediction: &Raster,
    coarse_input: &Raster,
    min_coverage: f64,
) -> Result<Metrics> {
    if !(0.0..=1.0).contains(&min_coverage) {
        return Err(Error::InvalidParameter {
            name: "min_coverage",
            value: min_coverage.to_string(),
            reason: "must be a fraction in 0..=1",
        });
    }
    let k = fine_prediction.grid().refinement_of(coarse_input.grid())?;
    let agg = fine_prediction.block_mean(k, min_coverage)?;
    score(&agg, coarse_input, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::{BandKind, Grid};

    fn grid(n: usize) -> Grid {
        Grid::geographic(0.0, 1.0, 0.01, n, n).unwrap()
    }

    #[test]
    fn score_matches_formulas_and_honours_mask_and_nodata() {
        let g = grid(4);
        let reference = Raster::from_fn(g.clone(), |(i, j)| (i * 4 + j) as f32);
        let mut pred = reference.map(|v| v + 1.0);
        pred.data_mut()[(0, 0)] = f32::NAN;
        let m = score(&pred, &reference, None).unwrap();
        // Constant offset +1: RMSE = MAE = bias = 1, r = 1; 15 pixels (one nodata).
        assert_eq!(m.n, 15);
        assert!((m.rmse - 1.0).abs() < 1e-12 && (m.bias - 1.0).abs() < 1e-12);
        assert!((m.pearson_r.unwrap() - 1.0).abs() < 1e-12);
        // R² = 1 - 15 / SS_tot with SS_tot of 1..=15 = 15 · (15²-1)/12 = 280.
        assert!((m.r2.unwrap() - (1.0 - 15.0 / 280.0)).abs() < 1e-9);
        assert_eq!(m.ssim, None, "4×4 is smaller than the 11×11 window");
        let mask = Array2::from_shape_fn((4, 4), |(i, _)| i < 2);
        assert_eq!(score(&pred, &reference, Some(&mask)).unwrap().n, 7);
        let bad = Array2::from_elem((3, 4), true);
        assert!(matches!(
            score(&pred, &reference, Some(&bad)),
            Err(Error::ShapeMismatch { .. })
        ));
        let other = Raster::filled(grid(5), 0.0);
        assert!(matches!(
            score(&other, &reference, None),
            Err(Error::Raster(_))
        ));
    }

    #[test]
    fn per_class_and_grouped() {
        let g = grid(20);
        let reference = Raster::from_fn(g.clone(), |(i, j)| 280.0 + (i + j) as f32);
        // Class 1 on the left half is predicted exactly, class 2 two kelvin too warm.
        let classes = Raster::from_fn(g.clone(), |(_, j)| if j < 10 { 1.0 } else { 2.0 })
            .with_kind(BandKind::Categorical);
        let pred = Raster::from_fn(g.clone(), |(i, j)| {
            280.0 + (i + j) as f32 + if j < 10 { 0.0 } else { 2.0 }
        });
        let by = score_by_class(&pred, &reference, &classes).unwrap();
        assert_eq!(by.len(), 2);
        assert_eq!((by[0].class, by[0].metrics.n), (1, 200));
        assert!(by[0].metrics.rmse.abs() < 1e-12);
        assert!((by[1].metrics.bias - 2.0).abs() < 1e-9);
        let frac = classes.map(|v| v + 0.5);
        assert!(matches!(
            score_by_class(&pred, &reference, &frac),
            Err(Error::NotAClass { .. })
        ));

        let scenes = [
            ScoredPair {
                key: Season::Jja,
                prediction: &pred,
                reference: &reference,
            },
            ScoredPair {
                key: Season::Djf,
                prediction: &reference,
                reference: &reference,
            },
            ScoredPair {
                key: Season::Jja,
                prediction: &reference,
                reference: &reference,
            },
        ];
        let g = score_grouped(&scenes).unwrap();
        assert_eq!(g[0].key, Season::Djf);
        assert_eq!(
            (g[1].key, g[1].members, g[1].metrics.n),
            (Season::Jja, 2, 800)
        );
        // JJA pools 200 pixels off by 2 K among 800: RMSE = sqrt(200 · 4 / 800) = 1.
        assert!((g[1].metrics.rmse - 1.0).abs() < 1e-9);
        assert_eq!(Season::from_month(12).unwrap(), Season::Djf);
        assert!(Season::from_month(13).is_err());
    }

    #[test]
    fn aggregated_back_of_a_mass_preserving_field_is_exact() {
        let coarse = Raster::from_fn(grid(3), |(i, j)| 290.0 + (i * 3 + j) as f32);
        let fine_grid = coarse.grid().refine(4).unwrap();
        // Fine field = coarse value + a zero-mean pattern inside each 4×4 block.
        let fine = Raster::from_fn(fine_grid, |(i, j)| {
            let base = 290.0 + ((i / 4) * 3 + j / 4) as f32;
            base + if (i + j) % 2 == 0 { 0.5 } else { -0.5 }
        });
        let m = aggregated_back(&fine, &coarse, 1.0).unwrap();
        assert_eq!(m.n, 9);
        assert!(m.rmse < 1e-5, "{}", m.rmse);
        assert!(aggregated_back(&fine, &coarse, 1.5).is_err());
        let wrong = Raster::filled(Grid::geographic(0.5, 1.0, 0.01, 3, 3).unwrap(), 0.0);
        assert!(aggregated_back(&fine, &wrong, 0.5).is_err());
    }

    /// Reads the committed fixture pair (see `fixtures/metrics/README.md`).
    fn fixture_pair() -> (Raster, Raster) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/metrics/");
        let asc = std::fs::read_to_string(format!("{dir}reference.asc")).unwrap();
        let reference: Vec<f32> = asc
            .lines()
            .filter(|l| !l.starts_with(|c: char| c.is_ascii_alphabetic()))
            .flat_map(|l| l.split_whitespace().map(|v| v.parse::<f32>().unwrap()))
            .collect();
        let csv = std::fs::read_to_string(format!("{dir}prediction.csv")).unwrap();
        let prediction: Vec<f32> = csv
            .lines()
            .flat_map(|l| l.split(',').map(|v| v.trim().parse::<f32>().unwrap()))
            .collect();
        let g = Grid::new(
            30,
            24,
            amun_raster::GeoTransform::new(0.0, 0.0, 90.0, -90.0).unwrap(),
            None,
        )
        .unwrap();
        let arr = |v| Array2::from_shape_vec((24, 30), v).unwrap();
        (
            Raster::new(g.clone(), arr(prediction)).unwrap(),
            Raster::new(g, arr(reference)).unwrap(),
        )
    }

    #[test]
    fn matches_skimage_and_scikit_learn_on_the_fixture() {
        // Reference values computed once by fixtures/metrics/make_reference.py with
        // skimage.metrics.structural_similarity (gaussian_weights=True, sigma=1.5,
        // use_sample_covariance=False, data_range=max-min of the reference) and
        // sklearn.metrics (mean_squared_error, mean_absolute_error, r2_score).
        let want: serde_json::Value =
            serde_json::from_str(include_str!("../../../fixtures/metrics/expected.json")).unwrap();
        let w = |k: &str| want[k].as_f64().unwrap();
        let (pred, reference) = fixture_pair();
        let m = score(&pred, &reference, None).unwrap();
        assert_eq!(Some(m.n as u64), want["n"].as_u64());
        for (got, key) in [
            (m.rmse, "rmse"),
            (m.mae, "mae"),
            (m.bias, "bias"),
            (m.r2.unwrap(), "r2"),
            (m.pearson_r.unwrap(), "pearson_r"),
            (m.ssim.unwrap(), "ssim"),
        ] {
            assert!((got - w(key)).abs() < 1e-6, "{key}: {got} vs {}", w(key));
        }
        let map = crate::ssim_map(&pred, &reference, w("data_range")).unwrap();
        assert!((f64::from(map[(10, 12)]) - w("ssim_map_10_12")).abs() < 1e-6);
    }
}
