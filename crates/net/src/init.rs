//! Deterministic weight initialisation.
//!
//! candle cannot seed its CPU random generator, so a [`VarMap`] filled through
//! `VarBuilder::from_varmap` differs from run to run. [`SeededVarMap`] is a `VarBuilder`
//! backend that creates each missing variable from a ChaCha8 stream seeded by the run's seed
//! and the variable's name: the same seed gives the same weights, whatever the order in
//! which blocks are built.

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A [`VarMap`] whose new variables are drawn from a seeded generator.
#[derive(Clone)]
pub struct SeededVarMap {
    map: VarMap,
    seed: u64,
}

impl SeededVarMap {
    /// An empty map drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            map: VarMap::new(),
            seed,
        }
    }

    /// The underlying variables.
    pub fn varmap(&self) -> &VarMap {
        &self.map
    }

    /// A `VarBuilder` creating f32 variables in this map on `device`.
    pub fn var_builder(&self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, device.clone())
    }

    /// The variables sorted by name (a deterministic order for optimisers and checkpoints).
    pub fn sorted_vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.map)
    }
}

/// The variables of `map`, sorted by name.
pub(crate) fn sorted_vars(map: &VarMap) -> Vec<(String, Var)> {
    // A poisoned lock only means another thread panicked while holding it; the map itself
    // is still consistent (insertions are single operations).
    let data = map.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// FNV-1a, a stable 64-bit hash of a variable name.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn draw(shape: &Shape, init: Init, seed: u64, name: &str) -> candle_core::Result<Vec<f32>> {
    let n = shape.elem_count();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv1a(name));
    Ok(match init {
        Init::Const(v) => vec![v as f32; n],
        Init::Uniform { lo, up } => (0..n)
            .map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32)
            .collect(),
        Init::Randn { mean, stdev } => (0..n)
            .map(|_| {
                // Box–Muller; 1 − u keeps the logarithm finite.
                let u1: f64 = 1.0 - rng.random::<f64>();
                let u2: f64 = rng.random();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (mean + stdev * z) as f32
            })
            .collect(),
        other => candle_core::bail!("SeededVarMap: unsupported init {other:?} for `{name}`"),
    })
}

impl candle_nn::var_builder::SimpleBackend for SeededVarMap {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self.map.data().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(var) = data.get(name) {
            let t = var.as_tensor();
            if t.shape() != &s {
                candle_core::bail!(
                    "shape mismatch for `{name}`: stored {:?}, requested {s:?}",
                    t.shape()
                );
            }
            return t.to_dtype(dtype);
        }
        let values = draw(&s, h, self.seed, name)?;
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        let data = self.map.data().lock().unwrap_or_else(|e| e.into_inner());
        match data.get(name) {
            Some(v) => v.as_tensor().to_dtype(dtype),
            None => candle_core::bail!("no variable `{name}`"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_regardless_of_order() {
        let dev = Device::Cpu;
        let a = SeededVarMap::new(7);
        let vb = a.var_builder(&dev);
        let x1 = vb
            .get_with_hints((3, 4), "x", Init::Uniform { lo: -1., up: 1. })
            .unwrap();
        let _ = vb.get_with_hints(5, "y", Init::Randn { mean: 0., stdev: 1. });
        let b = SeededVarMap::new(7);
        let vb = b.var_builder(&dev);
        let _ = vb.get_with_hints(5, "y", Init::Randn { mean: 0., stdev: 1. });
        let x2 = vb
            .get_with_hints((3, 4), "x", Init::Uniform { lo: -1., up: 1. })
            .unwrap();
        let (v1, v2): (Vec<f32>, Vec<f32>) = (
            x1.flatten_all().unwrap().to_vec1().unwrap(),
            x2.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert_eq!(v1, v2);
        assert!(v1.iter().all(|v| (-1.0..1.0).contains(v)));
        let c = SeededVarMap::new(8);
        let x3 = c
            .var_builder(&dev)
            .get_with_hints((3, 4), "x", Init::Uniform { lo: -1., up: 1. })
            .unwrap();
        assert_ne!(v1, x3.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(a.sorted_vars().len(), 2);
        assert_eq!(a.sorted_vars()[0].0, "x");
    }
}
