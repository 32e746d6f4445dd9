//! Fitting the prior on a scene's coarse cells and evaluating it on the fine grid.

use amun_indices::{landcover_raster, Igbp};
use amun_raster::{bilinear_spread, BandKind, BlockStats, Grid, Raster, Stack, Window};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::params::{PriorKind, PriorParams, PriorValidParams};
use crate::regression::{fit, robust_std, Fit};

/// How a covariate band enters the prior's linear model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "class")]
pub enum Transform {
    /// The value as it is.
    Identity,
    /// The cosine of a direction in degrees (aspect → northness).
    CosDegrees,
    /// The sine of a direction in degrees (aspect → eastness).
    SinDegrees,
    /// 1 where a land-cover band holds this IGBP class, else 0.
    Class(u8),
}

/// One term of the prior's linear model: `weight × transform(band)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Term {
    /// The covariate band.
    pub band: String,
    /// How the band's value enters.
    pub transform: Transform,
    /// The coefficient (kelvin per unit of the transformed value; K/m for elevation).
    pub weight: f64,
}

impl Term {
    fn new(band: &str, transform: Transform) -> Self {
        Self {
            band: band.to_string(),
            transform,
            weight: 0.0,
        }
    }

    /// The transformed value of one pixel (`NaN` stays `NaN`).
    fn value(&self, v: f32) -> f32 {
        if v.is_nan() {
            return f32::NAN;
        }
        match self.transform {
            Transform::Identity => v,
            Transform::CosDegrees => f64::from(v).to_radians().cos() as f32,
            Transform::SinDegrees => f64::from(v).to_radians().sin() as f32,
            Transform::Class(code) => f32::from(u8::from((v - f32::from(code)).abs() < 0.5)),
        }
    }

    /// A readable name: `elevation`, `cos(aspect)`, `landcover=13`.
    pub fn name(&self) -> String {
        match self.transform {
            Transform::Identity => self.band.clone(),
            Transform::CosDegrees => format!("cos({})", self.band),
            Transform::SinDegrees => format!("sin({})", self.band),
            Transform::Class(c) => format!("{}={c}", self.band),
        }
    }
}

/// What the fit found, for logs, reports and checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// The kind of prior that was finally used (after any fallback).
    pub kind: PriorKind,
    /// Coarse cells the regression used.
    pub cells: usize,
    /// The elevation coefficient (K/m), when elevation is a term.
    pub lapse_rate: Option<f64>,
    /// Its standard error (K/m), when fitted.
    pub lapse_rate_se: Option<f64>,
    /// Why the fitted model was not used (and what was used instead), if it was not.
    pub fallback: Option<String>,
    /// R² of the fit on the local anomalies of the coarse cells (`None` when not fitted).
    pub r2: Option<f64>,
    /// Robust standard deviation (K) of what the model leaves of the coarse local anomalies:
    /// the prior's own uncertainty at the coarse scale.
    pub residual_std: f64,
    /// Back-projection iterations that conservation needed.
    pub conservation_iterations: usize,
    /// The model's terms with their coefficients.
    pub terms: Vec<Term>,
}

impl FitReport {
    /// One line: `elevation prior: lapse rate −5.80 ± 0.12 K/km on 1523 cells (R² 0.61)`.
    pub fn summary(&self) -> String {
        let mut s = format!("{} prior", self.kind.name());
        if let Some(b) = self.lapse_rate {
            s.push_str(&format!(": lapse rate {:+.2}", b * 1000.0));
            if let Some(se) = self.lapse_rate_se {
                s.push_str(&format!(" ± {:.2}", se * 1000.0));
            }
            s.push_str(" K/km");
        }
        if self.kind == PriorKind::Covariates {
            s.push_str(&format!(" ({} terms)", self.terms.len()));
        }
        s.push_str(&format!(" on {} cells", self.cells));
        if let Some(r2) = self.r2 {
            s.push_str(&format!(" (R² {r2:.2} of local anomalies)"));
        }
        if let Some(f) = &self.fallback {
            s.push_str(&format!("; {f}"));
        }
        s
    }
}

