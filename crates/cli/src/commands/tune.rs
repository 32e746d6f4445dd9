//! `amun tune`: Bayesian search over AMUN's training hyperparameters.

use std::io::Write;
use std::path::PathBuf;

use amun_core::bayesopt::{
    Domain, InitialDesign, Optimizer, Outcome, Params, Point, SearchSpace, Trial,
};
use amun_core::net::{AmunConfig, TrainConfig};
use amun_core::{amun_trainer, run_trainer, write_atomic, Scene};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use super::{load_scenes, preset, Ctx, Preset};
use crate::output::check_writable;

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// Training scene folders (with fine reference).
    #[arg(long, num_args = 1.., required = true)]
    pub scenes: Vec<PathBuf>,
    /// Output folder (history.json, results.md).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of trials.
    #[arg(long, default_value_t = 30)]
    pub trials: usize,
    /// Trials of the initial space-filling design before the Gaussian process proposes
    /// (default: a third of the trials, 2 to 10).
    #[arg(long)]
    pub initial: Option<usize>,
    /// Also run a random search with the same number of trials (in `random/`), and draw
    /// both searches' best-so-far validation RMSE against the trial number
    /// (`tune_best_so_far.png`): what the Bayesian optimiser gained for the same budget.
    #[arg(long)]
    pub random_baseline: bool,
    /// Upper bound on the epochs a trial may use (the paper's range is 10–150).
    #[arg(long, default_value_t = 150)]
    pub max_epochs: i64,
    /// Model preset.
    #[arg(long, value_enum, default_value_t = Preset::Small)]
    pub preset: Preset,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The field the network corrects (default: the preset's, bilinear).
    #[arg(long, value_enum)]
    pub base: Option<super::train::BaseArg>,
    /// Continue a previous search in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// Print the results table as JSON.
    #[arg(long)]
    pub json: bool,
    /// Overwrite the output folder's files.
    #[arg(long)]
    pub force: bool,
}

/// The paper's search space ([`SearchSpace::amun_paper`]) with AdamW among the solvers and
/// the epoch range capped at `max_epochs` (the paper's range, 10–150, is meant for GPU
/// budgets).
fn tune_space(max_epochs: i64) -> Result<SearchSpace> {
    let paper = SearchSpace::amun_paper();
    let low = if max_epochs > 10 { 10 } else { 1 };
    let mut space = SearchSpace::new();
    for d in paper.dimensions() {
        space = match (d.name(), d.domain()) {
            ("epochs", Domain::Integer { scale, .. }) if max_epochs < 150 => {
                space.integer("epochs", low, max_epochs.max(low + 1), *scale)?
            }
            ("solver", Domain::Categorical { choices }) => {
                let mut choices = choices.clone();
                if !choices.iter().any(|c| c == "adamw") {
                    choices.push("adamw".into());
                }
                space.categorical("solver", choices)?
            }
            (n, Domain::Integer { low, high, scale }) => space.integer(n, *low, *high, *scale)?,
            (n, Domain::Real { low, high, scale }) => space.real(n, *low, *high, *scale)?,
            (n, Domain::Categorical { choices }) => space.categorical(n, choices.clone())?,
        };
    }
    Ok(space)
}

fn train_config_for(point: &Point, seed: u64) -> Result<TrainConfig> {
    let mut tc = TrainConfig {
        seed,
        ..TrainConfig::default()
    };
    tc.solver = match point.category("solver") {
        Some("sgdm") => amun_core::net::Solver::SGDM,
        Some("adam") => amun_core::net::Solver::ADAM,
        Some("adamw") => amun_core::net::Solver::ADAMW,
        Some("rmsprop") => amun_core::net::Solver::RMSPROP,
        other => bail!("unknown solver {other:?}"),
    };
    tc.learning_rate = point
        .real("learning_rate")
        .ok_or_else(|| anyhow!("no learning_rate"))?;
    tc.epochs = point
        .integer("epochs")
        .ok_or_else(|| anyhow!("no epochs"))? as usize;
    tc.batch_size = point
        .integer("batch_size")
        .ok_or_else(|| anyhow!("no batch_size"))? as usize;
    tc.l2 = point.real("l2").ok_or_else(|| anyhow!("no l2"))?;
    Ok(tc)
}

