//! amun-rf benchmarks: random-forest fit on 200 000 × 8 samples with 100 trees, and
//! prediction of 1 000 000 pixels, on 2 threads (to compare with scikit-learn's
//! `n_jobs=2`; see `docs/benchmarks/amun-rf.md` and `fixtures/rf/bench_sklearn.py`).
//!
//! Data: the Friedman #1 function of the first five of eight uniform features plus unit
//! Gaussian noise (three features are irrelevant), from a seeded generator — the same
//! distribution as the scikit-learn script, not the same numbers.
//!
//! `cargo bench -p amun-benches --bench rf` (add `-- --quick` for one timed run each).

use std::f64::consts::PI;

use amun_rf::ndarray::{Array1, Array2};
use amun_rf::{RandomForest, RfParams};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const FEATURES: usize = 8;
const THREADS: usize = 2;

/// SplitMix64 stream of uniforms in [0, 1).
struct Uniform(u64);

impl Uniform {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Friedman #1 with 8 features and N(0, 1) noise (Box–Muller).
fn friedman(n: usize, seed: u64) -> (Array2<f32>, Array1<f32>) {
    let mut u = Uniform(seed);
    let x = Array2::from_shape_fn((n, FEATURES), |_| u.next() as f32);
    let y = x
        .rows()
        .into_iter()
        .map(|r| {
            let r: Vec<f64> = r.iter().map(|&v| f64::from(v)).collect();
            let noise = (-2.0 * (1.0 - u.next()).ln()).sqrt() * (2.0 * PI * u.next()).cos();
            (10.0 * (PI * r[0] * r[1]).sin()
                + 20.0 * (r[2] - 0.5).powi(2)
                + 10.0 * r[3]
                + 5.0 * r[4]
                + noise) as f32
        })
        .collect();
    (x, y)
}

fn params(trees: usize) -> RfParams {
    RfParams::new()
        .n_trees(trees)
        .seed(0)
        .n_threads(Some(THREADS))
}

fn fit(c: &mut Criterion) {
    let mut g = c.benchmark_group("rf_fit");
    g.sample_size(10);
    for n in [20_000usize, 200_000] {
        let (x, y) = friedman(n, 1);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("100_trees_8_features", n), &n, |b, _| {
            b.iter(|| params(100).fit(x.view(), y.view()).expect("fit"))
        });
    }
    g.finish();
}

fn predict(c: &mut Criterion) {
    let (x, y) = friedman(200_000, 1);
    let forest: RandomForest = params(100).fit(x.view(), y.view()).expect("fit");
    let (q, _) = friedman(1_000_000, 2);
    let mut g = c.benchmark_group("rf_predict");
    g.sample_size(10);
    g.throughput(Throughput::Elements(q.nrows() as u64));
    g.bench_function("1M_pixels_100_trees_fit_on_200k", |b| {
        b.iter(|| forest.predict(q.view()).expect("predict"))
    });
    g.finish();
}

criterion_group!(benches, fit, predict);
criterion_main!(benches);
