//! Plain progress lines for logs: `LLM calls: 40/100 (✓ 38 ✗ 2) 12.3/s`.

use std::fmt::Write as _;
use std::io::Write;
use std::time::Instant;

use super::bar::{Counts, End};
use super::config::LogEvery;
use crate::sync::{AtomicU64, Mutex, Ordering, lock};

/// Prints a line every period or every so many results, and one at the end.
pub(crate) struct Logger {
    every: LogEvery,
    /// Results seen, to pick the exact ticks that print in count mode.
    seen: AtomicU64,
    /// When the last periodic line was printed.
    last: Mutex<Instant>,
    /// `None`: stderr.
    writer: Option<LogWriter>,
}

/// Where lines go. Behind a mutex so that a `Progress` holding one stays `Sync`.
pub(crate) type LogWriter = Mutex<Box<dyn Write + Send>>;

impl Logger {
    pub(crate) fn new(every: LogEvery, writer: Option<LogWriter>, now: Instant) -> Self {
        Logger {
            every,
            seen: AtomicU64::new(0),
            last: Mutex::new(now),
            writer,
        }
    }

    /// Called after each result has been counted.
    pub(crate) fn tick(&self, line: &Line<'_>) {
        let seen = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        match self.every {
            LogEvery::Count(n) => {
                if seen.is_multiple_of(n.max(1)) {
                    self.print(line, None);
                }
            }
            LogEvery::Period(period) => {
                let now = Instant::now();
                let mut last = lock(&self.last);
                if now.saturating_duration_since(*last) >= period {
                    *last = now;
                    // Still holding `last`: lines come out in order, one per period.
                    self.print(line, None);
                }
            }
        }
    }

    /// The last line, once the bar has finished.
    pub(crate) fn finish(&self, line: &Line<'_>, end: End) {
        self.print(line, Some(end));
    }

    fn print(&self, line: &Line<'_>, end: Option<End>) {
        let text = line.render(end);
        match (&self.writer, line.drawn) {
            (Some(writer), _) => write_line(&mut **lock(writer), &text),
            // Printed above the bars, so that neither garbles the other.
            (None, Some(bar)) => bar.println(text),
            (None, None) => write_line(&mut std::io::stderr(), &text),
        }
    }
}

fn write_line(writer: &mut dyn Write, text: &str) {
    // A log line that cannot be written is not worth failing the work for.
    let _ = writeln!(writer, "{text}").and_then(|()| writer.flush());
}

/// What a line shows, read from the bar.
pub(crate) struct Line<'a> {
    pub(crate) message: &'a str,
    pub(crate) counts: &'a Counts,
    pub(crate) total: Option<u64>,
    /// When the bar started; read only when a line is printed.
    pub(crate) started: Instant,
    /// The bar on screen, if any.
    pub(crate) drawn: Option<&'a indicatif::ProgressBar>,
}

impl Line<'_> {
    /// `msg: 40/100 (✓ 38 ✗ 2) 12.3/s`, or at the end `msg: done 100/100 (✓ 100 ✗ 0) in 8.1s`.
    fn render(&self, end: Option<End>) -> String {
        let (ok, failed) = self.counts.get();
        let done = ok + failed;
        let mut s = String::new();
        if !self.message.is_empty() {
            let _ = write!(s, "{}: ", self.message);
        }
        if let Some(end) = end {
            let _ = write!(s, "{} ", end.word());
        }
        let _ = write!(s, "{done}");
        if let Some(total) = self.total {
            let _ = write!(s, "/{total}");
        }
        let _ = write!(s, " (✓ {ok} ✗ {failed})");
        let secs = self.started.elapsed().as_secs_f64();
        if end.is_some() {
            let _ = write!(s, " in {secs:.1}s");
        } else {
            let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
            let _ = write!(s, " {rate:.1}/s");
        }
        s
    }
}
