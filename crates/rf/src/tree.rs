//! Compact regression trees for prediction, read once from smartcore's fitted trees.
//!
//! smartcore keeps its tree nodes private and walks them slowly (`Option`-wrapped 80-byte
//! nodes, an `f64` conversion of every feature read). Its `serde` feature makes a fitted
//! forest serialisable; [`trees_of`] walks that serialisation with a [`Collector`] that
//! writes no bytes but picks out the fields of every `Node`, and builds 16-byte nodes that
//! branch exactly as smartcore's do (see [`threshold_f32`]).

use std::fmt;

use serde::ser::{self, Serialize};

use crate::error::{Error, Result};

/// Rows walked down a tree together: their node loads are independent, so the CPU overlaps
/// their cache misses and branch-free steps.
const LANES: usize = 8;

/// A fitted regression tree in a flat array; the root is node 0.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    /// The output of each leaf, indexed by node (0 for internal nodes).
    outputs: Vec<f64>,
}

/// A node, 16 bytes: a row goes to `left` if `x[feature] <= threshold`, to `right`
/// otherwise. A leaf points to itself on both sides (feature 0), so a walk that has reached
/// it stays there.
#[derive(Debug, Clone, Copy)]
struct Node {
    feature: u32,
    threshold: f32,
    left: u32,
    right: u32,
}

impl Node {
    /// The next node for `row` (`feature` is below the row length: checked when built).
    #[inline]
    fn next(&self, row: &[f32]) -> u32 {
        if row[self.feature as usize] <= self.threshold {
            self.left
        } else {
            self.right
        }
    }
}

impl Tree {
    /// The output of the leaf that `row` (one value per feature) falls in. `row` must have
    /// the forest's number of features (checked by the caller; a shorter row panics).
    #[cfg(test)]
    pub(crate) fn predict(&self, row: &[f32]) -> f64 {
        self.outputs[self.leaf(row) as usize]
    }

    /// The index of the leaf node that `row` falls in (same contract as [`Tree::predict`]).
    pub(crate) fn leaf(&self, row: &[f32]) -> u32 {
        let mut i = 0;
        loop {
            let next = self.nodes[i as usize].next(row);
            if next == i {
                return i;
            }
            i = next;
        }
    }

    /// Number of nodes (leaves and internal nodes); leaf indices are below it.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Adds the prediction of every row of `rows` (row-major, `p` features) to `sum`, walking
    /// [`LANES`] rows down the tree at a time.
    pub(crate) fn add_predictions(&self, rows: &[f32], p: usize, sum: &mut [f64]) {
        self.visit_leaves(rows, p, |r, leaf| sum[r] += self.outputs[leaf as usize]);
    }

    /// Calls `f(row index, leaf index)` for every row of `rows` (row-major, `p` features),
    /// in row order, walking [`LANES`] rows down the tree at a time.
    pub(crate) fn visit_leaves(&self, rows: &[f32], p: usize, mut f: impl FnMut(usize, u32)) {
        let mut blocks = rows.chunks_exact(p * LANES);
        let mut done = 0;
        for block in &mut blocks {
            let mut at = [0u32; LANES];
            loop {
                let mut moved = false;
                for (l, i) in at.iter_mut().enumerate() {
                    let next = self.nodes[*i as usize].next(&block[l * p..(l + 1) * p]);
                    moved |= next != *i;
                    *i = next;
                }
                if !moved {
                    break;
                }
            }
            for i in at {
                f(done, i);
                done += 1;
            }
        }
        for row in blocks.remainder().chunks_exact(p) {
            f(done, self.leaf(row));
            done += 1;
        }
    }

