//! [`ProgressBar`]: counts successes and failures, draws them with indicatif, logs them.

use std::borrow::Cow;
use std::fmt;
use std::time::Instant;

use super::config::{Draw, Progress};
use super::log::{Line, Logger};
use super::multi;
use crate::sync::{Arc, AtomicBool, AtomicU64, Ordering};

/// A progress bar counting successes and failures separately (`✓ 95 ✗ 5`).
///
/// Made from a [`Progress`] (or anything `Into<Progress>`, such as a message). The bar is
/// drawn with [indicatif](https://docs.rs/indicatif) on stderr, only when stderr is a terminal,
/// stacked with every other concurry bar alive at the same time. It turns red at the first
/// failure and, once finished, shows how it ended: `✔ done`, `✘ failed` (some failures) or
/// `■ stopped` (finished before reaching its total). Cloning gives another handle to the same
/// bar, so results can be counted from several threads; when the last handle is dropped
/// unfinished, the bar finishes.
///
/// When nothing is drawn or logged (hidden, or stderr is not a terminal and there is no
/// [`log_every`](Progress::log_every)), counting is a single branch.
///
/// Combinators take a progress option directly: `gather(..).progress("msg")`,
/// `as_completed(..).progress(..)`, [`wait_with`](crate::wait_with).
///
/// ```
/// use concurry::ProgressBar;
///
/// let bar = ProgressBar::new(3, "uploads");
/// bar.inc_ok();
/// bar.inc_ok();
/// bar.inc_err();
/// bar.finish(); // `✘ failed`: one upload failed
/// ```
#[derive(Clone)]
pub struct ProgressBar {
    /// `None` when nothing is drawn or logged.
    inner: Option<Arc<Inner>>,
}

struct Inner {
    message: Cow<'static, str>,
    counts: Arc<Counts>,
    /// `u64::MAX` when unknown.
    total: AtomicU64,
    draw: Option<indicatif::ProgressBar>,
    log: Option<Logger>,
    started: Instant,
    finished: AtomicBool,
}

/// Successes and failures so far; shared with the `{counts}` key of the bar's template.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    pub(crate) fn get(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// How a finished bar ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Every result in, none failed.
    Done,
    /// At least one failure.
    Failed,
    /// Finished before reaching its total, without failures.
    Stopped,
}

impl End {
    pub(crate) fn word(self) -> &'static str {
        match self {
            End::Done => "done",
            End::Failed => "failed",
            End::Stopped => "stopped",
        }
    }

    fn mark(self) -> &'static str {
        match self {
            End::Done => "✔",
            End::Failed => "✘",
            End::Stopped => "■",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            End::Done => "green",
            End::Failed => "red",
            End::Stopped => "white",
        }
    }
}

const UNKNOWN: u64 = u64::MAX;

impl ProgressBar {
    /// A bar expecting `total` results (a [`Progress::total`] overrides it).
    ///
    /// ```
    /// use concurry::{Progress, ProgressBar};
    ///
    /// let bar = ProgressBar::new(10, Progress::new("rows").log_every(5));
    /// for i in 0..10 {
    ///     bar.inc(i != 3);
    /// }
    /// bar.finish();
    /// ```
    pub fn new(total: u64, progress: impl Into<Progress>) -> Self {
        Self::start(progress.into(), Some(total))
    }

    /// A bar with no known total (a spinner), unless [`Progress::total`] gives one.
    ///
    /// ```
    /// let bar = concurry::ProgressBar::without_total("events");
    /// bar.inc_ok();
    /// bar.finish();
    /// ```
    pub fn without_total(progress: impl Into<Progress>) -> Self {
        Self::start(progress.into(), None)
    }

