//! Search spaces: named real, integer and categorical dimensions, and the points in them.
//!
//! Internally every point has two encodings:
//! - the *unit* encoding, one coordinate in `[0, 1]` per dimension, in which initial designs
//!   are drawn and the acquisition function is searched;
//! - the *feature* encoding seen by the Gaussian process: a real coordinate is its unit value,
//!   an integer is rounded to its nearest admissible value and re-encoded, a categorical
//!   dimension with `k` choices becomes `k` one-hot coordinates. Because the rounding and the
//!   one-hot projection happen inside the model's input transform (Garrido-Merchán &
//!   Hernández-Lobato 2020), the surrogate is flat between admissible values and never
//!   proposes a point that only differs from an observed one by an inadmissible fraction.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a numeric dimension is spread over its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Uniform in the value.
    Linear,
    /// Uniform in the logarithm of the value (bounds must be positive).
    Log,
}

/// The admissible values of one dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Domain {
    /// A real number in `[low, high]`.
    Real {
        /// Lower bound (inclusive).
        low: f64,
        /// Upper bound (inclusive).
        high: f64,
        /// Linear or logarithmic.
        scale: Scale,
    },
    /// An integer in `low..=high`.
    Integer {
        /// Lower bound (inclusive).
        low: i64,
        /// Upper bound (inclusive).
        high: i64,
        /// Linear or logarithmic.
        scale: Scale,
    },
    /// One of a list of named choices.
    Categorical {
        /// The choices, in a fixed order.
        choices: Vec<String>,
    },
}

impl Domain {
    /// Width of this dimension in the Gaussian process's feature encoding.
    fn n_features(&self) -> usize {
        match self {
            Domain::Categorical { choices } => choices.len(),
            _ => 1,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Domain::Real { .. } => "real",
            Domain::Integer { .. } => "integer",
            Domain::Categorical { .. } => "categorical",
        }
    }
}

/// A named dimension of a [`SearchSpace`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dimension {
    name: String,
    domain: Domain,
}

impl Dimension {
    /// The dimension's name (the key of its value in a [`Point`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dimension's admissible values.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }
}

/// The value of one dimension of a [`Point`].
///
/// Serialised untagged: a JSON float, integer or string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    // `Integer` comes first: untagged deserialisation tries variants in order, and a JSON
    // integer must not become a `Real` (serde_json writes reals with a decimal point).
    /// Value of an integer dimension.
    Integer(i64),
    /// Value of a real dimension.
    Real(f64),
    /// Value of a categorical dimension.
    Category(String),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Real(_) => "real",
            Value::Integer(_) => "integer",
            Value::Category(_) => "categorical",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Real(v) => write!(f, "{v}"),
            Value::Integer(v) => write!(f, "{v}"),
            Value::Category(v) => f.write_str(v),
        }
    }
}

/// A point of a search space: one [`Value`] per named dimension.
///
/// Serialised as a JSON object `{"name": value, …}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Point {
    values: BTreeMap<String, Value>,
}

impl Point {
    /// An empty point; fill it with [`Point::with`].
    pub fn new() -> Self {
        Self::default()
    }

    /// This point with `name` set to `value` (replacing any previous value).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.values.insert(name.into(), value.into());
        self
    }

    /// The value of dimension `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// The value of real dimension `name` (`None` if absent or not real).
    pub fn real(&self, name: &str) -> Option<f64> {
        match self.values.get(name) {
            Some(Value::Real(v)) => Some(*v),
            _ => None,
        }
    }

    /// The value of integer dimension `name` (`None` if absent or not an integer).
    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Value::Integer(v)) => Some(*v),
            _ => None,
        }
    }

    /// The value of categorical dimension `name` (`None` if absent or not categorical).
    pub fn category(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Category(v)) => Some(v),
            _ => None,
        }
    }

    /// `(name, value)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of dimensions set.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no dimension is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in &self.values {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Category(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Category(v)
    }
}

