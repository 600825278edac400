//! Sync (plain `fn`) methods in async mode (issue 11.2): sync calls queued behind one another
//! run together in one job on tokio's blocking pool. These tests hold a worker in a sync call
//! so that what follows is queued, then check that the queued runs keep call order and
//! exclusivity next to async calls, survive a panic, and that `stop()` drains or fails them.
//! A sync method taking `&self` of a `Sync` worker runs beside the worker's `async fn` calls
//! taking `&self` instead of holding them up (issue 11.2), and still waits for, and holds
//! back, the calls taking `&mut self`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use concurry::prelude::*;

use crate::common::quiet_planned_panics;

use crate::common::{HANG, within};

/// Bounds every wait, so a regression fails instead of hanging the suite.
/// A latch the test opens by hand; a call waiting on it gives up only after a minute, well
/// past [`HANG`], so a test cannot pass by waiting the latch out.
#[derive(Clone, Default)]
pub struct Latch(Arc<(Mutex<bool>, Condvar)>);

impl Latch {
    fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    fn wait(&self) {
        let guard = self.0.0.lock().unwrap();
        let _ = self
            .0
            .1
            .wait_timeout_while(guard, Duration::from_secs(60), |open| !*open)
            .unwrap();
    }
}

/// Counts the calls inside the instance, to catch an exclusive call overlapping another call.
#[derive(Default)]
pub struct Overlap {
    exclusive: AtomicUsize,
    shared: AtomicUsize,
    violations: AtomicUsize,
}

