//! The progress line of `flowtel ingest` (on a terminal, without `--quiet`),
//! and the messages printed during a run, which go above it instead of
//! through it.

use std::time::{Duration, Instant};

use flowtel::Stats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Prints whole lines on standard error, above the progress line when one
/// is shown. Clones print above the same line.
#[derive(Clone)]
pub(crate) struct Printer(ProgressBar);

impl Printer {
    /// Print `line` and a newline on standard error: the progress line is
    /// cleared first and redrawn after, so the two never share a row.
    pub(crate) fn println(&self, line: &str) {
        self.0.suspend(|| eprintln!("{line}"));
    }
}

/// What the progress line shows.
pub(crate) struct Counts {
    pub(crate) events: u64,
    pub(crate) skipped: u64,
    pub(crate) problems: u64,
}

/// The progress line.
pub(crate) struct Progress {
    bar: ProgressBar,
    shown: bool,
    started: Instant,
    last: Instant,
}

/// The line is refreshed at most this often (and indicatif draws at most
/// 20 times a second); in between, an update costs one clock read.
const REFRESH: Duration = Duration::from_millis(100);

impl Progress {
    /// A progress line on standard error when `shown`, else none (messages
    /// are still printed).
    pub(crate) fn new(shown: bool) -> Self {
        let bar = if shown {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{msg}") {
                bar.set_style(style);
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        let now = Instant::now();
        Progress {
            bar,
            shown,
            started: now,
            // The first update draws.
            last: now.checked_sub(REFRESH).unwrap_or(now),
        }
    }

    /// Where to print messages during the run.
    pub(crate) fn printer(&self) -> Printer {
        Printer(self.bar.clone())
    }

    /// Refresh the line, at most every [`REFRESH`]; `now` is only asked
    /// for then.
    pub(crate) fn update(&mut self, now: impl FnOnce() -> (Counts, Stats)) {
        if !self.shown || self.last.elapsed() < REFRESH {
            return;
        }
        self.last = Instant::now();
        let (c, s) = now();
        let rate = c.events as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_message(format!(
            "{} events · {:.0}/s · {} spans · {} metric points · {} skipped · {} errors · {} dropped",
            c.events,
            rate,
            s.spans_exported,
            s.metric_points_exported,
            c.skipped,
            c.problems,
            s.events_dropped() + s.spans_dropped
        ));
    }

    /// Remove the line, before the summary.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