/// An ordered set of named dimensions.
///
/// Built with [`SearchSpace::new`] and the chained [`real`](SearchSpace::real),
/// [`integer`](SearchSpace::integer) and [`categorical`](SearchSpace::categorical) methods,
/// each of which validates its dimension. Deserialisation validates too.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<Dimension>", into = "Vec<Dimension>")]
pub struct SearchSpace {
    dims: Vec<Dimension>,
}

impl TryFrom<Vec<Dimension>> for SearchSpace {
    type Error = Error;

    fn try_from(dims: Vec<Dimension>) -> Result<Self> {
        let mut space = SearchSpace::new();
        for dim in dims {
            space = space.push(dim)?;
        }
        Ok(space)
    }
}

impl From<SearchSpace> for Vec<Dimension> {
    fn from(space: SearchSpace) -> Self {
        space.dims
    }
}

impl SearchSpace {
    /// An empty search space.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a real dimension `name` in `[low, high]`.
    ///
    /// # Errors
    /// [`Error::InvalidBounds`] if a bound is not finite, `low >= high`, or `scale` is
    /// [`Scale::Log`] and `low <= 0`; [`Error::DuplicateDimension`] if `name` is taken.
    pub fn real(self, name: impl Into<String>, low: f64, high: f64, scale: Scale) -> Result<Self> {
        self.push(Dimension {
            name: name.into(),
            domain: Domain::Real { low, high, scale },
        })
    }

    /// Adds an integer dimension `name` in `low..=high`.
    ///
    /// # Errors
    /// [`Error::InvalidBounds`] if `low >= high` or `scale` is [`Scale::Log`] and `low <= 0`;
    /// [`Error::DuplicateDimension`] if `name` is taken.
    pub fn integer(
        self,
        name: impl Into<String>,
        low: i64,
        high: i64,
        scale: Scale,
    ) -> Result<Self> {
        self.push(Dimension {
            name: name.into(),
            domain: Domain::Integer { low, high, scale },
        })
    }

    /// Adds a categorical dimension `name` with the given choices.
    ///
    /// # Errors
    /// [`Error::InvalidChoices`] if there are no choices or one is repeated;
    /// [`Error::DuplicateDimension`] if `name` is taken.
    pub fn categorical<I, S>(self, name: impl Into<String>, choices: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.push(Dimension {
            name: name.into(),
            domain: Domain::Categorical {
                choices: choices.into_iter().map(Into::into).collect(),
            },
        })
    }

    /// The search space of the AMUN paper's hyperparameter tuning (`docs/design.md` §7):
    ///
    /// | name | domain |
    /// |---|---|
    /// | `solver` | categorical: `sgdm`, `adam`, `rmsprop` |
    /// | `learning_rate` | real 1e-5 … 1e-2, log scale |
    /// | `epochs` | integer 10 … 150 |
    /// | `batch_size` | integer 8 … 128, log scale |
    /// | `l2` | real 1e-6 … 1e-2, log scale |
    ///
    /// The integer ranges bracket the paper's final choice (99 epochs, batch 34).
    pub fn amun_paper() -> Self {
        let dims = vec![
            Dimension {
                name: "solver".into(),
                domain: Domain::Categorical {
                    choices: vec!["sgdm".into(), "adam".into(), "rmsprop".into()],
                },
            },
            Dimension {
                name: "learning_rate".into(),
                domain: Domain::Real {
                    low: 1e-5,
                    high: 1e-2,
                    scale: Scale::Log,
                },
            },
            Dimension {
                name: "epochs".into(),
                domain: Domain::Integer {
                    low: 10,
                    high: 150,
                    scale: Scale::Linear,
                },
            },
            Dimension {
                name: "batch_size".into(),
                domain: Domain::Integer {
                    low: 8,
                    high: 128,
                    scale: Scale::Log,
                },
            },
            Dimension {
                name: "l2".into(),
                domain: Domain::Real {
                    low: 1e-6,
                    high: 1e-2,
                    scale: Scale::Log,
                },
            },
        ];
        // The dimensions above are valid by inspection; the unit test `paper_space_is_valid`
        // checks them through the validating constructor.
        SearchSpace { dims }
    }

