//! Times world generation, covariates and LST for several sizes (median of repeated runs),
//! without criterion's dependencies: a quick check of the "1024×1024 in under 2 s" goal.
//!
//! `cargo run --release -p amun-synth --example world_timing -- [sizes…]` (default 256 1024);
//! set `RAYON_NUM_THREADS` to fix the thread count.

use amun_synth::{World, WorldParams};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU time (user + system, all threads) of this process in seconds, from
/// `/proc/self/stat` (Linux; clock ticks of 10 ms); `NaN` elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or("");
    // `rest` starts at field 3 (state), so field n is at index n − 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok());
    match (tick(11), tick(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// Median wall time and mean CPU time per run, seconds.
fn time<T>(runs: usize, mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(f64, f64)> {
    let mut t = Vec::new();
    let cpu0 = cpu_seconds();
    for _ in 0..runs {
        let start = Instant::now();
        std::hint::black_box(f()?);
        t.push(start.elapsed().as_secs_f64());
    }
    Ok((median(t), (cpu_seconds() - cpu0) / runs as f64))
}

/// Times world generation, covariates and LST for several sizes.
#[derive(clap::Parser)]
struct Args {
    /// World sides in fine pixels (default 256 1024).
    sizes: Vec<usize>,
}

fn main() -> anyhow::Result<()> {
    let sizes = <Args as clap::Parser>::parse().sizes;
    let sizes = if sizes.is_empty() {
        vec![256, 1024]
    } else {
        sizes
    };
    println!("threads: {}", rayon::current_num_threads());
    println!("wall: median; CPU: user + system over all threads, mean per run");
    println!("| size | generate wall / CPU (s) | covariates wall / CPU (s) | lst wall / CPU (s) | all three, Mpixel per wall s |");
    println!("|---|---|---|---|---|");
    let mut notes = Vec::new();
    for size in sizes {
        let runs = if size <= 1024 { 5 } else { 1 };
        let p = WorldParams::new().seed(42).size(size, size);
        let gen = time(runs, || Ok(World::generate(&p)?))?;
        let world = World::generate(&p)?;
        let cov = time(runs, || Ok(world.covariates(7)?))?;
        let lst = time(runs, || Ok(world.lst(7, 13)?))?;
        let horn = time(runs, || {
            Ok(amun_indices::slope_aspect(
                world.elevation(),
                &amun_indices::SlopeParams::new(),
            )?)
        })?;
        let mpx = (size * size) as f64 / 1e6;
        println!(
            "| {size}×{size} | {:.3} / {:.2} | {:.3} / {:.2} | {:.3} / {:.2} | {:.2} |",
            gen.0,
            gen.1,
            cov.0,
            cov.1,
            lst.0,
            lst.1,
            mpx / (gen.0 + cov.0 + lst.0)
        );
        notes.push(format!(
            "amun_indices::slope_aspect {size}×{size}: {:.3} s wall / {:.2} s CPU ({:.1} Mpixel per CPU s)",
            horn.0,
            horn.1,
            mpx / horn.1
        ));
    }
    for n in notes {
        println!("{n}");
    }
    Ok(())
}