/// A prior fitted on one scene: evaluates the fine field on the scene's fine grid or any
/// window of it.
///
/// The field is `B(R) + Σ w_j x_j`, where `x_j` are the fine covariate terms, `B` is
/// bilinear interpolation from the coarse grid, and `R` is a coarse field chosen so that
/// every block mean equals the coarse LST (within the tolerance): the prior keeps the
/// coarse field by construction. With no term (weights 0) it is the conservative bilinear
/// interpolation of the coarse LST.
#[derive(Debug, Clone)]
pub struct Prior {
    fine: Grid,
    k: usize,
    terms: Vec<Term>,
    reduced: Array2<f32>,
    parent: Array2<bool>,
    coarse_residual: Raster,
    report: FitReport,
}

impl PriorParams {
    /// Checks the parameters and fits (see [`PriorValidParams::fit`]).
    ///
    /// # Errors
    /// As [`PriorParams::check`] and [`PriorValidParams::fit`].
    pub fn fit(&self, coarse_lst: &Raster, fine_covariates: &Stack) -> Result<Prior> {
        self.fit_on(coarse_lst, coarse_lst, fine_covariates)
    }

    /// Checks the parameters and fits on another field (see [`PriorValidParams::fit_on`]).
    ///
    /// # Errors
    /// As [`PriorParams::check`] and [`PriorValidParams::fit_on`].
    pub fn fit_on(
        &self,
        fit_lst: &Raster,
        coarse_lst: &Raster,
        fine_covariates: &Stack,
    ) -> Result<Prior> {
        self.clone()
            .check()?
            .fit_on(fit_lst, coarse_lst, fine_covariates)
    }
}

/// A coarse field's value at every cell minus its mean over the valid cells of the
/// `(2r + 1)²` box around it (`NaN` where the cell is missing).
fn local_anomaly(f: &Array2<f64>, r: usize) -> Array2<f64> {
    let (h, w) = f.dim();
    let mut sum = Array2::<f64>::zeros((h + 1, w + 1));
    let mut cnt = Array2::<f64>::zeros((h + 1, w + 1));
    for i in 0..h {
        for j in 0..w {
            let v = f[(i, j)];
            let (s, c) = if v.is_nan() { (0.0, 0.0) } else { (v, 1.0) };
            sum[(i + 1, j + 1)] = s + sum[(i, j + 1)] + sum[(i + 1, j)] - sum[(i, j)];
            cnt[(i + 1, j + 1)] = c + cnt[(i, j + 1)] + cnt[(i + 1, j)] - cnt[(i, j)];
        }
    }
    Array2::from_shape_fn((h, w), |(i, j)| {
        let v = f[(i, j)];
        if v.is_nan() {
            return f64::NAN;
        }
        let (i0, i1) = (i.saturating_sub(r), (i + r + 1).min(h));
        let (j0, j1) = (j.saturating_sub(r), (j + r + 1).min(w));
        let box_sum = |t: &Array2<f64>| t[(i1, j1)] - t[(i0, j1)] - t[(i1, j0)] + t[(i0, j0)];
        v - box_sum(&sum) / box_sum(&cnt)
    })
}

