//! The check a model gets where the truth is known: RMSE on held-out pixels next to the
//! interpolation and the physical prior on the same pixels.

use serde::{Deserialize, Serialize};

/// One method's RMSE on the held-out pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodScore {
    /// `model`, `bilinear`, `prior-elevation`, `prior-covariates`, …
    pub method: String,
    /// RMSE in kelvin.
    pub rmse_k: f64,
}

/// How a model fared on pixels held out of its training, next to bilinear interpolation and
/// the physical priors scored on the same pixels.
///
/// Under the scale-up scheme this is the only place a model can be checked against truth:
/// at the training scale, where the coarse field is the truth. It travels in the checkpoint
/// and is shown whenever the model is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutCheck {
    /// Where the check was made, e.g. `training scale (one scale up), 12 scenes`.
    pub scale: String,
    /// Held-out pixels scored (each once).
    pub pixels: usize,
    /// The model's score first, then the references.
    pub scores: Vec<MethodScore>,
}

/// What the check says about the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The model beat every reference.
    Better,
    /// The model was worse than a reference (the best one is named).
    Worse {
        /// The best reference.
        reference: String,
        /// Its RMSE (K).
        reference_rmse_k: f64,
        /// The model's RMSE (K).
        model_rmse_k: f64,
    },
    /// Nothing could be checked (no held-out pixel).
    Unchecked,
}

impl HeldOutCheck {
    /// The model's RMSE (K), the first score.
    pub fn model_rmse(&self) -> Option<f64> {
        self.scores.first().map(|s| s.rmse_k)
    }

    /// The best reference and its RMSE (K).
    pub fn best_reference(&self) -> Option<&MethodScore> {
        self.scores
            .iter()
            .skip(1)
            .filter(|s| s.rmse_k.is_finite())
            .min_by(|a, b| a.rmse_k.total_cmp(&b.rmse_k))
    }

    /// Whether the model beat every reference.
    pub fn verdict(&self) -> Verdict {
        match (self.model_rmse(), self.best_reference()) {
            (Some(m), Some(r)) if self.pixels > 0 && m.is_finite() => {
                if m <= r.rmse_k {
                    Verdict::Better
                } else {
                    Verdict::Worse {
                        reference: r.method.clone(),
                        reference_rmse_k: r.rmse_k,
                        model_rmse_k: m,
                    }
                }
            }
            _ => Verdict::Unchecked,
        }
    }

    /// One line: `held out at training scale (…): model 0.41 K, bilinear 0.55 K, …`.
    pub fn summary(&self) -> String {
        let scores: Vec<String> = self
            .scores
            .iter()
            .map(|s| format!("{} {:.3} K", s.method, s.rmse_k))
            .collect();
        format!(
            "checked on {} held-out pixels at the {}: {}",
            self.pixels,
            self.scale,
            scores.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(model: f64) -> HeldOutCheck {
        HeldOutCheck {
            scale: "training scale".into(),
            pixels: 100,
            scores: vec![
                MethodScore {
                    method: "model".into(),
                    rmse_k: model,
                },
                MethodScore {
                    method: "bilinear".into(),
                    rmse_k: 1.0,
                },
                MethodScore {
                    method: "prior-elevation".into(),
                    rmse_k: 0.6,
                },
            ],
        }
    }

    #[test]
    fn the_verdict_names_the_best_reference() {
        assert_eq!(check(0.5).verdict(), Verdict::Better);
        match check(0.8).verdict() {
            Verdict::Worse {
                reference,
                reference_rmse_k,
                ..
            } => {
                assert_eq!(reference, "prior-elevation");
                assert!((reference_rmse_k - 0.6).abs() < 1e-12);
            }
            v => panic!("{v:?}"),
        }
        let none = HeldOutCheck {
            pixels: 0,
            ..check(0.1)
        };
        assert_eq!(none.verdict(), Verdict::Unchecked);
        assert!(check(0.5).summary().contains("bilinear 1.000 K"));
    }
}