    /// Creates the bar; `Progress::total` wins over `default_total`.
    pub(crate) fn start(progress: Progress, default_total: Option<u64>) -> Self {
        if progress.hidden {
            return ProgressBar { inner: None };
        }
        let total = progress.total.or(default_total);
        // A bar on a hidden target would only cost time: skip it.
        let draw = match progress.draw {
            Draw::Target(target) => (!target.is_hidden())
                .then(|| indicatif::ProgressBar::with_draw_target(total, target)),
            Draw::Multi(multi) => (!multi.is_hidden()).then(|| {
                multi.add(indicatif::ProgressBar::with_draw_target(
                    total,
                    indicatif::ProgressDrawTarget::hidden(),
                ))
            }),
            Draw::Stderr => multi::stderr_is_terminal().then(|| {
                multi::global().add(indicatif::ProgressBar::with_draw_target(
                    total,
                    indicatif::ProgressDrawTarget::hidden(),
                ))
            }),
        };
        let started = Instant::now();
        let log = progress
            .log_every
            .map(|every| Logger::new(every, progress.log_to, started));
        if draw.is_none() && log.is_none() {
            return ProgressBar { inner: None };
        }
        let inner = Inner {
            message: progress.message,
            counts: Arc::new(Counts::default()),
            total: AtomicU64::new(total.unwrap_or(UNKNOWN)),
            draw,
            log,
            started,
            finished: AtomicBool::new(false),
        };
        if let Some(bar) = &inner.draw {
            bar.set_message(inner.message.to_string());
            bar.set_style(inner.style(None, false));
            bar.tick();
        }
        ProgressBar {
            inner: Some(Arc::new(inner)),
        }
    }

    /// Counts one result: a success when `ok`, else a failure.
    ///
    /// ```
    /// let bar = concurry::ProgressBar::new(2, "checks");
    /// for outcome in [Ok::<(), ()>(()), Err(())] {
    ///     bar.inc(outcome.is_ok());
    /// }
    /// ```
    #[inline]
    pub fn inc(&self, ok: bool) {
        if let Some(inner) = &self.inner {
            inner.inc(ok);
        }
    }

    /// Counts one success.
    ///
    /// ```
    /// concurry::ProgressBar::new(1, "x").inc_ok();
    /// ```
    #[inline]
    pub fn inc_ok(&self) {
        self.inc(true);
    }

    /// Counts one failure; the bar turns red.
    ///
    /// ```
    /// concurry::ProgressBar::new(1, "x").inc_err();
    /// ```
    #[inline]
    pub fn inc_err(&self) {
        self.inc(false);
    }

    /// Sets (or corrects) the total, once it is known.
    ///
    /// ```
    /// let bar = concurry::ProgressBar::without_total("lines");
    /// bar.set_total(2);
    /// bar.inc_ok();
    /// bar.inc_ok();
    /// bar.finish();
    /// ```
    pub fn set_total(&self, total: u64) {
        if let Some(inner) = &self.inner {
            let was = inner.total.swap(total, Ordering::Relaxed);
            if let Some(bar) = &inner.draw {
                bar.set_length(total);
                if was == UNKNOWN {
                    bar.set_style(inner.style(None, inner.any_failed()));
                }
            }
        }
    }

    /// Finishes the bar, leaving it on screen with how it ended: `✔ done`, `✘ failed` when
    /// any result failed, `■ stopped` when fewer results than the total came in. Prints the
    /// last log line. Later calls do nothing.
    ///
    /// ```
    /// let bar = concurry::ProgressBar::new(2, "x");
    /// bar.inc_ok();
    /// bar.finish(); // `■ stopped` at 1/2
    /// bar.finish(); // no effect
    /// ```
    pub fn finish(&self) {
        if let Some(inner) = &self.inner {
            inner.finish();
        }
    }

    /// True when this bar neither draws nor logs (its counting then costs nothing).
    ///
    /// ```
    /// use concurry::{Progress, ProgressBar};
    ///
    /// assert!(ProgressBar::new(1, Progress::hidden()).is_hidden());
    /// let logged = Progress::new("x").log_every(10).log_to(std::io::sink());
    /// assert!(!ProgressBar::new(1, logged).is_hidden());
    /// ```
    pub fn is_hidden(&self) -> bool {
        self.inner.is_none()
    }
}