/// Fills missing cells with the mean of their valid neighbours, pass after pass.
fn inpaint(f: &Array2<f32>) -> Option<Array2<f32>> {
    let mut out = f.clone();
    if out.iter().all(|v| v.is_nan()) {
        return None;
    }
    let (h, w) = out.dim();
    while out.iter().any(|v| v.is_nan()) {
        let prev = out.clone();
        for i in 0..h {
            for j in 0..w {
                if !prev[(i, j)].is_nan() {
                    continue;
                }
                let (mut s, mut n) = (0.0f64, 0u32);
                for di in -1isize..=1 {
                    for dj in -1isize..=1 {
                        let (a, b) = (i as isize + di, j as isize + dj);
                        if a < 0 || b < 0 || a >= h as isize || b >= w as isize {
                            continue;
                        }
                        let v = prev[(a as usize, b as usize)];
                        if !v.is_nan() {
                            s += f64::from(v);
                            n += 1;
                        }
                    }
                }
                if n > 0 {
                    out[(i, j)] = (s / f64::from(n)) as f32;
                }
            }
        }
    }
    Some(out)
}

/// `Σ w_j x_j` of the terms on a stack's pixels (`NaN` where a band is missing).
fn term_sum(terms: &[Term], stack: &Stack) -> Result<Array2<f32>> {
    let mut out = Array2::<f32>::zeros(stack.grid().shape());
    for t in terms {
        let band = band(stack, &t.band)?;
        let wt = t.weight as f32;
        ndarray::Zip::from(&mut out)
            .and(band.data())
            .for_each(|o, &v| *o += wt * t.value(v));
    }
    Ok(out)
}

fn band<'a>(stack: &'a Stack, name: &str) -> Result<&'a Raster> {
    stack.get(name).ok_or_else(|| Error::MissingCovariate {
        name: name.to_string(),
        available: stack.names().join(", "),
    })
}

/// The candidate terms of a kind on a stack.
fn candidate_terms(p: &PriorParams, kind: PriorKind, stack: &Stack) -> Result<Vec<Term>> {
    match kind {
        PriorKind::Elevation => {
            band(stack, &p.elevation_band)?;
            Ok(vec![Term::new(&p.elevation_band, Transform::Identity)])
        }
        PriorKind::Covariates => {
            let mut terms = Vec::new();
            if stack.get(&p.elevation_band).is_some() {
                terms.push(Term::new(&p.elevation_band, Transform::Identity));
            }
            for (name, b) in stack.iter() {
                if name == p.elevation_band {
                    continue;
                }
                if b.kind() == BandKind::Categorical {
                    let codes = landcover_raster(b.clone())?;
                    let mut counts = [0usize; 18];
                    let mut n = 0usize;
                    for v in codes.data().iter().filter(|v| !v.is_nan()) {
                        counts[*v as usize] += 1;
                        n += 1;
                    }
                    // Classes covering at least 1 % of the pixels, but the most frequent
                    // (the reference level: the indicators of all classes sum to one).
                    let top = (1..18).max_by_key(|&c| counts[c]).unwrap_or(0);
                    for c in Igbp::ALL {
                        let code = usize::from(c.code());
                        if code != top && counts[code] * 100 >= n.max(1) {
                            terms.push(Term::new(name, Transform::Class(c.code())));
                        }
                    }
                } else if name == "aspect" {
                    terms.push(Term::new(name, Transform::CosDegrees));
                    terms.push(Term::new(name, Transform::SinDegrees));
                } else {
                    terms.push(Term::new(name, Transform::Identity));
                }
            }
            Ok(terms)
        }
    }
}

/// Where `window` starts in `fine` (row, column), if it is a window of it.
fn window_offset(fine: &Grid, window: &Grid) -> Option<(usize, usize)> {
    let (f, w) = (fine.transform(), window.transform());
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300);
    if !close(f.pixel_width, w.pixel_width) || !close(f.pixel_height, w.pixel_height) {
        return None;
    }
    let col = (w.origin_x - f.origin_x) / f.pixel_width;
    let row = (w.origin_y - f.origin_y) / f.pixel_height;
    let (c, r) = (col.round(), row.round());
    if (col - c).abs() > 1e-6 || (row - r).abs() > 1e-6 || c < 0.0 || r < 0.0 {
        return None;
    }
    let (c, r) = (c as usize, r as usize);
    (c + window.width() <= fine.width() && r + window.height() <= fine.height()).then_some((r, c))
}

