//! Process mode against a hand-written pipe ping-pong with a child process, in one group per
//! measure:
//! - `round_trip`: one call sent to the child and its answer awaited (latency);
//! - `pipelined`: 1000 calls sent, then all awaited (throughput per call);
//! - `reply_latency`: how long the first result of a backlog takes to come back, against
//!   one call of the same work alone (a result must not wait for the calls behind it).
//!
//! The baseline child is this bench binary re-executed with `PINGPONG_CHILD=1`: it echoes
//! 8-byte integers from stdin to stdout, with no framing, ids or serde. The process-mode
//! child is the same binary entered by concurry's own hook.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::hint::black_box;
use std::io::{BufReader, BufWriter, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};

use concurry::{ProcessWorker, RemoteWorker};

const BATCH: u64 = 1000;

struct Nop;

impl RemoteWorker for Nop {
    const NAME: &'static str = "benches::process::Nop";
    type Args = ();
    type Request = u64;
    type Response = u64;
    type InitError = String;
    fn construct((): ()) -> Result<Self, String> {
        Ok(Nop)
    }
    fn dispatch(&mut self, x: u64) -> u64 {
        x
    }
}

concurry::register_remote!(Nop);

/// Each call spins for the given number of microseconds.
struct Busy;

impl RemoteWorker for Busy {
    const NAME: &'static str = "benches::process::Busy";
    type Args = ();
    type Request = u64;
    type Response = u64;
    type InitError = String;
    fn construct((): ()) -> Result<Self, String> {
        Ok(Busy)
    }
    fn dispatch(&mut self, micros: u64) -> u64 {
        let end = Instant::now() + Duration::from_micros(micros);
        while Instant::now() < end {
            std::hint::spin_loop();
        }
        micros
    }
}

concurry::register_remote!(Busy);

/// Calls of `reply_latency`'s backlog, and each one's work.
const BACKLOG: usize = 200;
const WORK_US: u64 = 100;

/// The hand-written baseline: a child echoing `u64`s over its stdin/stdout pipes.
struct PingPong {
    child: Child,
    tx: BufWriter<ChildStdin>,
    rx: BufReader<ChildStdout>,
}

impl PingPong {
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("PINGPONG_CHILD", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let tx = BufWriter::new(child.stdin.take().unwrap());
        let rx = BufReader::new(child.stdout.take().unwrap());
        PingPong { child, tx, rx }
    }

    fn send(&mut self, x: u64) {
        self.tx.write_all(&x.to_le_bytes()).unwrap();
    }

    fn recv(&mut self) -> u64 {
        self.tx.flush().unwrap();
        let mut b = [0; 8];
        self.rx.read_exact(&mut b).unwrap();
        u64::from_le_bytes(b)
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping_pong_child() {
    let mut rx = BufReader::new(std::io::stdin().lock());
    let mut tx = BufWriter::new(std::io::stdout().lock());
    let mut b = [0; 8];
    while rx.read_exact(&mut b).is_ok() {
        tx.write_all(&b).unwrap();
        if rx.buffer().is_empty() {
            tx.flush().unwrap();
        }
    }
}

fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("process/round_trip");
    g.throughput(Throughput::Elements(1));
    let w = ProcessWorker::<Nop>::spawn(()).unwrap();
    g.bench_function("concurry", |b| {
        b.iter(|| w.call(black_box(7)).result().unwrap())
    });
    w.stop().unwrap();
    let mut p = PingPong::start();
    g.bench_function("pipe_ping_pong", |b| {
        b.iter(|| {
            p.send(black_box(7));
            p.recv()
        })
    });
    g.finish();
}

fn pipelined(c: &mut Criterion) {
    let mut g = c.benchmark_group("process/pipelined");
    g.throughput(Throughput::Elements(BATCH));
    let w = ProcessWorker::<Nop>::spawn(()).unwrap();
    g.bench_function("concurry", |b| {
        b.iter(|| {
            let ps: Vec<_> = (0..BATCH).map(|i| w.call(black_box(i))).collect();
            ps.into_iter().map(|p| p.result().unwrap()).sum::<u64>()
        })
    });
    w.stop().unwrap();
    let mut p = PingPong::start();
    g.bench_function("pipe_ping_pong", |b| {
        b.iter(|| {
            (0..BATCH).for_each(|i| p.send(black_box(i)));
            (0..BATCH).map(|_| p.recv()).sum::<u64>()
        })
    });
    g.finish();
}

fn reply_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("process/reply_latency");
    let w = ProcessWorker::<Busy>::spawn(()).unwrap();
    // The floor: one call of the same work, with nothing queued behind it.
    g.bench_function("alone", |b| {
        b.iter(|| w.call(black_box(WORK_US)).result().unwrap())
    });
    // The first of BACKLOG calls: only its own work should count, not the calls behind it.
    g.bench_function("first_of_backlog", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let mut ps: Vec<_> = (0..BACKLOG).map(|_| w.call(black_box(WORK_US))).collect();
                let rest = ps.split_off(1);
                ps.pop().unwrap().result().unwrap();
                total += start.elapsed();
                for p in rest {
                    p.result().unwrap();
                }
            }
            total
        })
    });
    g.finish();
    w.stop().unwrap();
}

fn main() {
    if std::env::var_os("PINGPONG_CHILD").is_some() {
        return ping_pong_child();
    }
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    round_trip(&mut c);
    pipelined(&mut c);
    reply_latency(&mut c);
    c.final_summary();
}
