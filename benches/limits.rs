//! A `CallLimit` acquire + release against governor's `check()`, in one group per measure:
//! - `uncontended`: one thread;
//! - `contended_2_threads`: two threads hammering the same limit (time per operation, per
//!   thread).
//!
//! The capacities are far above what the loop can reach, so every acquisition succeeds and
//! the bench measures the hot path only. governor is GCRA-only; concurry runs its default
//! sliding window and its GCRA.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};

use concurry::{CallLimit, LimitSet, RateAlgorithm};

const CAPACITY: u32 = 1_000_000_000;

fn concurry_set(algorithm: RateAlgorithm) -> LimitSet {
    LimitSet::new([CallLimit::per_second(u64::from(CAPACITY)).algorithm(algorithm)]).unwrap()
}

fn governor() -> governor::DefaultDirectRateLimiter {
    RateLimiter::direct(Quota::per_second(NonZeroU32::new(CAPACITY).unwrap()))
}

/// Runs `op` `iters` times on each of two threads at once; the slower thread's time.
fn two_threads(iters: u64, op: impl Fn() + Send + Sync + 'static) -> Duration {
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (op, barrier) = (op.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for _ in 0..iters {
                    op();
                }
                start.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap()
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits/uncontended");
    let gov = governor();
    g.bench_function("governor_check", |b| {
        b.iter(|| black_box(gov.check()).unwrap());
    });
    for (name, alg) in [
        ("concurry_call_limit_sliding", RateAlgorithm::SlidingWindow),
        ("concurry_call_limit_gcra", RateAlgorithm::Gcra),
    ] {
        let set = concurry_set(alg);
        g.bench_function(name, |b| {
            b.iter(|| drop(black_box(set.try_acquire(&[]).unwrap())));
        });
    }
    g.finish();
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits/contended_2_threads");
    g.bench_function("governor_check", |b| {
        b.iter_custom(|iters| {
            let gov = Arc::new(governor());
            two_threads(iters, move || {
                black_box(gov.check()).unwrap();
            })
        });
    });
    for (name, alg) in [
        ("concurry_call_limit_sliding", RateAlgorithm::SlidingWindow),
        ("concurry_call_limit_gcra", RateAlgorithm::Gcra),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let set = concurry_set(alg);
                two_threads(iters, move || {
                    drop(black_box(set.try_acquire(&[]).unwrap()));
                })
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = uncontended, contended
}
criterion_main!(benches);
