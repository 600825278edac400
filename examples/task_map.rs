//! A CPU-bound `map` over a million items on a thread pool, with a progress bar, against the
//! same work done sequentially; prints the speed-up.
//!
//! ```text
//! cargo run --release --example task_map            # 1 000 000 items
//! cargo run --release --example task_map -- 100000  # fewer items
//! cargo run --release --example task_map 2>&1 | cat # no terminal: plain log lines
//! ```
//!
//! `#[task]` turns `work` into `work::map(items)`: a lazy iterator that keeps a bounded window
//! of calls in flight (never a million promises at once) and spreads them over every worker.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use concurry::prelude::*;

/// Some CPU work per item: a few thousand rounds of a cheap hash (a few microseconds).
#[concurry::task(mode = "thread")]
fn work(n: u64) -> u64 {
    let mut x = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2_000 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        x ^= x >> 29;
    }
    x % 1_000
}

fn progress(message: &'static str) -> Progress {
    let progress = Progress::new(message);
    if std::io::stderr().is_terminal() {
        progress
    } else {
        // Off a terminal the bar is hidden; log a line every second instead.
        progress.log_every(Duration::from_secs(1))
    }
}

fn main() -> Result<(), concurry::Error> {
    let n: u64 = std::env::args().nth(1).map_or(1_000_000, |s| {
        s.parse().expect("the item count is a number")
    });
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());

    let started = Instant::now();
    let sequential: u64 = (0..n).map(work).sum();
    let sequential_time = started.elapsed();
    println!("sequential: {n} items in {sequential_time:.2?}");

    // An explicit pool with one worker per core; `work::map(..)` would use the implicit one.
    let pool = work::options().max_workers(workers).init()?;
    let started = Instant::now();
    let mut parallel = 0;
    for result in pool
        .map(0..n)
        .window(64 * workers)
        .progress(progress("work::map"))
    {
        parallel += result?;
    }
    let parallel_time = started.elapsed();
    println!("thread pool ({workers} workers): {n} items in {parallel_time:.2?}");
    assert_eq!(parallel, sequential, "same results either way");

    let stats = pool.stats();
    let per_worker: Vec<u64> = stats.per_worker.iter().map(|w| w.dispatched).collect();
    println!("items per worker: {per_worker:?}");
    println!(
        "speed-up: {:.2}x",
        sequential_time.as_secs_f64() / parallel_time.as_secs_f64()
    );
    pool.stop()
}
