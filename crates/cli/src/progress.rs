//! Progress bars on stderr, implementing `amun_core::Progress`.

use std::sync::Mutex;

use amun_core::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress bars (or nothing, when quiet or stderr is not a terminal for bars).
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl Bars {
    /// Bars drawn on stderr unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self {
            bar: Mutex::new(None),
            quiet,
        }
    }

    /// Prints a line above the bars (stderr), unless quiet.
    pub fn println(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match self.bar.lock().ok().and_then(|b| b.clone()) {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }
}

impl Bars {
    /// Prints a line above the bars (stderr), even when quiet.
    pub fn warn(&self, msg: &str) {
        match self.bar.lock().ok().and_then(|b| b.clone()) {
            Some(b) if !self.quiet => b.println(msg),
            _ => eprintln!("{msg}"),
        }
    }
}

impl Progress for Bars {
    fn start(&self, stage: &str, total: u64) {
        let bar = if self.quiet {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
        } else if total == 0 {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix:>12} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        } else {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta}) {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        };
        bar.set_draw_target(if self.quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        bar.set_prefix(stage.to_string());
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(old) = slot.take() {
                old.finish();
            }
            *slot = Some(bar);
        }
    }

    fn advance(&self, n: u64) {
        if let Some(b) = self.bar.lock().ok().and_then(|b| b.clone()) {
            b.inc(n);
        }
    }

    fn message(&self, msg: &str) {
        if let Some(b) = self.bar.lock().ok().and_then(|b| b.clone()) {
            b.set_message(msg.to_string());
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(b) = slot.take() {
                b.finish();
            }
        }
    }
}
