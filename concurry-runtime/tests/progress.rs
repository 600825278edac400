//! Progress bars rendered into indicatif's in-memory terminal, and plain log lines written to
//! a shared buffer. Assertions are on screen contents and counts, never on timing.
#![allow(missing_docs)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use concurry_runtime::{LogEvery, Progress, ProgressBar};
use indicatif::{InMemoryTerm, MultiProgress, ProgressDrawTarget};

fn term() -> InMemoryTerm {
    InMemoryTerm::new(10, 120)
}

fn on(term: &InMemoryTerm, message: &str) -> Progress {
    Progress::new(message.to_owned())
        .draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())))
}

/// A `Write` whose lines the test can read back.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Lines {
    fn get(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn finished_bar_shows_counts_and_done() {
    let term = term();
    let bar = ProgressBar::new(3, on(&term, "uploads"));
    bar.inc_ok();
    bar.inc_ok();
    bar.inc_ok();
    bar.finish();
    let screen = term.contents();
    assert!(screen.contains("uploads"), "{screen}");
    assert!(screen.contains("3/3"), "{screen}");
    assert!(screen.contains("✓ 3 ✗ 0"), "{screen}");
    assert!(screen.contains("✔ done"), "{screen}");
}

#[test]
fn failures_are_counted_apart_and_mark_the_bar_failed() {
    let term = term();
    let bar = ProgressBar::new(100, on(&term, "LLM calls"));
    for i in 0..100 {
        bar.inc(i % 20 != 0);
    }
    bar.finish();
    let screen = term.contents();
    assert!(screen.contains("100/100"), "{screen}");
    assert!(screen.contains("✓ 95 ✗ 5"), "{screen}");
    assert!(screen.contains("✘ failed"), "{screen}");
}

/// Colours are on in this test only; the others read `contents()`, which has none anyway.
#[test]
fn the_bar_turns_red_at_the_first_failure_and_green_when_done() {
    console::set_colors_enabled(true);
    const CYAN: &str = "\x1b[36m";
    const RED: &str = "\x1b[31m";
    const GREEN: &str = "\x1b[32m";
    let screen = |term: &InMemoryTerm| String::from_utf8(term.contents_formatted()).unwrap();

    let term = term();
    let bar = ProgressBar::new(4, on(&term, "colours"));
    bar.inc_ok();
    assert!(screen(&term).contains(CYAN), "{:?}", screen(&term));
    assert!(!screen(&term).contains(RED), "{:?}", screen(&term));
    bar.inc_err();
    assert!(screen(&term).contains(RED), "{:?}", screen(&term));
    assert!(term.contents().contains("✓ 1 ✗ 1"), "{}", term.contents());
    bar.finish();
    assert!(screen(&term).contains(RED), "{:?}", screen(&term));

    let term = self::term();
    let bar = ProgressBar::new(1, on(&term, "colours"));
    bar.inc_ok();
    bar.finish();
    assert!(screen(&term).contains(GREEN), "{:?}", screen(&term));
}

#[test]
fn finishing_early_is_stopped() {
    let term = term();
    let bar = ProgressBar::new(4, on(&term, "jobs"));
    bar.inc_ok();
    drop(bar); // the last handle finishes the bar
    let screen = term.contents();
    assert!(screen.contains("1/4"), "{screen}");
    assert!(screen.contains("■ stopped"), "{screen}");
}

#[test]
fn unknown_total_is_a_spinner_with_counts() {
    let term = term();
    let bar = ProgressBar::without_total(on(&term, "events"));
    bar.inc_ok();
    bar.inc_err();
    bar.finish();
    let screen = term.contents();
    assert!(screen.contains("events 2 ✓ 1 ✗ 1 failed"), "{screen}");
}

#[test]
fn wrapped_iterator_ticks_per_item_and_finishes_done() {
    let term = term();
    let sum: u32 = ProgressBar::wrap_with(1..=10, on(&term, "summing")).sum();
    assert_eq!(sum, 55);
    let screen = term.contents();
    assert!(screen.contains("10/10 ✓ 10 ✗ 0 ✔ done"), "{screen}");
}

#[test]
fn bars_in_one_multi_progress_stack() {
    let term = term();
    let multi =
        MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())));
    let a = ProgressBar::new(2, Progress::new("first").in_multi(&multi));
    let b = ProgressBar::new(3, Progress::new("second").in_multi(&multi));
    a.inc_ok();
    b.inc_err();
    a.inc_ok();
    a.finish();
    b.finish();
    let screen = term.contents();
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "{screen}");
    assert!(
        lines[0].contains("first") && lines[0].contains("✔ done"),
        "{screen}"
    );
    assert!(
        lines[1].contains("second") && lines[1].contains("✓ 0 ✗ 1"),
        "{screen}"
    );
}

