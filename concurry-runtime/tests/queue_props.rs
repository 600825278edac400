//! Property tests of the bounded queues under concurrent producers and consumers at the bound:
//! for random bounds, producer and consumer counts, item counts, orders (FIFO, LIFO, priority)
//! and sides (blocking threads, async tasks on a multi-thread runtime, or a mix), every item
//! put is got exactly once (nothing lost, nothing duplicated), the queue never holds more than
//! its bound, a FIFO queue keeps each producer's order, and `join` returns once every item
//! was marked done. Each case runs under a deadline, so a lost wake-up fails instead of hanging.
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use concurry::{LifoQueue, PriorityQueue, Queue};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Fifo,
    Lifo,
    Prio,
}

/// One queue of any kind, behind one interface for the test.
#[derive(Clone)]
enum Q {
    Fifo(Queue<u64>),
    Lifo(LifoQueue<u64>),
    Prio(PriorityQueue<u64, u8>),
}

impl Q {
    fn new(kind: Kind, bound: usize) -> Q {
        match kind {
            Kind::Fifo => Q::Fifo(Queue::bounded(bound).unwrap()),
            Kind::Lifo => Q::Lifo(LifoQueue::bounded(bound).unwrap()),
            Kind::Prio => Q::Prio(PriorityQueue::bounded(bound).unwrap()),
        }
    }
    fn put_blocking(&self, x: u64) {
        match self {
            Q::Fifo(q) => q.put_blocking(x).unwrap(),
            Q::Lifo(q) => q.put_blocking(x).unwrap(),
            Q::Prio(q) => q.put_blocking(x, (x % 3) as u8).unwrap(),
        }
    }
    async fn put(&self, x: u64) {
        match self {
            Q::Fifo(q) => q.put(x).await.unwrap(),
            Q::Lifo(q) => q.put(x).await.unwrap(),
            Q::Prio(q) => q.put(x, (x % 3) as u8).await.unwrap(),
        }
    }
    fn get_blocking(&self) -> Option<u64> {
        match self {
            Q::Fifo(q) => q.get_blocking(),
            Q::Lifo(q) => q.get_blocking(),
            Q::Prio(q) => q.get_blocking(),
        }
    }
    async fn get(&self) -> Option<u64> {
        match self {
            Q::Fifo(q) => q.get().await,
            Q::Lifo(q) => q.get().await,
            Q::Prio(q) => q.get().await,
        }
    }
    fn len(&self) -> usize {
        match self {
            Q::Fifo(q) => q.len(),
            Q::Lifo(q) => q.len(),
            Q::Prio(q) => q.len(),
        }
    }
    fn task_done(&self) {
        match self {
            Q::Fifo(q) => q.task_done().unwrap(),
            Q::Lifo(q) => q.task_done().unwrap(),
            Q::Prio(q) => q.task_done().unwrap(),
        }
    }
    fn close(&self) {
        match self {
            Q::Fifo(q) => q.close(),
            Q::Lifo(q) => q.close(),
            Q::Prio(q) => q.close(),
        }
    }
    fn join_blocking(&self) {
        match self {
            Q::Fifo(q) => q.join_blocking(),
            Q::Lifo(q) => q.join_blocking(),
            Q::Prio(q) => q.join_blocking(),
        }
    }
}

#[derive(Debug, Clone)]
struct Case {
    kind: Kind,
    bound: usize,
    /// Items each producer puts; `true` = an async producer.
    producers: Vec<(usize, bool)>,
    /// `true` = an async consumer.
    consumers: Vec<bool>,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(Kind::Fifo), Just(Kind::Lifo), Just(Kind::Prio)],
        1usize..4,
        prop::collection::vec((0usize..40, any::<bool>()), 1..4),
        prop::collection::vec(any::<bool>(), 1..4),
    )
        .prop_map(|(kind, bound, producers, consumers)| Case {
            kind,
            bound,
            producers,
            consumers,
        })
}

/// Item ids carry their producer: `producer * 1000 + seq`.
fn id(p: usize, i: usize) -> u64 {
    (p * 1000 + i) as u64
}

/// Runs one case and returns what each consumer got, in order.
fn run(case: &Case) -> (Vec<Vec<u64>>, usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let q = Q::new(case.kind, case.bound);
    let peak = Arc::new(AtomicUsize::new(0));
    let mut producers = Vec::new();
    for (p, &(n, is_async)) in case.producers.iter().enumerate() {
        let q = q.clone();
        if is_async {
            producers.push(Producer::Task(rt.spawn(async move {
                for i in 0..n {
                    q.put(id(p, i)).await;
                }
            })));
            continue;
        }
        producers.push(Producer::Thread(std::thread::spawn(move || {
            for i in 0..n {
                q.put_blocking(id(p, i));
            }
        })));
    }
    let mut consumers = Vec::new();
    for &is_async in &case.consumers {
        let (q, peak) = (q.clone(), peak.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        if is_async {
            rt.spawn(async move {
                let mut got = Vec::new();
                while let Some(x) = q.get().await {
                    peak.fetch_max(q.len(), Ordering::SeqCst);
                    got.push(x);
                    q.task_done();
                    if x % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                let _ = tx.send(got);
            });
        } else {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Some(x) = q.get_blocking() {
                    peak.fetch_max(q.len(), Ordering::SeqCst);
                    got.push(x);
                    q.task_done();
                }
                let _ = tx.send(got);
            });
        }
        consumers.push(rx);
    }
    // Wait for the producers by their own means, then let the consumers drain and end.
    for p in producers {
        match p {
            Producer::Task(h) => rt.block_on(h).unwrap(),
            Producer::Thread(h) => h.join().unwrap(),
        }
    }
    q.join_blocking(); // every item put was got and marked done
    q.close();
    let got = consumers
        .into_iter()
        .map(|rx| rx.recv_timeout(Duration::from_secs(20)).unwrap())
        .collect();
    (got, peak.load(Ordering::SeqCst))
}

enum Producer {
    Task(tokio::task::JoinHandle<()>),
    Thread(std::thread::JoinHandle<()>),
}

fn config() -> Config {
    Config {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn nothing_lost_or_duplicated_at_the_bound(case in cases()) {
        let c = case.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(run(&c));
        });
        let (got, peak) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the case hung: a lost wake-up or handoff");

        let mut all: Vec<u64> = got.iter().flatten().copied().collect();
        all.sort_unstable();
        let mut want: Vec<u64> = case
            .producers
            .iter()
            .enumerate()
            .flat_map(|(p, &(n, _))| (0..n).map(move |i| id(p, i)))
            .collect();
        want.sort_unstable();
        prop_assert_eq!(all, want);
        prop_assert!(peak <= case.bound, "held {} items at bound {}", peak, case.bound);
        if let Kind::Fifo = case.kind {
            // Each consumer sees each producer's items in the order they were put.
            for seen in &got {
                for p in 0..case.producers.len() {
                    let mine: Vec<u64> = seen.iter().copied().filter(|x| (*x / 1000) as usize == p).collect();
                    prop_assert!(mine.windows(2).all(|w| w[0] < w[1]), "out of order: {:?}", mine);
                }
            }
        }
    }
}