    /// A hand-made tree: `nodes[i]` is `Some((feature, threshold, left, right))` for an
    /// internal node and `None` for a leaf with output `outputs[i]`.
    #[cfg(test)]
    pub(crate) fn hand_made(
        nodes: &[Option<(u64, f64, u64, u64)>],
        outputs: &[f64],
        p: usize,
    ) -> Tree {
        let raw: Vec<RawNode> = nodes
            .iter()
            .zip(outputs)
            .map(|(n, &output)| match *n {
                Some((f, t, l, r)) => RawNode {
                    output,
                    split_feature: Some(f),
                    split_value: Some(t),
                    true_child: Some(l),
                    false_child: Some(r),
                },
                None => RawNode {
                    output,
                    ..RawNode::default()
                },
            })
            .collect();
        Tree::from_raw(&raw, p).expect("a valid hand-made tree")
    }

    /// Builds a tree from smartcore's nodes, checking that every child comes after its
    /// parent (smartcore appends children, so a walk always ends) and that every feature
    /// exists.
    fn from_raw(raw: &[RawNode], n_features: usize) -> Result<Tree> {
        let bad = |detail| Err(Error::TreeLayout { detail });
        let len = raw.len();
        if len == 0 || u32::try_from(len).is_err() {
            return bad("a tree has no node, or more than 2³² − 1 nodes");
        }
        let mut nodes = Vec::with_capacity(len);
        let mut outputs = Vec::with_capacity(len);
        for (i, r) in raw.iter().enumerate() {
            // smartcore's walk: a node without a true child is a leaf.
            let node = match (r.true_child, r.false_child) {
                (None, _) => {
                    // The node count fits in u32 (checked above).
                    let me = i as u32;
                    Node {
                        feature: 0,
                        threshold: 0.0,
                        left: me,
                        right: me,
                    }
                }
                (Some(t), Some(f)) => {
                    let child = |c: u64| {
                        usize::try_from(c)
                            .ok()
                            .filter(|&c| c > i && c < len)
                            .map(|c| c as u32) // below len, which fits in u32
                    };
                    let (Some(left), Some(right)) = (child(t), child(f)) else {
                        return bad("a child index is out of range or not after its parent");
                    };
                    let feature = r
                        .split_feature
                        .filter(|&j| j < n_features as u64)
                        .and_then(|j| u32::try_from(j).ok());
                    let Some(feature) = feature else {
                        return bad("a split feature is missing or out of range");
                    };
                    Node {
                        feature,
                        // smartcore compares with `NaN` (always false) when there is no value.
                        threshold: threshold_f32(r.split_value.unwrap_or(f64::NAN)),
                        left,
                        right,
                    }
                }
                (Some(_), None) => return bad("a node has a true child but no false child"),
            };
            outputs.push(if r.true_child.is_none() {
                r.output
            } else {
                0.0
            });
            nodes.push(node);
        }
        Ok(Tree { nodes, outputs })
    }
}

/// The largest `f32` not above `t` (`NaN` for `NaN`). For every `f32` `x`,
/// `x <= threshold_f32(t)` exactly when `f64::from(x) <= t`, smartcore's test, so a tree
/// compared in `f32` branches as smartcore's does in `f64`.
fn threshold_f32(t: f64) -> f32 {
    let c = t as f32; // nearest (±∞ beyond the f32 range)
    if f64::from(c) <= t || c.is_nan() {
        return c;
    }
    // c > t: step one f32 down (towards −∞).
    if c == 0.0 {
        -f32::from_bits(1)
    } else if c > 0.0 {
        f32::from_bits(c.to_bits() - 1)
    } else {
        f32::from_bits(c.to_bits() + 1)
    }
}

/// The compact trees of a fitted smartcore forest (or tree), in smartcore's order.
///
/// # Errors
/// [`Error::TreeLayout`] if the serialisation holds no tree or an inconsistent one (a
/// smartcore whose tree layout differs from 0.7's).
pub(crate) fn trees_of(model: &impl Serialize, n_features: usize) -> Result<Vec<Tree>> {
    let mut c = Collector::default();
    model
        .serialize(&mut c)
        .map_err(|fmt::Error| Error::TreeLayout {
            detail: "a `Node` outside a `BaseTree`",
        })?;
    if c.trees.is_empty() {
        return Err(Error::TreeLayout {
            detail: "no `BaseTree` in smartcore's serialisation",
        });
    }
    c.trees
        .iter()
        .map(|raw| Tree::from_raw(raw, n_features))
        .collect()
}