#[test]
fn hidden_bar_neither_draws_nor_logs() {
    let lines = Lines::default();
    let bar = ProgressBar::new(2, Progress::hidden().log_every(1_u64).log_to(lines.clone()));
    assert!(bar.is_hidden());
    bar.inc_ok();
    bar.finish();
    assert!(lines.get().is_empty());
}

#[test]
fn default_bar_is_drawn_only_on_a_terminal() {
    use std::io::IsTerminal;
    let bar = ProgressBar::new(1, "stderr");
    assert_eq!(bar.is_hidden(), !std::io::stderr().is_terminal());
}

#[test]
fn log_every_count_prints_plain_lines() {
    let lines = Lines::default();
    let bar = ProgressBar::new(
        10,
        Progress::new("LLM calls")
            .log_every(4_u64)
            .log_to(lines.clone())
            .draw_target(ProgressDrawTarget::hidden()),
    );
    for i in 0..10 {
        bar.inc(i != 2);
    }
    bar.finish();
    let lines = lines.get();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("LLM calls: 4/10 (✓ 3 ✗ 1) "),
        "{lines:?}"
    );
    assert!(lines[0].ends_with("/s"), "{lines:?}");
    assert!(
        lines[1].starts_with("LLM calls: 8/10 (✓ 7 ✗ 1) "),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("LLM calls: failed 10/10 (✓ 9 ✗ 1) in "),
        "{lines:?}"
    );
}

#[test]
fn log_lines_go_above_a_drawn_bar() {
    let term = term();
    let bar = ProgressBar::new(4, on(&term, "jobs").log_every(2));
    for _ in 0..4 {
        bar.inc_ok();
    }
    bar.finish();
    let screen = term.contents();
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines[0].starts_with("jobs: 2/4 (✓ 2 ✗ 0) "), "{screen}");
    assert!(lines[1].starts_with("jobs: 4/4 (✓ 4 ✗ 0) "), "{screen}");
    assert!(
        lines[2].starts_with("jobs: done 4/4 (✓ 4 ✗ 0) in "),
        "{screen}"
    );
    assert!(lines[3].contains("4/4 ✓ 4 ✗ 0 ✔ done"), "{screen}");
}

#[test]
fn log_every_period_logs_at_most_once_per_period() {
    // A period no test run reaches: only the final line is printed.
    let lines = Lines::default();
    let bar = ProgressBar::new(
        3,
        Progress::new("slow")
            .log_every(std::time::Duration::from_secs(3600))
            .log_to(lines.clone()),
    );
    for _ in 0..3 {
        bar.inc_ok();
    }
    bar.finish();
    let lines = lines.get();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("slow: done 3/3 (✓ 3 ✗ 0) in "),
        "{lines:?}"
    );
}

#[test]
fn progress_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Progress>();
    send_sync::<ProgressBar>();
    send_sync::<concurry_runtime::ProgressIter<std::vec::IntoIter<u8>>>();
    // A wait with a progress option stays as shareable as it was.
    send_sync::<concurry_runtime::Gather<u8>>();
    send_sync::<concurry_runtime::Settled<u8>>();
    send_sync::<concurry_runtime::AsCompleted<u8>>();
    send_sync::<concurry_runtime::WaitFuture<u8>>();
}

#[test]
fn log_every_accepts_durations_and_counts() {
    assert_eq!(LogEvery::from(7_u64), LogEvery::Count(7));
    let p: Progress = "x".into();
    assert_eq!(p.message(), "x");
    let p: Progress = false.into();
    assert!(ProgressBar::new(1, p).is_hidden());
}

#[test]
fn counting_from_many_threads_is_exact() {
    let lines = Lines::default();
    let bar = ProgressBar::new(
        400,
        Progress::new("threads")
            .log_every(100_u64)
            .log_to(lines.clone()),
    );
    std::thread::scope(|s| {
        for t in 0..4 {
            let bar = bar.clone();
            s.spawn(move || {
                for i in 0..100 {
                    bar.inc(!(t == 0 && i == 0));
                }
            });
        }
    });
    bar.finish();
    let lines = lines.get();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(
        lines[4].starts_with("threads: failed 400/400 (✓ 399 ✗ 1)"),
        "{lines:?}"
    );
}

// ---- the combinators' `.progress(..)` ----

mod combinators {
    use concurry_runtime::{
        Error, Promise, ReturnWhen, as_completed, gather, wait_async, wait_with,
    };
    use futures_util::StreamExt;

    use super::{Lines, on, term};

    fn ready(n: u32, failing: &[u32]) -> Vec<Promise<u32>> {
        (0..n)
            .map(|i| {
                Promise::ready(if failing.contains(&i) {
                    Err(Error::Cancelled)
                } else {
                    Ok(i)
                })
            })
            .collect()
    }

