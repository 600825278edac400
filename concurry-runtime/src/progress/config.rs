//! [`Progress`]: how a bar is shown (message, total, plain log lines, where it draws).

use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::time::Duration;

use super::log::LogWriter;
use crate::sync::Mutex;

/// How a progress bar is shown: its message, total, where it draws, and whether it also prints
/// plain log lines.
///
/// Anything that takes `impl Into<Progress>` accepts a message (`"LLM calls"`), a
/// `String`, a `bool` (`true` for a bar without a message, `false` for none) or a full
/// `Progress`. By default the bar is drawn on stderr, stacked with any other concurry bars
/// running at the same time, and only when stderr is a terminal: piped into a file or a CI log,
/// nothing is drawn. [`log_every`](Progress::log_every) prints plain lines instead (or as
/// well), terminal or not.
///
/// ```
/// use std::time::Duration;
/// use concurry::{Progress, Promise, gather};
///
/// let calls = (0..10).map(|i| Promise::<u32>::ready(Ok(i)));
/// let progress = Progress::new("LLM calls").log_every(Duration::from_secs(5));
/// assert_eq!(gather(calls).progress(progress).wait().unwrap().len(), 10);
/// ```
pub struct Progress {
    pub(crate) message: Cow<'static, str>,
    pub(crate) total: Option<u64>,
    pub(crate) hidden: bool,
    pub(crate) log_every: Option<LogEvery>,
    pub(crate) log_to: Option<LogWriter>,
    pub(crate) draw: Draw,
}

/// Where a bar draws.
pub(crate) enum Draw {
    /// The process-wide stack on stderr, when stderr is a terminal.
    Stderr,
    /// A draw target of its own.
    Target(indicatif::ProgressDrawTarget),
    /// Stacked in the given group.
    Multi(indicatif::MultiProgress),
}

/// How often [`Progress::log_every`] prints a line: every so often, or every so many results.
///
/// Made from a [`Duration`] or a count (`u64`).
///
/// ```
/// use std::time::Duration;
/// use concurry::LogEvery;
///
/// assert_eq!(LogEvery::from(Duration::from_secs(10)), LogEvery::Period(Duration::from_secs(10)));
/// assert_eq!(LogEvery::from(100), LogEvery::Count(100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogEvery {
    /// At most once per period, on the first result after it has passed.
    Period(Duration),
    /// After every this many results (0 counts as 1).
    Count(u64),
}

impl From<Duration> for LogEvery {
    fn from(period: Duration) -> Self {
        LogEvery::Period(period)
    }
}

impl From<u64> for LogEvery {
    fn from(count: u64) -> Self {
        LogEvery::Count(count)
    }
}