    fn push(mut self, dim: Dimension) -> Result<Self> {
        validate_dimension(&dim)?;
        if self.dims.iter().any(|d| d.name == dim.name) {
            return Err(Error::DuplicateDimension { name: dim.name });
        }
        self.dims.push(dim);
        Ok(self)
    }

    /// The dimensions, in definition order.
    pub fn dimensions(&self) -> &[Dimension] {
        &self.dims
    }

    /// The dimension called `name`.
    pub fn dimension(&self, name: &str) -> Option<&Dimension> {
        self.dims.iter().find(|d| d.name == name)
    }

    /// Number of dimensions.
    pub fn len(&self) -> usize {
        self.dims.len()
    }

    /// Whether the space has no dimensions.
    pub fn is_empty(&self) -> bool {
        self.dims.is_empty()
    }

    /// Checks that `point` has exactly this space's dimensions, each with an admissible value.
    ///
    /// # Errors
    /// [`Error::MissingDimension`], [`Error::UnknownDimension`], [`Error::WrongValueType`],
    /// [`Error::OutOfBounds`] or [`Error::UnknownChoice`], naming the first offending dimension.
    pub fn validate(&self, point: &Point) -> Result<()> {
        self.to_unit(point).map(|_| ())
    }

    /// Width of the Gaussian process's feature encoding.
    pub(crate) fn n_features(&self) -> usize {
        self.dims.iter().map(|d| d.domain.n_features()).sum()
    }

    /// Unit encoding of a point (one coordinate in `[0, 1]` per dimension), validating it.
    pub(crate) fn to_unit(&self, point: &Point) -> Result<Vec<f64>> {
        if let Some((name, _)) = point.iter().find(|(n, _)| self.dimension(n).is_none()) {
            return Err(Error::UnknownDimension { name: name.into() });
        }
        self.dims
            .iter()
            .map(|dim| {
                let value = point
                    .get(&dim.name)
                    .ok_or_else(|| Error::MissingDimension {
                        name: dim.name.clone(),
                    })?;
                unit_of(dim, value)
            })
            .collect()
    }

    /// The point whose unit encoding is (nearest to) `u`; coordinates are clamped to `[0, 1]`.
    pub(crate) fn point_at_unit(&self, u: &[f64]) -> Point {
        let mut point = Point::new();
        for (dim, &ui) in self.dims.iter().zip(u) {
            let ui = clamp_unit(ui);
            let value = match &dim.domain {
                Domain::Real { low, high, scale } => {
                    Value::Real(from_scaled(ui, *low, *high, *scale).clamp(*low, *high))
                }
                Domain::Integer { low, high, scale } => {
                    Value::Integer(round_integer(ui, *low, *high, *scale))
                }
                Domain::Categorical { choices } => {
                    // `choices` is non-empty (validated), so the index is in range.
                    Value::Category(choices[category_index(ui, choices.len())].clone())
                }
            };
            point.values.insert(dim.name.clone(), value);
        }
        point
    }

    /// Snaps a unit encoding onto admissible values (integers rounded, categories binned), so
    /// that `snap(u)` is the unit encoding of `point_at_unit(u)` up to rounding of reals.
    pub(crate) fn snap(&self, u: &mut [f64]) {
        for (dim, ui) in self.dims.iter().zip(u.iter_mut()) {
            *ui = clamp_unit(*ui);
            match &dim.domain {
                Domain::Real { .. } => {}
                Domain::Integer { low, high, scale } => {
                    let v = round_integer(*ui, *low, *high, *scale);
                    *ui = to_scaled(v as f64, *low as f64, *high as f64, *scale);
                }
                Domain::Categorical { choices } => {
                    let k = choices.len();
                    *ui = (category_index(*ui, k) as f64 + 0.5) / k as f64;
                }
            }
        }
    }

