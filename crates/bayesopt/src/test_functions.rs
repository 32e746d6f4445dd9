//! Standard test functions for global optimisation, with their search spaces and known
//! minima, as used by the benchmark (`examples/benchmark.rs`) and by
//! `fixtures/bayesopt/skopt_compare.py` (which must define them identically).

use crate::space::{Point, Scale, SearchSpace};

/// Global minimum of [`branin`] (Dixon & Szegő 1978; attained at (−π, 12.275), (π, 2.275),
/// (9.42478, 2.475)).
pub const BRANIN_MIN: f64 = 0.397_887_357_729_738;
/// Global minimum of [`hartmann6`] (attained near (0.20169, 0.150011, 0.476874, 0.275332,
/// 0.311652, 0.6573)).
pub const HARTMANN6_MIN: f64 = -3.322_368_011_415_51;
/// Global minimum of [`mixed`]: Branin's minimum / 10 at `k = 13`, `c = "b"`.
pub const MIXED_MIN: f64 = BRANIN_MIN / 10.0;

/// Branin–Hoo function on `x1 ∈ [−5, 10]`, `x2 ∈ [0, 15]`.
pub fn branin(x1: f64, x2: f64) -> f64 {
    use std::f64::consts::PI;
    let (a, b, c) = (1.0, 5.1 / (4.0 * PI * PI), 5.0 / PI);
    let (r, s, t) = (6.0, 10.0, 1.0 / (8.0 * PI));
    a * (x2 - b * x1 * x1 + c * x1 - r).powi(2) + s * (1.0 - t) * x1.cos() + s
}

const HARTMANN6_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const HARTMANN6_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const HARTMANN6_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];

/// Hartmann 6-D function on `[0, 1]⁶`.
pub fn hartmann6(x: &[f64; 6]) -> f64 {
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6)
                .map(|j| HARTMANN6_A[i][j] * (x[j] - HARTMANN6_P[i][j]).powi(2))
                .sum();
            HARTMANN6_ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

/// A mixed real/integer/categorical function:
/// `branin(x1, x2) / 10 + 0.05 (k − 13)² + offset(c)`, offsets `a` 0.5, `b` 0, `c` 1.
pub fn mixed(x1: f64, x2: f64, k: i64, c: &str) -> f64 {
    let offset = match c {
        "a" => 0.5,
        "b" => 0.0,
        _ => 1.0,
    };
    branin(x1, x2) / 10.0 + 0.05 * ((k - 13) as f64).powi(2) + offset
}

/// Search space of [`branin`]: reals `x1`, `x2`.
pub fn branin_space() -> SearchSpace {
    let dims = SearchSpace::new()
        .real("x1", -5.0, 10.0, Scale::Linear)
        .and_then(|s| s.real("x2", 0.0, 15.0, Scale::Linear));
    // Constant, valid bounds: construction cannot fail (checked by `spaces_are_valid`).
    dims.unwrap_or_default()
}

/// Search space of [`hartmann6`]: reals `x0` … `x5` in `[0, 1]`.
pub fn hartmann6_space() -> SearchSpace {
    (0..6)
        .try_fold(SearchSpace::new(), |s, i| s.real(format!("x{i}"), 0.0, 1.0, Scale::Linear))
        // Constant, valid bounds: cannot fail (checked by `spaces_are_valid`).
        .unwrap_or_default()
}

/// Search space of [`mixed`]: reals `x1`, `x2`, integer `k` in 0..=20, categorical `c`.
pub fn mixed_space() -> SearchSpace {
    SearchSpace::new()
        .real("x1", -5.0, 10.0, Scale::Linear)
        .and_then(|s| s.real("x2", 0.0, 15.0, Scale::Linear))
        .and_then(|s| s.integer("k", 0, 20, Scale::Linear))
        .and_then(|s| s.categorical("c", ["a", "b", "c"]))
        // Constant, valid dimensions: cannot fail (checked by `spaces_are_valid`).
        .unwrap_or_default()
}

/// [`branin`] at a point of [`branin_space`] (NaN if the point lacks a dimension).
pub fn branin_at(p: &Point) -> f64 {
    match (p.real("x1"), p.real("x2")) {
        (Some(a), Some(b)) => branin(a, b),
        _ => f64::NAN,
    }
}

/// [`hartmann6`] at a point of [`hartmann6_space`] (NaN if the point lacks a dimension).
pub fn hartmann6_at(p: &Point) -> f64 {
    let mut x = [0.0; 6];
    for (i, xi) in x.iter_mut().enumerate() {
        match p.real(&format!("x{i}")) {
            Some(v) => *xi = v,
            None => return f64::NAN,
        }
    }
    hartmann6(&x)
}

/// [`mixed`] at a point of [`mixed_space`] (NaN if the point lacks a dimension).
pub fn mixed_at(p: &Point) -> f64 {
    match (p.real("x1"), p.real("x2"), p.integer("k"), p.category("c")) {
        (Some(a), Some(b), Some(k), Some(c)) => mixed(a, b, k, c),
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_minima() {
        // Minimisers from Surjanovic & Bingham's Virtual Library of Simulation Experiments.
        use std::f64::consts::PI;
        assert!((branin(-PI, 12.275) - BRANIN_MIN).abs() < 1e-9);
        assert!((branin(PI, 2.275) - BRANIN_MIN).abs() < 1e-9);
        let x = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
        assert!((hartmann6(&x) - HARTMANN6_MIN).abs() < 1e-5);
        assert!((mixed(PI, 2.275, 13, "b") - MIXED_MIN).abs() < 1e-9);
    }

    #[test]
    fn spaces_are_valid() {
        assert_eq!(branin_space().len(), 2);
        assert_eq!(hartmann6_space().len(), 6);
        assert_eq!(mixed_space().len(), 4);
        let p = Point::new().with("x1", 1.0).with("x2", 2.0).with("k", 3_i64).with("c", "a");
        mixed_space().validate(&p).unwrap();
        assert!(mixed_at(&p).is_finite());
        assert!(branin_at(&Point::new()).is_nan());
    }
}
