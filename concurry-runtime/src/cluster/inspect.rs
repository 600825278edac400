//! Operator actions and reads on the cluster itself (the `concurry` CLI, the dashboard):
//! [`Cluster::drain`] asks a node to drain, as a SIGTERM would.

use std::time::Duration;

use super::protocol::{NodeMsg, decode};
use super::{Cluster, run};
use crate::error::{ConfigError, Error};

/// How long a node may take to acknowledge a drain request.
const DRAIN_ACK: Duration = Duration::from_secs(5);

impl Cluster {
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
