//! The dashboard's `/metrics`: the cluster as it sees it, through the `metrics` facade (the
//! exporter renders them as Prometheus text). Named `concurry_cluster_*`, apart from what
//! each node serves about itself (`concurry_node_*`).
//!
//! | name | labels | what |
//! |---|---|---|
//! | `concurry_cluster_nodes` | | live nodes |
//! | `concurry_cluster_node_capacity` | `node` | its slots |
//! | `concurry_cluster_node_free` | `node` | its free slots |
//! | `concurry_cluster_node_draining` | `node` | 1 while it drains |
//! | `concurry_cluster_queue_depth` | `queue`, `priority` (`all` when not known per level) | tasks stored |
//! | `concurry_cluster_dead_letters` | `queue` | dead letters |
//! | `concurry_cluster_tasks` | `status` | tasks by status (those the cluster still keeps) |
//! | `concurry_cluster_limit_used` | `pool`, `key` | a limit's units in use |
//! | `concurry_cluster_limit_capacity` | `pool`, `key` | its capacity |

use super::snapshot::Snapshot;

/// The priorities' label values, in `QueueRow::by_priority`'s order.
const LEVELS: [&str; 4] = ["critical", "high", "normal", "low"];

/// Sets every gauge from `s`.
pub(super) fn record(s: &Snapshot) {
    metrics::gauge!("concurry_cluster_nodes").set(s.nodes.len() as f64);
    for n in &s.nodes {
        let node = n.name.clone();
        metrics::gauge!("concurry_cluster_node_capacity", "node" => node.clone())
            .set(f64::from(n.capacity));
        metrics::gauge!("concurry_cluster_node_free", "node" => node.clone())
            .set(f64::from(n.free));
        metrics::gauge!("concurry_cluster_node_draining", "node" => node).set(if n.draining {
            1.0
        } else {
            0.0
        });
    }
    for q in &s.queues {
        match q.by_priority {
            Some(levels) => {
                for (level, depth) in LEVELS.iter().zip(levels) {
                    metrics::gauge!("concurry_cluster_queue_depth", "queue" => q.name.clone(), "priority" => *level)
                        .set(depth as f64);
                }
            }
            None => metrics::gauge!("concurry_cluster_queue_depth", "queue" => q.name.clone(), "priority" => "all")
                .set(q.depth as f64),
        }
        metrics::gauge!("concurry_cluster_dead_letters", "queue" => q.name.clone())
            .set(q.dead_lettered as f64);
    }
    for (status, count) in &s.tasks.counts {
        metrics::gauge!("concurry_cluster_tasks", "status" => *status).set(*count as f64);
    }
    for l in s.limits.iter().flatten() {
        let (pool, key) = (l.pool.clone(), l.key.clone());
        metrics::gauge!("concurry_cluster_limit_used", "pool" => pool.clone(), "key" => key.clone())
            .set(l.used as f64);
        metrics::gauge!("concurry_cluster_limit_capacity", "pool" => pool, "key" => key)
            .set(l.capacity as f64);
    }
}
