//! Reports of runs: JSON for machines, Markdown for people.

use std::path::Path;

use amun_metrics::{Metrics, StationReport};
use amun_net::{Amplitude, HeldOutCheck, Verdict};
use amun_raster::{write_atomic, Departure};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Scores of one method on one scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneScore {
    /// Scene name.
    pub scene: String,
    /// Month 1–12, if known.
    pub month: Option<u32>,
    /// Against the fine reference, when there is one.
    pub fine: Option<Metrics>,
    /// The prediction aggregated back to the coarse grid against the coarse input.
    pub aggregated_back: Option<Metrics>,
    /// Against station points, when given.
    pub stations: Option<StationReport>,
}

/// One method's results in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodReport {
    /// Method name (`bilinear`, `rf`, `amun`, …).
    pub method: String,
    /// Pooled metrics over all test pixels against the fine reference, if any.
    pub fine: Option<Metrics>,
    /// Pooled aggregated-back metrics over all test scenes.
    pub aggregated_back: Option<Metrics>,
    /// Per-scene scores.
    pub scenes: Vec<SceneScore>,
    /// Seconds spent fitting.
    pub fit_seconds: f64,
    /// Seconds spent predicting all test scenes.
    pub predict_seconds: f64,
    /// How the method fared where the truth was known (see [`crate::guard`]).
    #[serde(default)]
    pub check: Option<HeldOutCheck>,
    /// How far the method's raw predictions (before any conservation) depart from the
    /// coarse input at the coarse scale, next to bilinear interpolation, pooled over the test
    /// scenes ([`amun_raster::BlockStats::departure`]): a check that needs no truth.
    #[serde(default)]
    pub departure: Option<Departure>,
    /// For a learned correction of a base field (AMUN): its size on the test scenes next to
    /// the residuals it was trained on, pooled ([`Amplitude`]): a check that needs no truth.
    #[serde(default)]
    pub amplitude: Option<Amplitude>,
}

impl MethodReport {
    /// The method's name, marked `⚠` when its check found it worse than interpolation or
    /// the prior.
    pub fn marked_name(&self) -> String {
        if self.flagged() {
            format!("{} ⚠", self.method)
        } else {
            self.method.clone()
        }
    }

    /// Whether a check found the method wanting: worse than interpolation or the prior where
    /// the truth was known, raw block means departing from the coarse input more than
    /// interpolation's, or corrections larger than the residuals it was trained on.
    pub fn flagged(&self) -> bool {
        matches!(
            self.check.as_ref().map(HeldOutCheck::verdict),
            Some(Verdict::Worse { .. })
        ) || self.departure.is_some_and(|d| d.exceeds_bilinear())
            || self.amplitude.is_some_and(|a| a.exceeds_training())
    }
}

