//! Coarse conservation: make the block means of a fine field equal a coarse field.

use amun_raster::{resample, Raster, Resampling};

use crate::error::{Error, Result};

/// Options for [`conserve`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConserveParams {
    /// Stop when every coarse block mean is within this many kelvin of the coarse input.
    pub tolerance: f64,
    /// Give up (with an error) after this many back-projection iterations.
    pub max_iterations: usize,
}

impl Default for ConserveParams {
    fn default() -> Self {
        Self {
            tolerance: 1e-4,
            max_iterations: 500,
        }
    }
}

/// Iterative back-projection: repeatedly aggregates `fine` to the coarse grid (block mean,
/// ignoring missing pixels), spreads the coarse residual back onto the fine grid with bilinear
/// interpolation and adds it, until every block mean matches `coarse` within the tolerance.
///
/// Spreading the residual bilinearly (instead of adding a constant per block) keeps block
/// edges invisible. Coarse pixels that are missing, or whose block has no valid fine pixel,
/// are left alone. Returns the corrected field and the number of iterations used.
///
/// # Errors
/// Grid errors if `fine` does not refine `coarse`; [`Error::NotConverged`] if the tolerance is
/// not reached within `max_iterations`.
pub fn conserve(
    fine: &Raster,
    coarse: &Raster,
    params: &ConserveParams,
) -> Result<(Raster, usize)> {
    let k = fine.grid().refinement_of(coarse.grid())?;
    let mut out = fine.clone();
    let mut worst = f64::INFINITY;
    for it in 0..=params.max_iterations {
        let agg = out.block_mean(k, 0.0)?;
        // Coarse residual; zero where either side is missing so nothing is spread from there.
        let mut residual = coarse.clone();
        worst = 0.0f64;
        for (r, a) in residual.data_mut().iter_mut().zip(agg.data().iter()) {
            if r.is_nan() || a.is_nan() {
                *r = 0.0;
            } else {
                *r -= *a;
                worst = worst.max(f64::from(r.abs()));
            }
        }
        if worst <= params.tolerance {
            return Ok((out, it));
        }
        if it == params.max_iterations {
            break;
        }
        let spread = resample(&residual, fine.grid(), Resampling::Bilinear)?;
        for (v, s) in out.data_mut().iter_mut().zip(spread.data().iter()) {
            if !v.is_nan() && !s.is_nan() {
                *v += *s;
            }
        }
    }
    Err(Error::NotConverged {
        what: "coarse conservation",
        iterations: params.max_iterations,
        residual: worst,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use amun_raster::Grid;

    #[test]
    fn block_means_match_and_no_blocks_appear() {
        let coarse_grid = Grid::geographic(0.0, 1.0, 0.1, 8, 8).unwrap();
        let fine_grid = coarse_grid.refine(10).unwrap();
        // A smooth fine field and a coarse target that differs from its block means by a
        // smooth offset field.
        let fine = Raster::from_fn(fine_grid, |(r, c)| {
            290.0 + 0.05 * r as f32 - 0.03 * c as f32
        });
        let mut coarse = fine.block_mean(10, 0.0).unwrap().map(|v| v + 1.5);
        coarse.data_mut()[(3, 4)] += 2.0;
        let (out, iters) = conserve(&fine, &coarse, &ConserveParams::default()).unwrap();
        let agg = out.block_mean(10, 0.0).unwrap();
        let max_err = agg
            .data()
            .iter()
            .zip(coarse.data().iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            max_err < 1e-3,
            "max block error {max_err} after {iters} iterations"
        );
        // No block artefact: the jump across a block edge is not larger than the largest
        // jump inside blocks by more than a small margin.
        let d = out.data();
        let (mut edge, mut inner) = (0.0f32, 0.0f32);
        for r in 0..80 {
            for c in 0..79 {
                let jump = (d[(r, c + 1)] - d[(r, c)]).abs();
                if (c + 1) % 10 == 0 {
                    edge = edge.max(jump);
                } else {
                    inner = inner.max(jump);
                }
            }
        }
        assert!(
            edge < 1.5 * inner + 1e-3,
            "edge jump {edge} vs interior {inner}"
        );
    }
}
