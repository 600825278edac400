//! Back-pressure under load: `max_queued_tasks` with retries, from plain threads and from
//! async code, and no runtime thread ever blocked waiting for a place.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concurry::RetryConfig;
use concurry::prelude::*;

use crate::common::Gate;
use crate::every_mode::Echo;

use crate::common::{HANG, within};

/// Bounds every wait, so a regression fails instead of hanging the suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Flake;

impl std::fmt::Display for Flake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("flake")
    }
}

/// A worker whose calls fail once per key, so each retried call takes exactly two attempts.
pub struct Busy {
    seen: Arc<Mutex<HashSet<u64>>>,
}

#[concurry::worker]
impl Busy {
    pub fn new() -> Self {
        Busy {
            seen: Arc::default(),
        }
    }

    /// Fails the first time it sees `key`, then returns it.
    pub fn fails_once(&self, key: u64) -> Result<u64, Flake> {
        if self.seen.lock().unwrap().insert(key) {
            Err(Flake)
        } else {
            Ok(key)
        }
    }

    /// As `fails_once`, as an `async fn`.
    pub async fn fails_once_async(&self, key: u64) -> Result<u64, Flake> {
        tokio::task::yield_now().await;
        self.fails_once(key)
    }

    /// Blocks until `gate` opens.
    pub fn hold(&self, gate: Gate) -> bool {
        gate.wait()
    }

    pub fn ping(&self) -> u8 {
        1
    }
}

/// Retries with waits of a millisecond or two. (Two attempts are enough for `fails_once`
/// whether `new(3)` counts retries or attempts.)
fn fast() -> RetryConfig {
    RetryConfig::attempts(4)
        .wait(Duration::from_millis(1))
        .max_wait(Duration::from_millis(2))
}

fn busy(mode: Mode, workers: usize, queued: usize) -> BusyHandle {
    Busy::options()
        .mode(mode)
        .max_workers(workers)
        .max_queued_tasks(queued)
        .retry(fast())
        .init()
        .unwrap()
}

/// Issue 17.2: retry attempts used to be submitted from the library runtime and block it
/// while a worker was full, and async workers run on the same few threads: 127 of 200
/// calls done, then nothing.
#[test]
fn an_async_pool_with_retries_and_a_bounded_queue_never_stalls() {
    within("200 retried calls on a bounded async pool", || {
        for round in 0..5u64 {
            let p = busy(Mode::Async, 2, 2);
            let base = round * 1000;
            let calls: Vec<_> = (0..100)
                .map(|i| p.fails_once(base + i))
                .chain((100..200).map(|i| p.fails_once_async(base + i)))
                .collect();
            for (i, c) in calls.into_iter().enumerate() {
                assert_eq!(c.result().unwrap(), base + i as u64);
            }
            p.stop().unwrap();
        }
    });
}

/// A driver worker that submits to another pool from its own `async fn`.
pub struct Driver {
    target: BusyHandle,
}

#[concurry::worker]
impl Driver {
    pub fn new(target: BusyHandle) -> Self {
        Driver { target }
    }

    /// Submits `n` calls at once (more than the target's queue holds) and awaits them all.
    pub async fn fan_out(&self, n: u64) -> u64 {
        let calls: Vec<_> = (0..n).map(|i| self.target.fails_once_async(i)).collect();
        let mut sum = 0;
        for c in calls {
            sum += c.await.unwrap();
        }
        sum
    }
}

/// Submitting to a full pool from async code (here an async worker, on the library runtime)
/// never blocks the thread: the call waits for its place inside its promise.
#[test]
fn async_code_submitting_to_a_full_pool_waits_without_blocking_its_thread() {
    within("async workers fanning out to a bounded async pool", || {
        let target = busy(Mode::Async, 1, 1);
        let drivers = Driver::options()
            .mode(Mode::Async)
            .max_workers(4)
            .init(target.clone())
            .unwrap();
        let runs: Vec<_> = (0..4).map(|_| drivers.fan_out(50)).collect();
        for r in runs {
            assert_eq!(r.result().unwrap(), (0..50).sum::<u64>());
        }
        drivers.stop().unwrap();
        target.stop().unwrap();
    });
}

