//! Durable tasks (issue 14) against the raw JetStream loop they are built on, on one
//! `LocalServer` (file storage) this bench starts itself:
//! - `tasks/end_to_end`: submit 10,000 no-op tasks (`CONCURRY_BENCH_TASKS`), collect every result
//!   (`submit_batch` + `results`, one in-process node with 64 slots) vs. publishing 10,000
//!   messages with message ids, pull-fetching them and double-acking each (the target's
//!   baseline), and the same with the fetching running while the messages are published
//!   (`raw_jetstream_concurrent`, as the node does while tasks are submitted);
//! - `tasks/sequential`: one task submitted and its result awaited vs. one publish -> fetch
//!   -> double ack.
//!
//! Without a `nats-server` installed the bench prints how to install one and does nothing.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::future::IntoFuture;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use concurry::__private::async_nats;
use concurry::RemoteTask;
use concurry::cluster::{Cluster, LocalServer, Node, RunningNode, TaskConfig, TaskQueue};

/// Tasks per end-to-end round (`CONCURRY_BENCH_TASKS`, default 10,000).
fn n() -> usize {
    std::env::var("CONCURRY_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

struct Nop;
impl RemoteTask for Nop {
    const NAME: &'static str = "bench::tasks::Nop";
    type Args = (u32,);
    type Output = u32;
    fn run((x,): (u32,)) -> u32 {
        x
    }
}
concurry::register_remote_task!(Nop);

struct Raw {
    rt: tokio::runtime::Runtime,
    js: async_nats::jetstream::Context,
    consumer: async_nats::jetstream::consumer::PullConsumer,
}

fn raw(url: &str) -> Raw {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (js, consumer) = rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let stream = js
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: "RAW".into(),
                subjects: vec!["raw.>".into()],
                retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
                duplicate_window: Duration::from_secs(600),
                ..Default::default()
            })
            .await
            .unwrap();
        let consumer = stream
            .get_or_create_consumer(
                "raw",
                async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some("raw".into()),
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                    max_ack_pending: 100_000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        (js, consumer)
    });
    Raw { rt, js, consumer }
}

/// [`raw_loop`] with the fetching and double-acking running while the messages are
/// published, as a node serves tasks while they are submitted (`concurry_tasks` measures
/// that): shown beside the phased loop, which publishes everything first.
async fn raw_concurrent(raw: &Raw, n: usize, round: u64) {
    let consumer = raw.consumer.clone();
    let consume = tokio::spawn(async move { consume(&consumer, n).await });
    publish(raw, n, round).await;
    consume.await.unwrap();
}

/// Publishes `n` messages with fresh ids (at most 1024 acks awaited at once, as
/// `submit_batch` does: the context lets at most 5,000 go unawaited), fetches and
/// double-acks them all.
async fn raw_loop(raw: &Raw, n: usize, round: u64) {
    publish(raw, n, round).await;
    consume(&raw.consumer, n).await;
}

async fn publish(raw: &Raw, n: usize, round: u64) {
    let mut pending: FuturesUnordered<
        <async_nats::jetstream::context::PublishAckFuture as IntoFuture>::IntoFuture,
    > = FuturesUnordered::new();
    for i in 0..n {
        while pending.len() >= 1024 {
            pending.next().await.unwrap().unwrap();
        }
        let msg = async_nats::jetstream::message::PublishMessage::build()
            .payload(vec![0u8; 8].into())
            .message_id(format!("r{round}-{i}"));
        let ack = raw.js.send_publish("raw.x", msg).await.unwrap();
        pending.push(ack.into_future());
    }
    while let Some(a) = pending.next().await {
        a.unwrap();
    }
}

async fn consume(consumer: &async_nats::jetstream::consumer::PullConsumer, n: usize) {
    let mut done = 0;
    let mut in_flight = FuturesUnordered::new();
    while done < n {
        let mut batch = consumer
            .batch()
            .max_messages((n - done).min(256))
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .unwrap();
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            in_flight.push(async move { m.double_ack().await.unwrap() });
            done += 1;
        }
        while in_flight.len() > 64 {
            in_flight.next().await;
        }
    }
    while in_flight.next().await.is_some() {}
}

fn end_to_end(c: &mut Criterion, raw: &Raw, q: &TaskQueue) {
    let n = n();
    let mut g = c.benchmark_group("tasks/end_to_end");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    let mut round = 0u64;
    g.bench_function("raw_jetstream", |b| {
        b.iter(|| {
            round += 1;
            raw.rt.block_on(raw_loop(raw, n, round));
        })
    });
    g.bench_function("raw_jetstream_concurrent", |b| {
        b.iter(|| {
            round += 1;
            raw.rt.block_on(raw_concurrent(raw, n, round));
        })
    });
    g.bench_function("concurry_tasks", |b| {
        b.iter(|| {
            let handles = q.submit_batch::<Nop>((0..n as u32).map(|i| (i,))).unwrap();
            let results = q.results(&handles, Duration::from_secs(300)).unwrap();
            assert!(results.iter().all(Result::is_ok));
        })
    });
    g.finish();
}

fn sequential(c: &mut Criterion, raw: &Raw, q: &TaskQueue) {
    let mut g = c.benchmark_group("tasks/sequential");
    let mut round = 0u64;
    g.bench_function("raw_jetstream", |b| {
        b.iter(|| {
            round += 1;
            raw.rt.block_on(raw_loop(raw, 1, 1_000_000 + round));
        })
    });
    g.bench_function("concurry_tasks", |b| {
        b.iter(|| q.submit::<Nop>((7,)).unwrap().result().unwrap())
    });
    g.finish();
}

fn main() {
    let server = match LocalServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tasks bench skipped: {e}");
            return;
        }
    };
    let raw = raw(&server.url());
    let cluster = Cluster::connect(server.url()).unwrap();
    let q = cluster.tasks().unwrap();
    let _node: RunningNode = Node::new(cluster.clone())
        .name("bench")
        .tasks(TaskConfig::new().slots(64))
        .start()
        .unwrap();
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    sequential(&mut c, &raw, &q);
    end_to_end(&mut c, &raw, &q);
    c.final_summary();
}
