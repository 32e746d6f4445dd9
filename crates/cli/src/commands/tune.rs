//! `amun tune`: Bayesian search over AMUN's training hyperparameters.

use std::io::Write;
use std::path::PathBuf;

use amun_core::bayesopt::{Domain, Optimizer, Outcome, Params, Point, SearchSpace};
use amun_core::net::{TrainConfig, Trainer};
use amun_core::{run_trainer, training_scenes, write_atomic};
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
    /// Upper bound on the epochs a trial may use (the paper's range is 10–150).
    #[arg(long, default_value_t = 150)]
    pub max_epochs: i64,
    /// Model preset.
    #[arg(long, value_enum, default_value_t = Preset::Small)]
    pub preset: Preset,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
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

/// The paper's search space ([`SearchSpace::amun_paper`]) with the epoch range capped at
/// `max_epochs` (the paper's range, 10–150, is meant for GPU budgets).
fn tune_space(max_epochs: i64) -> Result<SearchSpace> {
    let paper = SearchSpace::amun_paper();
    if max_epochs >= 150 {
        return Ok(paper);
    }
    let low = if max_epochs > 10 { 10 } else { 1 };
    let mut space = SearchSpace::new();
    for d in paper.dimensions() {
        space = match (d.name(), d.domain()) {
            ("epochs", Domain::Integer { scale, .. }) => {
                space.integer("epochs", low, max_epochs.max(low + 1), *scale)?
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
    if !a.resume {
        check_writable(&hist, a.force)?;
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let scenes = load_scenes(&a.scenes)?;
    let data = training_scenes(&scenes)?;
    let model = preset(a.preset).with_covariates(scenes[0].covariates().names());
    let mut opt = if a.resume && hist.exists() {
        Optimizer::load(&hist)?
    } else {
        Optimizer::new(
            tune_space(a.max_epochs)?,
            Params::new()
                .seed(a.seed)
                .n_initial(a.trials.clamp(1, 10))
                .check()?,
        )?
    };
    while opt.history().len() < a.trials {
        let point = opt.ask()?;
        let n = opt.history().len() + 1;
        ctx.say(&format!("trial {n}/{}: {point}", a.trials));
        let outcome = match train_config_for(&point, a.seed).and_then(|tc| {
            let mut t = Trainer::new(&model, &tc, &data)?;
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
        opt.save(&hist)?;
    }
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