impl Overlap {
    fn enter_exclusive(&self) {
        if self.exclusive.fetch_add(1, Ordering::SeqCst) != 0
            || self.shared.load(Ordering::SeqCst) != 0
        {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn leave_exclusive(&self) {
        self.exclusive.fetch_sub(1, Ordering::SeqCst);
    }
    fn enter_shared(&self) {
        self.shared.fetch_add(1, Ordering::SeqCst);
        if self.exclusive.load(Ordering::SeqCst) != 0 {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn leave_shared(&self) {
        self.shared.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Appends to a log; every method reports how long the log was when it ran.
pub struct Log {
    seen: Vec<u64>,
    overlap: Arc<Overlap>,
}

#[concurry::worker]
impl Log {
    pub fn new(overlap: Arc<Overlap>) -> Self {
        Log {
            seen: Vec::new(),
            overlap,
        }
    }

    /// Blocks the worker until `latch` opens.
    pub fn hold(&self, latch: Latch) -> usize {
        latch.wait();
        self.seen.len()
    }

    /// A sync `&mut self` method.
    pub fn push(&mut self, x: u64) -> usize {
        self.overlap.enter_exclusive();
        std::thread::yield_now();
        self.seen.push(x);
        self.overlap.leave_exclusive();
        self.seen.len()
    }

    /// A sync `&self` method: a shared call (the worker is `Sync`), which may run while
    /// `async fn` calls taking `&self` do, never while an exclusive one does.
    pub fn len(&self) -> usize {
        self.overlap.enter_shared();
        std::thread::yield_now();
        self.overlap.leave_shared();
        self.seen.len()
    }

    /// A sync method that panics.
    pub fn boom(&mut self) -> usize {
        panic!("planned panic in a queued sync call")
    }

    /// An `async fn` taking `&mut self`.
    pub async fn push_async(&mut self, x: u64) -> usize {
        self.overlap.enter_exclusive();
        tokio::task::yield_now().await;
        self.seen.push(x);
        self.overlap.leave_exclusive();
        self.seen.len()
    }

    /// An `async fn` taking `&self` (several run at once).
    pub async fn len_async(&self) -> usize {
        self.overlap.enter_shared();
        tokio::task::yield_now().await;
        let n = self.seen.len();
        self.overlap.leave_shared();
        n
    }

    pub fn seen(&self) -> Vec<u64> {
        self.seen.clone()
    }
}

fn log_pool(stop_timeout: Duration) -> (LogHandle, Arc<Overlap>) {
    let overlap = Arc::<Overlap>::default();
    let pool = Log::options()
        .mode(Mode::Async)
        .max_workers(1)
        .stop_timeout(stop_timeout)
        .init(overlap.clone())
        .unwrap();
    (pool, overlap)
}

/// Queues runs of sync calls of every length between async calls, `rounds` times. Returns
/// each call with the log length it must report, and how many entries the log has after.
fn queue_mixed(p: &LogHandle, rounds: u64, mut n: u64) -> (Vec<(Promise<usize>, usize)>, u64) {
    let mut calls = Vec::new();
    for round in 0..rounds {
        for _ in 0..=round % 7 {
            calls.push((p.push(n), n as usize + 1));
            n += 1;
        }
        if round % 3 == 0 {
            calls.push((p.push_async(n), n as usize + 1));
            n += 1;
        }
        for _ in 0..round % 4 {
            calls.push((p.len_async(), n as usize));
        }
        if round % 5 == 0 {
            calls.push((p.len(), n as usize));
        }
    }
    (calls, n)
}

#[test]
fn queued_sync_calls_keep_order_and_exclusivity_between_async_calls() {
    within("mixed sync and async calls", || {
        let (p, overlap) = log_pool(HANG);
        let latch = Latch::default();
        let held = p.hold(latch.clone());
        // Everything below queues behind the held call, so the sync runs are long.
        let (queued, n) = queue_mixed(&p, 200, 0);
        latch.open();
        assert_eq!(held.result().unwrap(), 0);
        // And the same again pipelined, without holding the worker first.
        let (pipelined, n) = queue_mixed(&p, 200, n);
        for (i, (call, want)) in queued.into_iter().chain(pipelined).enumerate() {
            assert_eq!(call.result().unwrap(), want, "call {i} ran out of order");
        }
        assert_eq!(p.seen().result().unwrap(), (0..n).collect::<Vec<_>>());
        assert_eq!(overlap.violations.load(Ordering::SeqCst), 0);
        p.stop().unwrap();
    });
}

#[test]
fn a_panic_in_a_run_of_sync_calls_fails_that_call_only() {
    quiet_planned_panics();
    within("a panic among queued sync calls", || {
        let (p, _) = log_pool(HANG);
        let latch = Latch::default();
        let held = p.hold(latch.clone());
        let before = [p.push(0), p.push(1)];
        let boom = p.boom();
        let after = [p.push(2), p.len(), p.push(3)];
        let shared = p.len_async();
        let last = p.push(4);
        latch.open();
        held.result().unwrap();
        let got: Vec<usize> = before.into_iter().map(|c| c.result().unwrap()).collect();
        assert_eq!(got, [1, 2]);
        match boom.result() {
            Err(Error::Panicked { message }) => assert!(message.contains("planned panic")),
            other => panic!("the panicking call: {other:?}"),
        }
        let got: Vec<usize> = after.into_iter().map(|c| c.result().unwrap()).collect();
        assert_eq!(got, [3, 3, 4], "the run went on after the panic, in order");
        assert_eq!(shared.result().unwrap(), 4);
        assert_eq!(last.result().unwrap(), 5);
        // The worker serves on, sync and async.
        assert_eq!(p.push_async(5).result().unwrap(), 6);
        assert!(p.boom().result().unwrap_err().is_panic());
        assert_eq!(p.push(6).result().unwrap(), 7);
        p.stop().unwrap();
    });
}

#[test]
fn stop_drains_queued_runs_of_sync_calls() {
    within("stop with queued sync calls", || {
        let (p, overlap) = log_pool(HANG);
        let latch = Latch::default();
        let held = p.hold(latch.clone());
        let (queued, n) = queue_mixed(&p, 100, 0);
        let stopper = {
            let p = p.clone();
            std::thread::spawn(move || p.stop())
        };
        latch.open();
        stopper.join().unwrap().unwrap();
        held.result().unwrap();
        for (i, (call, want)) in queued.into_iter().enumerate() {
            assert_eq!(call.result().unwrap(), want, "call {i}");
        }
        assert!(n > 0);
        assert_eq!(overlap.violations.load(Ordering::SeqCst), 0);
        assert!(matches!(p.push(0).result(), Err(Error::Stopped)));
    });
}

#[test]
fn stop_timeout_fails_calls_queued_behind_a_sync_call_still_running() {
    within("stop_timeout with queued sync calls", || {
        let (p, _) = log_pool(Duration::from_millis(20));
        let latch = Latch::default();
        let held = p.hold(latch.clone());
        let (queued, _) = queue_mixed(&p, 100, 0);
        let count = queued.len() as u64;
        match p.stop() {
            Err(Error::StopTimeout { failed, running }) => {
                assert_eq!((failed, running), (count, 1));
            }
            other => panic!("{other:?}"),
        }
        // The held call is still running: the queued ones fail now, not when it returns.
        for (i, (call, _)) in queued.into_iter().enumerate() {
            match call.result_timeout(HANG) {
                Err(Error::Stopped) => {}
                other => panic!("call {i}: {other:?}"),
            }
        }
        latch.open();
        assert!(matches!(held.result(), Ok(0) | Err(Error::Stopped)));
    });
}

/// Bounds a wait that must end while the latch is still shut (well under [`HANG`], so the
/// old behaviour fails here instead of in `within`).
const SOON: Duration = Duration::from_secs(20);

#[test]
fn async_self_calls_run_while_a_sync_self_call_is_blocked() {
    within("async calls beside a blocked sync `&self` call", || {
        let (p, overlap) = log_pool(HANG);
        let latch = Latch::default();
        // `hold` takes `&self` and blocks until the latch opens.
        let held = p.hold(latch.clone());
        let fetches: Vec<_> = (0..10).map(|_| p.len_async()).collect();
        for (i, f) in fetches.into_iter().enumerate() {
            assert_eq!(
                f.result_timeout(SOON).unwrap(),
                0,
                "fetch {i} waited for the sync `&self` call"
            );
        }
        assert!(!held.is_done(), "the latch is still shut");
        latch.open();
        assert_eq!(held.result().unwrap(), 0);
        assert_eq!(overlap.violations.load(Ordering::SeqCst), 0);
        p.stop().unwrap();
    });
}

#[test]
fn sync_self_calls_keep_their_order_and_wait_for_mut_self_calls() {
    within("sync `&self` calls next to `&mut self` calls", || {
        let (p, overlap) = log_pool(HANG);
        let latch = Latch::default();
        let held = p.hold(latch.clone());
        // Shared, but sync `&self` calls of one worker run one at a time, in order.
        let second = p.len();
        let early = p.len_async();
        // A `&mut self` call waits for the sync `&self` calls before it, and what comes
        // after it waits for it.
        let push = p.push(7);
        let after = [p.len_async(), p.len()];
        assert_eq!(early.result_timeout(SOON).unwrap(), 0);
        assert!(
            !second.is_done(),
            "it runs after `hold`, whose latch is shut"
        );
        assert!(
            !push.is_done(),
            "it waits for the sync `&self` calls before it"
        );
        assert!(after.iter().all(|c| !c.is_done()), "they wait for `push`");
        latch.open();
        assert_eq!(held.result().unwrap(), 0);
        assert_eq!(second.result().unwrap(), 0);
        assert_eq!(push.result().unwrap(), 1);
        let got: Vec<usize> = after.into_iter().map(|c| c.result().unwrap()).collect();
        assert_eq!(got, [1, 1]);
        assert_eq!(overlap.violations.load(Ordering::SeqCst), 0);
        p.stop().unwrap();
    });
}