/// The user's own current-thread runtime: the call that would free the place needs that
/// same thread, so blocking it for room would hang for good.
#[test]
fn a_current_thread_runtime_submitting_to_a_full_pool_keeps_running() {
    within("a current-thread runtime submitting to a full pool", || {
        // No retries: the call is dispatched by this very thread.
        let p = Busy::options()
            .mode(Mode::Thread)
            .max_workers(1)
            .max_queued_tasks(1)
            .init()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let gate = Gate::default();
            let held = p.hold(gate.clone());
            let opener = tokio::spawn(async move {
                tokio::task::yield_now().await;
                gate.open();
            });
            // The only place is taken: this waits inside its promise, not on this thread.
            let next = p.ping();
            opener.await.unwrap();
            assert!(held.await.unwrap());
            assert_eq!(next.await.unwrap(), 1);
        });
        p.stop().unwrap();
    });
}

/// Issue 17.3: with retries on, submitting never waited (20,000 calls accepted in 27 ms).
/// A retried call takes its place when submitted, and its caller waits for it.
#[test]
fn retried_calls_wait_for_a_place_like_any_call() {
    for mode in [Mode::Thread, Mode::Async] {
        let p = busy(mode, 1, 2);
        let gate = Gate::default();
        let held = p.hold(gate.clone());
        let submitted = Arc::new(AtomicUsize::new(0));
        let submitter = {
            let (p, submitted) = (p.clone(), submitted.clone());
            std::thread::spawn(move || {
                let calls: Vec<_> = (0..20)
                    .map(|i| {
                        let c = p.fails_once(i);
                        submitted.fetch_add(1, Ordering::SeqCst);
                        c
                    })
                    .collect();
                calls
                    .into_iter()
                    .map(|c| c.result_timeout(HANG).unwrap())
                    .sum::<u64>()
            })
        };
        // Generous: only one more call fits beside the held one until the gate opens.
        std::thread::sleep(Duration::from_millis(100));
        let got_in = submitted.load(Ordering::SeqCst);
        gate.open();
        assert!(held.result_timeout(HANG).unwrap(), "{mode}");
        assert_eq!(submitter.join().unwrap(), (0..20).sum::<u64>(), "{mode}");
        assert!(
            got_in <= 1,
            "{mode}: {got_in} retried calls got past a full queue of 2"
        );
        p.stop().unwrap();
    }
}

/// A retried call keeps its place while it waits out a backoff, so retries cannot grow the
/// queue past its bound; the place is free again once the call resolves.
#[test]
fn a_call_between_attempts_keeps_its_place() {
    for mode in [Mode::Thread, Mode::Async, Mode::Process] {
        let p = Echo::options()
            .mode(mode)
            .max_workers(1)
            .max_queued_tasks(1)
            .retry(
                RetryConfig::attempts(4)
                    .wait(Duration::from_secs(3600))
                    .max_wait(Duration::from_secs(3600)),
            )
            .init(0)
            .unwrap();
        let failing = p.check(false);
        // Its first attempt ran and failed: the call now waits out an hour-long backoff.
        within("the first attempt", {
            let p = p.clone();
            move || {
                while p.stats().per_worker[0].dispatched < 1
                    || p.stats().per_worker[0].in_flight > 0
                {
                    std::thread::yield_now();
                }
            }
        });
        let submitted = Arc::new(AtomicUsize::new(0));
        let submitter = {
            let (p, submitted) = (p.clone(), submitted.clone());
            std::thread::spawn(move || {
                let next = p.next();
                submitted.store(1, Ordering::SeqCst);
                next.result_timeout(HANG)
            })
        };
        // Generous: the submitter cannot get the place while the retried call holds it.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            submitted.load(Ordering::SeqCst),
            0,
            "{mode}: a call took the place of a call in backoff"
        );
        assert!(failing.cancel());
        assert_eq!(submitter.join().unwrap().unwrap(), 1, "{mode}");
        p.stop().unwrap();
    }
}
