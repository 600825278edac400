//! Thread mode against two hand-written actors, in one group per measure:
//! - `pipelined`: 1000 no-op calls submitted, then all awaited (throughput per call);
//! - `round_trip`: one call submitted and awaited (latency across threads).
//!
//! Baselines: a crossbeam-mailbox actor replying on a per-call bounded(1) channel, and a
//! tokio mpsc + oneshot actor (driven from a plain thread with `blocking_recv`).
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use concurry::prelude::*;

const BATCH: u64 = 1000;

struct Nop;

#[concurry::worker]
impl Nop {
    pub fn new() -> Self {
        Nop
    }
    pub fn nop(&self, x: u64) -> u64 {
        x
    }
}

/// A crossbeam-mailbox actor: the classic hand-written thread actor.
struct CrossbeamActor {
    tx: crossbeam_channel::Sender<(u64, crossbeam_channel::Sender<u64>)>,
}

impl CrossbeamActor {
    fn start() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<(u64, crossbeam_channel::Sender<u64>)>();
        std::thread::spawn(move || {
            for (x, reply) in rx {
                let _ = reply.send(x);
            }
        });
        CrossbeamActor { tx }
    }
    fn call(&self, x: u64) -> crossbeam_channel::Receiver<u64> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.tx.send((x, reply)).unwrap();
        rx
    }
}

/// A tokio actor: an mpsc mailbox and a oneshot reply per call.
struct TokioActor {
    tx: tokio::sync::mpsc::UnboundedSender<(u64, tokio::sync::oneshot::Sender<u64>)>,
    _rt: tokio::runtime::Runtime,
}

impl TokioActor {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(u64, tokio::sync::oneshot::Sender<u64>)>();
        rt.spawn(async move {
            while let Some((x, reply)) = rx.recv().await {
                let _ = reply.send(x);
            }
        });
        TokioActor { tx, _rt: rt }
    }
    fn call(&self, x: u64) -> tokio::sync::oneshot::Receiver<u64> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send((x, reply)).unwrap();
        rx
    }
}

fn pipelined(c: &mut Criterion) {
    let pool = Nop::options()
        .mode(Mode::Thread)
        .max_workers(1)
        .init()
        .unwrap();
    let cb = CrossbeamActor::start();
    let tk = TokioActor::start();
    let mut g = c.benchmark_group("thread_mode/pipelined");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("concurry", |b| {
        b.iter_batched(
            || Vec::with_capacity(BATCH as usize),
            |mut v| {
                v.extend((0..BATCH).map(|i| pool.nop(i)));
                v.into_iter().for_each(|p| {
                    black_box(p.result().unwrap());
                });
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("crossbeam_actor", |b| {
        b.iter_batched(
            || Vec::with_capacity(BATCH as usize),
            |mut v| {
                v.extend((0..BATCH).map(|i| cb.call(i)));
                v.into_iter().for_each(|r| {
                    black_box(r.recv().unwrap());
                });
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("tokio_actor", |b| {
        b.iter_batched(
            || Vec::with_capacity(BATCH as usize),
            |mut v| {
                v.extend((0..BATCH).map(|i| tk.call(i)));
                v.into_iter().for_each(|r| {
                    black_box(r.blocking_recv().unwrap());
                });
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    pool.stop().unwrap();
}

fn round_trip(c: &mut Criterion) {
    let pool = Nop::options()
        .mode(Mode::Thread)
        .max_workers(1)
        .init()
        .unwrap();
    let cb = CrossbeamActor::start();
    let tk = TokioActor::start();
    let mut g = c.benchmark_group("thread_mode/round_trip");
    g.bench_function("concurry", |b| {
        b.iter(|| pool.nop(black_box(1)).result().unwrap())
    });
    g.bench_function("crossbeam_actor", |b| {
        b.iter(|| cb.call(black_box(1)).recv().unwrap())
    });
    g.bench_function("tokio_actor", |b| {
        b.iter(|| tk.call(black_box(1)).blocking_recv().unwrap())
    });
    g.finish();
    pool.stop().unwrap();
}

criterion_group!(benches, pipelined, round_trip);
criterion_main!(benches);
