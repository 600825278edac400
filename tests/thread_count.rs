//! Thread and process modes leave no thread (and no child process) behind: after `stop()`
//! (or drop) the process has as many threads as before. Its own test binary, so no other
//! test's threads come and go meanwhile.
#![allow(unreachable_pub, missing_docs)]

use std::sync::Arc;

use concurry::prelude::*;

struct Idle;

#[concurry::worker]
impl Idle {
    pub fn new(_tag: Arc<()>) -> Self {
        Idle
    }
    pub fn nothing(&self) {}
    pub async fn nothing_async(&self) {}
}

struct RemoteIdle;

#[concurry::worker(remote)]
impl RemoteIdle {
    pub fn new() -> Self {
        RemoteIdle
    }
    pub fn pid(&self) -> u32 {
        std::process::id()
    }
}

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads: line")
}

/// Waits (at most 10 s) for the thread count to settle at `expected`, then checks it: a
/// joined thread can linger in `/proc/self/task` for a few milliseconds after `join` returns.
fn assert_threads(expected: usize, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut now = threads();
    while now != expected && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
        now = threads();
    }
    assert_eq!(now, expected, "{what}");
}

/// One test: each part counts every thread of the process, so nothing may run beside it.
#[test]
fn no_mode_leaves_threads_behind() {
    thread_count_returns_to_baseline_after_stop_and_drop();
    process_mode_leaves_no_thread_and_no_child_behind();
}

fn thread_count_returns_to_baseline_after_stop_and_drop() {
    let baseline = threads();
    let pool = Idle::options()
        .mode(Mode::Thread)
        .max_workers(16)
        .init(Arc::new(()))
        .unwrap();
    assert_threads(baseline + 16, "16 worker threads");
    let calls: Vec<_> = (0..1000)
        .map(|i| {
            if i % 2 == 0 {
                pool.nothing()
            } else {
                pool.nothing_async()
            }
        })
        .collect();
    calls.into_iter().for_each(|c| c.result().unwrap());
    pool.stop().unwrap();
    assert_threads(baseline, "stop() left threads behind");

    let pool = Idle::options()
        .mode(Mode::Thread)
        .max_workers(8)
        .init(Arc::new(()))
        .unwrap();
    pool.nothing().result().unwrap();
    drop(pool);
    assert_threads(baseline, "drop left threads behind");

    let pool = Idle::options()
        .mode(Mode::Thread)
        .on_demand(true)
        .max_workers(4)
        .init(Arc::new(()))
        .unwrap();
    let calls: Vec<_> = (0..100).map(|_| pool.nothing()).collect();
    calls.into_iter().for_each(|c| c.result().unwrap());
    pool.stop().unwrap();
    assert_threads(baseline, "on-demand workers left threads behind");
}

fn process_mode_leaves_no_thread_and_no_child_behind() {
    let baseline = threads();
    for stop in [true, false] {
        let pool = RemoteIdle::options()
            .mode(Mode::Process)
            .max_workers(3)
            .init()
            .unwrap();
        let pids: Vec<u32> = (0..300)
            .map(|_| pool.pid())
            .collect::<Vec<_>>()
            .into_iter()
            .map(|c| c.result().unwrap())
            .collect();
        if stop {
            pool.stop().unwrap();
        } else {
            drop(pool);
        }
        assert_threads(baseline, &format!("stop: {stop}: threads left behind"));
        for pid in pids {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "child {pid} not reaped"
            );
        }
    }
}
