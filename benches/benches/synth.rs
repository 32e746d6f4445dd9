//! Synthetic-world benchmarks (`amun-synth`): world generation, the monthly covariate stack
//! and the LST of one (month, hour), in pixels per second.
//!
//! `cargo bench -p amun-benches --bench synth`

#![forbid(unsafe_code)]

use std::hint::black_box;

use amun_synth::{World, WorldParams};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn params(size: usize) -> WorldParams {
    WorldParams::new().seed(42).size(size, size)
}

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("synth/generate");
    group.sample_size(10);
    for size in [256usize, 1024] {
        group.throughput(Throughput::Elements((size * size) as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| World::generate(black_box(&params(size))).expect("valid parameters"))
        });
    }
    group.finish();
}

fn scene(c: &mut Criterion) {
    let mut group = c.benchmark_group("synth/scene");
    group.sample_size(10);
    for size in [256usize, 1024] {
        let world = World::generate(&params(size)).expect("valid parameters");
        group.throughput(Throughput::Elements((size * size) as u64));
        group.bench_with_input(BenchmarkId::new("covariates", size), &world, |b, w| {
            b.iter(|| w.covariates(black_box(7)).expect("valid month"))
        });
        group.bench_with_input(BenchmarkId::new("lst", size), &world, |b, w| {
            b.iter(|| {
                w.lst(black_box(7), black_box(13))
                    .expect("valid month and hour")
            })
        });
        group.bench_with_input(BenchmarkId::new("coarse_lst_8x", size), &world, |b, w| {
            b.iter(|| {
                w.coarse_lst(black_box(7), black_box(13), 8)
                    .expect("factor divides")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, generate, scene);
criterion_main!(benches);
