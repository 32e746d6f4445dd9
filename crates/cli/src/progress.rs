//! Progress on stderr, implementing `amun_core::Progress`: bars on a terminal, and in a log
//! (stderr redirected, as in a batch job) one line per step — each epoch, each tenth of a
//! stage, or at least every minute — with the elapsed time and an ETA.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use amun_core::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress bars on a terminal, log lines otherwise, nothing when quiet.
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    log: Option<Mutex<LogState>>,
    quiet: bool,
}

/// The stage being logged when stderr is not a terminal.
#[derive(Default)]
struct LogState {
    stage: String,
    total: u64,
    done: u64,
    started: Option<Instant>,
    last_line: Option<Instant>,
    /// The tenth of the stage last reported.
    last_tenth: u64,
}

impl LogState {
    /// `stage: done/total (p %), 1m05s elapsed, ETA 3m10s — msg`.
    fn line(&self, msg: &str) -> String {
        let elapsed = self.started.map_or(Duration::ZERO, |t| t.elapsed());
        let mut s = format!("{}: {}", self.stage, self.done);
        if self.total > 0 {
            s.push_str(&format!(
                "/{} ({:.0} %)",
                self.total,
                100.0 * self.done as f64 / self.total as f64
            ));
        }
        s.push_str(&format!(", {} elapsed", hms(elapsed)));
        if self.total > 0 && self.done > 0 && self.done < self.total {
            let left = elapsed.mul_f64((self.total - self.done) as f64 / self.done as f64);
            s.push_str(&format!(", ETA {}", hms(left)));
        }
        if !msg.is_empty() {
            s.push_str(&format!(" — {msg}"));
        }
        s
    }
}

/// `1h02m03s`, `4m05s` or `6s`.
fn hms(d: Duration) -> String {
    let t = d.as_secs();
    match (t / 3600, t / 60 % 60, t % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

impl Bars {
    /// Bars drawn on stderr unless `quiet`; log lines instead when stderr is not a terminal.
    pub fn new(quiet: bool) -> Self {
        let log =
            (!quiet && !std::io::stderr().is_terminal()).then(|| Mutex::new(LogState::default()));
        Self {
            bar: Mutex::new(None),
            log,
            quiet,
        }
    }

    /// Prints a line above the bars (stderr), unless quiet.
    pub fn println(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match self.bar.lock().ok().and_then(|b| b.clone()) {
            Some(b) if self.log.is_none() => b.println(msg),
            _ => eprintln!("{msg}"),
        }
    }
}

impl Bars {
    /// Prints a line above the bars (stderr), even when quiet.
    pub fn warn(&self, msg: &str) {
        match self.bar.lock().ok().and_then(|b| b.clone()) {
            Some(b) if !self.quiet && self.log.is_none() => b.println(msg),
            _ => eprintln!("{msg}"),
        }
    }

    /// In a log: updates the stage and prints a line when `force` or when a new tenth of the
    /// stage is reached or a minute has passed since the last line.
    fn log(&self, update: impl FnOnce(&mut LogState), msg: &str, force: bool) {
        let Some(Ok(mut st)) = self.log.as_ref().map(|m| m.lock()) else {
            return;
        };
        update(&mut st);
        if st.started.is_none() {
            return;
        }
        let tenth = (10 * st.done).checked_div(st.total).unwrap_or(0);
        let stale = st
            .last_line
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if force || tenth > st.last_tenth || stale {
            st.last_tenth = tenth;
            st.last_line = Some(Instant::now());
            eprintln!("{}", st.line(msg));
        }
    }
}

impl Progress for Bars {
    fn start(&self, stage: &str, total: u64) {
        if self.log.is_some() {
            self.log(
                |st| {
                    *st = LogState {
                        stage: stage.to_string(),
                        total,
                        started: Some(Instant::now()),
                        ..LogState::default()
                    }
                },
                "started",
                true,
            );
            return;
        }
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
        if self.log.is_some() {
            self.log(|st| st.done += n, "", false);
            return;
        }
        if let Some(b) = self.bar.lock().ok().and_then(|b| b.clone()) {
            b.inc(n);
        }
    }

    fn message(&self, msg: &str) {
        if self.log.is_some() {
            // Messages are the steps worth a line of their own (an epoch, a scene).
            self.log(|_| {}, msg, true);
            return;
        }
        if let Some(b) = self.bar.lock().ok().and_then(|b| b.clone()) {
            b.set_message(msg.to_string());
        }
    }

    fn finish(&self) {
        if let Some(Ok(mut st)) = self.log.as_ref().map(|m| m.lock()) {
            if st.started.is_some() {
                st.done = st.done.max(st.total);
                eprintln!("{}", st.line("done"));
                st.started = None;
            }
            return;
        }
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(b) = slot.take() {
                b.finish();
            }
        }
    }
}
