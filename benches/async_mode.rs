//! Async mode against a tokio mpsc + oneshot actor on the same runtime as the caller, awaited
//! from a tokio task: pipelined no-op calls and the round trip, for an `async fn` method and
//! for a plain `fn` method (which runs on tokio's blocking pool; the `concurry_sync_fn` rows:
//! taking `&self` it runs on the worker's lane beside its `async fn` calls, taking
//! `&mut self`, the `_mut` rows, exclusively, as every sync method did before).
//! The `concurry` rows use a pool built outside any runtime, so its workers run on the
//! library's own runtime (a cross-runtime wake-up per call); the `concurry_ambient` rows use a
//! pool built inside the caller's runtime, whose workers are tasks of that runtime, like the
//! tokio actor's. Every caller is a task spawned on that runtime (not `block_on`'s thread),
//! as in an application whose code runs in tasks.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use concurry::prelude::*;

const BATCH: u64 = 1000;

struct Nop;

#[concurry::worker]
impl Nop {
    pub fn new() -> Self {
        Nop
    }
    pub async fn nop(&self, x: u64) -> u64 {
        x
    }
    pub fn nop_sync(&self, x: u64) -> u64 {
        x
    }
    pub fn nop_sync_mut(&mut self, x: u64) -> u64 {
        x
    }
}

type Reply = tokio::sync::oneshot::Sender<u64>;

fn tokio_actor(rt: &tokio::runtime::Runtime) -> tokio::sync::mpsc::UnboundedSender<(u64, Reply)> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Reply)>();
    rt.spawn(async move {
        while let Some((x, reply)) = rx.recv().await {
            let _ = reply.send(x);
        }
    });
    tx
}

/// Times `iters` runs of `one` in a task spawned on `rt`: the caller is a task of the runtime.
fn on_task<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, one: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                one().await;
            }
            start.elapsed()
        })
        .await
        .unwrap()
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Built outside any runtime: the workers run on the library's runtime.
    let pool = Nop::options()
        .mode(Mode::Async)
        .max_workers(1)
        .init()
        .unwrap();
    // Built inside the caller's runtime: the workers adopt it.
    let ambient = rt.block_on(async {
        Nop::options()
            .mode(Mode::Async)
            .max_workers(1)
            .init()
            .unwrap()
    });
    let actor = tokio_actor(&rt);

    let mut g = c.benchmark_group("async_mode/pipelined");
    g.throughput(Throughput::Elements(BATCH));
    for (name, pool) in [("concurry", &pool), ("concurry_ambient", &ambient)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let pool = pool.clone();
                on_task(&rt, iters, move || {
                    let v: Vec<_> = (0..BATCH).map(|i| pool.nop(i)).collect();
                    async move {
                        for p in v {
                            black_box(p.await.unwrap());
                        }
                    }
                })
            })
        });
    }
    for (name, pool) in [
        ("concurry_sync_fn_mut", &pool),
        ("concurry_ambient_sync_fn_mut", &ambient),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let pool = pool.clone();
                on_task(&rt, iters, move || {
                    let v: Vec<_> = (0..BATCH).map(|i| pool.nop_sync_mut(i)).collect();
                    async move {
                        for p in v {
                            black_box(p.await.unwrap());
                        }
                    }
                })
            })
        });
    }
    for (name, pool) in [
        ("concurry_sync_fn", &pool),
        ("concurry_ambient_sync_fn", &ambient),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let pool = pool.clone();
                on_task(&rt, iters, move || {
                    let v: Vec<_> = (0..BATCH).map(|i| pool.nop_sync(i)).collect();
                    async move {
                        for p in v {
                            black_box(p.await.unwrap());
                        }
                    }
                })
            })
        });
    }
    g.bench_function("tokio_actor", |b| {
        b.iter_custom(|iters| {
            let actor = actor.clone();
            on_task(&rt, iters, move || {
                let v: Vec<_> = (0..BATCH)
                    .map(|i| {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        actor.send((i, tx)).unwrap();
                        rx
                    })
                    .collect();
                async move {
                    for r in v {
                        black_box(r.await.unwrap());
                    }
                }
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("async_mode/round_trip");
    for (name, pool) in [("concurry", &pool), ("concurry_ambient", &ambient)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let pool = pool.clone();
                on_task(&rt, iters, move || {
                    let p = pool.nop(black_box(1));
                    async move {
                        black_box(p.await.unwrap());
                    }
                })
            })
        });
    }
    for (name, pool) in [
        ("concurry_sync_fn_mut", &pool),
        ("concurry_ambient_sync_fn_mut", &ambient),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let pool = pool.clone();
                on_task(&rt, iters, move || {
                    let p = pool.nop_sync_mut(black_box(1));
                    async move {
                        black_box(p.await.unwrap());
                    }
                })
            })
        });
    }
    for (name, pool) in [
        ("concurry_sync_fn", &pool),
        ("concurry_ambient_sync_fn", &ambient),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let pool = pool.clone();
                on_task(&rt, iters, move || {
                    let p = pool.nop_sync(black_box(1));
                    async move {
                        black_box(p.await.unwrap());
                    }
                })
            })
        });
    }
    g.bench_function("tokio_actor", |b| {
        b.iter_custom(|iters| {
            let actor = actor.clone();
            on_task(&rt, iters, move || {
                let (tx, rx) = tokio::sync::oneshot::channel();
                actor.send((1, tx)).unwrap();
                async move {
                    black_box(rx.await.unwrap());
                }
            })
        })
    });
    g.finish();
    pool.stop().unwrap();
    ambient.stop().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
