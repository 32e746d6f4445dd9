//! `amun-bayesopt`: cost of one `ask` (Gaussian-process fit + acquisition search) with 100
//! observations of the 6-D Hartmann function, default settings. Reported as asks/s.
//!
//! ```text
//! cargo bench -p amun-benches --bench bayesopt
//! ```

#![forbid(unsafe_code)]

use std::hint::black_box;

use amun_bayesopt::test_functions::{hartmann6_at, hartmann6_space};
use amun_bayesopt::{InitialDesign, Optimizer, Params};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// An optimiser over Hartmann-6 that has been told `n` points of a seeded Latin hypercube;
/// with `warm`, one model-driven ask has also been made and told, so that the next fit starts
/// from fitted kernel hyperparameters, as it does in a running optimisation.
fn told(n: usize, warm: bool) -> Optimizer {
    let params = Params::new()
        .seed(42)
        .n_initial(n)
        .initial_design(InitialDesign::LatinHypercube)
        .check()
        .expect("valid settings");
    let mut opt = Optimizer::new(hartmann6_space(), params).expect("non-empty space");
    opt.run(hartmann6_at, n).expect("design points");
    if warm {
        let p = opt.ask().expect("model ask");
        let v = hartmann6_at(&p);
        opt.tell(p, v).expect("valid point");
    }
    opt
}

fn ask(c: &mut Criterion) {
    let mut group = c.benchmark_group("bayesopt_ask_hartmann6");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    for (name, warm) in [("100_obs_warm", true), ("100_obs_cold", false)] {
        let opt = told(if warm { 99 } else { 100 }, warm);
        group.bench_function(name, |b| {
            b.iter_batched(
                || opt.clone(),
                |mut o| black_box(o.ask().expect("ask")),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, ask);
criterion_main!(benches);