    #[test]
    fn gather_counts_every_result() {
        let term = term();
        let out = gather(ready(20, &[])).progress(on(&term, "gather")).wait();
        assert_eq!(out.unwrap().len(), 20);
        let screen = term.contents();
        assert!(screen.contains("gather"), "{screen}");
        assert!(screen.contains("20/20 ✓ 20 ✗ 0 ✔ done"), "{screen}");
    }

    #[test]
    fn gather_stops_at_the_first_error_and_shows_it() {
        let term = term();
        let out = gather(ready(10, &[4])).progress(on(&term, "gather")).wait();
        assert!(matches!(out, Err(Error::Cancelled)));
        let screen = term.contents();
        assert!(screen.contains("5/10 ✓ 4 ✗ 1 ✘ failed"), "{screen}");
    }

    #[test]
    fn settled_counts_failures_and_goes_on() {
        let term = term();
        let out = gather(ready(10, &[1, 7]))
            .progress(on(&term, "settled"))
            .settled()
            .wait();
        assert_eq!(out.iter().filter(|r| r.is_err()).count(), 2);
        let screen = term.contents();
        assert!(screen.contains("10/10 ✓ 8 ✗ 2 ✘ failed"), "{screen}");
    }

    #[test]
    fn gather_awaited_counts_too() {
        let term = term();
        let out = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(gather(ready(5, &[])).progress(on(&term, "async")));
        assert_eq!(out.unwrap(), vec![0, 1, 2, 3, 4]);
        let screen = term.contents();
        assert!(screen.contains("5/5 ✓ 5 ✗ 0 ✔ done"), "{screen}");
    }

    #[test]
    fn gather_logs_plain_lines() {
        let lines = Lines::default();
        let progress = concurry_runtime::Progress::new("LLM calls")
            .log_every(50_u64)
            .log_to(lines.clone());
        let out = gather(ready(100, &[3, 60]))
            .settled()
            .progress(progress)
            .wait();
        assert_eq!(out.len(), 100);
        let lines = lines.get();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].starts_with("LLM calls: 50/100 (✓ 49 ✗ 1) "),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("LLM calls: 100/100 (✓ 98 ✗ 2) "),
            "{lines:?}"
        );
        assert!(
            lines[2].starts_with("LLM calls: failed 100/100 (✓ 98 ✗ 2) in "),
            "{lines:?}"
        );
    }

    #[test]
    fn as_completed_ticks_per_item() {
        let term = term();
        let mut results = as_completed(ready(3, &[2])).progress(on(&term, "stream"));
        assert!(results.next().unwrap().is_ok());
        assert!(results.next().unwrap().is_ok());
        assert!(results.next().unwrap().is_err());
        assert!(results.next().is_none());
        let screen = term.contents();
        assert!(screen.contains("3/3 ✓ 2 ✗ 1 ✘ failed"), "{screen}");
    }

    #[test]
    fn as_completed_dropped_early_is_stopped() {
        let term = term();
        let mut results = as_completed(ready(3, &[])).progress(on(&term, "early"));
        assert!(results.next().unwrap().is_ok());
        drop(results);
        let screen = term.contents();
        assert!(screen.contains("1/3 ✓ 1 ✗ 0 ■ stopped"), "{screen}");
    }

    #[test]
    fn as_completed_stream_ticks_per_item() {
        let term = term();
        let all: Vec<_> = tokio::runtime::Runtime::new().unwrap().block_on(
            as_completed(ready(4, &[]))
                .progress(on(&term, "stream"))
                .into_stream()
                .collect(),
        );
        assert_eq!(all.len(), 4);
        let screen = term.contents();
        assert!(screen.contains("4/4 ✓ 4 ✗ 0 ✔ done"), "{screen}");
    }

    #[test]
    fn wait_first_completed_stops_the_bar() {
        let term = term();
        let (slow, _keep) = Promise::<u32>::pending();
        let (done, not_done) = wait_with(
            [slow, Promise::ready(Ok(1))],
            ReturnWhen::FirstCompleted,
            None,
            on(&term, "wait"),
        );
        assert_eq!((done.len(), not_done.len()), (1, 1));
        let screen = term.contents();
        assert!(screen.contains("1/2 ✓ 1 ✗ 0 ■ stopped"), "{screen}");
    }

    #[test]
    fn wait_async_counts_all() {
        let term = term();
        let (done, _) = tokio::runtime::Runtime::new().unwrap().block_on(
            wait_async(ready(6, &[5]), ReturnWhen::AllCompleted, None).progress(on(&term, "w")),
        );
        assert_eq!(done.len(), 6);
        let screen = term.contents();
        assert!(screen.contains("6/6 ✓ 5 ✗ 1 ✘ failed"), "{screen}");
    }
}
