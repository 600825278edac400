//! Cluster groundwork: nodes and clients that meet through a NATS server (feature `cluster`).
//!
//! - [`Cluster`]: a connection to a NATS server (auth, TLS, namespace through
//!   [`ClusterOptions`]), with the live view of the nodes serving there ([`Cluster::nodes`],
//!   [`Cluster::events`]).
//! - [`Node`]: a process of your own binary that registers in the cluster, heartbeats and
//!   advertises its capacity and the worker types it can host; [`Node::serve`] blocks until
//!   SIGTERM or SIGINT, then drains and deregisters. [`RunningNode`] is one started in the
//!   background.
//! - [`NodeView`], [`ClusterEvent`], [`ClusterEvents`]: what a client sees of the nodes.
//! - [`plan`] and [`Placement`]: where `n` instances of a worker type would go, spread by free
//!   capacity over the live nodes that can host it.
//! - [`LocalServer`]: a `nats-server` child process on a free loopback port, for tests,
//!   examples and local development.
//! - [`TaskQueue`] ([`Cluster::tasks`]): durable tasks on JetStream, run at least once by the
//!   nodes, with results, status and cancel by task id from any process; see [`tasks`].
//!
//! Calls do not flow through a cluster yet: `Mode::Cluster` (workers placed on nodes and
//! called over NATS) builds on this.
//!
//! # Liveness
//!
//! A node publishes a heartbeat every [`DEFAULT_HEARTBEAT`] (1 s; [`Node::heartbeat`] changes
//! it, and each heartbeat carries its node's interval). A client counts a node as lost when
//! it has heard nothing from it for [`MISSED_BEATS`] (2.5) of that node's intervals, and
//! checks every [`SWEEP`] (100 ms): with the defaults a node killed with SIGKILL (or a machine
//! that vanished) is reported [`ClusterEvent::Lost`] at most 2.6 s after its last heartbeat.
//! A node drained with SIGTERM says goodbye instead, and is reported [`ClusterEvent::Left`]
//! at once. While the client itself is disconnected from the server it declares nobody lost;
//! once it is back, every node gets a fresh grace period.
//!
//! # Subjects
//!
//! Everything lives under `cc.<namespace>.` (namespace `default` unless
//! [`ClusterOptions::namespace`] says otherwise), on core NATS (no JetStream needed):
//! `node.hb` (heartbeats and goodbyes), `node.ping` (a new client asks every node to
//! announce itself), `node.name.<name>` (a starting node checks its name is free).
//! Messages are postcard, behind a 4-byte header (`CCN` and a version); anything else on these
//! subjects is ignored with a `tracing` warning, never a panic.
//!
//! ```no_run
//! use concurry::cluster::{Cluster, Node};
//!
//! # fn main() -> Result<(), concurry::Error> {
//! // On each node (any machine), in the user's own binary:
//! # if false {
//! Node::connect("nats://10.0.0.5:4222")?.name("gpu-1").capacity(8).serve()?; // blocks
//! # }
//! // Anywhere else:
//! let cluster = Cluster::connect("nats://10.0.0.5:4222")?;
//! for node in cluster.nodes() {
//!     println!("{} hosts {:?}, {} of {} free", node.name(), node.types(), node.free(), node.capacity());
//! }
//! # Ok(()) }
//! ```

mod connect;
mod membership;
mod node;
mod placement;
mod protocol;
mod server;
pub mod tasks;

use std::time::Duration;

pub use connect::{Cluster, ClusterOptions};
pub use membership::{ClusterEvent, ClusterEvents, NodeView};
pub use node::{Node, RunningNode};
pub use placement::{Placement, plan};
pub use server::{LocalServer, LocalServerBuilder};
pub use tasks::{DeadLetter, Priority, Submit, TaskConfig, TaskHandle, TaskQueue, TaskStatus};

/// How often a node heartbeats unless [`Node::heartbeat`] says otherwise.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// A node is lost after this many of its heartbeat intervals without a word (2.5: one late or
/// lost heartbeat is tolerated).
pub const MISSED_BEATS: f64 = 2.5;

/// How often a client looks for nodes whose heartbeats lapsed.
pub const SWEEP: Duration = Duration::from_millis(100);

/// The names of the remote worker types this binary can host: every `#[worker(remote)]` type
/// (and `register_remote!`), from process mode's link-time registry.
pub(crate) fn registered_types() -> Vec<String> {
    let mut names: Vec<String> = crate::remote::REMOTE_WORKERS
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Runs `fut` on the library's runtime (where the NATS connection's tasks live, whatever
/// runtime the caller is on, if any) and waits for it without starving the caller's runtime.
pub(crate) fn run<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let task = crate::runtime::runtime().spawn(fut);
    match crate::runtime::blocking(|| crate::runtime::block_on(task)) {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("concurry's cluster task was cancelled: {e}"),
    }
}

/// Checks that `value` can be one token of a NATS subject: 1 to 64 ASCII letters, digits,
/// `-` or `_`.
pub(crate) fn check_token(option: &'static str, value: &str) -> Result<(), crate::ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(crate::ConfigError::new(
            option,
            format!("{value:?}"),
            "use 1 to 64 ASCII letters, digits, `-` or `_` (it becomes part of NATS subjects)",
        ))
    }
}
