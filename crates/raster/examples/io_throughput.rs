//! Times GeoTIFF write and read of a seeded 4096×4096 `f32` field (the data of the
//! `raster_io` criterion bench) and leaves the file for a `gdal_translate` comparison.
//!
//! `cargo run --release -p amun-raster --example io_throughput -- OUT_DIR [REPEATS] [MODE]`
//!
//! MODE is `both` (default), `gen` (only build the field), `write` or `read` (one kind of
//! operation, so that `/usr/bin/time` can report its CPU time).

use std::time::Instant;

use amun_raster::{read, write, Crs, GeoTransform, Grid, Raster, Stack, WriteOptions};

fn noise(i: u64) -> f32 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
}

/// Times GeoTIFF write and read of a seeded 4096×4096 `f32` field.
#[derive(clap::Parser)]
struct Args {
    /// Where the file is written (and left).
    #[arg(default_value = ".")]
    dir: std::path::PathBuf,
    /// Repetitions of each operation.
    #[arg(default_value_t = 5)]
    repeats: usize,
    /// `both`, `gen`, `write` or `read`.
    #[arg(default_value = "both")]
    mode: String,
}

fn main() -> anyhow::Result<()> {
    let Args { dir, repeats, mode } = clap::Parser::parse();
    let side = 4096;
    let grid = Grid::new(
        side,
        side,
        GeoTransform::new(500_000.0, 9_200_000.0, 30.0, -30.0)?,
        Some(Crs::Epsg(32725)),
    )?;
    let raster = Raster::from_fn(grid.clone(), |(r, c)| {
        let (x, y) = (c as f32 / 300.0, r as f32 / 300.0);
        295.0
            + 8.0 * x.sin() * y.cos()
            + 3.0 * (2.7 * x + 1.3 * y).sin()
            + 0.1 * noise((r * side + c) as u64)
    });
    let stack = Stack::new(grid).with("lst", raster)?;
    if mode == "gen" {
        return Ok(());
    }
    let mb = (side * side * 4) as f64 / 1e6;
    for (name, opts) in [
        ("predictor3", WriteOptions::default()),
        ("nopredictor", WriteOptions::default().with_predictor(false)),
    ] {
        let path = dir.join(format!("amun_{name}.tif"));
        let mut best_w = f64::MAX;
        if mode == "read" && !path.exists() {
            write(&path, &stack, &opts)?;
        }
        for _ in 0..if mode == "read" { 0 } else { repeats } {
            let t = Instant::now();
            write(&path, &stack, &opts)?;
            best_w = best_w.min(t.elapsed().as_secs_f64());
        }
        let mut best_r = f64::MAX;
        for _ in 0..if mode == "write" { 0 } else { repeats } {
            let t = Instant::now();
            let s = read(&path)?;
            best_r = best_r.min(t.elapsed().as_secs_f64());
            assert_eq!(s.len(), 1);
        }
        let size = std::fs::metadata(&path)?.len() as f64 / 1e6;
        let rate = |t: f64| {
            if t == f64::MAX {
                "-".to_string()
            } else {
                format!("{t:.3} s = {:.0} MB/s", mb / t)
            }
        };
        println!(
            "{name}: file {size:.1} MB; write {}; read {} (best of {repeats}, {mb:.1} MB of f32)",
            rate(best_w),
            rate(best_r)
        );
    }
    Ok(())
}
