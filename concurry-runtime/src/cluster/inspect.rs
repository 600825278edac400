//! Operator actions and reads on the cluster itself (the `concurry` CLI, the dashboard):
//! [`Cluster::drain`] asks a node to drain, as a SIGTERM would; [`Cluster::limits`] lists
//! every pool's limits with their usage against capacity ([`LimitUsage`]).

use std::time::Duration;

use serde::Serialize;

use super::protocol::{NodeMsg, decode};
use super::{Cluster, run};
use crate::error::{ConfigError, Error};
use crate::limit::LimitKind;

/// One limit of one cluster pool: [`Cluster::limits`]. The pool's owner hosts its limits,
/// so this is their global usage, across every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LimitUsage {
    /// The pool's name, or its id for a pool without one.
    pub pool: String,
    /// The pool's worker type.
    pub worker: String,
    /// The limit's key.
    pub key: String,
    /// `rate (<algorithm>)`, `call (<algorithm>)` or `resource`.
    pub kind: String,
    /// Units per window (rate, call) or held at once (resource).
    pub capacity: u64,
    /// Units counted against it now.
    pub used: u64,
    /// Units a request could take now.
    pub available: u64,
    /// Requests waiting for this key.
    pub waiters: usize,
}

fn kind(k: LimitKind) -> String {
    match k {
        LimitKind::Rate(a) => format!("rate ({})", a.as_str()),
        LimitKind::Call(a) => format!("call ({})", a.as_str()),
        LimitKind::Resource => "resource".to_string(),
    }
}

/// How long a node may take to acknowledge a drain request.
const DRAIN_ACK: Duration = Duration::from_secs(5);

impl Cluster {
    /// The limits of every pool of the namespace ([`pools`](Cluster::pools)), with their
    /// usage now, by pool then key.
    ///
    /// ```no_run
    /// use concurry::cluster::Cluster;
    ///
    /// # fn main() -> Result<(), concurry::Error> {
    /// let cluster = Cluster::connect("nats://127.0.0.1:4222")?;
    /// for l in cluster.limits()? {
    ///     println!("{} {}: {}/{}", l.pool, l.key, l.used, l.capacity);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`pools`](Cluster::pools).
    pub fn limits(&self) -> Result<Vec<LimitUsage>, Error> {
        let mut out = Vec::new();
        for p in self.pools()? {
            let pool = p.name.clone().unwrap_or_else(|| p.id.clone());
            for l in p.limits {
                out.push(LimitUsage {
                    pool: pool.clone(),
                    worker: p.worker.clone(),
                    key: l.key,
                    kind: kind(l.kind),
                    capacity: l.capacity,
                    used: l.used,
                    available: l.available,
                    waiters: l.waiters,
                });
            }
        }
        Ok(out)
    }

    /// Asks the live node `node_id` ([`NodeView::id`](super::NodeView::id)) to drain, as a
    /// SIGTERM would: it stops taking placements and tasks, its instances move to other nodes
    /// once their calls finish, then it says goodbye (a node in [`Node::serve`](super::Node::serve)
    /// then returns). Returns once the node acknowledged; the drain runs on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::cluster::{Cluster, ClusterEvent, LocalServer, Node};
    ///
    /// # fn main() -> Result<(), concurry::Error> {
    /// # let Some(server) = LocalServer::for_tests() else { return Ok(()) };
    /// # let url = server.url();
    /// let node = Node::connect(url.clone())?.name("worker-1").start()?;
    /// let cluster = Cluster::connect(url)?;
    /// let events = cluster.events();
    /// cluster.wait_for_nodes(1, Duration::from_secs(10))?;
    /// cluster.drain(&node.id())?;
    /// loop {
    ///     match events.recv_timeout(Duration::from_secs(30)) {
    ///         Some(ClusterEvent::Left(n)) => break assert_eq!(n.name(), "worker-1"),
    ///         Some(_) => continue,
    ///         None => panic!("the node did not leave"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] (option `node`) when no live node has that id or it does not
    /// answer within 5 s.
    pub fn drain(&self, node_id: &str) -> Result<(), Error> {
        // Ids are `<name>-<hex>`: one subject token.
        super::check_token("node", node_id).map_err(|_| {
            ConfigError::new(
                "node",
                format!("{node_id:?}"),
                "not a node id (`concurry nodes` lists them)",
            )
        })?;
        let client = self.client().clone();
        let subject = self.subjects().drain(node_id);
        let id = node_id.to_string();
        let ns = self.namespace().to_string();
        run(async move {
            let missing = |why: String| {
                Error::from(ConfigError::new(
                    "node",
                    format!("{id:?}"),
                    format!("{why} in namespace `{ns}` (`concurry nodes` lists the live nodes)"),
                ))
            };
            let reply = tokio::time::timeout(DRAIN_ACK, client.request(subject, Vec::new().into()))
                .await
                .map_err(|_| missing(format!("no answer within {DRAIN_ACK:?}")))?
                .map_err(|e| missing(format!("no live node has this id ({e})")))?;
            match decode(&reply.payload) {
                Ok(NodeMsg::Beat(_)) => Ok(()),
                _ => Err(missing("an unexpected answer came back".to_string())),
            }
        })
    }
}
