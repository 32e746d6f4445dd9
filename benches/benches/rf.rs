//! amun-rf benchmarks: random-forest fit on 200 000 × 8 samples with 100 trees, and
//! prediction of 1 000 000 pixels, on 2 threads (to compare with scikit-learn's
//! `n_jobs=2`; see `docs/benchmarks/amun-rf.md` and `fixtures/rf/bench_sklearn.py`).
//!
//! Data: `fixtures/rf/workload.rs` — the Friedman #1 function of the first five of eight
//! uniform features plus unit Gaussian noise (three features are irrelevant), from a seeded
//! generator — the same distribution as the scikit-learn script, not the same numbers.
//!
//! `cargo bench -p amun-benches --bench rf` (add `-- --quick` for one timed run each).

#![forbid(unsafe_code)]

use amun_rf::{RandomForest, RfParams};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "../../fixtures/rf/workload.rs"]
mod workload;
use workload::friedman;

const THREADS: usize = 2;

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
