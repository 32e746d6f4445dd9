//! Space-filling initial designs in the unit cube.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How the first points (before the Gaussian process takes over) are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialDesign {
    /// Latin hypercube: each dimension's range is cut into as many equal strata as there are
    /// points and every stratum holds exactly one point (McKay, Beckman & Conover 1979).
    #[default]
    LatinHypercube,
    /// Independent uniform points.
    Random,
}

impl InitialDesign {
    /// `n` points of dimension `d` in `[0, 1]^d`.
    pub(crate) fn sample<R: Rng>(&self, n: usize, d: usize, rng: &mut R) -> Vec<Vec<f64>> {
        match self {
            InitialDesign::Random => (0..n)
                .map(|_| (0..d).map(|_| rng.random::<f64>()).collect())
                .collect(),
            InitialDesign::LatinHypercube => {
                let mut points = vec![vec![0.0; d]; n];
                let mut strata: Vec<usize> = (0..n).collect();
                for j in 0..d {
                    strata.shuffle(rng);
                    for (point, &s) in points.iter_mut().zip(&strata) {
                        point[j] = (s as f64 + rng.random::<f64>()) / n as f64;
                    }
                }
                points
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn latin_hypercube_fills_every_stratum_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (n, d) = (17, 4);
        let pts = InitialDesign::LatinHypercube.sample(n, d, &mut rng);
        assert_eq!(pts.len(), n);
        for j in 0..d {
            let mut seen = vec![false; n];
            for p in &pts {
                assert!((0.0..1.0).contains(&p[j]));
                let s = (p[j] * n as f64).floor() as usize;
                assert!(!seen[s], "stratum {s} of dimension {j} used twice");
                seen[s] = true;
            }
            assert!(seen.iter().all(|&b| b));
        }
    }
}