    /// Feature encoding of a unit vector, written into `out` (length [`Self::n_features`]).
    pub(crate) fn features(&self, u: &[f64], out: &mut [f64]) {
        let mut j = 0;
        for (dim, &ui) in self.dims.iter().zip(u) {
            let ui = clamp_unit(ui);
            match &dim.domain {
                Domain::Real { .. } => {
                    out[j] = ui;
                    j += 1;
                }
                Domain::Integer { low, high, scale } => {
                    let v = round_integer(ui, *low, *high, *scale);
                    out[j] = to_scaled(v as f64, *low as f64, *high as f64, *scale);
                    j += 1;
                }
                Domain::Categorical { choices } => {
                    let k = choices.len();
                    let idx = category_index(ui, k);
                    for (c, o) in out[j..j + k].iter_mut().enumerate() {
                        *o = if c == idx { 1.0 } else { 0.0 };
                    }
                    j += k;
                }
            }
        }
    }

    /// Unit vectors one admissible step away from `u` in one non-real dimension: the
    /// neighbouring integers, or every other choice of a categorical dimension.
    pub(crate) fn discrete_neighbours(&self, u: &[f64]) -> Vec<Vec<f64>> {
        let mut out = Vec::new();
        for (i, (dim, &ui)) in self.dims.iter().zip(u).enumerate() {
            match &dim.domain {
                Domain::Real { .. } => {}
                Domain::Integer { low, high, scale } => {
                    let v = round_integer(clamp_unit(ui), *low, *high, *scale);
                    for w in [v.saturating_sub(1), v.saturating_add(1)] {
                        if w != v && (*low..=*high).contains(&w) {
                            let mut n = u.to_vec();
                            n[i] = to_scaled(w as f64, *low as f64, *high as f64, *scale);
                            out.push(n);
                        }
                    }
                }
                Domain::Categorical { choices } => {
                    let k = choices.len();
                    let idx = category_index(clamp_unit(ui), k);
                    for c in (0..k).filter(|&c| c != idx) {
                        let mut n = u.to_vec();
                        n[i] = (c as f64 + 0.5) / k as f64;
                        out.push(n);
                    }
                }
            }
        }
        out
    }

    /// For each dimension: `Some(feature index)` if it is real (differentiable), else `None`.
    pub(crate) fn real_feature_indices(&self) -> Vec<Option<usize>> {
        let mut j = 0;
        self.dims
            .iter()
            .map(|d| {
                let here = j;
                j += d.domain.n_features();
                matches!(d.domain, Domain::Real { .. }).then_some(here)
            })
            .collect()
    }
}

fn validate_dimension(dim: &Dimension) -> Result<()> {
    let bad = |low: f64, high: f64, reason| Error::InvalidBounds {
        name: dim.name.clone(),
        low,
        high,
        reason,
    };
    match &dim.domain {
        Domain::Real { low, high, scale } => {
            let (low, high) = (*low, *high);
            if !low.is_finite() || !high.is_finite() {
                return Err(bad(low, high, "bounds must be finite"));
            }
            if low >= high {
                return Err(bad(low, high, "low must be below high"));
            }
            if *scale == Scale::Log && low <= 0.0 {
                return Err(bad(low, high, "a log scale needs positive bounds"));
            }
        }
        Domain::Integer { low, high, scale } => {
            let (lf, hf) = (*low as f64, *high as f64);
            if low >= high {
                return Err(bad(lf, hf, "low must be below high"));
            }
            if *scale == Scale::Log && *low <= 0 {
                return Err(bad(lf, hf, "a log scale needs positive bounds"));
            }
        }
        Domain::Categorical { choices } => {
            if choices.is_empty() {
                return Err(Error::InvalidChoices {
                    name: dim.name.clone(),
                    reason: "no choices",
                });
            }
            for (i, c) in choices.iter().enumerate() {
                if choices[..i].contains(c) {
                    return Err(Error::InvalidChoices {
                        name: dim.name.clone(),
                        reason: "a choice is repeated",
                    });
                }
            }
        }
    }
    Ok(())
}

