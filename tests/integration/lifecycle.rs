//! `stop_timeout` in thread and async mode, on-demand workers and `result_timeout`: every
//! future resolves. Draining, drop and back-pressure in every mode are in `every_mode.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use concurry::prelude::*;

use crate::common::{Gate, Probe, probe};

#[test]
fn stop_fails_queued_calls_after_stop_timeout() {
    for mode in [Mode::Thread, Mode::Async] {
        let p = Probe::options()
            .mode(mode)
            .max_workers(1)
            .stop_timeout(Duration::from_millis(20))
            .init(Arc::default())
            .unwrap();
        let gate = Gate::default();
        let held = p.hold(gate.clone());
        let queued: Vec<_> = (0..10_000).map(|_| p.next()).collect();
        // The held call outlives the timeout, so stop reports it and fails the queue. (A
        // sync method cannot be aborted, in async mode either.)
        match p.stop() {
            Err(Error::StopTimeout { failed, running }) => {
                assert_eq!((failed, running), (10_000, 1), "{mode}");
            }
            other => panic!("{mode}: {other:?}"),
        }
        for f in queued {
            assert!(matches!(f.result(), Err(Error::Stopped)), "{mode}");
        }
        gate.open();
        // Thread mode lets the running call finish; async mode aborts the task, which fails it.
        match (mode, held.result()) {
            (Mode::Thread, r) => assert!(r.is_ok(), "{r:?}"),
            (_, r) => assert!(matches!(r, Ok(_) | Err(Error::Stopped)), "{r:?}"),
        }
    }
}

#[test]
fn on_demand_builds_a_fresh_worker_per_call_within_max_workers() {
    static ALIVE: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);
    struct Fresh {
        id: usize,
    }
    impl Drop for Fresh {
        fn drop(&mut self) {
            ALIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }
    #[concurry::worker]
    impl Fresh {
        pub fn new(ids: Arc<AtomicUsize>) -> Self {
            let now = ALIVE.fetch_add(1, Ordering::SeqCst) + 1;
            PEAK.fetch_max(now, Ordering::SeqCst);
            Fresh {
                id: ids.fetch_add(1, Ordering::SeqCst),
            }
        }
        pub fn id(&self) -> usize {
            std::thread::yield_now();
            self.id
        }
    }
    for mode in [Mode::Thread, Mode::Async, Mode::Sync] {
        PEAK.store(0, Ordering::SeqCst);
        let pool = Fresh::options()
            .mode(mode)
            .on_demand(true)
            .max_workers(2)
            .init(Arc::default())
            .unwrap();
        let futures: Vec<_> = (0..50).map(|_| pool.id()).collect();
        let mut ids: Vec<usize> = futures.into_iter().map(|f| f.result().unwrap()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 50, "{mode}: every call gets its own instance");
        assert!(
            PEAK.load(Ordering::SeqCst) <= 2,
            "{mode}: more than max_workers alive at once"
        );
        pool.stop().unwrap();
        assert_eq!(pool.stats().on_demand_alive, 0);
        assert_eq!(ALIVE.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn result_timeout_gives_up_without_losing_the_call() {
    let p = probe(Mode::Thread, 1);
    let gate = Gate::default();
    let held = p.hold(gate.clone());
    assert!(!held.wait_timeout(Duration::from_millis(5)));
    let queued = p.next();
    assert!(matches!(
        queued.result_timeout(Duration::from_millis(5)),
        Err(Error::Timeout)
    ));
    gate.open();
    assert!(held.result().is_ok());
    assert_eq!(
        p.next().result().unwrap(),
        2,
        "the timed-out call still ran"
    );
}
