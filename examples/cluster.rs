//! A cluster on one machine: a local nats-server, two node processes of this same binary, the
//! live view, a `Mode::Cluster` pool of 4 `Embedder`s spread over them, a batch of calls
//! during which one node is SIGKILLed (lost by heartbeat within 2.6 s: its calls are re-sent,
//! its instances re-placed on the other node, nothing is lost), then the other node drained
//! with SIGTERM (it leaves at once).
//!
//! ```text
//! cargo run --features cluster --example cluster
//! ```
//!
//! A node is the same binary started as `cluster node <url> <name> <capacity>`: on another
//! machine it would be your own program calling `Node::connect(url)?.name(..).serve()`.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use concurry::cluster::{Cluster, ClusterEvent, LocalServer, Node};
use concurry::{Mode, RetryConfig};

/// A worker type the nodes can host.
#[derive(Debug)]
pub struct Embedder {
    dims: usize,
}

#[concurry::worker(remote)]
impl Embedder {
    /// An embedder of `dims` dimensions.
    pub fn new(dims: usize) -> Self {
        Embedder { dims }
    }

    /// A (fake) embedding of `text`, taking 10 ms.
    pub fn embed(&self, text: String) -> Vec<f32> {
        std::thread::sleep(Duration::from_millis(10));
        vec![text.len() as f32; self.dims]
    }
}

/// A durable task the nodes run: submit it from a shell with
/// `concurry submit cluster::word_count '["to be or not to be"]' --wait`.
#[concurry::task(remote)]
pub fn word_count(text: String) -> usize {
    text.split_whitespace().count()
}

/// A node process, killed and reaped when dropped (on any early return).
struct NodeProc(Child);

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(url: &str, name: &str, capacity: u32) -> NodeProc {
    NodeProc(
        Command::new(std::env::current_exe().expect("this binary"))
            .args(["node", url, name, &capacity.to_string()])
            .spawn()
            .expect("start a node process"),
    )
}

fn main() -> Result<(), concurry::Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("node") {
        let capacity = args[4].parse().expect("capacity");
        return Node::connect(args[2].clone())?
            .name(args[3].clone())
            .capacity(capacity)
            .serve();
    }
    let server = match LocalServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(());
        }
    };
    let url = server.url();
    println!("nats-server on {url}");
    let cluster = Cluster::connect(url.clone())?;
    let events = cluster.events();
    let mut big = node(&url, "big", 4);
    let mut small = node(&url, "small", 4);
    for n in cluster.wait_for_nodes(2, Duration::from_secs(20))? {
        println!(
            "node {:<6} hosts {:?}, {} of {} free",
            n.name(),
            n.types(),
            n.free(),
            n.capacity()
        );
    }
    let embedder = <Embedder as concurry::RemoteWorker>::NAME;
    println!(
        "a plan for 6 x {embedder}: {}",
        join(&cluster.plan(embedder, 6)?)
    );
    while let Some(ev) = events.try_recv() {
        println!("event: {} {}", kind(&ev), ev.node().name());
    }

    // 4 instances over the two nodes; a call lost with its node is re-sent.
    let pool = Embedder::options()
        .mode(Mode::Cluster)
        .cluster(cluster.clone())
        .max_workers(4)
        .retry(RetryConfig::attempts(3).retry_on_worker_lost(true))
        .init(8)?;
    println!("pool placed on: {:?}", nodes_of(&pool));

    let started = Instant::now();
    let batch: Vec<_> = (0..400)
        .map(|i| pool.embed(format!("document {i}")))
        .collect();
    let mut ok = 0;
    let mut failed = 0;
    for (i, p) in batch.into_iter().enumerate() {
        if i == 100 {
            big.0.kill().expect("SIGKILL");
            let _ = big.0.wait();
            println!("SIGKILLed `big` after {:?}, mid-batch", started.elapsed());
        }
        match p.result() {
            Ok(v) => {
                assert_eq!(v.len(), 8);
                ok += 1;
            }
            Err(e) => {
                println!("call {i} failed: {e}");
                failed += 1;
            }
        }
    }
    println!(
        "batch of 400: {ok} ok, {failed} failed, in {:?}; the pool is now on: {:?}",
        started.elapsed(),
        nodes_of(&pool)
    );
    loop {
        match events.recv_timeout(Duration::from_secs(20)) {
            Some(ClusterEvent::Lost(n)) => {
                println!("event: lost {}", n.name());
                break;
            }
            Some(ev) => println!("event: {} {}", kind(&ev), ev.node().name()),
            None => panic!("`big` was never reported lost"),
        }
    }
    pool.stop()?;

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(small.0.id().to_string())
        .status();
    if let Some(ev) = events.recv_timeout(Duration::from_secs(20)) {
        println!("SIGTERMed `small`: {} {}", kind(&ev), ev.node().name());
    }
    let _ = small.0.wait();
    Ok(())
}

/// The node of each worker of the pool.
fn nodes_of(pool: &EmbedderHandle) -> Vec<String> {
    pool.stats()
        .per_worker
        .into_iter()
        .map(|w| w.node.unwrap_or_else(|| "(being placed)".into()))
        .collect()
}

fn kind(ev: &ClusterEvent) -> &'static str {
    match ev {
        ClusterEvent::Joined(_) => "joined",
        ClusterEvent::Left(_) => "left",
        ClusterEvent::Lost(_) => "lost",
        _ => "other",
    }
}

fn join(plan: &[concurry::cluster::Placement]) -> String {
    plan.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