fn unit_of(dim: &Dimension, value: &Value) -> Result<f64> {
    let wrong = || Error::WrongValueType {
        name: dim.name.clone(),
        expected: dim.domain.kind(),
        got: value.kind(),
    };
    match (&dim.domain, value) {
        (Domain::Real { low, high, scale }, Value::Real(v)) => {
            if !(v.is_finite() && *v >= *low && *v <= *high) {
                return Err(Error::OutOfBounds {
                    name: dim.name.clone(),
                    value: *v,
                    low: *low,
                    high: *high,
                });
            }
            Ok(to_scaled(*v, *low, *high, *scale))
        }
        (Domain::Integer { low, high, scale }, Value::Integer(v)) => {
            if v < low || v > high {
                return Err(Error::OutOfBounds {
                    name: dim.name.clone(),
                    value: *v as f64,
                    low: *low as f64,
                    high: *high as f64,
                });
            }
            Ok(to_scaled(*v as f64, *low as f64, *high as f64, *scale))
        }
        (Domain::Categorical { choices }, Value::Category(v)) => {
            let idx = choices
                .iter()
                .position(|c| c == v)
                .ok_or_else(|| Error::UnknownChoice {
                    name: dim.name.clone(),
                    value: v.clone(),
                    choices: choices.join(", "),
                })?;
            Ok((idx as f64 + 0.5) / choices.len() as f64)
        }
        _ => Err(wrong()),
    }
}

fn clamp_unit(u: f64) -> f64 {
    if u.is_nan() {
        0.5
    } else {
        u.clamp(0.0, 1.0)
    }
}

fn to_scaled(v: f64, low: f64, high: f64, scale: Scale) -> f64 {
    match scale {
        Scale::Linear => (v - low) / (high - low),
        Scale::Log => (v.ln() - low.ln()) / (high.ln() - low.ln()),
    }
}

fn from_scaled(u: f64, low: f64, high: f64, scale: Scale) -> f64 {
    match scale {
        Scale::Linear => low + u * (high - low),
        Scale::Log => (low.ln() + u * (high.ln() - low.ln())).exp(),
    }
}

/// The admissible integer nearest (in the dimension's scale) to unit coordinate `u`.
fn round_integer(u: f64, low: i64, high: i64, scale: Scale) -> i64 {
    let v = from_scaled(u, low as f64, high as f64, scale);
    let (lo, hi) = (v.floor(), v.ceil());
    // Nearest in the encoded (possibly log) scale, so that the rounding agrees with the
    // distances the kernel sees.
    let pick = if (to_scaled(lo, low as f64, high as f64, scale) - u).abs()
        <= (to_scaled(hi, low as f64, high as f64, scale) - u).abs()
    {
        lo
    } else {
        hi
    };
    (pick as i64).clamp(low, high)
}

