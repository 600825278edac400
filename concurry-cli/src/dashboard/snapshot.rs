//! What the page shows, as one serde document per tick ([`Snapshot`]), read from the
//! cluster by [`Collector`]; and the throughput history behind the chart ([`History`]).
//!
//! A snapshot carries counts and the most recent `recent` rows of each list, never every
//! task: with 10k tasks in view the page still gets one small document a tick.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use concurry::cluster::{Cluster, DeadLetter, NodeView, TaskQueue};
use serde::Serialize;

/// The whole page's state at one instant.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Snapshot {
    /// Milliseconds since the Unix epoch.
    pub(crate) at_ms: u64,
    pub(crate) server: String,
    pub(crate) namespace: String,
    pub(crate) connected: bool,
    /// Whether the dashboard takes actions (`--allow-actions`): the page shows the buttons.
    pub(crate) actions: bool,
    pub(crate) nodes: Vec<NodeRow>,
    pub(crate) queues: Vec<QueueRow>,
    /// One point per tick over the last [`HISTORY`], oldest first.
    pub(crate) throughput: Vec<Point>,
    pub(crate) tasks: Tasks,
    pub(crate) dlq: Dlq,
    pub(crate) limits: Vec<LimitRow>,
    /// What could not be read this tick (the rest of the page is still current).
    pub(crate) errors: Vec<String>,
}

/// A live node.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeRow {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) host: String,
    pub(crate) pid: u32,
    pub(crate) capacity: u32,
    pub(crate) free: u32,
    /// Busy slots over capacity, 0 to 1.
    pub(crate) load: f64,
    /// `ok`, `late` (a heartbeat overdue: more than 1.5 intervals ago) or `draining`.
    pub(crate) health: &'static str,
    pub(crate) draining: bool,
    pub(crate) last_heartbeat_ms: u64,
    pub(crate) types: Vec<String>,
}

impl NodeRow {
    pub(crate) fn new(n: &NodeView) -> Self {
        let (host, pid) = n.process();
        let busy = n.capacity().saturating_sub(n.free());
        let since = n.since_heartbeat();
        let health = if n.is_draining() {
            "draining"
        } else if since.as_secs_f64() > 1.5 * n.heartbeat_interval().as_secs_f64() {
            "late"
        } else {
            "ok"
        };
        NodeRow {
            name: n.name().to_string(),
            id: n.id().to_string(),
            host: host.to_string(),
            pid,
            capacity: n.capacity(),
            free: n.free(),
            load: if n.capacity() == 0 {
                0.0
            } else {
                f64::from(busy) / f64::from(n.capacity())
            },
            health,
            draining: n.is_draining(),
            last_heartbeat_ms: millis(since),
            types: n.types().to_vec(),
        }
    }
}

/// A task queue: its stored tasks (queued, delayed and running: a work queue keeps a task
/// until its outcome is stored), per priority when known.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct QueueRow {
    pub(crate) name: String,
    pub(crate) depth: u64,
    /// `[critical, high, normal, low]`.
    pub(crate) by_priority: Option<[u64; 4]>,
    pub(crate) dead_lettered: u64,
}

/// One point of the throughput chart.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Point {
    pub(crate) at_ms: u64,
    /// Tasks stored in the queues.
    pub(crate) depth: u64,
    /// Tasks finished per second since the previous point (None when not known).
    pub(crate) done_per_s: Option<f64>,
}

/// Recent tasks: counts by status over all of them, rows for the newest only.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Tasks {
    /// How many tasks the counts cover.
    pub(crate) total: u64,
    /// `(status, count)`, in the order of [`STATUSES`]; empty when not known.
    pub(crate) counts: Vec<(&'static str, u64)>,
    /// The newest, at most `--recent` of them.
    pub(crate) recent: Vec<TaskRow>,
}

/// The statuses a task can be in, as the page names them.
#[allow(dead_code)] // used once the cluster lists tasks
pub(crate) const STATUSES: [&str; 8] = [
    "pending",
    "scheduled",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "cancelled",
    "dead_lettered",
];

/// One task of the recent list.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TaskRow {
    pub(crate) id: String,
    pub(crate) task: String,
    pub(crate) status: String,
    pub(crate) node: Option<String>,
    pub(crate) attempt: u32,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) error: Option<String>,
    pub(crate) finished: bool,
}

/// The dead letters: how many, the newest `--recent` of them.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Dlq {
    pub(crate) total: u64,
    pub(crate) recent: Vec<DlqRow>,
}

/// One dead letter.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DlqRow {
    pub(crate) id: String,
    pub(crate) task: String,
    pub(crate) reason: String,
    pub(crate) attempts: u32,
    pub(crate) last_error: String,
    pub(crate) node: String,
    pub(crate) at_ms: u64,
}

impl From<&DeadLetter> for DlqRow {
    fn from(d: &DeadLetter) -> Self {
        DlqRow {
            id: d.id.clone(),
            task: d.task.clone(),
            reason: d.reason.clone(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            node: d.node.clone(),
            at_ms: epoch_ms(d.at),
        }
    }
}

/// A limit's usage against its capacity.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LimitRow {
    pub(crate) key: String,
    pub(crate) used: f64,
    pub(crate) capacity: f64,
}

