//! What the page shows, as one serde document per tick ([`Snapshot`]), read from the
//! cluster by [`Collector`]; and the throughput history behind the chart ([`History`]).
//!
//! A snapshot carries counts and the most recent `recent` rows of each list, never every
//! task: with 10k tasks in view the page still gets one small document a tick.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::{Arc, Mutex};

use concurry::LimitKind;
use concurry::cluster::{
    Cluster, DeadLetter, NodeView, PoolInfo, Priority, QueuesSnapshot, TaskCounts, TaskFilter,
    TaskInfo, TaskQueue, TaskState,
};
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
    /// The namespace's `Mode::Cluster` pools (None until first read).
    pub(crate) pools: Option<Vec<PoolRow>>,
    pub(crate) queues: Vec<QueueRow>,
    /// One point per tick over the last [`HISTORY`], oldest first.
    pub(crate) throughput: Vec<Point>,
    pub(crate) tasks: Tasks,
    pub(crate) dlq: Dlq,
    /// The pools' limits: usage against capacity (None until the pools were first read).
    pub(crate) limits: Option<Vec<LimitRow>>,
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

/// A `Mode::Cluster` pool and where its instances are.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PoolRow {
    /// Its name, or its id for a pool started without one.
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) worker_type: String,
    /// Instances it keeps (`max_workers`).
    pub(crate) workers: u32,
    /// `host · pid` of the process that started it.
    pub(crate) owner: String,
    /// Instances per node, by node name.
    pub(crate) instances: Vec<(String, u32)>,
    /// Calls given to its instances and not finished, as its owner counts them.
    pub(crate) in_flight: u64,
    /// Calls given to its instances since it started.
    pub(crate) dispatched: u64,
}

impl From<&PoolInfo> for PoolRow {
    fn from(p: &PoolInfo) -> Self {
        PoolRow {
            name: p.name.clone().unwrap_or_else(|| p.id.clone()),
            id: p.id.clone(),
            worker_type: p.worker.clone(),
            workers: p.workers,
            owner: format!("{} · {}", p.owner_host, p.owner_pid),
            instances: p.instances.iter().map(|(n, c)| (n.clone(), *c)).collect(),
            in_flight: p.in_flight,
            dispatched: p.dispatched,
        }
    }
}

/// The limits of the pools, as bars: usage against capacity per pool and key.
pub(crate) fn limit_rows(pools: &[PoolInfo]) -> Vec<LimitRow> {
    let mut out = Vec::new();
    for p in pools {
        let pool = p.name.clone().unwrap_or_else(|| p.id.clone());
        for l in &p.limits {
            out.push(LimitRow {
                pool: pool.clone(),
                key: l.key.clone(),
                kind: kind_name(l.kind),
                used: l.used,
                capacity: l.capacity,
                waiters: l.waiters,
            });
        }
    }
    out
}

fn kind_name(k: LimitKind) -> String {
    match k {
        LimitKind::Rate(a) => format!("rate ({})", a.as_str()),
        LimitKind::Call(a) => format!("call ({})", a.as_str()),
        LimitKind::Resource => "resource".to_string(),
        _ => "limit".to_string(),
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
    /// When `recent` was read (ms since the Unix epoch; 0: not yet).
    pub(crate) listed_ms: u64,
}

/// The statuses a task can be in, as the page names them.
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

/// A limit's usage against its capacity (hosted by its pool's owner, shared by every
/// instance).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LimitRow {
    pub(crate) pool: String,
    pub(crate) key: String,
    /// `rate (<algorithm>)`, `call (<algorithm>)` or `resource`.
    pub(crate) kind: String,
    pub(crate) used: u64,
    pub(crate) capacity: u64,
    /// Requests waiting for it.
    pub(crate) waiters: usize,
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

/// The newest tasks and the pools, as the listing thread last read them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listing {
    pub(crate) rows: Vec<TaskRow>,
    pub(crate) pools: Option<Vec<PoolRow>>,
    pub(crate) limits: Option<Vec<LimitRow>>,
    /// When they were read (ms since the Unix epoch; 0: not yet).
    pub(crate) at_ms: u64,
    pub(crate) error: Option<String>,
    pub(crate) pools_error: Option<String>,
}

/// Reads a [`Snapshot`] from the cluster each tick: nodes, queue depths, counts and dead
/// letters every time; the newest tasks from the [`Listing`] the listing thread keeps (a
/// task listing reads the stream one message at a time, ~4 s for 10k queued tasks, so it
/// runs beside the ticks rather than in them).
pub(crate) struct Collector {
    pub(crate) cluster: Cluster,
    pub(crate) queue: Option<TaskQueue>,
    pub(crate) actions: bool,
    /// How many rows of each list a snapshot carries.
    pub(crate) recent: usize,
    pub(crate) history: History,
    pub(crate) listing: Arc<Mutex<Listing>>,
}