impl Progress {
    /// A bar titled `message`, drawn on stderr when it is a terminal.
    ///
    /// ```
    /// let progress = concurry::Progress::new("downloads");
    /// assert_eq!(progress.message(), "downloads");
    /// ```
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Progress {
            message: message.into(),
            total: None,
            hidden: false,
            log_every: None,
            log_to: None,
            draw: Draw::Stderr,
        }
    }

    /// No bar and no log lines: progress costs nothing (a branch per result).
    ///
    /// ```
    /// use concurry::{Progress, Promise, gather};
    ///
    /// let out = gather([Promise::<u8>::ready(Ok(1))]).progress(Progress::hidden()).wait();
    /// assert_eq!(out.unwrap(), vec![1]);
    /// ```
    pub fn hidden() -> Self {
        Progress {
            hidden: true,
            ..Progress::new("")
        }
    }

    /// The bar's title.
    ///
    /// ```
    /// assert_eq!(concurry::Progress::from("calls").message(), "calls");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Sets the total, overriding the count the bar would otherwise use (the number of
    /// promises, or an iterator's exact size); without either, the bar is a spinner.
    ///
    /// ```
    /// use concurry::{Progress, ProgressBar};
    ///
    /// let lines = ProgressBar::wrap_with("a\nb\nc".lines(), Progress::new("lines").total(3));
    /// assert_eq!(lines.count(), 3);
    /// ```
    pub fn total(mut self, total: u64) -> Self {
        self.total = Some(total);
        self
    }

    /// Also prints a plain line, like `LLM calls: 40/100 (✓ 38 ✗ 2) 12.3/s`, every period
    /// ([`Duration`]) or every so many results (`u64`), and a last one when the bar finishes.
    /// Lines go to stderr (above the bars while they are drawn), or to
    /// [`log_to`](Progress::log_to), whether or not stderr is a terminal: for logs that a bar
    /// would garble.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::Progress;
    ///
    /// let every_ten_seconds = Progress::new("calls").log_every(Duration::from_secs(10));
    /// let every_hundred = Progress::new("calls").log_every(100);
    /// # drop((every_ten_seconds, every_hundred));
    /// ```
    pub fn log_every(mut self, every: impl Into<LogEvery>) -> Self {
        self.log_every = Some(every.into());
        self
    }

    /// Sends [`log_every`](Progress::log_every) lines to `writer` instead of stderr.
    ///
    /// ```
    /// use concurry::{Progress, ProgressBar};
    ///
    /// let bar = ProgressBar::new(2, Progress::new("jobs").log_every(1).log_to(std::io::sink()));
    /// bar.inc_ok();
    /// bar.inc_err();
    /// bar.finish();
    /// ```
    pub fn log_to(mut self, writer: impl Write + Send + 'static) -> Self {
        self.log_to = Some(Mutex::new(Box::new(writer)));
        self
    }

    /// Draws on `target` rather than on stderr: always drawn, not stacked with other bars. For
    /// tests, indicatif's `InMemoryTerm` (its `in_memory` feature) records the screen.
    ///
    /// ```
    /// use concurry::{Progress, ProgressBar};
    /// use concurry::indicatif::ProgressDrawTarget;
    ///
    /// let bar = ProgressBar::new(1, Progress::new("x").draw_target(ProgressDrawTarget::stdout()));
    /// bar.inc_ok();
    /// bar.finish();
    /// ```
    pub fn draw_target(mut self, target: indicatif::ProgressDrawTarget) -> Self {
        self.draw = Draw::Target(target);
        self
    }

    /// Stacks the bar in `multi` rather than in concurry's own stack on stderr.
    ///
    /// ```
    /// use concurry::{Progress, ProgressBar};
    /// use concurry::indicatif::{MultiProgress, ProgressDrawTarget};
    ///
    /// let multi = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
    /// let a = ProgressBar::new(1, Progress::new("a").in_multi(&multi));
    /// let b = ProgressBar::new(1, Progress::new("b").in_multi(&multi));
    /// a.inc_ok();
    /// b.inc_ok();
    /// ```
    pub fn in_multi(mut self, multi: &indicatif::MultiProgress) -> Self {
        self.draw = Draw::Multi(multi.clone());
        self
    }
}

impl Default for Progress {
    /// A bar without a message.
    fn default() -> Self {
        Progress::new("")
    }
}

impl From<&str> for Progress {
    fn from(message: &str) -> Self {
        Progress::new(message.to_owned())
    }
}

impl From<&String> for Progress {
    fn from(message: &String) -> Self {
        Progress::new(message.clone())
    }
}

impl From<String> for Progress {
    fn from(message: String) -> Self {
        Progress::new(message)
    }
}

impl From<Cow<'static, str>> for Progress {
    fn from(message: Cow<'static, str>) -> Self {
        Progress::new(message)
    }
}

impl From<bool> for Progress {
    /// `true`: a bar without a message; `false`: [`Progress::hidden`].
    fn from(show: bool) -> Self {
        if show {
            Progress::default()
        } else {
            Progress::hidden()
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let draw = match self.draw {
            Draw::Stderr => "stderr",
            Draw::Target(_) => "target",
            Draw::Multi(_) => "multi",
        };
        f.debug_struct("Progress")
            .field("message", &self.message)
            .field("total", &self.total)
            .field("hidden", &self.hidden)
            .field("log_every", &self.log_every)
            .field("log_to", &self.log_to.as_ref().map(|_| ".."))
            .field("draw", &draw)
            .finish()
    }
}
