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

/// Wall-clock and CPU time of the forest benchmark's workload.
#[derive(clap::Parser)]
struct Args {
    /// Rows to fit on.
    #[arg(default_value_t = 200_000)]
    fit_rows: usize,
    /// Rows to predict.
    #[arg(default_value_t = 1_000_000)]
    predict_rows: usize,
}

fn main() -> anyhow::Result<()> {
    let Args {
        fit_rows: n_fit,
        predict_rows: n_pred,
    } = clap::Parser::parse();
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