/// The fields of one smartcore `Node` that prediction needs.
#[derive(Debug, Default, Clone, Copy)]
struct RawNode {
    output: f64,
    split_feature: Option<u64>,
    split_value: Option<f64>,
    true_child: Option<u64>,
    false_child: Option<u64>,
}

/// A `serde` serializer that writes nothing: every `BaseTree` struct starts a tree and every
/// `Node` struct adds a node to it, read by field name; everything else is walked and
/// ignored.
#[derive(Default)]
struct Collector {
    trees: Vec<Vec<RawNode>>,
    /// Names of the structs being serialised, innermost last.
    open: Vec<&'static str>,
    /// The `Node` field being serialised ("" elsewhere).
    field: &'static str,
    node: RawNode,
}

type Done = std::result::Result<(), fmt::Error>;

macro_rules! ignore {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method(self, _: $ty) -> Done { Ok(()) })*
    };
}

impl ser::Serializer for &mut Collector {
    type Ok = ();
    type Error = fmt::Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    ignore!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_f32(f32),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_u64(self, v: u64) -> Done {
        match self.field {
            "split_feature" => self.node.split_feature = Some(v),
            "true_child" => self.node.true_child = Some(v),
            "false_child" => self.node.false_child = Some(v),
            _ => {}
        }
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Done {
        match self.field {
            "output" => self.node.output = v,
            "split_value" => self.node.split_value = Some(v),
            _ => {}
        }
        Ok(())
    }
    fn serialize_none(self) -> Done {
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Done {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Done {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Done {
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, v: &T) -> Done {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Done {
        v.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, fmt::Error> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, fmt::Error> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, fmt::Error> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, fmt::Error> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, fmt::Error> {
        Ok(self)
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Self, fmt::Error> {
        match name {
            "BaseTree" => self.trees.push(Vec::new()),
            "Node" => self.node = RawNode::default(),
            _ => {}
        }
        self.open.push(name);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, fmt::Error> {
        self.open.push("");
        Ok(self)
    }
}

impl Collector {
    /// Serialises a field of the innermost open struct.
    fn field<T: ?Sized + Serialize>(&mut self, key: &'static str, v: &T) -> Done {
        if self.open.last() == Some(&"Node") {
            self.field = key;
        }
        v.serialize(&mut *self)?;
        self.field = "";
        Ok(())
    }

    /// Closes the innermost open struct; a `Node` joins the current tree.
    fn close(&mut self) -> Done {
        if self.open.pop() == Some("Node") {
            self.trees.last_mut().ok_or(fmt::Error)?.push(self.node);
        }
        Ok(())
    }
}

/// Structs and struct variants: their fields go through [`Collector::field`].
macro_rules! fields {
    ($($trait:ident),*) => {
        $(impl ser::$trait for &mut Collector {
            type Ok = ();
            type Error = fmt::Error;
            fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, v: &T) -> Done {
                self.field(key, v)
            }
            fn end(self) -> Done {
                self.close()
            }
        })*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

/// Sequences, tuples and maps: their elements are walked, nothing else.
macro_rules! walk {
    ($($trait:ident::$method:ident),* $(,)?) => {
        $(impl ser::$trait for &mut Collector {
            type Ok = ();
            type Error = fmt::Error;
            fn $method<T: ?Sized + Serialize>(&mut self, v: &T) -> Done {
                v.serialize(&mut **self)
            }
            fn end(self) -> Done {
                Ok(())
            }
        })*
    };
}

walk!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for &mut Collector {
    type Ok = ();
    type Error = fmt::Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, k: &T) -> Done {
        k.serialize(&mut **self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> Done {
        v.serialize(&mut **self)
    }
    fn end(self) -> Done {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smartcore::ensemble::random_forest_regressor::{
        RandomForestRegressor, RandomForestRegressorParameters,
    };
    use smartcore::linalg::basic::matrix::DenseMatrix;

    #[test]
    fn thresholds_branch_as_in_f64() {
        // Reference: smartcore's test `f64::from(x) <= t`, checked on the f32 values around
        // each threshold: midpoints of neighbouring f32s (smartcore's split points), exact
        // f32s, signed zeros, subnormals, values beyond the f32 range.
        let f = |v: f32| f64::from(v);
        let mut ts = vec![
            0.0,
            -0.0,
            1e-50,
            -1e-50,
            f(f32::MAX) * 1.5,
            -f(f32::MAX) * 1.5,
            f(f32::MAX),
            f(f32::MIN_POSITIVE) / 3.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for v in [0.1f32, 0.5, 1.0, -0.3, 1234.567, -7.0e-20, 3.4e38, 1e-40] {
            let up = f32::from_bits(v.to_bits() + 1);
            ts.extend([
                f(v),
                (f(v) + f(up)) / 2.0,
                f(v) + (f(up) - f(v)) / 3.0,
                -f(v),
            ]);
        }
        for t in ts {
            let c = threshold_f32(t);
            let mut xs = vec![c, 0.0, -0.0, f32::MAX, f32::MIN, f32::INFINITY];
            if c.is_finite() {
                let b = c.to_bits();
                xs.extend([b.wrapping_sub(1), b + 1, b + 2].map(f32::from_bits));
            }
            for x in xs.into_iter().filter(|x| !x.is_nan()) {
                assert_eq!(x <= c, f(x) <= t, "x = {x:e}, t = {t:e}, threshold {c:e}");
            }
        }
        assert!(threshold_f32(f64::NAN).is_nan());
    }

    #[test]
    fn flat_trees_predict_as_smartcore() {
        // Reference: smartcore's own `RandomForestRegressor::predict` on the same fitted
        // forest (fully grown trees on 3000 rows of a smooth function with pseudo-noise).
        let (n, p) = (3000, 4);
        let mut state = 12345u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let x: Vec<f32> = (0..n * p).map(|_| next()).collect();
        let y: Vec<f64> = x
            .chunks_exact(p)
            .map(|r| f64::from(10.0 * r[0] * r[1] + (5.0 * r[2]).sin() + 0.3 * next()))
            .collect();
        let m = DenseMatrix::new(n, p, x.clone(), false).unwrap();
        let params = RandomForestRegressorParameters::default()
            .with_n_trees(7)
            .with_m(p)
            .with_seed(3);
        let forest = RandomForestRegressor::fit(&m, &y, params).unwrap();
        let trees = trees_of(&forest, p).unwrap();
        assert_eq!(trees.len(), 7);
        // Training rows (on the split points' neighbours) and new rows.
        let q: Vec<f32> = x
            .iter()
            .copied()
            .chain((0..2003 * p).map(|_| next()))
            .collect();
        let qm = DenseMatrix::new(q.len() / p, p, q.clone(), false).unwrap();
        let want = forest.predict(&qm).unwrap();
        // Row by row and LANES rows at a time (the last rows as a remainder).
        let mut sum = vec![0.0; want.len()];
        for t in &trees {
            t.add_predictions(&q, p, &mut sum);
        }
        let mut worst = 0.0f64;
        for ((row, w), s) in q.chunks_exact(p).zip(&want).zip(sum) {
            let got = trees.iter().map(|t| t.predict(row)).sum::<f64>() / 7.0;
            worst = worst.max((got - w).abs() / w.abs().max(1.0));
            worst = worst.max((s / 7.0 - w).abs() / w.abs().max(1.0));
        }
        assert!(want.len() % LANES != 0, "a remainder is tested");
        assert!(worst <= 1e-12, "largest relative difference {worst:e}");
        assert!(matches!(
            trees_of(&forest, p - 1),
            Err(Error::TreeLayout { .. })
        ));
        assert!(matches!(trees_of(&1.0, p), Err(Error::TreeLayout { .. })));
    }
}