/// How far back the throughput chart goes.
pub(crate) const HISTORY: Duration = Duration::from_secs(10 * 60);

/// The throughput chart's points: one per tick, the oldest dropped past [`HISTORY`].
#[derive(Debug, Default)]
pub(crate) struct History {
    points: VecDeque<Point>,
    /// The finished count at the previous point.
    last_done: Option<(u64, u64)>,
}

impl History {
    /// Adds the point of `at_ms` with `depth` stored tasks and `done` finished so far (a
    /// running total, when known); the rate is its change since the previous point.
    pub(crate) fn push(&mut self, at_ms: u64, depth: u64, done: Option<u64>) {
        let done_per_s = match (self.last_done, done) {
            (Some((t0, d0)), Some(d1)) if at_ms > t0 => {
                Some(d1.saturating_sub(d0) as f64 * 1000.0 / (at_ms - t0) as f64)
            }
            _ => None,
        };
        self.last_done = done.map(|d| (at_ms, d));
        self.points.push_back(Point {
            at_ms,
            depth,
            done_per_s,
        });
        let horizon = at_ms.saturating_sub(millis(HISTORY));
        while self.points.front().is_some_and(|p| p.at_ms < horizon) {
            self.points.pop_front();
        }
    }

    pub(crate) fn points(&self) -> Vec<Point> {
        self.points.iter().copied().collect()
    }
}

/// Reads a [`Snapshot`] from the cluster each tick.
pub(crate) struct Collector {
    pub(crate) cluster: Cluster,
    pub(crate) queue: Option<TaskQueue>,
    pub(crate) actions: bool,
    /// How many rows of each list a snapshot carries.
    pub(crate) recent: usize,
    pub(crate) history: History,
}

impl Collector {
    /// The cluster's state now; what cannot be read is named in `errors`.
    pub(crate) fn collect(&mut self) -> Snapshot {
        let at_ms = epoch_ms(SystemTime::now());
        let mut errors = Vec::new();
        let mut nodes: Vec<NodeRow> = self.cluster.nodes().iter().map(NodeRow::new).collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        if self.queue.is_none() {
            match self.cluster.tasks() {
                Ok(q) => self.queue = Some(q),
                Err(e) => errors.push(format!("task queue: {e}")),
            }
        }
        let mut queues = Vec::new();
        let mut dlq = Dlq::default();
        let tasks = Tasks::default();
        if let Some(q) = &self.queue {
            match q.dead_letters() {
                Ok(dead) => dlq = dlq_of(&dead, self.recent),
                Err(e) => errors.push(format!("dead letters: {e}")),
            }
            match q.queued() {
                Ok(depth) => queues.push(QueueRow {
                    name: q.config().get_queue().to_string(),
                    depth,
                    by_priority: None,
                    dead_lettered: dlq.total,
                }),
                Err(e) => errors.push(format!("queue depth: {e}")),
            }
        }
        let depth = queues.iter().map(|q| q.depth).sum();
        self.history.push(at_ms, depth, None);
        Snapshot {
            at_ms,
            server: self.cluster.url().to_string(),
            namespace: self.cluster.namespace().to_string(),
            connected: self.cluster.is_connected(),
            actions: self.actions,
            nodes,
            queues,
            throughput: self.history.points(),
            tasks,
            dlq,
            limits: Vec::new(),
            errors,
        }
    }
}

/// The dead letters as the page shows them: the total, the newest `recent` first.
pub(crate) fn dlq_of(dead: &[DeadLetter], recent: usize) -> Dlq {
    Dlq {
        total: dead.len() as u64,
        // `dead_letters` lists oldest first.
        recent: dead.iter().rev().take(recent).map(DlqRow::from).collect(),
    }
}

pub(crate) fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, millis)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_last_ten_minutes_and_rates_the_finished() {
        let mut h = History::default();
        h.push(1_000, 5, None);
        h.push(2_000, 4, Some(10));
        h.push(4_000, 2, Some(20));
        let p = h.points();
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].done_per_s, p[1].done_per_s), (None, None));
        assert_eq!(p[2].done_per_s, Some(5.0), "10 finished in 2 s");
        let later = 4_000 + millis(HISTORY) + 1_500;
        h.push(later, 0, Some(20));
        let p = h.points();
        assert_eq!(p.len(), 1, "points older than ten minutes go: {p:?}");
        assert_eq!(p[0].done_per_s, Some(0.0));
    }

    #[test]
    fn a_ten_thousand_dead_letter_backlog_sends_the_newest_few() {
        let dead: Vec<DeadLetter> = (0..10_000u64)
            .map(|i| DeadLetter {
                id: format!("t{i}"),
                task: "app::Job".into(),
                reason: "attempts ran out".into(),
                attempts: 3,
                last_error: "boom".into(),
                node: "n1".into(),
                at: UNIX_EPOCH + Duration::from_millis(i),
            })
            .collect();
        let d = dlq_of(&dead, 50);
        assert_eq!(d.total, 10_000);
        assert_eq!(d.recent.len(), 50);
        assert_eq!(d.recent[0].id, "t9999", "newest first");
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.len() < 20_000, "{} bytes", json.len());
    }
}
