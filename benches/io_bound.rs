//! The I/O-bound run: 1000 calls that each sleep 50 ms, on 100 thread workers. The ideal is
//! 0.5 s; efficiency = ideal / measured. Baseline in the same run: a hand-written pool of 100
//! threads pulling from a crossbeam channel.
//!
//! Wall-clock by nature (it measures sleeping), so it is a bench, not a test.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::time::{Duration, Instant};

use concurry::prelude::*;

const CALLS: usize = 1000;
const WORKERS: usize = 100;
const SLEEP: Duration = Duration::from_millis(50);
const RUNS: usize = 5;

struct Io;

#[concurry::worker]
impl Io {
    pub fn new() -> Self {
        Io
    }
    pub fn call(&self, i: usize) -> usize {
        std::thread::sleep(SLEEP);
        i
    }
}

fn concurry_run(pool: &IoHandle) -> Duration {
    let t = Instant::now();
    let futures: Vec<_> = (0..CALLS).map(|i| pool.call(i)).collect();
    for f in futures {
        f.result().unwrap();
    }
    t.elapsed()
}

fn hand_written_run() -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded::<(usize, crossbeam_channel::Sender<usize>)>();
    let threads: Vec<_> = (0..WORKERS)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                for (i, reply) in rx {
                    std::thread::sleep(SLEEP);
                    let _ = reply.send(i);
                }
            })
        })
        .collect();
    let t = Instant::now();
    let replies: Vec<_> = (0..CALLS)
        .map(|i| {
            let (reply, r) = crossbeam_channel::bounded(1);
            tx.send((i, reply)).unwrap();
            r
        })
        .collect();
    for r in replies {
        r.recv().unwrap();
    }
    let elapsed = t.elapsed();
    drop(tx);
    threads.into_iter().for_each(|t| t.join().unwrap());
    elapsed
}

fn report(name: &str, mut runs: Vec<Duration>) {
    runs.sort();
    let ideal = SLEEP.as_secs_f64() * (CALLS / WORKERS) as f64;
    let median = runs[runs.len() / 2].as_secs_f64();
    let best = runs[0].as_secs_f64();
    println!(
        "io_bound/{name}: median {median:.3} s ({:.1}% of ideal {ideal:.1} s), best {best:.3} s ({:.1}%)",
        100.0 * ideal / median,
        100.0 * ideal / best
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not run benches.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let pool = Io::options()
        .mode(Mode::Thread)
        .max_workers(WORKERS)
        .init()
        .unwrap();
    let ours: Vec<_> = (0..RUNS).map(|_| concurry_run(&pool)).collect();
    pool.stop().unwrap();
    let theirs: Vec<_> = (0..RUNS).map(|_| hand_written_run()).collect();
    report("concurry", ours);
    report("hand_written_pool", theirs);
}
