//! Raw NATS request/reply against the server this bench starts itself (a `LocalServer`): the
//! baselines the cluster-mode rows will sit next to, in one group per measure:
//! - `round_trip`: one request sent and its reply awaited (latency);
//! - `pipelined_64`: 1024 requests with 64 in flight at any time (throughput per request).
//!
//! The responder is a second connection in this process that echoes each payload (8 bytes)
//! to its reply subject: the cost is the client library plus two hops through the server.
//! Without a `nats-server` installed the bench prints how to install one and does nothing.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use concurry::__private::async_nats;
use concurry::cluster::LocalServer;

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

fn round_trip(c: &mut Criterion, raw: &Raw) {
    let mut g = c.benchmark_group("cluster/round_trip");
    g.bench_function("raw_async_nats", |b| {
        b.to_async(&raw.rt).iter(|| async {
            let payload = black_box(7u64).to_le_bytes().to_vec();
            raw.client.request(SUBJECT, payload.into()).await.unwrap()
        })
    });
    g.finish();
}

fn pipelined(c: &mut Criterion, raw: &Raw) {
    let mut g = c.benchmark_group("cluster/pipelined_64");
    g.throughput(Throughput::Elements(BATCH));
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

fn main() {
    let server = match LocalServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cluster bench skipped: {e}");
            return;
        }
    };
    let raw = raw(&server.url());
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    round_trip(&mut c, &raw);
    pipelined(&mut c, &raw);
    c.final_summary();
}
