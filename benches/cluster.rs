//! `Mode::Cluster` calls next to raw NATS request/reply, against the server this bench starts
//! itself (a `LocalServer`), in one group per measure:
//! - `round_trip`: one request sent and its reply awaited (latency);
//! - `pipelined_64`: 1024 requests with 64 in flight at any time (throughput per request).
//!
//! The raw responder is a second connection in this process that echoes each payload (8
//! bytes) to its reply subject: the cost is the client library plus two hops through the
//! server. The `mode_cluster` rows call a `#[worker(remote)]` instance placed on a node (a
//! `RunningNode` of this process, on its own connection): the same two hops, plus the wire
//! envelope, the supervisor's call table and the node's serve loop.
//! Without a `nats-server` installed the bench prints how to install one and does nothing.
//!
//! `CONCURRY_BENCH_SWITCHES=1` first prints the voluntary context switches (and the CPU time)
//! per round trip of each thread of this process (by name; Linux only): a count of thread
//! hand-offs that does not depend on the machine's load, unlike the times.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use concurry::__private::async_nats;
use concurry::cluster::{Cluster, LocalServer, Node, RunningNode};
use concurry::{Mode, Promise};

#[derive(Default)]
pub struct Bounce;

#[concurry::worker(remote)]
impl Bounce {
    pub fn new() -> Self {
        Bounce
    }

    pub fn echo(&self, x: u64) -> u64 {
        x
    }
}

/// A pool of one `Bounce` on a node of this process.
struct OnNode {
    pool: BounceHandle,
    _node: RunningNode,
}

fn on_node(url: &str) -> OnNode {
    let node = Node::connect(url)
        .unwrap()
        .name("bench")
        .capacity(1)
        .start()
        .unwrap();
    let cluster = Cluster::connect(url).unwrap();
    cluster.wait_for_nodes(1, Duration::from_secs(10)).unwrap();
    let pool = Bounce::options()
        .mode(Mode::Cluster)
        .cluster(cluster)
        .init()
        .unwrap();
    OnNode { pool, _node: node }
}

const SUBJECT: &str = "bench.echo";
const BATCH: u64 = 1024;
const IN_FLIGHT: usize = 64;

struct Raw {
    rt: tokio::runtime::Runtime,
    client: async_nats::Client,
    _responder: async_nats::Client,
}

fn raw(url: &str) -> Raw {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (client, responder) = rt.block_on(async {
        let responder = async_nats::connect(url).await.unwrap();
        let mut sub = responder.subscribe(SUBJECT).await.unwrap();
        let r = responder.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                if let Some(reply) = msg.reply {
                    let _ = r.publish(reply, msg.payload).await;
                }
            }
        });
        responder.flush().await.unwrap();
        (async_nats::connect(url).await.unwrap(), responder)
    });
    Raw {
        rt,
        client,
        _responder: responder,
    }
}

fn round_trip(c: &mut Criterion, raw: &Raw, node: &OnNode) {
    let mut g = c.benchmark_group("cluster/round_trip");
    g.bench_function("mode_cluster", |b| {
        b.iter(|| node.pool.echo(black_box(7)).result().unwrap())
    });
    g.bench_function("raw_async_nats", |b| {
        b.to_async(&raw.rt).iter(|| async {
            let payload = black_box(7u64).to_le_bytes().to_vec();
            raw.client.request(SUBJECT, payload.into()).await.unwrap()
        })
    });
    g.finish();
}

