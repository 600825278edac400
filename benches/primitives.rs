//! The hand-written primitives against the tokio / crossbeam type a user would pick instead,
//! each pair in one group:
//! - `primitives/limiter_uncontended`: `CapacityLimiter` try-acquire + release vs tokio's
//!   `Semaphore::try_acquire` (the limiter also tracks the borrower);
//! - `primitives/queue_async_spsc`: 10k items from one task to another through a bound of 64,
//!   `Queue` vs `tokio::sync::mpsc`;
//! - `primitives/queue_blocking_spsc`: the same between two threads, `Queue` vs crossbeam's
//!   bounded channel.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

const ITEMS: u64 = 10_000;
const BOUND: usize = 64;

fn limiter(c: &mut Criterion) {
    let mut g = c.benchmark_group("primitives/limiter_uncontended");
    let l = concurry::CapacityLimiter::new(8).unwrap();
    g.bench_function("concurry_capacity_limiter", |b| {
        b.iter(|| black_box(l.try_acquire_on_behalf_of(1u64).unwrap()));
    });
    let s = tokio::sync::Semaphore::new(8);
    g.bench_function("tokio_semaphore", |b| {
        b.iter(|| black_box(s.try_acquire().unwrap()));
    });
    g.finish();
}

fn queue_async(c: &mut Criterion) {
    let mut g = c.benchmark_group("primitives/queue_async_spsc");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    g.bench_function("concurry_queue", |b| {
        b.to_async(&rt).iter(|| async {
            let q = concurry::Queue::bounded(BOUND).unwrap();
            let q2 = q.clone();
            let producer = tokio::spawn(async move {
                for i in 0..ITEMS {
                    q2.put(i).await.unwrap();
                }
                q2.close();
            });
            let mut sum = 0;
            while let Some(x) = q.get().await {
                sum += x;
            }
            producer.await.unwrap();
            black_box(sum)
        });
    });
    g.bench_function("tokio_mpsc", |b| {
        b.to_async(&rt).iter(|| async {
            let (tx, mut rx) = tokio::sync::mpsc::channel(BOUND);
            let producer = tokio::spawn(async move {
                for i in 0..ITEMS {
                    tx.send(i).await.unwrap();
                }
            });
            let mut sum = 0;
            while let Some(x) = rx.recv().await {
                sum += x;
            }
            producer.await.unwrap();
            black_box(sum)
        });
    });
    g.finish();
}

fn queue_blocking(c: &mut Criterion) {
    let mut g = c.benchmark_group("primitives/queue_blocking_spsc");
    g.bench_function("concurry_queue", |b| {
        b.iter(|| {
            let q = concurry::Queue::bounded(BOUND).unwrap();
            let q2 = q.clone();
            let producer = std::thread::spawn(move || {
                for i in 0..ITEMS {
                    q2.put_blocking(i).unwrap();
                }
                q2.close();
            });
            let mut sum = 0;
            while let Some(x) = q.get_blocking() {
                sum += x;
            }
            producer.join().unwrap();
            black_box(sum)
        });
    });
    g.bench_function("crossbeam_bounded", |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::bounded(BOUND);
            let producer = std::thread::spawn(move || {
                for i in 0..ITEMS {
                    tx.send(i).unwrap();
                }
            });
            let mut sum = 0;
            while let Ok(x) = rx.recv() {
                sum += x;
            }
            producer.join().unwrap();
            black_box(sum)
        });
    });
    g.finish();
}

criterion_group!(benches, limiter, queue_async, queue_blocking);
criterion_main!(benches);
