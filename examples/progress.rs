//! Progress bars: two waits running at once stack on stderr, failures are counted apart and
//! turn the bar red, and the same run prints plain lines when stderr is not a terminal.
//!
//! ```text
//! cargo run --release --example progress              # bars
//! cargo run --release --example progress 2>&1 | cat   # no terminal: plain log lines only
//! ```

use std::io::IsTerminal;
use std::time::Duration;

use concurry::prelude::*;

/// A (simulated) flaky API: every `fail_every`-th call fails.
#[derive(Debug)]
pub struct Api {
    fail_every: u32,
}

#[concurry::worker]
impl Api {
    /// Runs once in every worker.
    pub fn new(fail_every: u32) -> Self {
        Api { fail_every }
    }

    /// One call: 20 ms of waiting, as a network round trip would be.
    pub fn call(&self, i: u32) -> Result<u32, String> {
        std::thread::sleep(Duration::from_millis(20));
        if i.is_multiple_of(self.fail_every) {
            Err(format!("call {i} failed"))
        } else {
            Ok(i * 2)
        }
    }
}

fn main() -> Result<(), concurry::Error> {
    let api = Api::options().max_workers(20).init(13)?;

    // On a terminal: bars. Otherwise: a plain line every 50 results.
    let progress = |message: &'static str| {
        let progress = Progress::new(message);
        if std::io::stderr().is_terminal() {
            progress
        } else {
            progress.log_every(50)
        }
    };

    // Two waits at once, from two threads: their bars stack.
    std::thread::scope(|s| {
        s.spawn(|| {
            let calls: Vec<_> = (1..=200).map(|i| api.call(i)).collect();
            let outcomes = concurry::gather(calls)
                .settled()
                .progress(progress("settled"))
                .wait();
            let failed = outcomes.iter().filter(|r| r.is_err()).count();
            println!("settled: {} results, {failed} failed", outcomes.len());
        });
        s.spawn(|| {
            let calls: Vec<_> = (1000..1150).map(|i| api.call(i)).collect();
            let ok = concurry::as_completed(calls)
                .progress(progress("as_completed"))
                .filter(Result::is_ok)
                .count();
            println!("as_completed: {ok} succeeded");
        });
    });

    // Any iterator.
    let sum: u64 = ProgressBar::wrap_with(0..2_000_000_u64, "summing").sum();
    println!("sum: {sum}");

    api.stop()?;
    Ok(())
}
