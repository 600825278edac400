//! The spread of one call's round trip, and the CPU a caller burns while it waits: what
//! criterion's means hide. A plain binary (`harness = false`, no criterion) printing, per
//! member and round:
//! - `round trip`: p50 / p90 / p99 / max of one no-op call submitted and waited for from a
//!   plain thread, and the caller's CPU time per call;
//! - `idle wait`: the caller's CPU time per call of a method that sleeps 200 µs (a plain
//!   `fn`, so tokio's millisecond timer does not round it up in async mode), i.e. what
//!   waiting costs a caller that has nothing else to do (spinning before it parks).
//!
//! Members: concurry `Mode::Thread`, concurry `Mode::Async` (both waited for with
//! `result()`), and the baseline, a crossbeam-mailbox actor replying on a per-call
//! `bounded(1)` channel (whose `recv` also spins briefly before parking). The members take
//! turns within each round, so a loaded machine's noise falls on all of them; the rounds
//! show the spread.
//!
//! CPU time is the calling thread's time on a CPU, from `/proc/thread-self/schedstat`
//! (Linux; elsewhere the column reads `n/a`).
//!
//! `cargo bench --bench latency` runs it in full; without `--bench` (as `cargo test
//! --benches` runs it) it makes a few calls of each kind only.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::time::{Duration, Instant};

use concurry::prelude::*;

/// How long the `idle wait` method sleeps.
const NAP: Duration = Duration::from_micros(200);

struct Echo;

#[concurry::worker]
impl Echo {
    pub fn new() -> Self {
        Echo
    }
    pub fn echo(&self, x: u64) -> u64 {
        x
    }
    pub fn nap(&self, x: u64) -> u64 {
        std::thread::sleep(NAP);
        x
    }
}

/// A crossbeam-mailbox actor: a mailbox of calls, a `bounded(1)` reply channel per call.
struct CrossbeamActor {
    tx: crossbeam_channel::Sender<(u64, bool, crossbeam_channel::Sender<u64>)>,
}

impl CrossbeamActor {
    fn start() -> Self {
        let (tx, rx) =
            crossbeam_channel::unbounded::<(u64, bool, crossbeam_channel::Sender<u64>)>();
        std::thread::spawn(move || {
            for (x, nap, reply) in rx {
                if nap {
                    std::thread::sleep(NAP);
                }
                let _ = reply.send(x);
            }
        });
        CrossbeamActor { tx }
    }

    fn call(&self, x: u64, nap: bool) -> u64 {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.tx.send((x, nap, reply)).unwrap();
        rx.recv().unwrap()
    }
}

/// The calling thread's time on a CPU so far, if the OS tells.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn cpu_per_call(before: Option<Duration>, calls: usize) -> String {
    match (before, thread_cpu()) {
        (Some(b), Some(a)) => format!("{:>7.2} us", (a - b).as_secs_f64() * 1e6 / calls as f64),
        _ => "    n/a".into(),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times `calls` round trips of `call` one by one; prints the percentiles and the CPU.
fn round_trip(name: &str, calls: usize, mut call: impl FnMut(u64) -> u64) {
    for i in 0..(calls / 10) as u64 {
        std::hint::black_box(call(i));
    }
    let mut lat = Vec::with_capacity(calls);
    let cpu = thread_cpu();
    for i in 0..calls as u64 {
        let start = Instant::now();
        std::hint::black_box(call(i));
        lat.push(start.elapsed());
    }
    let cpu = cpu_per_call(cpu, calls);
    lat.sort_unstable();
    let at = |q: f64| us(lat[((lat.len() - 1) as f64 * q) as usize]);
    println!(
        "  round trip  {name:<10} p50 {:>7.2} us  p90 {:>7.2} us  p99 {:>7.2} us  max {:>8.1} us  cpu/call {cpu}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
    );
}

/// The caller's CPU per call of `calls` calls that each sleep [`NAP`] on the other side.
fn idle_wait(name: &str, calls: usize, mut call: impl FnMut(u64) -> u64) {
    std::hint::black_box(call(0));
    let cpu = thread_cpu();
    let start = Instant::now();
    for i in 0..calls as u64 {
        std::hint::black_box(call(i));
    }
    let per = start.elapsed() / calls as u32;
    println!(
        "  idle wait   {name:<10} {:>7.1} us per call (nap {} us)  cpu/call {}",
        us(per),
        NAP.as_micros(),
        cpu_per_call(cpu, calls),
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (rounds, calls, naps) = if full {
        (3, 20_000, 2_000)
    } else {
        (1, 100, 10)
    };
    let thread = Echo::options().mode(Mode::Thread).init().unwrap();
    let asyncio = Echo::options().mode(Mode::Async).init().unwrap();
    let baseline = CrossbeamActor::start();
    for round in 1..=rounds {
        println!("round {round}/{rounds} ({calls} round trips, {naps} idle waits each)");
        round_trip("crossbeam", calls, |x| baseline.call(x, false));
        round_trip("thread", calls, |x| thread.echo(x).result().unwrap());
        round_trip("async", calls, |x| asyncio.echo(x).result().unwrap());
        idle_wait("crossbeam", naps, |x| baseline.call(x, true));
        idle_wait("thread", naps, |x| thread.nap(x).result().unwrap());
        idle_wait("async", naps, |x| asyncio.nap(x).result().unwrap());
    }
    thread.stop().unwrap();
    asyncio.stop().unwrap();
}
