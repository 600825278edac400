//! What a progress bar costs a wait, in one group per measure:
//! - `gather`: 1000 ready promises gathered without progress (the baseline), with a hidden
//!   bar (`Progress::hidden()`, also what a bar on a non-terminal stderr becomes), and with a
//!   bar that logs plain lines to a sink every 100 results (a bar that is really used);
//! - `tick`: one `ProgressBar::inc` on a hidden bar against an empty loop step.
//!
//! Hidden must cost nothing measurable per call: the ratio `hidden / none` is the figure.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use concurry::{Progress, ProgressBar, Promise, gather};

const N: u64 = 1000;

fn ready() -> Vec<Promise<u64>> {
    (0..N).map(|i| Promise::ready(Ok(i))).collect()
}

fn bench_gather(c: &mut Criterion) {
    let mut g = c.benchmark_group("gather");
    g.throughput(Throughput::Elements(N));
    g.bench_function("none", |b| {
        b.iter_batched(
            ready,
            |ps| black_box(gather(ps).wait()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("hidden", |b| {
        b.iter_batched(
            ready,
            |ps| black_box(gather(ps).progress(Progress::hidden()).wait()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("logged", |b| {
        b.iter_batched(
            ready,
            |ps| {
                let progress = Progress::new("calls")
                    .log_every(100_u64)
                    .log_to(std::io::sink())
                    .draw_target(concurry::indicatif::ProgressDrawTarget::hidden());
                black_box(gather(ps).progress(progress).wait())
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench_tick(c: &mut Criterion) {
    let mut g = c.benchmark_group("tick");
    g.throughput(Throughput::Elements(N));
    g.bench_function("baseline", |b| {
        b.iter(|| {
            for i in 0..N {
                black_box(i % 7 != 0);
            }
        })
    });
    let bar = ProgressBar::new(u64::MAX, Progress::hidden());
    g.bench_function("hidden", |b| {
        b.iter(|| {
            for i in 0..N {
                black_box(&bar).inc(black_box(i % 7 != 0));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_gather, bench_tick);
criterion_main!(benches);