impl PriorValidParams {
    /// Fits the prior on a scene: the linear model on the local anomalies of the coarse
    /// cells (coarse LST against the block means of the covariate terms), the reliability
    /// checks with their fallback, and the conservative coarse field.
    ///
    /// # Errors
    /// Grid errors if the covariates' grid does not refine the LST grid;
    /// [`Error::MissingCovariate`] if the elevation prior has no elevation band;
    /// [`Error::NoValidCell`]; land-cover errors; [`Error::Singular`].
    pub fn fit(&self, coarse_lst: &Raster, fine_covariates: &Stack) -> Result<Prior> {
        self.fit_on(coarse_lst, coarse_lst, fine_covariates)
    }

    /// The prior of `coarse_lst` on `fine_covariates`' grid with coefficients fitted on
    /// another field of the scene, `fit_lst`: a grid that the covariates' grid refines by any
    /// integer factor, 1 included. [`PriorValidParams::fit`] is `fit_on(coarse_lst, …)`.
    ///
    /// For a training pair one scale up (0.1° LST as the label, 1° as the input): there the
    /// input holds too few cells for a covariate model (a 64 × 64-cell region gives 6 × 6),
    /// and the prior would fall back to elevation alone — not the prior the network corrects
    /// at the target scale, which is fitted on the 0.1° cells. Fitted on the label's cells,
    /// the coefficients are those of the target scale's prior; the input still sets the
    /// block means that the prior keeps. `coarse_residual` and the report then describe the
    /// fit on `fit_lst`'s cells.
    ///
    /// # Errors
    /// As [`PriorValidParams::fit`], for either field.
    pub fn fit_on(
        &self,
        fit_lst: &Raster,
        coarse_lst: &Raster,
        fine_covariates: &Stack,
    ) -> Result<Prior> {
        let k = fine_covariates.grid().refinement_of(coarse_lst.grid())?;
        let k_fit = fine_covariates.grid().refinement_of(fit_lst.grid())?;
        for f in [fit_lst, coarse_lst] {
            if f.valid_count() == 0 {
                let (h, w) = f.grid().shape();
                return Err(Error::NoValidCell {
                    width: w,
                    height: h,
                });
            }
        }
        let (terms, mut report, coarse_residual) =
            self.fit_terms(self.kind, fit_lst, fine_covariates, k_fit)?;
        let (reduced, iterations) = self.reduced_field(&terms, coarse_lst, fine_covariates, k)?;
        report.conservation_iterations = iterations;
        report.terms = terms.clone();
        Ok(Prior {
            fine: fine_covariates.grid().clone(),
            k,
            terms,
            reduced,
            parent: coarse_lst.data().mapv(|v| !v.is_nan()),
            coarse_residual,
            report,
        })
    }

