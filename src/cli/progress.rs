//! Progress of long work (`reindex`, `log verify`, `load`): a bar with rate and time left on a
//! terminal, a plain line every few seconds when stderr is not one (a log, CI). Always on
//! stderr, so a command's answer on stdout stays clean.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain line is written when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Progress of one piece of work counted in `unit`s.
pub(super) struct Progress {
    what: &'static str,
    unit: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    shown: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress towards `total` (0 when unknown).
    pub fn new(what: &'static str, unit: &'static str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = if total > 0 {
                "{msg} [{bar:30}] {human_pos}/{human_len} {unit} ({per_sec}, {eta} left)"
            } else {
                "{msg} {spinner} {human_pos} {unit} ({per_sec})"
            };
            let style = ProgressStyle::with_template(&template.replace("{unit}", unit))
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(what);
            bar
        });
        let now = Instant::now();
        Progress {
            what,
            unit,
            total,
            done: 0,
            started: now,
            shown: now,
            bar,
        }
    }

    /// `n` more units done.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None if self.shown.elapsed() >= PLAIN_EVERY => {
                self.shown = Instant::now();
                eprintln!("{}", self.line());
            }
            None => {}
        }
    }

    /// The work is over: the bar is cleared (the command prints its own answer).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&self) -> String {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / seconds;
        if self.total == 0 {
            return format!("{}: {} {} ({rate:.0}/s)", self.what, self.done, self.unit);
        }
        let left = self.total.saturating_sub(self.done) as f64 / rate.max(1e-9);
        format!(
            "{}: {}/{} {} ({:.0} %), {rate:.0}/s, about {left:.0} s left",
            self.what,
            self.done,
            self.total,
            self.unit,
            100.0 * self.done as f64 / self.total.max(1) as f64,
        )
    }
}
