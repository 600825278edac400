//! Async mode against a tokio mpsc + oneshot actor on the same kind of runtime, awaited from
//! a tokio task: pipelined no-op calls and the round trip, for an `async fn` method and for a
//! plain `fn` method (which runs on tokio's blocking pool; the `concurry_sync_fn` rows).
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::hint::black_box;

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

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = Nop::options()
        .mode(Mode::Async)
        .max_workers(1)
        .init()
        .unwrap();
    let actor = tokio_actor(&rt);

    let mut g = c.benchmark_group("async_mode/pipelined");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("concurry", |b| {
        b.to_async(&rt).iter(|| async {
            let v: Vec<_> = (0..BATCH).map(|i| pool.nop(i)).collect();
            for p in v {
                black_box(p.await.unwrap());
            }
        })
    });
    g.bench_function("concurry_sync_fn", |b| {
        b.to_async(&rt).iter(|| async {
            let v: Vec<_> = (0..BATCH).map(|i| pool.nop_sync(i)).collect();
            for p in v {
                black_box(p.await.unwrap());
            }
        })
    });
    g.bench_function("tokio_actor", |b| {
        b.to_async(&rt).iter(|| async {
            let v: Vec<_> = (0..BATCH)
                .map(|i| {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    actor.send((i, tx)).unwrap();
                    rx
                })
                .collect();
            for r in v {
                black_box(r.await.unwrap());
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("async_mode/round_trip");
    g.bench_function("concurry", |b| {
        b.to_async(&rt)
            .iter(|| async { pool.nop(black_box(1)).await.unwrap() })
    });
    g.bench_function("concurry_sync_fn", |b| {
        b.to_async(&rt)
            .iter(|| async { pool.nop_sync(black_box(1)).await.unwrap() })
    });
    g.bench_function("tokio_actor", |b| {
        b.to_async(&rt).iter(|| async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            actor.send((1, tx)).unwrap();
            rx.await.unwrap()
        })
    });
    g.finish();
    pool.stop().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