    /// The regression and its checks, for one kind (falling back as documented).
    fn fit_terms(
        &self,
        kind: PriorKind,
        coarse_lst: &Raster,
        stack: &Stack,
        k: usize,
    ) -> Result<(Vec<Term>, FitReport, Raster)> {
        let mut terms = candidate_terms(self, kind, stack)?;
        let d = Design::new(self, &terms, coarse_lst, stack, k)?;
        let (n, p) = (d.rows.len(), terms.len());
        let elev = terms
            .iter()
            .position(|t| t.band == self.elevation_band && t.transform == Transform::Identity);
        let coarse_grid = coarse_lst.grid();
        match self.checked_fit(kind, &d, elev)? {
            Ok(f) => {
                for (j, t) in terms.iter_mut().enumerate() {
                    t.weight = f.weights[j + 2];
                }
                let residual = d.residual_from(&f.residuals);
                let res: Vec<f64> = f.residuals.to_vec();
                let report = FitReport {
                    kind,
                    cells: n,
                    lapse_rate: elev.map(|e| f.weights[e + 2]),
                    lapse_rate_se: elev.map(|e| f.std_errors[e + 2]),
                    fallback: None,
                    r2: Some(f.r2),
                    residual_std: robust_std(&res),
                    conservation_iterations: 0,
                    terms: Vec::new(),
                };
                Ok((terms, report, Raster::new(coarse_grid.clone(), residual)?))
            }
            Err(why) if kind == PriorKind::Covariates => {
                let (t, mut report, res) =
                    match self.fit_terms(PriorKind::Elevation, coarse_lst, stack, k) {
                        Ok(v) => v,
                        // No elevation either: the conservative bilinear field.
                        Err(Error::MissingCovariate { .. }) => {
                            let resid = d.residual_with(&vec![0.0; p]);
                            let report = FitReport {
                                kind: PriorKind::Covariates,
                                cells: n,
                                lapse_rate: None,
                                lapse_rate_se: None,
                                fallback: Some(
                                    "no elevation band: conservative bilinear interpolation".into(),
                                ),
                                r2: None,
                                residual_std: robust_std(&valid_values(&resid)),
                                conservation_iterations: 0,
                                terms: Vec::new(),
                            };
                            (Vec::new(), report, Raster::new(coarse_grid.clone(), resid)?)
                        }
                        Err(e) => return Err(e),
                    };
                let before = report.fallback.take();
                report.fallback = Some(match before {
                    Some(b) => format!("covariate prior not used ({why}); {b}"),
                    None => format!("covariate prior not used ({why}): elevation prior instead"),
                });
                Ok((t, report, res))
            }
            Err(why) => {
                let b = self.fallback_lapse_rate;
                let e = elev.unwrap_or(0);
                terms[e].weight = b;
                let weights: Vec<f64> = (0..p).map(|j| if j == e { b } else { 0.0 }).collect();
                let resid = d.residual_with(&weights);
                let report = FitReport {
                    kind,
                    cells: n,
                    lapse_rate: Some(b),
                    lapse_rate_se: None,
                    fallback: Some(format!("{why}: fixed lapse rate {:+.1} K/km", b * 1000.0)),
                    r2: None,
                    residual_std: robust_std(&valid_values(&resid)),
                    conservation_iterations: 0,
                    terms: Vec::new(),
                };
                Ok((terms, report, Raster::new(coarse_grid.clone(), resid)?))
            }
        }
    }