/// A run's report: what was done, on what, and how each method scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Title line.
    pub title: String,
    /// The experiment (`paper-style`, `scale-transfer`, `real`, `evaluate`).
    pub experiment: String,
    /// amun version.
    pub amun_version: String,
    /// Free-form setup description (key, value), in order.
    pub setup: Vec<(String, String)>,
    /// Training scenes.
    pub train_scenes: Vec<String>,
    /// Test scenes.
    pub test_scenes: Vec<String>,
    /// Per-method results.
    pub methods: Vec<MethodReport>,
    /// Notes (caveats, what the numbers mean).
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report.
    pub fn new(title: impl Into<String>, experiment: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            experiment: experiment.into(),
            amun_version: env!("CARGO_PKG_VERSION").to_string(),
            setup: Vec::new(),
            train_scenes: Vec::new(),
            test_scenes: Vec::new(),
            methods: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The method called `name`, if present.
    pub fn method(&self, name: &str) -> Option<&MethodReport> {
        self.methods.iter().find(|m| m.method == name)
    }

    /// The metrics table as Markdown (one row per method).
    pub fn table_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str("| method | RMSE (K) | MAE (K) | bias (K) | R² | r | SSIM | aggregated-back RMSE (K) | pixels | fit (s) | predict (s) |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
        let f = |v: Option<f64>, d: usize| v.map_or("–".to_string(), |x| format!("{x:.d$}"));
        for m in &self.methods {
            let fine = m.fine.as_ref();
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} |\n",
                m.marked_name(),
                f(fine.map(|x| x.rmse), 3),
                f(fine.map(|x| x.mae), 3),
                f(fine.map(|x| x.bias), 3),
                f(fine.and_then(|x| x.r2), 4),
                f(fine.and_then(|x| x.pearson_r), 4),
                f(fine.and_then(|x| x.ssim), 4),
                f(m.aggregated_back.as_ref().map(|x| x.rmse), 3),
                fine.map_or("–".to_string(), |x| x.n.to_string()),
                m.fit_seconds,
                m.predict_seconds,
            ));
        }
        s
    }

    /// The whole report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = format!("# {}\n\n", self.title);
        s.push_str(&format!(
            "Experiment: **{}** (amun {}).\n\n",
            self.experiment, self.amun_version
        ));
        if !self.setup.is_empty() {
            s.push_str("## Setup\n\n");
            for (k, v) in &self.setup {
                s.push_str(&format!("- {k}: {v}\n"));
            }
            s.push('\n');
        }
        if !self.train_scenes.is_empty() {
            s.push_str(&format!(
                "Training scenes: {}\n\n",
                self.train_scenes.join(", ")
            ));
        }
        if !self.test_scenes.is_empty() {
            s.push_str(&format!("Test scenes: {}\n\n", self.test_scenes.join(", ")));
        }
        s.push_str("## Metrics (test scenes, all pixels pooled)\n\n");
        s.push_str(&self.table_markdown());
        self.per_scene_markdown(&mut s);
        self.stations_markdown(&mut s);
        self.departing_markdown(&mut s);
        self.amplitude_markdown(&mut s);
        self.checked_markdown(&mut s);
        if !self.notes.is_empty() {
            s.push_str("\n## Notes\n\n");
            for n in &self.notes {
                s.push_str(&format!("- {n}\n"));
            }
        }
        s
    }

    /// The RMSE of every method per test scene, when there are several scenes.
    fn per_scene_markdown(&self, s: &mut String) {
        let per_scene: Vec<&MethodReport> =
            self.methods.iter().filter(|m| m.scenes.len() > 1).collect();
        if !per_scene.is_empty() {
            s.push_str("\n## RMSE per test scene (K)\n\n| scene |");
            for m in &per_scene {
                s.push_str(&format!(" {} |", m.method));
            }
            s.push_str("\n|---|");
            s.push_str(&"---|".repeat(per_scene.len()));
            s.push('\n');
            for (i, sc) in per_scene[0].scenes.iter().enumerate() {
                s.push_str(&format!("| {} |", sc.scene));
                for m in &per_scene {
                    let v = m
                        .scenes
                        .get(i)
                        .and_then(|x| x.fine.as_ref())
                        .map(|x| x.rmse);
                    s.push_str(&v.map_or(" – |".to_string(), |x| format!(" {x:.3} |")));
                }
                s.push('\n');
            }
        }
    }

    /// The station scores, one line per method and scene.
    fn stations_markdown(&self, s: &mut String) {
        for m in &self.methods {
            for sc in &m.scenes {
                if let Some(st) = &sc.stations {
                    if let Some(mt) = &st.metrics {
                        s.push_str(&format!(
                        "\nStations ({}, {}): RMSE {:.3} K, MAE {:.3} K, bias {:.3} K over {} stations ({} outside the grid, {} on nodata).\n",
                        m.method, sc.scene, mt.rmse, mt.mae, mt.bias, mt.n,
                        st.skip_counts.outside_grid, st.skip_counts.nodata
                    ));
                    }
                }
            }
        }
    }

    /// The methods whose raw block means depart from the coarse input.
    fn departing_markdown(&self, s: &mut String) {
        let departing: Vec<&MethodReport> = self
            .methods
            .iter()
            .filter(|m| m.departure.is_some_and(|d| d.exceeds_bilinear()))
            .collect();
        if !departing.is_empty() {
            s.push_str("\n## Departing from the coarse input\n\n");
            s.push_str(
                "Raw block means (before any conservation) further from the coarse input than \
             bilinear interpolation's: structure the coarse field does not support, seen \
             without any truth. ⚠ marks these methods too.\n\n",
            );
            for m in departing {
                if let Some(d) = m.departure {
                    s.push_str(&format!(
                        "- {}: {:.3} K RMSE over {} coarse cells (bilinear {:.3} K)\n",
                        m.method, d.field_rmse, d.cells, d.bilinear_rmse
                    ));
                }
            }
        }
    }

    /// Each network's corrections next to its training residuals.
    fn amplitude_markdown(&self, s: &mut String) {
        let amplified: Vec<(&MethodReport, Amplitude)> = self
            .methods
            .iter()
            .filter_map(|m| m.amplitude.map(|a| (m, a)))
            .collect();
        if !amplified.is_empty() {
            s.push_str("\n## Corrections next to the training residuals\n\n");
            s.push_str(
                "The RMS of a network's correction of its base on the test scenes, next to the \
             RMS of the residuals it was trained on. A model of the residual's conditional \
             mean makes corrections no larger than those residuals; larger ones are the \
             network extrapolating to inputs unlike its training data, seen without any \
             truth. ⚠ marks them.\n\n",
            );
            for (m, a) in amplified {
                s.push_str(&format!(
                    "- {}: {}{}\n",
                    m.method,
                    a.summary(),
                    if a.exceeds_training() { " ⚠" } else { "" }
                ));
            }
        }
    }

    /// Each method's held-out check against bilinear and the priors.
    fn checked_markdown(&self, s: &mut String) {
        let checked: Vec<&MethodReport> =
            self.methods.iter().filter(|m| m.check.is_some()).collect();
        if !checked.is_empty() {
            s.push_str("\n## Checked where the truth was known\n\n");
            s.push_str(
                "Each method scored on truth it never saw (AMUN: its training's held-out pixels; \
             per-scene methods: their procedure run one scale up), next to bilinear \
             interpolation and the physical priors on the same pixels. ⚠ marks a method \
             worse than one of them there.\n\n",
            );
            for m in checked {
                if let Some(c) = &m.check {
                    let verdict = match c.verdict() {
                    Verdict::Better => "better than every reference".to_string(),
                    Verdict::Worse {
                        reference,
                        reference_rmse_k,
                        model_rmse_k,
                    } => format!(
                        "⚠ worse than {reference} ({model_rmse_k:.3} K against {reference_rmse_k:.3} K)"
                    ),
                    Verdict::Unchecked => "not checked (no held-out pixel)".to_string(),
                };
                    s.push_str(&format!("- {}: {verdict}; {}\n", m.method, c.summary()));
                }
            }
        }
    }

    /// Writes `report.json` and `report.md` into `dir`, each atomically.
    ///
    /// # Errors
    /// [`Error::Raster`] (an I/O error) or [`Error::Json`] naming the file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join("report.json"), self)?;
        Ok(write_atomic(
            dir.join("report.md"),
            self.to_markdown().as_bytes(),
        )?)
    }
}

/// Serialises `value` as pretty JSON into `path`, atomically ([`amun_raster::write_atomic`]).
///
/// # Errors
/// [`Error::Json`] or [`Error::Raster`] (an I/O error) naming the file.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(write_atomic(path, text.as_bytes())?)
}