impl Inner {
    #[inline]
    fn inc(&self, ok: bool) {
        let first_failure = if ok {
            self.counts.ok.fetch_add(1, Ordering::Relaxed);
            false
        } else {
            self.counts.failed.fetch_add(1, Ordering::Relaxed) == 0
        };
        if let Some(bar) = &self.draw {
            bar.inc(1);
            if first_failure {
                // Turn red now, not at the next (rate-limited) redraw.
                bar.set_style(self.style(None, true));
                bar.tick();
            }
        }
        if let Some(log) = &self.log {
            log.tick(&self.line());
        }
    }

    fn any_failed(&self) -> bool {
        self.counts.failed.load(Ordering::Relaxed) > 0
    }

    fn total(&self) -> Option<u64> {
        Some(self.total.load(Ordering::Relaxed)).filter(|&t| t != UNKNOWN)
    }

    fn line(&self) -> Line<'_> {
        Line {
            message: &self.message,
            counts: &self.counts,
            total: self.total(),
            started: self.started,
            drawn: self.draw.as_ref(),
        }
    }

    fn end(&self) -> End {
        let (ok, failed) = self.counts.get();
        if failed > 0 {
            End::Failed
        } else if self.total().is_some_and(|t| ok < t) {
            End::Stopped
        } else {
            End::Done
        }
    }

    fn finish(&self) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let end = self.end();
        if let Some(bar) = &self.draw {
            bar.set_style(self.style(Some(end), end == End::Failed));
            // `abandon` keeps the position where it is; `finish` would fill the bar.
            if end == End::Done {
                bar.finish();
            } else {
                bar.abandon();
            }
        }
        if let Some(log) = &self.log {
            log.finish(&self.line(), end);
        }
    }

    /// The bar's look: running (blue, or red after a failure) or finished.
    fn style(&self, end: Option<End>, failed: bool) -> indicatif::ProgressStyle {
        let known = self.total().is_some();
        let colour = match end {
            Some(end) => end.colour(),
            None if failed => "red",
            None => "cyan",
        };
        let template = match (end, known) {
            (None, true) => format!(
                "{{msg}} [{{bar:30.{colour}/blue}}] {{pos}}/{{len}} {{counts}} {{rate}} eta {{eta}}"
            ),
            (None, false) => {
                format!("{{spinner:.{colour}}} {{msg}} {{pos}} {{counts}} {{rate}}")
            }
            (Some(end), true) => format!(
                "{{msg}} [{{bar:30.{colour}/blue}}] {{pos}}/{{len}} {{counts}} {} {} in {{took}}",
                end.mark(),
                end.word()
            ),
            (Some(end), false) => format!(
                "{} {{msg}} {{pos}} {{counts}} {} in {{took}}",
                end.mark(),
                end.word()
            ),
        };
        let counts = Arc::clone(&self.counts);
        indicatif::ProgressStyle::with_template(&template)
            .expect("concurry's progress templates are valid")
            .progress_chars("█▉▊▋▌▍▎▏ ")
            .with_key(
                "counts",
                move |_: &indicatif::ProgressState, w: &mut dyn fmt::Write| {
                    let (ok, failed) = counts.get();
                    let _ = write!(w, "✓ {ok} ✗ {failed}");
                },
            )
            .with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn fmt::Write| {
                    let _ = write!(w, "{:.1}/s", state.per_sec());
                },
            )
            .with_key(
                "took",
                |state: &indicatif::ProgressState, w: &mut dyn fmt::Write| {
                    let _ = write!(w, "{:.1}s", state.elapsed().as_secs_f64());
                },
            )
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.finish();
    }
}

impl fmt::Debug for ProgressBar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("ProgressBar");
        match &self.inner {
            None => s.field("hidden", &true),
            Some(inner) => {
                let (ok, failed) = inner.counts.get();
                s.field("message", &inner.message)
                    .field("ok", &ok)
                    .field("failed", &failed)
                    .field("total", &inner.total())
            }
        };
        s.finish()
    }
}