    /// The regression of the design's coarse LST anomalies on its terms, or why it is not
    /// to be used: too few cells, too little relief, an implausible or uncertain lapse rate.
    fn checked_fit(
        &self,
        kind: PriorKind,
        d: &Design,
        elev: Option<usize>,
    ) -> Result<std::result::Result<Fit, String>> {
        let (n, p) = (d.rows.len(), d.cols.len());
        let needed = match kind {
            PriorKind::Elevation => self.min_cells,
            PriorKind::Covariates => self.min_cells.max(5 * (p + 3)),
        };
        if n < needed {
            return Ok(Err(format!(
                "{n} usable coarse cells, fewer than the {needed} the fit needs"
            )));
        }
        if let Some(e) = elev.filter(|_| kind == PriorKind::Elevation) {
            let z: Vec<f64> = d.rows.iter().map(|&ix| d.cols[e][ix]).collect();
            let spread = (z.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
            if spread < self.min_elevation_spread {
                return Ok(Err(format!(
                    "local elevation anomalies spread only {spread:.1} m (less than {} m)",
                    self.min_elevation_spread
                )));
            }
        }
        // Columns: nuisance x, y (unpenalised), then the terms.
        let x = Array2::from_shape_fn((n, p + 2), |(row, j)| {
            let ix = d.rows[row];
            match j {
                0 => d.xs[ix],
                1 => d.ys[ix],
                _ => d.cols[j - 2][ix],
            }
        });
        let y: Array1<f64> = d.rows.iter().map(|&ix| d.lst[ix]).collect();
        let mut penalised = vec![false, false];
        penalised.extend((0..p).map(|j| kind == PriorKind::Covariates && Some(j) != elev));
        let f = fit(&x, &y, &penalised, self.alpha, self.robust)?;
        if let Some(e) = elev {
            let (b, se) = (f.weights[e + 2], f.std_errors[e + 2]);
            let (lo, hi) = self.lapse_rate_range;
            if !(lo..=hi).contains(&b) {
                return Ok(Err(format!(
                    "fitted lapse rate {:+.2} K/km is outside {:+.1}…{:+.1} K/km",
                    b * 1000.0,
                    lo * 1000.0,
                    hi * 1000.0
                )));
            }
            if se > self.max_lapse_rate_se {
                return Ok(Err(format!(
                    "fitted lapse rate {:+.2} K/km has a standard error of {:.2} K/km (more than {:.2})",
                    b * 1000.0,
                    se * 1000.0,
                    self.max_lapse_rate_se * 1000.0
                )));
            }
        }
        Ok(Ok(f))
    }

    /// The coarse field `R` with `M(B(R) + Σ w x) = LST` on every valid coarse cell.
    fn reduced_field(
        &self,
        terms: &[Term],
        coarse_lst: &Raster,
        stack: &Stack,
        k: usize,
    ) -> Result<(Array2<f32>, usize)> {
        let (fh, fw) = stack.grid().shape();
        let sum = term_sum(terms, stack)?;
        let sum_raster = Raster::new(stack.grid().clone(), sum.clone())?;
        let agg = sum_raster.block_mean(k, 0.0)?;
        let first = ndarray::Zip::from(coarse_lst.data())
            .and(agg.data())
            .map_collect(|&t, &a| t - a);
        let (ch, cw) = coarse_lst.grid().shape();
        let r0 = inpaint(&first).ok_or(Error::NoValidCell {
            width: cw,
            height: ch,
        })?;
        let mut f0 = bilinear_spread(r0.view(), k, 0, 0, fh, fw);
        f0 += &sum;
        let mut stats = BlockStats::new(stack.grid(), coarse_lst.grid())?;
        stats.add(Window::of(stack.grid()), f0.view())?;
        let correction = stats.solve(coarse_lst, &self.conserve)?;
        let s = correction.coarse().mapv(|v| v as f32);
        Ok((r0 + s, correction.iterations()))
    }
}

/// The regression's data on the coarse grid: local anomalies of the LST, of the cell
/// coordinates and of each term's block means, and the cells where all are valid.
struct Design {
    shape: (usize, usize),
    rows: Vec<(usize, usize)>,
    lst: Array2<f64>,
    xs: Array2<f64>,
    ys: Array2<f64>,
    cols: Vec<Array2<f64>>,
}

impl Design {
    fn new(
        params: &PriorValidParams,
        terms: &[Term],
        coarse_lst: &Raster,
        stack: &Stack,
        k: usize,
    ) -> Result<Self> {
        let (h, w) = coarse_lst.grid().shape();
        let r = params.neighbourhood;
        let lst = local_anomaly(&coarse_lst.data().mapv(f64::from), r);
        let xs = local_anomaly(&Array2::from_shape_fn((h, w), |(_, j)| j as f64), r);
        let ys = local_anomaly(&Array2::from_shape_fn((h, w), |(i, _)| i as f64), r);
        let mut cols = Vec::with_capacity(terms.len());
        for t in terms {
            let b = band(stack, &t.band)?;
            let fine = Raster::new(stack.grid().clone(), b.data().mapv(|v| t.value(v)))?;
            let mean = fine.block_mean(k, params.min_coverage)?;
            cols.push(local_anomaly(&mean.data().mapv(f64::from), r));
        }
        let rows: Vec<(usize, usize)> = (0..h)
            .flat_map(|i| (0..w).map(move |j| (i, j)))
            .filter(|&ix| !lst[ix].is_nan() && cols.iter().all(|c| !c[ix].is_nan()))
            .collect();
        Ok(Self {
            shape: (h, w),
            rows,
            lst,
            xs,
            ys,
            cols,
        })
    }

