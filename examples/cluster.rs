//! Cluster membership and placement on one machine: a local nats-server, two node processes
//! of this same binary, the live view, a plan for 6 instances, then one node SIGKILLed (lost
//! by heartbeat within 2.6 s) and the other drained with SIGTERM (leaves at once).
//!
//! Workers do not run on nodes yet (`Mode::Cluster` builds on this); the nodes advertise the
//! `#[worker(remote)]` types of the binary, here `Embedder`.
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

    /// A (fake) embedding of `text`.
    pub fn embed(&self, text: String) -> Vec<f32> {
        vec![text.len() as f32; self.dims]
    }
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
    let mut small = node(&url, "small", 2);
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
    let plan = cluster.plan(embedder, 6)?;
    println!("6 x {embedder}: {}", join(&plan));

    // Events so far: both nodes joined.
    while let Some(ev) = events.try_recv() {
        println!("event: {} {}", kind(&ev), ev.node().name());
    }

    big.0.kill().expect("SIGKILL");
    let killed = Instant::now();
    let _ = big.0.wait();
    println!("SIGKILLed `big`...");
    loop {
        match events.recv_timeout(Duration::from_secs(20)) {
            Some(ClusterEvent::Lost(n)) => {
                println!(
                    "lost {} after {:?} (bound 2.6 s)",
                    n.name(),
                    killed.elapsed()
                );
                break;
            }
            Some(ev) => println!("event: {} {}", kind(&ev), ev.node().name()),
            None => panic!("`big` was never reported lost"),
        }
    }
    match cluster.plan(embedder, 6) {
        Ok(p) => println!("6 x {embedder} now: {}", join(&p)),
        Err(e) => println!("6 x {embedder} now: {e}"),
    }

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
