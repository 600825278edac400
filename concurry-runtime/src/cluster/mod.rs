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
//! - `Mode::Cluster` pools (the pool option `.cluster(cluster)`): each `#[worker(remote)]`
//!   instance is placed on a live node that can host its type, by free capacity, and called
//!   over NATS through the remote layer's supervisor (as a child process is in process mode).
//!
//! # Cluster mode
//!
//! - **Placement**: `init` waits (at most 2 s) until the live nodes can host all
//!   `max_workers` instances, else it is an [`Error::Config`](crate::Error::Config) naming the
//!   type and the nodes seen; each instance goes to the least loaded node that takes it
//!   (counting this pool's own spawns before the heartbeats do), and a node that refuses
//!   (full, draining, another schema fingerprint of the type) is skipped with a typed reason.
//! - **Calls**: one NATS message each way per call (the wire frame: envelope, call header,
//!   request); many in flight per instance; a call whose deadline passed while it waited on
//!   the node does not run. A message above the server's `max_payload` fails its call with
//!   `WireError::TooLarge` (the pool's `max_message_size` is capped to it).
//! - **Node loss**: a node lost by heartbeat (within 2.6 s, see *Liveness*) or whose
//!   connection to the pool's owner dropped fails the calls in flight there with
//!   `Error::WorkerLost` (re-sent with `retry_on_worker_lost`), and its instances are
//!   re-placed from their constructor arguments, under the pool's `max_restarts` and
//!   `restart_backoff`.
//! - **Drain** (SIGTERM, [`RunningNode::drain`]): the node takes no new instances and tells
//!   each owner its instance is moving; the owner stops sending there, lets the calls in
//!   flight finish, and places it elsewhere; queued calls wait for the new instance. Nothing
//!   fails.
//! - **Limits**: the pool's limits are hosted by its owner; a method's `limits()` on a node
//!   asks the owner, so they are global across nodes.
//! - **Orphans**: a node checks every second that each owner of its instances answers on
//!   `owner.<id>`; the server says "no responders" at once once the owner's connection is
//!   closed, so orphaned instances end within about a second; an owner that stops answering
//!   (a vanished machine the server has not noticed) is given up after 3 unanswered checks.
//!
//! # Named pools
//!
//! A `Mode::Cluster` pool given a name (the pool option `.name("cache")`, or the
//! `#[worker(name = ..)]` default) is found by that name from any process of the namespace:
//! `Cache::lookup(&cluster, "cache")` (generated for every `#[worker(remote)]` type) gives a
//! handle of the usual type whose calls go to **that pool's instances**, through its owner
//! (the process that started it), which admits them as its own calls (load balancing,
//! `max_queued_tasks`, the pool's limits) and passes each reply back: state is shared by
//! every handle. [`Cluster::pools`] lists the namespace's pools, named or not ([`PoolInfo`]).
//!
//! - **Unique per namespace**: `init` refuses a name held by a live pool at once, with an
//!   [`Error::Config`](crate::Error::Config) naming the name, its holder (process, host,
//!   pool id) and the fix, before placing anything. A name is `[A-Za-z0-9_-]{1,64}`.
//! - **Released** when the owner's pool stops (`stop()`, or the last handle dropped), and
//!   when the owner dies: its service subject then has no responders (at once once the
//!   server closed its connection), so the next `init` of that name takes it over and
//!   `lookup` and `pools()` no longer see it.
//! - **A looked-up handle** does not own the pool: its `stop()` (or drop) only detaches it
//!   (its calls in flight finish first); the owner's pool serves on. Its `stats()` count its
//!   own calls (one worker: the owner). When the owner stops or dies, its calls fail with
//!   [`Error::WorkerLost`](crate::Error::WorkerLost): a call sent then at once, a call in
//!   flight within about a second (the handle asks the owner every second while calls are
//!   out); nothing hangs, and the handle never re-places anything (the instances were the
//!   owner's). Its calls carry their deadline to the owner; a cancel of one resolves it here,
//!   while the instance runs the call to its end.
//! - `lookup` of a name no live pool holds is an [`Error::Config`](crate::Error::Config)
//!   naming it and the named pools seen; of a pool of another type, one naming both types.
//! - The registry is the JetStream KV bucket `CC_<ns>_pools` (`name.<name>` or `id.<id>` →
//!   a `CCP` record), so named pools and `pools()` need a server with JetStream
//!   (`nats-server -js`); unnamed pools work without it (they are just not listed). Each
//!   owner answers `pool.<id>.info` (its live record) and `pool.<id>.call` (looked-up calls).
//!
//! ```no_run
//! # #[cfg(feature = "cluster")]
//! # mod app {
//! pub struct Cache { hits: u64 }
//!
//! #[concurry::worker(remote)]
//! impl Cache {
//!     pub fn new() -> Self { Cache { hits: 0 } }
//!     pub fn hit(&mut self) -> u64 { self.hits += 1; self.hits }
//! }
//! # }
//! # #[cfg(feature = "cluster")]
//! # fn main() -> Result<(), concurry::Error> {
//! # use app::Cache;
//! use concurry::Mode;
//! use concurry::cluster::Cluster;
//!
//! let cluster = Cluster::connect("nats://10.0.0.5:4222")?;
//! // In one process: the owner.
//! let owned = Cache::options().mode(Mode::Cluster).cluster(cluster.clone()).name("cache").init()?;
//! // In any other (or the same): the same instance.
//! let found = Cache::lookup(&cluster, "cache")?;
//! let a = owned.hit().result()?;
//! assert_eq!(found.hit().result()?, a + 1);
//! # Ok(()) }
//! # #[cfg(not(feature = "cluster"))]
//! # fn main() {}
//! ```
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
//! announce itself), `node.name.<name>` (a starting node checks its name is free),
//! `node.<node-id>.ctl` (spawn and stop instances, request/reply), `inst.<node-id>.<n>` (the
//! calls of instance `n`), `owner.<id>` (a pool owner answers while alive), `pool.<id>.info`
//! and `pool.<id>.call` (a pool's record and its looked-up calls); replies go to
//! `_INBOX.>` subjects. Membership and control messages are postcard, behind a 4-byte header
//! (`CCN` or `CCH` and a version); calls are wire frames (`CNCY` and the wire version).
//! Anything else is ignored with a `tracing` warning or refused typed, never a panic.
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
mod host;
mod hosting;
mod inspect;
pub(crate) mod lookup;
mod membership;
pub(crate) mod names;
mod node;
mod placement;
#[cfg(feature = "prometheus")]
mod prometheus;
mod protocol;
mod server;
pub mod tasks;
pub(crate) mod transport;

use std::time::Duration;

pub use connect::{Cluster, ClusterOptions};
pub use inspect::LimitUsage;
pub use membership::{ClusterEvent, ClusterEvents, NodeView};
pub use names::PoolInfo;
pub use node::{Node, RunningNode};
pub use placement::{Placement, plan};
pub use server::{LocalServer, LocalServerBuilder};
pub use tasks::{
    DeadLetter, Priority, QueueDepth, QueuesSnapshot, Submit, TaskConfig, TaskCounts, TaskFilter,
    TaskHandle, TaskInfo, TaskQueue, TaskState, TaskStatus,
};

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
