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

/// The ratio of a scene's correction RMS to the training targets' RMS above which
/// [`Amplitude::exceeds_training`] flags a prediction.
///
/// A model that has learned `E[residual | inputs]` predicts corrections whose spread is at
/// most the spread of the residuals it was trained on (the law of total variance: the
/// variance of a conditional mean never exceeds the variance of what it predicts). Larger
/// corrections on a new scene are the network extrapolating: inputs unlike its training
/// data, as the 0.01° covariates are for a model trained one scale up on 0.1° aggregates.
pub const AMPLITUDE_LIMIT: f64 = 1.0;

/// How large a residual model's correction of its base (output − base) is over a scene,
/// next to the residuals it was trained on: a check that needs no truth.
///
/// In the demo's real-data experiment the networks that were worse than the covariate prior
/// they corrected made corrections larger than their training residuals
/// (`docs/design.md` §5.3), while held-out scores at the training scale could not see it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Amplitude {
    /// RMS of the network's correction over the scene's valid pixels (kelvin).
    pub correction_rms_k: f64,
    /// RMS of the training targets (the truth minus the base at the training scale), kelvin.
    pub trained_rms_k: f64,
    /// Pixels the correction was measured on.
    pub pixels: u64,
}

impl Amplitude {
    /// `correction_rms_k / trained_rms_k`.
    pub fn ratio(&self) -> f64 {
        self.correction_rms_k / self.trained_rms_k
    }

    /// Whether the correction is larger than the training residuals ([`AMPLITUDE_LIMIT`]).
    pub fn exceeds_training(&self) -> bool {
        self.ratio() > AMPLITUDE_LIMIT
    }

    /// `correction 1.234 K RMS, 2.1× the 0.588 K of its training residuals`.
    pub fn summary(&self) -> String {
        format!(
            "correction {:.3} K RMS over {} px, {:.2}× the {:.3} K of its training residuals",
            self.correction_rms_k,
            self.pixels,
            self.ratio(),
            self.trained_rms_k
        )
    }

    /// Amplitudes of several scenes (of one model) pooled over their pixels; `None` if none
    /// has a pixel. The training RMS is the pixel-weighted RMS of theirs (one model: the same).
    pub fn pooled(parts: &[Amplitude]) -> Option<Amplitude> {
        let pixels: u64 = parts.iter().map(|a| a.pixels).sum();
        if pixels == 0 {
            return None;
        }
        let rms = |f: fn(&Amplitude) -> f64| {
            let s: f64 = parts.iter().map(|a| a.pixels as f64 * f(a).powi(2)).sum();
            (s / pixels as f64).sqrt()
        };
        Some(Amplitude {
            correction_rms_k: rms(|a| a.correction_rms_k),
            trained_rms_k: rms(|a| a.trained_rms_k),
            pixels,
        })
    }
}

#[cfg(test)]
mod amplitude_tests {
    use super::*;

    /// Hand-computed: corrections 3 K RMS over 100 px and 1 K RMS over 300 px pool to
    /// √((100·9 + 300·1)/400) = √3 K.
    #[test]
    fn pooling_weights_by_pixels_and_the_limit_is_one() {
        let a = Amplitude {
            correction_rms_k: 3.0,
            trained_rms_k: 2.0,
            pixels: 100,
        };
        let b = Amplitude {
            correction_rms_k: 1.0,
            trained_rms_k: 2.0,
            pixels: 300,
        };
        let p = Amplitude::pooled(&[a, b]).unwrap();
        assert!((p.correction_rms_k - 3f64.sqrt()).abs() < 1e-12);
        assert!((p.trained_rms_k - 2.0).abs() < 1e-12);
        assert_eq!(p.pixels, 400);
        assert!(a.exceeds_training() && !b.exceeds_training() && !p.exceeds_training());
        assert!(Amplitude::pooled(&[]).is_none());
    }
}
