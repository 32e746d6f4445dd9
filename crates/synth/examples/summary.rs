//! Prints a summary of a synthetic world: land-cover shares, LST statistics per month/hour,
//! the spread of each LST term, and how much fine detail a coarse field misses.
//!
//! `cargo run --release -p amun-synth --example summary -- [size] [seed]`

use amun_raster::{resample, Resampling};
use amun_synth::{World, WorldParams, LST_TERMS};
use std::time::Instant;

/// Prints a summary of a synthetic world.
#[derive(clap::Parser)]
struct Args {
    /// The world's side in fine pixels (default: `WorldParams::new()`'s).
    size: Option<usize>,
    /// The world's seed.
    #[arg(default_value_t = 42)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let args: Args = clap::Parser::parse();
    let (size, seed) = (args.size.unwrap_or(WorldParams::new().width), args.seed);
    let t = Instant::now();
    let world = World::generate(&WorldParams::new().seed(seed).size(size, size))?;
    println!(
        "generated {size}×{size} in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    println!("grid: {}", world.grid());
    let e = world.elevation().stats().unwrap();
    println!(
        "elevation m: min {:.0} mean {:.0} max {:.0}",
        e.min, e.mean, e.max
    );
    let s = world.slope().stats().unwrap();
    println!("slope deg: mean {:.1} max {:.1}", s.mean, s.max);
    let mut counts = [0usize; 18];
    for &v in world.landcover().data() {
        counts[v as usize] += 1;
    }
    let n = world.grid().len() as f64;
    for class in amun_indices::Igbp::ALL {
        let c = counts[class.code() as usize];
        if c > 0 {
            println!("  {:<14} {:5.1} %", class.key(), 100.0 * c as f64 / n);
        }
    }
    for (month, hour) in [(1, 2), (1, 13), (4, 10), (7, 2), (7, 13), (10, 16)] {
        let t = Instant::now();
        let lst = world.lst(month, hour)?;
        let dt = t.elapsed().as_secs_f64();
        let st = lst.stats().unwrap();
        let coarse = lst.block_mean(10, 0.0)?;
        let up = resample(&coarse, world.grid(), Resampling::Bilinear)?;
        let (mut se, mut m) = (0.0, 0usize);
        for (a, b) in up.data().iter().zip(lst.data()) {
            if !a.is_nan() && !b.is_nan() {
                se += f64::from(a - b).powi(2);
                m += 1;
            }
        }
        println!(
            "month {month:2} hour {hour:2}: LST mean {:.1} K, sd {:.2}, min {:.1}, max {:.1}; bilinear-from-10x RMSE {:.2} K ({dt:.3} s)",
            st.mean, st.std, st.min, st.max, (se / m as f64).sqrt()
        );
    }
    let terms = world.lst_terms(7, 13)?;
    println!("terms at July 13:00 (mean, sd):");
    for name in LST_TERMS {
        let st = terms.band(name)?.stats().unwrap();
        println!("  {name:<10} {:8.2} {:6.2}", st.mean, st.std);
    }
    let cov = world.covariates(7)?;
    for (name, band) in cov.iter() {
        let st = band.stats().unwrap();
        println!(
            "cov {name:<12} mean {:.3} sd {:.3} [{:.3}, {:.3}]",
            st.mean, st.std, st.min, st.max
        );
    }
    Ok(())
}