fn pipelined(c: &mut Criterion, raw: &Raw, node: &OnNode) {
    let mut g = c.benchmark_group("cluster/pipelined_64");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("mode_cluster", |b| {
        b.iter(|| {
            let mut in_flight: std::collections::VecDeque<Promise<u64>> =
                std::collections::VecDeque::with_capacity(IN_FLIGHT);
            for i in 0..BATCH {
                if in_flight.len() == IN_FLIGHT {
                    black_box(in_flight.pop_front().unwrap().result().unwrap());
                }
                in_flight.push_back(node.pool.echo(i));
            }
            for p in in_flight {
                black_box(p.result().unwrap());
            }
        })
    });
    g.bench_function("raw_async_nats", |b| {
        b.to_async(&raw.rt).iter(|| async {
            let mut sent = 0u64;
            let mut in_flight = FuturesUnordered::new();
            let mut done = 0u64;
            while done < BATCH {
                while sent < BATCH && in_flight.len() < IN_FLIGHT {
                    let payload = sent.to_le_bytes().to_vec();
                    let client = raw.client.clone();
                    in_flight.push(async move { client.request(SUBJECT, payload.into()).await });
                    sent += 1;
                }
                if let Some(reply) = in_flight.next().await {
                    black_box(reply.unwrap());
                    done += 1;
                }
            }
        })
    });
    g.finish();
}

/// Voluntary context switches and nanoseconds on a CPU so far of each thread of this
/// process, summed by thread name (digits dropped: `concurry-async-3` counts as
/// `concurry-async-`).
fn switches() -> std::collections::BTreeMap<String, (u64, u64)> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for t in tasks.flatten() {
        let path = t.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let name: String = name
            .trim()
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let n = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        // Nanoseconds on a CPU so far.
        let cpu = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        let e = by_name.entry(name).or_insert((0, 0));
        e.0 += n;
        e.1 += cpu;
    }
    by_name
}

/// Prints the voluntary context switches and the CPU time per round trip, by thread name, of
/// `mode_cluster` and of `raw_async_nats`.
fn print_switches(raw: &Raw, node: &OnNode) {
    const N: u64 = 2000;
    let count = |what: &str, round_trip: &dyn Fn(u64)| {
        (0..200).for_each(round_trip);
        let before = switches();
        (0..N).for_each(round_trip);
        let after = switches();
        let (mut total, mut total_cpu) = (0.0, 0.0);
        for (name, (n, cpu)) in &after {
            let (n0, cpu0) = before.get(name).copied().unwrap_or((0, 0));
            let d = n.saturating_sub(n0) as f64 / N as f64;
            let us = cpu.saturating_sub(cpu0) as f64 / N as f64 / 1000.0;
            if d >= 0.01 || us >= 0.1 {
                println!("{what}: per round trip: {name:<18} {d:.2} switches, {us:.1} us on a CPU");
            }
            total += d;
            total_cpu += us;
        }
        println!("{what}: per round trip: total {total:.2} switches, {total_cpu:.1} us on a CPU");
    };
    count("mode_cluster", &|i| {
        black_box(node.pool.echo(i).result().unwrap());
    });
    let raw_trip = |i: u64| {
        let payload = i.to_le_bytes().to_vec();
        black_box(
            raw.rt
                .block_on(raw.client.request(SUBJECT, payload.into()))
                .unwrap(),
        );
    };
    count("raw_async_nats", &raw_trip);
    // The two round trips in turns, 300 of each per turn: a change of the machine's load
    // meets both alike (criterion measures one row after the other).
    let timed = |trip: &dyn Fn(u64)| {
        let start = std::time::Instant::now();
        (0..300).for_each(trip);
        start.elapsed().as_secs_f64() * 1e6 / 300.0
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        ours.push(timed(&|i| {
            black_box(node.pool.echo(i).result().unwrap());
        }));
        theirs.push(timed(&raw_trip));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut ours), median(&mut theirs));
    println!(
        "round trip in turns (median of 15): mode_cluster {a:.1} us, raw_async_nats {b:.1} us, {:.2}x",
        a / b
    );
}

fn main() {
    let server = match LocalServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cluster bench skipped: {e}");
            return;
        }
    };
    let raw = raw(&server.url());
    let node = on_node(&server.url());
    if std::env::var_os("CONCURRY_BENCH_SWITCHES").is_some() {
        print_switches(&raw, &node);
    }
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    round_trip(&mut c, &raw, &node);
    pipelined(&mut c, &raw, &node);
    c.final_summary();
}
