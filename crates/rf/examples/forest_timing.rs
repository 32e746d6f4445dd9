//! Wall-clock and CPU time of the benchmark workload (`benches/benches/rf.rs`) on a busy
//! machine, where CPU seconds compare better than wall seconds: fit 100 trees on 200 000 ×
//! 8 samples and predict 1 000 000 rows on 2 threads. CPU time is read from
//! `/proc/self/stat` (Linux).
//!
//! `cargo run --release -p amun-rf --example forest_timing [-- <fit rows> <predict rows>]`

use std::time::Instant;

use amun_rf::RfParams;

#[path = "../../../fixtures/rf/workload.rs"]
mod workload;
use workload::{friedman, FEATURES};

/// User + system CPU seconds of this process so far (all threads).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name (in parentheses) come the state (field 3), …, utime (field 14)
    // and stime (field 15), in clock ticks (100 per second on Linux).
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n_fit = args.first().copied().unwrap_or(200_000);
    let n_pred = args.get(1).copied().unwrap_or(1_000_000);
    let (x, y) = friedman(n_fit, 1);
    let (q, _) = friedman(n_pred, 2);
    let (t, c) = (Instant::now(), cpu_seconds());
    let forest = RfParams::new()
        .n_trees(100)
        .seed(0)
        .n_threads(Some(2))
        .fit(x.view(), y.view())?;
    println!(
        "fit {n_fit} x {FEATURES}, 100 trees, 2 threads: wall {:.2} s, CPU {:.2} s",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c
    );
    let (t, c) = (Instant::now(), cpu_seconds());
    let p = forest.predict(q.view())?;
    println!(
        "predict {n_pred} x {FEATURES}: wall {:.2} s, CPU {:.2} s (mean prediction {:.3})",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c,
        p.mean().unwrap_or(f32::NAN)
    );
    Ok(())
}
