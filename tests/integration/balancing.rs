//! Each load-balancing algorithm's distribution.

use std::collections::HashMap;
use std::sync::Arc;

use concurry::prelude::*;

use crate::common::{Gate, Probe};

fn pool(algorithm: LoadBalancing, workers: usize) -> crate::common::ProbeHandle {
    Probe::options()
        .max_workers(workers)
        .load_balancing(algorithm)
        .init(Arc::default())
        .unwrap()
}

fn dispatched(p: &crate::common::ProbeHandle) -> Vec<u64> {
    p.stats().per_worker.iter().map(|w| w.dispatched).collect()
}

/// Waits until the pool has `n` calls in flight in all (bounded: only catches a stuck count).
fn settle(p: &crate::common::ProbeHandle, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while p
        .stats()
        .per_worker
        .iter()
        .map(|w| w.in_flight)
        .sum::<u64>()
        != n
    {
        assert!(
            std::time::Instant::now() < deadline,
            "in-flight count stuck"
        );
        std::thread::yield_now();
    }
}

#[test]
fn round_robin_gives_three_workers_two_calls_each() {
    let p = pool(LoadBalancing::RoundRobin, 3);
    let ids: Vec<usize> = (0..6)
        .map(|_| p.id())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|f| f.result().unwrap())
        .collect();
    let mut per_instance = HashMap::new();
    for id in ids {
        *per_instance.entry(id).or_insert(0) += 1;
    }
    assert_eq!(per_instance.len(), 3);
    assert!(per_instance.values().all(|&n| n == 2), "{per_instance:?}");
    assert_eq!(dispatched(&p), [2, 2, 2]);
}

#[test]
fn least_active_avoids_a_busy_worker() {
    let p = pool(LoadBalancing::LeastActive, 3);
    let gate = Gate::default();
    let held = p.hold(gate.clone());
    let busy = p
        .stats()
        .per_worker
        .iter()
        .position(|w| w.in_flight == 1)
        .unwrap();
    for _ in 0..30 {
        p.id().result().unwrap();
        // Let the worker count the call finished (it does so just after resolving it), so
        // only the busy worker shows a call in flight when the next one is placed.
        settle(&p, 1);
    }
    assert_eq!(
        dispatched(&p)[busy],
        1,
        "least-active sent calls to the busy worker"
    );
    gate.open();
    held.result().unwrap();
}

#[test]
fn least_total_evens_out_counts() {
    let p = pool(LoadBalancing::LeastTotal, 4);
    let futures: Vec<_> = (0..40).map(|_| p.id()).collect();
    futures.into_iter().for_each(|f| {
        f.result().unwrap();
    });
    assert_eq!(dispatched(&p), [10, 10, 10, 10]);
}

#[test]
fn random_reaches_every_worker() {
    let p = pool(LoadBalancing::Random, 4);
    let futures: Vec<_> = (0..400).map(|_| p.id()).collect();
    futures.into_iter().for_each(|f| {
        f.result().unwrap();
    });
    let counts = dispatched(&p);
    assert_eq!(counts.iter().sum::<u64>(), 400);
    // Expected 100 each; the bound only catches a broken generator.
    assert!(counts.iter().all(|&n| n > 40), "{counts:?}");
}

#[test]
fn stats_report_the_pool() {
    let p = Probe::options()
        .max_workers(3)
        .name("probes")
        .load_balancing(LoadBalancing::LeastTotal)
        .init(Arc::default())
        .unwrap();
    p.id().result().unwrap();
    let s = p.stats();
    assert_eq!(
        (s.name.as_str(), s.mode, s.workers, s.max_workers),
        ("probes", Mode::Thread, 3, 3)
    );
    assert_eq!(s.load_balancing, LoadBalancing::LeastTotal);
    assert!(!s.on_demand && !s.stopped);
    assert_eq!(s.per_worker.iter().map(|w| w.dispatched).sum::<u64>(), 1);
    // The worker counts a call finished just after resolving its promise, so the count may
    // lag the result by a moment; it must reach 0 (the bound only catches a count stuck at 1).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while p.stats().per_worker.iter().any(|w| w.in_flight != 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "in_flight never returned to 0"
        );
        std::thread::yield_now();
    }
}
