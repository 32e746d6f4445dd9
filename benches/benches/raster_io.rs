//! GeoTIFF I/O and resampling throughput of `amun-raster`.
//!
//! A seeded 4096×4096 `f32` field (smooth terrain-like signal plus hashed noise, 64 MiB) is
//! written as a tiled Deflate GeoTIFF and read back. Throughput is reported in bytes of
//! decoded `f32` pixels per second (MB/s); resampling in target pixels per second.
//! Compare with `gdal_translate` on the same file: see `docs/benchmarks/amun-raster.md`.
//!
//! Run: `cargo bench -p amun-benches --bench raster_io`

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use amun_raster::{
    read, resample, write, Crs, GeoTransform, Grid, Raster, Resampling, Stack, WriteOptions,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SIDE: usize = 4096;

/// Deterministic pseudo-random value in [0, 1) from a pixel index (splitmix64).
fn noise(i: u64) -> f32 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
}

fn field(side: usize) -> Raster {
    let grid = Grid::new(
        side,
        side,
        GeoTransform::new(500_000.0, 9_200_000.0, 30.0, -30.0).unwrap(),
        Some(Crs::Epsg(32725)),
    )
    .unwrap();
    Raster::from_fn(grid, |(r, c)| {
        let (x, y) = (c as f32 / 300.0, r as f32 / 300.0);
        // Land surface temperature in kelvin: smooth relief plus 0.1 K of sensor noise.
        295.0
            + 8.0 * x.sin() * y.cos()
            + 3.0 * (2.7 * x + 1.3 * y).sin()
            + 0.1 * noise((r * side + c) as u64)
    })
}

fn io(c: &mut Criterion) {
    let raster = field(SIDE);
    let stack = Stack::new(raster.grid().clone())
        .with("lst", raster)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lst.tif");
    let opts = WriteOptions::default();
    write(&path, &stack, &opts).unwrap();

    let mut g = c.benchmark_group("geotiff_4096x4096_f32_deflate");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes((SIDE * SIDE * 4) as u64));
    g.bench_function("read", |b| b.iter(|| black_box(read(&path).unwrap())));
    g.bench_function("write_predictor3_level6", |b| {
        b.iter(|| write(&path, black_box(&stack), &opts).unwrap())
    });
    let no_pred = WriteOptions::default().with_predictor(false);
    g.bench_function("write_no_predictor_level6", |b| {
        b.iter(|| write(&path, black_box(&stack), &no_pred).unwrap())
    });
    g.finish();
}

fn resampling(c: &mut Criterion) {
    let raster = field(1024);
    let fine = raster.grid().refine(4).unwrap();
    let coarse = raster.grid().coarsen(8).unwrap();
    let mut g = c.benchmark_group("resample_1024");
    g.sample_size(10);
    g.throughput(Throughput::Elements(fine.len() as u64));
    g.bench_function("bilinear_up4_pixels", |b| {
        b.iter(|| resample(black_box(&raster), &fine, Resampling::Bilinear).unwrap())
    });
    g.throughput(Throughput::Elements(raster.grid().len() as u64));
    g.bench_function("average_down8_source_pixels", |b| {
        b.iter(|| resample(black_box(&raster), &coarse, Resampling::Average).unwrap())
    });
    g.finish();
}

criterion_group!(benches, io, resampling);
criterion_main!(benches);
