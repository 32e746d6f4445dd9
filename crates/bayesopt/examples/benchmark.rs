//! Simple-regret benchmark: GP-EI (this crate) against random search on Branin (30
//! evaluations), Hartmann-6 (60) and a mixed real/integer/categorical function (40), seeds
//! 0..19; prints a Markdown table, with scikit-optimize's `gp_minimize` numbers from
//! `fixtures/bayesopt/skopt_results.json` when that file exists.
//!
//! ```text
//! cargo run --release -p amun-bayesopt --example benchmark
//! ```

use std::time::Instant;

use amun_bayesopt::test_functions as tf;
use amun_bayesopt::{Optimizer, Params, Point, SearchSpace};

const SEEDS: u64 = 20;

struct Problem {
    name: &'static str,
    space: SearchSpace,
    f: fn(&Point) -> f64,
    budget: usize,
    min: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Random search with the same budget: uniform points in the optimiser's unit encoding,
/// drawn by asking a model-free optimiser (initial design = random, `n_initial = budget`).
fn random_search(p: &Problem, seed: u64) -> anyhow::Result<f64> {
    let params = Params::new()
        .seed(seed)
        .n_initial(p.budget)
        .initial_design(amun_bayesopt::InitialDesign::Random)
        .check()?;
    let mut opt = Optimizer::new(p.space.clone(), params)?;
    opt.run(p.f, p.budget)?;
    Ok(best(&opt) - p.min)
}

fn best(opt: &Optimizer) -> f64 {
    opt.best()
        .and_then(|t| t.outcome.value())
        .unwrap_or(f64::INFINITY)
}

/// Simple-regret benchmark of GP-EI against random search (and skopt's recorded numbers).
#[derive(clap::Parser)]
struct Args {
    /// Run only the problem of this name (`branin`, `hartmann6`, `mixed`).
    problem: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let problems = [
        Problem {
            name: "branin",
            space: tf::branin_space(),
            f: tf::branin_at,
            budget: 30,
            min: tf::BRANIN_MIN,
        },
        Problem {
            name: "hartmann6",
            space: tf::hartmann6_space(),
            f: tf::hartmann6_at,
            budget: 60,
            min: tf::HARTMANN6_MIN,
        },
        Problem {
            name: "mixed",
            space: tf::mixed_space(),
            f: tf::mixed_at,
            budget: 40,
            min: tf::MIXED_MIN,
        },
    ];
    let skopt: Option<serde_json::Value> = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/bayesopt/skopt_results.json"
    ))
    .ok()
    .and_then(|s| serde_json::from_str(&s).ok());

    println!("| function | budget | amun-bayesopt median regret | share < 0.01 | random search median | skopt gp_minimize median | amun time/run |");
    println!("|---|---|---|---|---|---|---|");
    let only = <Args as clap::Parser>::parse().problem;
    for p in problems
        .iter()
        .filter(|p| only.as_deref().is_none_or(|o| o == p.name))
    {
        let mut ours = Vec::new();
        let mut rand = Vec::new();
        let start = Instant::now();
        for seed in 0..SEEDS {
            let mut opt = Optimizer::new(p.space.clone(), Params::new().seed(seed).check()?)?;
            opt.run(p.f, p.budget)?;
            ours.push(best(&opt) - p.min);
        }
        let per_run = start.elapsed().as_secs_f64() / SEEDS as f64;
        for seed in 0..SEEDS {
            rand.push(random_search(p, seed)?);
        }
        let hits = ours.iter().filter(|r| **r < 0.01).count();
        let sk = skopt
            .as_ref()
            .and_then(|v| v[p.name]["median_regret"].as_f64())
            .map_or("n/a".to_string(), |m| format!("{m:.4}"));
        println!(
            "| {} | {} | {:.4} | {}/{} | {:.4} | {} | {:.2} s |",
            p.name,
            p.budget,
            median(&ours),
            hits,
            SEEDS,
            median(&rand),
            sk,
            per_run
        );
        eprintln!("{} regrets: {:?}", p.name, ours);
    }
    Ok(())
}
