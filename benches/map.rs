//! `map` over many items against rayon and a plain loop, on the same closure and the same
//! number of threads, in one group per item cost:
//! - `map/trivial`: 1e6 items of a few nanoseconds each (a multiply and a shift);
//! - `map/1us`: 20k items of about 1 µs each (calibrated at start).
//!
//! Members: `sequential` (a loop on the caller), rayon's `par_iter` (an indexed range, split
//! ahead of time), rayon's `par_bridge` (the same range as a plain iterator) and concurry's
//! `map` with its automatic chunks, each summing the results; `concurry_map_workers` is the
//! same map with every chunk sent to the workers. Throughput is in items/s.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;

use concurry::TaskWorker;
use concurry::prelude::*;

const WORKERS: usize = 2;

fn trivial(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7
}

/// `rounds` dependent multiply-xor steps: a cost that scales with `rounds`.
fn spin(x: u64, rounds: u32) -> u64 {
    let mut h = x;
    for _ in 0..rounds {
        h = black_box(h.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (h >> 29));
    }
    h
}

/// The rounds of `spin` that cost about `target` here (the fastest of a few runs, so a
/// loaded machine's pauses do not count).
fn calibrate(target: Duration) -> u32 {
    let mut rounds = 64;
    loop {
        let n = 2_000u32;
        let per = (0..5)
            .map(|_| {
                let start = Instant::now();
                for i in 0..n {
                    black_box(spin(u64::from(i), rounds));
                }
                start.elapsed() / n
            })
            .min()
            .unwrap();
        if per >= target || rounds > 1 << 24 {
            let scaled = f64::from(rounds) * target.as_secs_f64() / per.as_secs_f64();
            return scaled.max(1.0) as u32;
        }
        rounds *= 4;
    }
}

fn group<F>(c: &mut Criterion, name: &str, n: u64, f: F)
where
    F: Fn(u64) -> u64 + Copy + Send + Sync + 'static,
{
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .unwrap();
    let pool = TaskWorker::options()
        .mode(Mode::Thread)
        .max_workers(WORKERS)
        .init()
        .unwrap();
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(n));
    g.bench_function("sequential", |b| {
        b.iter(|| (0..black_box(n)).map(f).fold(0u64, u64::wrapping_add));
    });
    g.bench_function("rayon_par_iter", |b| {
        b.iter(|| {
            rayon.install(|| {
                (0..black_box(n))
                    .into_par_iter()
                    .map(f)
                    .reduce(|| 0, u64::wrapping_add)
            })
        });
    });
    g.bench_function("rayon_par_bridge", |b| {
        b.iter(|| {
            rayon.install(|| {
                (0..black_box(n))
                    .par_bridge()
                    .map(f)
                    .reduce(|| 0, u64::wrapping_add)
            })
        });
    });
    g.bench_function("concurry_map", |b| {
        b.iter(|| {
            pool.map(f, 0..black_box(n))
                .map(Result::unwrap)
                .fold(0u64, u64::wrapping_add)
        });
    });
    // The same map with every chunk sent to the workers (the reader never runs items on its
    // own, only a queued chunk it waits for): what running cheap items on the reader gains.
    g.bench_function("concurry_map_workers", |b| {
        b.iter(|| {
            pool.map(f, 0..black_box(n))
                .__inline_below(0)
                .map(Result::unwrap)
                .fold(0u64, u64::wrapping_add)
        });
    });
    g.finish();
    pool.stop().unwrap();
}

fn trivial_items(c: &mut Criterion) {
    group(c, "map/trivial", 1_000_000, trivial);
}

fn microsecond_items(c: &mut Criterion) {
    let rounds = calibrate(Duration::from_micros(1));
    group(c, "map/1us", 20_000, move |x| spin(x, rounds));
}

criterion_group!(benches, trivial_items, microsecond_items);
criterion_main!(benches);