    /// The LST anomaly minus `Σ weight·term` on the usable cells (NaN elsewhere).
    fn residual_with(&self, weights: &[f64]) -> Array2<f32> {
        let mut out = Array2::from_elem(self.shape, f32::NAN);
        for &ix in &self.rows {
            let fitted: f64 = weights
                .iter()
                .zip(&self.cols)
                .map(|(wt, c)| wt * c[ix])
                .sum();
            out[ix] = (self.lst[ix] - fitted) as f32;
        }
        out
    }

    /// A fit's residuals, one per usable cell in order, on the grid (NaN elsewhere).
    fn residual_from(&self, residuals: &Array1<f64>) -> Array2<f32> {
        let mut out = Array2::from_elem(self.shape, f32::NAN);
        for (row, &ix) in self.rows.iter().enumerate() {
            out[ix] = residuals[row] as f32;
        }
        out
    }
}

/// The valid values of a field, in f64.
fn valid_values(a: &Array2<f32>) -> Vec<f64> {
    a.iter()
        .filter(|v| !v.is_nan())
        .map(|&v| f64::from(v))
        .collect()
}

impl Prior {
    /// The prior on `covariates`' grid: the fine grid it was fitted on or a window of it
    /// (with at least the bands of the model's terms). Pixels with a missing covariate of a
    /// term, or under a missing coarse LST cell, are missing.
    ///
    /// # Errors
    /// [`Error::NotAWindow`]; [`Error::MissingCovariate`]; raster errors.
    pub fn field(&self, covariates: &Stack) -> Result<Raster> {
        let g = covariates.grid();
        let (row0, col0) = window_offset(&self.fine, g).ok_or_else(|| Error::NotAWindow {
            grid: g.to_string(),
            fine: self.fine.to_string(),
        })?;
        let (h, w) = g.shape();
        let mut out = bilinear_spread(self.reduced.view(), self.k, row0, col0, h, w);
        out += &term_sum(&self.terms, covariates)?;
        for ((i, j), v) in out.indexed_iter_mut() {
            if !self.parent[((row0 + i) / self.k, (col0 + j) / self.k)] {
                *v = f32::NAN;
            }
        }
        Ok(Raster::new(g.clone(), out)?)
    }

    /// The prior's per-pixel spread on `covariates`' grid: the residual standard deviation of
    /// the scene's fit ([`FitReport::residual_std`]) at every pixel where [`Prior::field`] is
    /// valid, missing elsewhere. One number per scene, measured at the coarse scale: the
    /// fine-scale error also holds what no coarse cell shows, so calibrate the spread (scale
    /// it) on held-out data before reading it as a probability.
    ///
    /// # Errors
    /// As [`Prior::field`].
    pub fn spread(&self, covariates: &Stack) -> Result<Raster> {
        let s = self.report.residual_std as f32;
        Ok(self
            .field(covariates)?
            .map(|v| if v.is_nan() { f32::NAN } else { s }))
    }

    /// What the fit found.
    pub fn report(&self) -> &FitReport {
        &self.report
    }

    /// The model's terms with their coefficients.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// The coarse field `R` interpolated by the prior (no missing cell).
    pub fn reduced(&self) -> &Array2<f32> {
        &self.reduced
    }

    /// The coarse local anomaly the linear model leaves unexplained (K), on the cells the
    /// fit used (missing elsewhere): what a learned method on top of the prior can still
    /// explain at the coarse scale.
    pub fn coarse_residual(&self) -> &Raster {
        &self.coarse_residual
    }

    /// The fine grid the prior was fitted on.
    pub fn fine_grid(&self) -> &Grid {
        &self.fine
    }
}