impl Collector {
    /// The task queue, opened on first use (the server may have had no JetStream yet).
    pub(crate) fn queue(&mut self) -> Result<&TaskQueue, String> {
        if self.queue.is_none() {
            self.queue = Some(
                self.cluster
                    .tasks()
                    .map_err(|e| format!("task queue: {e}"))?,
            );
        }
        Ok(self.queue.as_ref().expect("just opened"))
    }

    /// The cluster's state now; what cannot be read is named in `errors`.
    pub(crate) fn collect(&mut self) -> Snapshot {
        let at_ms = epoch_ms(SystemTime::now());
        let mut errors = Vec::new();
        let nodes: Vec<NodeRow> = self.cluster.nodes().iter().map(NodeRow::new).collect();
        let recent = self.recent;
        let (mut queues, mut counts, mut dlq) = (None, None, Dlq::default());
        match self.queue() {
            Ok(q) => {
                match q.queues() {
                    Ok(snap) => {
                        counts = Some(snap.tasks.clone());
                        queues = Some(queue_rows(&snap));
                    }
                    Err(e) => errors.push(format!("queues: {e}")),
                }
                match q.dead_letters() {
                    Ok(dead) => dlq = dlq_of(&dead, recent),
                    Err(e) => errors.push(format!("dead letters: {e}")),
                }
            }
            Err(e) => errors.push(e),
        }
        let listing = lock(&self.listing).clone();
        if let Some(e) = listing.error {
            errors.push(format!("task listing: {e}"));
        }
        if let Some(e) = listing.pools_error {
            errors.push(format!("pools: {e}"));
        }
        compose(Parts {
            at_ms,
            server: self.cluster.url().to_string(),
            namespace: self.cluster.namespace().to_string(),
            connected: self.cluster.is_connected(),
            actions: self.actions,
            nodes,
            pools: listing.pools,
            limits: listing.limits,
            queues: queues.unwrap_or_default(),
            counts,
            listing: listing.rows,
            listed_ms: listing.at_ms,
            dlq,
            recent,
            errors,
            history: &mut self.history,
        })
    }
}

/// What a snapshot is made of.
pub(crate) struct Parts<'a> {
    pub(crate) at_ms: u64,
    pub(crate) server: String,
    pub(crate) namespace: String,
    pub(crate) connected: bool,
    pub(crate) actions: bool,
    pub(crate) nodes: Vec<NodeRow>,
    pub(crate) pools: Option<Vec<PoolRow>>,
    pub(crate) limits: Option<Vec<LimitRow>>,
    pub(crate) queues: Vec<QueueRow>,
    pub(crate) counts: Option<TaskCounts>,
    /// The newest tasks, newest first (more than `recent` are cut).
    pub(crate) listing: Vec<TaskRow>,
    pub(crate) listed_ms: u64,
    pub(crate) dlq: Dlq,
    pub(crate) recent: usize,
    pub(crate) errors: Vec<String>,
    pub(crate) history: &'a mut History,
}

/// The snapshot of `p`: nodes by name, counts of every task, rows of the newest `recent`.
pub(crate) fn compose(p: Parts<'_>) -> Snapshot {
    let mut nodes = p.nodes;
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let depth = p.queues.iter().map(|q| q.depth).sum();
    let done = p
        .counts
        .as_ref()
        .map(|c| c.succeeded + c.failed + c.cancelled + c.dead_lettered);
    p.history.push(p.at_ms, depth, done);
    let tasks = match &p.counts {
        Some(c) => {
            let counts = counts_of(c);
            Tasks {
                total: counts.iter().map(|(_, n)| n).sum(),
                counts,
                recent: p.listing.into_iter().take(p.recent).collect(),
                listed_ms: p.listed_ms,
            }
        }
        None => Tasks {
            recent: p.listing.into_iter().take(p.recent).collect(),
            listed_ms: p.listed_ms,
            ..Tasks::default()
        },
    };
    Snapshot {
        at_ms: p.at_ms,
        server: p.server,
        namespace: p.namespace,
        connected: p.connected,
        actions: p.actions,
        nodes,
        pools: p.pools,
        queues: p.queues,
        throughput: p.history.points(),
        tasks,
        dlq: p.dlq,
        limits: p.limits,
        errors: p.errors,
    }
}

/// The counts in the order of [`STATUSES`].
fn counts_of(c: &TaskCounts) -> Vec<(&'static str, u64)> {
    let n = [
        c.pending,
        c.scheduled,
        c.running,
        c.retrying,
        c.succeeded,
        c.failed,
        c.cancelled,
        c.dead_lettered,
    ];
    STATUSES.iter().copied().zip(n).collect()
}