/// Runs `amun tune`.
pub fn run(ctx: &Ctx, a: &TuneArgs) -> Result<()> {
    let hist = a.out.join("history.json");
    let random_hist = a.out.join("random").join("history.json");
    if !a.resume {
        check_writable(&hist, a.force)?;
        if a.random_baseline {
            check_writable(&random_hist, a.force)?;
        }
    }
    for dir in [a.out.clone(), a.out.join("random")] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let scenes = load_scenes(&a.scenes)?;
    let mut model = preset(a.preset).with_covariates(scenes[0].covariates().names());
    if let Some(b) = a.base {
        model.base = b.base();
    }
    let initial = a.initial.unwrap_or((a.trials / 3).clamp(2, 10));
    let bayes = Params::new().seed(a.seed).n_initial(initial).check()?;
    let opt = search(ctx, a, &hist, bayes, "Bayesian", &model, &scenes)?;
    if a.random_baseline {
        // Random search is the optimiser with a random "initial design" as long as the run.
        let random = Params::new()
            .seed(a.seed)
            .n_initial(a.trials.max(2))
            .initial_design(InitialDesign::Random)
            .check()?;
        let rnd = search(ctx, a, &random_hist, random, "random", &model, &scenes)?;
        let (b, r) = (best_so_far(opt.history()), best_so_far(rnd.history()));
        let png = a.out.join("tune_best_so_far.png");
        crate::figures::lines_png(
            &png,
            "amun tune: best validation RMSE so far",
            "Trial",
            "RMSE (K)",
            &[("Bayesian optimisation", &b), ("random search", &r)],
        )?;
        ctx.say(&format!(
            "best after {} trials: Bayesian {:.3} K, random {:.3} K ({})",
            a.trials,
            b.last().copied().unwrap_or(f64::NAN),
            r.last().copied().unwrap_or(f64::NAN),
            png.display()
        ));
    }
    if let Some(best) = opt.best() {
        // The best trial as a configuration file for `amun train --config`.
        let tc = train_config_for(&best.point, a.seed)?;
        let text = format!(
            "# The best trial of `amun tune` ({}): validation RMSE {:.3} K.\n{}",
            best.point,
            best.outcome.value().unwrap_or(f64::NAN),
            toml::to_string(&BestFile { train: tc })?
        );
        write_atomic(a.out.join("best.toml"), text.as_bytes())?;
    }
    report(a, &opt)
}

/// `best.toml`: a `[train]` table.
#[derive(serde::Serialize)]
struct BestFile {
    train: TrainConfig,
}

/// The lowest validation RMSE after each trial (failed trials keep the previous best).
fn best_so_far(trials: &[Trial]) -> Vec<f64> {
    trials
        .iter()
        .scan(f64::INFINITY, |best, t| {
            *best = best.min(t.outcome.value().unwrap_or(f64::INFINITY));
            Some(if best.is_finite() { *best } else { f64::NAN })
        })
        .collect()
}

/// Runs (or resumes, from `hist`) one search with `params` until it holds `a.trials` trials,
/// saving its history after each.
fn search(
    ctx: &Ctx,
    a: &TuneArgs,
    hist: &std::path::Path,
    params: amun_core::bayesopt::ValidParams,
    label: &str,
    model: &AmunConfig,
    scenes: &[Scene],
) -> Result<Optimizer> {
    let mut opt = if a.resume && hist.exists() {
        Optimizer::load(hist)?
    } else {
        Optimizer::new(tune_space(a.max_epochs)?, params)?
    };
    while opt.history().len() < a.trials {
        let point = opt.ask()?;
        let n = opt.history().len() + 1;
        ctx.say(&format!("{label} trial {n}/{}: {point}", a.trials));
        let outcome = match train_config_for(&point, a.seed).and_then(|tc| {
            // Patch, stride and split fitted to small regions, as `amun train` does.
            let (mut t, _) = amun_trainer(model, &tc, scenes, None)?;
            run_trainer(&mut t, &ctx.bars)?;
            let best = t
                .history()
                .iter()
                .map(|r| r.val_rmse_k)
                .filter(|v| v.is_finite())
                .fold(f64::INFINITY, f64::min);
            Ok(best)
        }) {
            Ok(v) if v.is_finite() => Outcome::Value(v),
            Ok(_) => Outcome::Failed {
                reason: "no finite validation RMSE".into(),
            },
            Err(e) => Outcome::Failed {
                reason: crate::one_line(&e),
            },
        };
        ctx.say(&format!(
            "  → {}",
            outcome.value().map_or_else(
                || "failed".to_string(),
                |v| format!("validation RMSE {v:.3} K")
            )
        ));
        opt.tell(point, outcome)?;
        opt.save(hist)?;
    }
    Ok(opt)
}

/// Prints the Bayesian search's trials ranked (JSON or a table, also `results.md`).
fn report(a: &TuneArgs, opt: &Optimizer) -> Result<()> {
    let mut rows: Vec<_> = opt.history().iter().enumerate().collect();
    rows.sort_by(|a, b| {
        let v = |t: &amun_core::bayesopt::Trial| t.outcome.value().unwrap_or(f64::INFINITY);
        v(a.1).total_cmp(&v(b.1))
    });
    if a.json {
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(opt.history())?
        )?;
    } else {
        let mut md = String::from(
            "| rank | trial | validation RMSE (K) | parameters |\n|---|---|---|---|\n",
        );
        for (rank, (i, t)) in rows.iter().enumerate() {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                rank + 1,
                i + 1,
                t.outcome
                    .value()
                    .map_or("failed".into(), |v| format!("{v:.3}")),
                t.point
            ));
        }
        write!(std::io::stdout().lock(), "{md}")?;
        write_atomic(a.out.join("results.md"), md.as_bytes())?;
    }
    Ok(())
}
