//! [`plan`]: where `n` instances of a worker type go on the live nodes.

use std::fmt;

use super::membership::NodeView;
use crate::error::ConfigError;

/// How many instances one node gets in a [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    node: String,
    node_id: String,
    instances: u32,
}

impl Placement {
    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The node's id ([`NodeView::id`]).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// How many instances go there (at least 1).
    pub fn instances(&self) -> u32 {
        self.instances
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} x{}", self.node, self.instances)
    }
}

/// Spreads `instances` instances of the worker type named `worker_type` over `nodes`, by free
/// capacity: each instance goes to the node that would then be the least loaded (hosted
/// instances over capacity), so nodes fill in proportion to their capacity and a busy node
/// gets fewer. Only nodes that can host the type and are not draining take any, and none
/// takes more than its free slots. Ties go to the node with more free slots, then by name.
/// The result lists the nodes that get instances, by name.
///
/// ```
/// use concurry::cluster::{NodeView, plan};
///
/// let nodes = [
///     NodeView::new("a", 8).with_types(["app::Embedder"]),
///     NodeView::new("b", 4).with_types(["app::Embedder"]),
///     NodeView::new("c", 4).with_types(["app::Embedder"]).with_free(1), // 3 already hosted
///     NodeView::new("d", 16).with_types(["app::Other"]),
/// ];
/// let placed = plan("app::Embedder", 6, &nodes)?;
/// let counts: Vec<_> = placed.iter().map(|p| (p.node(), p.instances())).collect();
/// assert_eq!(counts, [("a", 4), ("b", 2)]); // c, 3 of 4 busy, would be the fullest
///
/// let none = plan("app::Missing", 1, &nodes).unwrap_err();
/// assert!(none.to_string().contains("no live node can host `app::Missing`"));
/// # Ok::<(), concurry::ConfigError>(())
/// ```
///
/// # Errors
///
/// A [`ConfigError`] naming the type and every node seen (with what it hosts and how full it
/// is) when no node can host the type, or when the ones that can have fewer free slots than
/// `instances` altogether.
pub fn plan(
    worker_type: &str,
    instances: u32,
    nodes: &[NodeView],
) -> Result<Vec<Placement>, ConfigError> {
    let able: Vec<&NodeView> = nodes
        .iter()
        .filter(|n| n.can_host(worker_type) && !n.is_draining() && n.capacity() > 0)
        .collect();
    if able.is_empty() {
        return Err(ConfigError::new(
            "mode",
            "cluster",
            format!(
                "no live node can host `{worker_type}`; nodes seen: {}; start a node whose binary \
                 has `#[worker(remote)]` on `{worker_type}` (Node::connect(url)?.serve())",
                seen(nodes)
            ),
        ));
    }
    let free: u64 = able.iter().map(|n| u64::from(n.free())).sum();
    if free < u64::from(instances) {
        return Err(ConfigError::new(
            "max_workers",
            instances.to_string(),
            format!(
                "only {free} free slots for `{worker_type}` on the live nodes; nodes seen: {}; \
                 lower max_workers, raise a node's capacity, or start more nodes",
                seen(nodes)
            ),
        ));
    }
    // used = already hosted + placed here; room = free - placed.
    let mut used: Vec<u64> = able
        .iter()
        .map(|n| u64::from(n.capacity() - n.free().min(n.capacity())))
        .collect();
    let mut placed = vec![0u32; able.len()];
    for _ in 0..instances {
        let mut best: Option<usize> = None;
        for (i, n) in able.iter().enumerate() {
            if placed[i] >= n.free() {
                continue;
            }
            best = Some(match best {
                None => i,
                Some(b) if better(n, used[i], placed[i], able[b], used[b], placed[b]) => i,
                Some(b) => b,
            });
        }
        // The free total covers `instances`, so some node still has room.
        let Some(b) = best else { break };
        used[b] += 1;
        placed[b] += 1;
    }
    let mut out: Vec<Placement> = able
        .iter()
        .zip(placed)
        .filter(|(_, k)| *k > 0)
        .map(|(n, k)| Placement {
            node: n.name().to_string(),
            node_id: n.id().to_string(),
            instances: k,
        })
        .collect();
    out.sort_by(|a, b| (&a.node, &a.node_id).cmp(&(&b.node, &b.node_id)));
    Ok(out)
}

/// True if one more instance is better on `a` than on `b`: a lower load after placing it
/// ((used + 1) / capacity, compared without division), then more room left, then the name.
fn better(
    a: &NodeView,
    used_a: u64,
    placed_a: u32,
    b: &NodeView,
    used_b: u64,
    placed_b: u32,
) -> bool {
    let load_a = u128::from(used_a + 1) * u128::from(b.capacity());
    let load_b = u128::from(used_b + 1) * u128::from(a.capacity());
    if load_a != load_b {
        return load_a < load_b;
    }
    let room_a = a.free() - placed_a;
    let room_b = b.free() - placed_b;
    if room_a != room_b {
        return room_a > room_b;
    }
    (a.name(), a.id()) < (b.name(), b.id())
}

/// The nodes seen, for an error message: `a (hosts x::A; 2 of 4 free)`.
fn seen(nodes: &[NodeView]) -> String {
    if nodes.is_empty() {
        return "none (is any node serving in this namespace?)".to_string();
    }
    nodes
        .iter()
        .map(|n| {
            let types = if n.types().is_empty() {
                "no types".to_string()
            } else {
                format!("hosts {}", n.types().join(", "))
            };
            let draining = if n.is_draining() { "; draining" } else { "" };
            format!(
                "{} ({types}; {} of {} free{draining})",
                n.name(),
                n.free(),
                n.capacity()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