/// One row per queue, its levels most urgent first.
pub(crate) fn queue_rows(s: &QueuesSnapshot) -> Vec<QueueRow> {
    let mut names: Vec<&str> = s.queues();
    for q in s.dead_letters.keys() {
        if !names.contains(&q.as_str()) {
            names.push(q);
        }
    }
    names.sort_unstable();
    names
        .into_iter()
        .map(|name| {
            let by = [
                Priority::Critical,
                Priority::High,
                Priority::Normal,
                Priority::Low,
            ]
            .map(|p| s.depth(name, p));
            QueueRow {
                name: name.to_string(),
                depth: by.iter().sum(),
                by_priority: Some(by),
                dead_lettered: s.dead_letters.get(name).copied().unwrap_or(0),
            }
        })
        .collect()
}

impl TaskRow {
    /// `now_ms` gives a running task its duration so far.
    pub(crate) fn new(t: &TaskInfo, now_ms: u64) -> Self {
        let finished = t.status.is_finished();
        let duration_ms = match (t.started_ms, t.finished_ms) {
            (Some(s), Some(f)) => Some(f.saturating_sub(s)),
            (Some(s), None) if t.status == TaskState::Running => Some(now_ms.saturating_sub(s)),
            _ => None,
        };
        TaskRow {
            id: t.id.clone(),
            task: t.task.clone().unwrap_or_default(),
            status: t.status.as_str().to_string(),
            node: t.node.clone(),
            attempt: t.attempts,
            duration_ms,
            error: t.error.clone(),
            finished,
        }
    }
}

/// Keeps `listing` current: the newest `recent` tasks and the pools (a pool's owner is asked
/// where its instances are), read again once the last read is
/// `interval` old (or at once when poked), until `poked` is closed; after each read it pokes
/// the collector (`fresh`), so the pages see the rows at once.
pub(crate) fn list_loop(
    cluster: Cluster,
    recent: usize,
    listing: Arc<Mutex<Listing>>,
    poked: std::sync::mpsc::Receiver<()>,
    fresh: std::sync::mpsc::Sender<()>,
    interval: Duration,
) {
    let mut queue = None;
    loop {
        let pools = cluster.pools();
        {
            let mut l = lock(&listing);
            match pools {
                Ok(mut p) => {
                    p.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
                    l.pools = Some(p.iter().map(PoolRow::from).collect());
                    l.limits = Some(limit_rows(&p));
                    l.pools_error = None;
                }
                Err(e) => l.pools_error = Some(e.to_string()),
            }
        }
        if queue.is_none() {
            queue = cluster.tasks().ok();
        }
        if let Some(q) = &queue {
            let read = q.list(&TaskFilter::new().limit(recent));
            let at_ms = epoch_ms(SystemTime::now());
            let mut l = lock(&listing);
            match read {
                Ok(tasks) => {
                    l.rows = tasks.iter().map(|t| TaskRow::new(t, at_ms)).collect();
                    l.at_ms = at_ms;
                    l.error = None;
                }
                Err(e) => l.error = Some(e.to_string()),
            }
            drop(l);
            let _ = fresh.send(());
        }
        match poked.recv_timeout(interval) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

    fn row(i: u64) -> TaskRow {
        TaskRow {
            id: format!("t{i:05}"),
            task: "app::Render".into(),
            status: "pending".into(),
            node: None,
            attempt: 0,
            duration_ms: None,
            error: None,
            finished: false,
        }
    }

    #[test]
    fn ten_thousand_tasks_in_view_send_their_counts_and_the_newest_rows() {
        let mut counts = TaskCounts::default();
        counts.pending = 9_000;
        counts.running = 4;
        counts.succeeded = 996;
        let mut history = History::default();
        let snap = compose(Parts {
            at_ms: 1_000,
            server: "nats://127.0.0.1:4222".into(),
            namespace: "default".into(),
            connected: true,
            actions: false,
            nodes: Vec::new(),
            pools: None,
            limits: None,
            queues: vec![QueueRow {
                name: "default".into(),
                depth: 9_004,
                by_priority: Some([0, 4, 9_000, 0]),
                dead_lettered: 0,
            }],
            counts: Some(counts),
            listing: (0..10_000).rev().map(row).collect(),
            listed_ms: 900,
            dlq: Dlq::default(),
            recent: 200,
            errors: Vec::new(),
            history: &mut history,
        });
        assert_eq!(snap.tasks.total, 10_000);
        assert_eq!(snap.tasks.recent.len(), 200);
        assert_eq!(snap.tasks.recent[0].id, "t09999", "newest first");
        assert_eq!(
            snap.tasks.counts,
            [
                ("pending", 9_000),
                ("scheduled", 0),
                ("running", 4),
                ("retrying", 0),
                ("succeeded", 996),
                ("failed", 0),
                ("cancelled", 0),
                ("dead_lettered", 0),
            ]
        );
        let json = serde_json::to_string(&snap).unwrap();
        assert!(json.len() < 64_000, "{} bytes a tick", json.len());
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