fn category_index(u: f64, k: usize) -> usize {
    ((u * k as f64).floor() as usize).min(k - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixed() -> SearchSpace {
        SearchSpace::new()
            .real("x", -5.0, 10.0, Scale::Linear)
            .unwrap()
            .real("lr", 1e-5, 1e-2, Scale::Log)
            .unwrap()
            .integer("n", 1, 64, Scale::Log)
            .unwrap()
            .categorical("c", ["a", "b", "c"])
            .unwrap()
    }

    #[test]
    fn paper_space_is_valid() {
        let paper = SearchSpace::amun_paper();
        let rebuilt = SearchSpace::try_from(paper.dimensions().to_vec()).unwrap();
        assert_eq!(rebuilt, paper);
        assert_eq!(paper.len(), 5);
        assert_eq!(paper.n_features(), 7);
    }

    #[test]
    fn rejects_bad_dimensions() {
        let s = SearchSpace::new();
        assert!(matches!(
            s.clone().real("x", 1.0, 1.0, Scale::Linear),
            Err(Error::InvalidBounds { .. })
        ));
        assert!(matches!(
            s.clone().real("x", 0.0, 1.0, Scale::Log),
            Err(Error::InvalidBounds { .. })
        ));
        assert!(matches!(
            s.clone().real("x", f64::NAN, 1.0, Scale::Linear),
            Err(Error::InvalidBounds { .. })
        ));
        assert!(matches!(
            s.clone().integer("n", 0, 10, Scale::Log),
            Err(Error::InvalidBounds { .. })
        ));
        assert!(matches!(
            s.clone().categorical("c", Vec::<String>::new()),
            Err(Error::InvalidChoices { .. })
        ));
        assert!(matches!(
            s.clone().categorical("c", ["a", "a"]),
            Err(Error::InvalidChoices { .. })
        ));
        let s = s.real("x", 0.0, 1.0, Scale::Linear).unwrap();
        assert!(matches!(
            s.integer("x", 0, 3, Scale::Linear),
            Err(Error::DuplicateDimension { .. })
        ));
    }

    #[test]
    fn unit_round_trip_and_validation() {
        let space = mixed();
        let p = Point::new()
            .with("x", 2.5)
            .with("lr", 1e-3)
            .with("n", 8_i64)
            .with("c", "b");
        let u = space.to_unit(&p).unwrap();
        // x: (2.5 + 5) / 15 = 0.5; lr: (ln 1e-3 - ln 1e-5) / (ln 1e-2 - ln 1e-5) = 2/3;
        // n: ln 8 / ln 64 = 0.5; c: middle bin centre.
        assert!((u[0] - 0.5).abs() < 1e-12);
        assert!((u[1] - 2.0 / 3.0).abs() < 1e-12);
        assert!((u[2] - 0.5).abs() < 1e-12);
        assert!((u[3] - 0.5).abs() < 1e-12);
        let back = space.point_at_unit(&u);
        assert!((back.real("lr").unwrap() - 1e-3).abs() < 1e-15);
        assert_eq!(back.integer("n"), Some(8));
        assert_eq!(back.category("c"), Some("b"));

        assert!(matches!(
            space.validate(&p.clone().with("x", 11.0)),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(matches!(
            space.validate(&p.clone().with("n", 2.0)),
            Err(Error::WrongValueType { .. })
        ));
        assert!(matches!(
            space.validate(&p.clone().with("c", "z")),
            Err(Error::UnknownChoice { .. })
        ));
        assert!(matches!(
            space.validate(&p.clone().with("zz", 1.0)),
            Err(Error::UnknownDimension { .. })
        ));
    }

    #[test]
    fn features_round_and_one_hot() {
        let space = mixed();
        let mut f = vec![0.0; space.n_features()];
        // n: unit 0.49 -> 2^(6*0.49) = 7.7 -> nearest in log scale is 8 -> 0.5.
        space.features(&[0.25, 0.1, 0.49, 0.9], &mut f);
        assert_eq!(f.len(), 6);
        assert!((f[0] - 0.25).abs() < 1e-15);
        assert!((f[2] - 0.5).abs() < 1e-12);
        assert!(f[3].abs() < 1e-15 && f[4].abs() < 1e-15 && (f[5] - 1.0).abs() < 1e-15);
        let mut u = vec![0.25, 0.1, 0.49, 0.9];
        space.snap(&mut u);
        assert!((u[2] - 0.5).abs() < 1e-12);
        assert!((u[3] - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(
            space.real_feature_indices(),
            vec![Some(0), Some(1), None, None]
        );
    }

    #[test]
    fn serde_validates() {
        let space = mixed();
        let json = serde_json::to_string(&space).unwrap();
        let back: SearchSpace = serde_json::from_str(&json).unwrap();
        assert_eq!(back, space);
        let bad =
            r#"[{"name":"x","domain":{"kind":"real","low":2.0,"high":1.0,"scale":"linear"}}]"#;
        assert!(serde_json::from_str::<SearchSpace>(bad).is_err());
        let p = Point::new().with("a", 1.5).with("b", 3_i64).with("c", "s");
        let back: Point = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
