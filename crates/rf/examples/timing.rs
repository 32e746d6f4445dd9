//! Wall-clock and CPU time of the benchmark workload (`benches/benches/rf.rs`) on a busy
//! machine, where CPU seconds compare better than wall seconds: fit 100 trees on 200 000 ×
//! 8 samples and predict 1 000 000 rows on 2 threads. CPU time is read from
//! `/proc/self/stat` (Linux).
//!
//! `cargo run --release -p amun-rf --example timing [-- <fit rows> <predict rows>]`

use std::f64::consts::PI;
use std::time::Instant;

use amun_rf::ndarray::{Array1, Array2};
use amun_rf::RfParams;

/// SplitMix64 stream of uniforms in [0, 1) (as in the criterion bench).
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

/// Friedman #1 with 8 features and N(0, 1) noise.
fn friedman(n: usize, seed: u64) -> (Array2<f32>, Array1<f32>) {
    let mut u = Uniform(seed);
    let x = Array2::from_shape_fn((n, 8), |_| u.next() as f32);
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
        "fit {n_fit} x 8, 100 trees, 2 threads: wall {:.2} s, CPU {:.2} s",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c
    );
    let (t, c) = (Instant::now(), cpu_seconds());
    let p = forest.predict(q.view())?;
    println!(
        "predict {n_pred} x 8: wall {:.2} s, CPU {:.2} s (mean prediction {:.3})",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c,
        p.mean().unwrap_or(f32::NAN)
    );
    Ok(())
}
