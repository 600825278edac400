//! Read queries over a namespace's task stores, for operators (the `concurry` CLI, the
//! dashboard, the node's queue-depth gauge): [`TaskQueue::queues`] (depth per queue and
//! priority, tasks by state), [`TaskQueue::list`] (tasks with filters, newest first) and
//! [`TaskQueue::info`] (one task: state, attempts, node, timings, error). Every snapshot is a
//! plain [`Serialize`] record with a stable shape: scripts read it as JSON.
//!
//! Where the numbers come from: the stream's per-subject counts and each level's consumer
//! (waiting = never delivered, held = delivered and not yet acknowledged: running, or given
//! back until due), the last record of each task in the status and results buckets (one
//! ordered consumer per bucket, last value per key), the dead letters, and, for the tasks
//! still in the stream, their messages (task name, queue, priority, submit time). A finished
//! task's name and queue are not recorded beyond that, so [`TaskFilter::queue`] selects the
//! tasks still queued, delayed or running in a queue and its dead letters.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, DeliverPolicy};
use async_nats::jetstream::kv;
use async_nats::jetstream::message::StreamMessage;
use futures_util::StreamExt;
use serde::{Serialize, Serializer};

use super::record::{Dead, Failure, Outcome, State, Stored, decode};
use super::setup::{Store, parse_subject};
use super::submit::{Priority, TaskQueue};
use super::{NOT_BEFORE, TASK_ID, TASK_NAME, check_id, server_error, to_ms};
use crate::cluster::run;
use crate::error::{ConfigError, Error};

/// At most this many messages of the stream are read for the names, queues and submit times
/// of unfinished tasks (one request each); past it those fields stay unknown.
const STREAM_SCAN: usize = 10_000;

/// How long one query may take before it is given up (a server that stopped answering).
const QUERY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a bucket scan waits for its next entry before it takes the entries read as all.
const SCAN_IDLE: Duration = Duration::from_secs(2);

/// The key suffix, in the status bucket, of a task's name recorded by a JSON submit
/// (`<id>.task`; a task id has no `.`).
pub(crate) const NAME_SUFFIX: &str = ".task";

impl Serialize for Priority {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.token())
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

impl FromStr for Priority {
    type Err = ConfigError;

    /// `critical`, `high`, `normal` or `low`.
    ///
    /// ```
    /// use concurry::cluster::Priority;
    /// assert_eq!("high".parse::<Priority>().unwrap(), Priority::High);
    /// assert!("urgent".parse::<Priority>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Priority, ConfigError> {
        Priority::from_token(s).ok_or_else(|| {
            ConfigError::new(
                "priority",
                format!("{s:?}"),
                "use one of `critical`, `high`, `normal`, `low`",
            )
        })
    }
}

/// The state of a task, as a name (what [`TaskStatus`](super::TaskStatus) says, without its
/// details): `pending`, `scheduled`, `running`, `retrying`, `succeeded`, `failed`,
/// `cancelled`, `dead_lettered` or `unknown`.
///
/// ```
/// use concurry::cluster::TaskState;
/// let s: TaskState = "dead_lettered".parse().unwrap();
/// assert_eq!(s, TaskState::DeadLettered);
/// assert_eq!(s.to_string(), "dead_lettered");
/// assert!(s.is_finished());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskState {
    /// Stored, waiting for a node.
    Pending,
    /// Stored, delayed until its ETA.
    Scheduled,
    /// A node runs it.
    Running,
    /// An attempt failed; it runs again later.
    Retrying,
    /// It returned.
    Succeeded,
    /// It cannot run (unknown task, another schema, malformed, result too large).
    Failed,
    /// Cancelled before it finished.
    Cancelled,
    /// Its attempts ran out.
    DeadLettered,
    /// No record of it.
    Unknown,
}

impl TaskState {
    /// Every state, in the order above.
    pub const ALL: [TaskState; 9] = [
        TaskState::Pending,
        TaskState::Scheduled,
        TaskState::Running,
        TaskState::Retrying,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
        TaskState::DeadLettered,
        TaskState::Unknown,
    ];

    /// Its name (`dead_lettered`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Scheduled => "scheduled",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::DeadLettered => "dead_lettered",
            TaskState::Unknown => "unknown",
        }
    }

    /// True once a result exists (the state does not change any more).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded
                | TaskState::Failed
                | TaskState::Cancelled
                | TaskState::DeadLettered
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<TaskState, ConfigError> {
        let s2 = s.replace('-', "_");
        TaskState::ALL
            .into_iter()
            .find(|t| t.as_str() == s2)
            .ok_or_else(|| {
                ConfigError::new(
                    "status",
                    format!("{s:?}"),
                    format!(
                        "use one of {}",
                        TaskState::ALL
                            .iter()
                            .map(|t| format!("`{t}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }
}

/// One task as operators see it: [`TaskQueue::list`], [`TaskQueue::info`]. Times are
/// milliseconds since the Unix epoch, as the server recorded them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id.
    pub id: String,
    /// Its state.
    pub status: TaskState,
    /// Its name (`RemoteTask::NAME`), when known: while it is in the stream, once
    /// finished or dead-lettered, or when submitted as JSON.
    pub task: Option<String>,
    /// Its queue, when known (while in the stream, once finished, or dead-lettered; not
    /// for a cancel that never ran).
    pub queue: Option<String>,
    /// Its priority, when known (as `queue`).
    pub priority: Option<Priority>,
    /// The node running it, or that ran it.
    pub node: Option<String>,
    /// Attempts started so far (0 before the first).
    pub attempts: u32,
    /// The failure: of the last attempt (retrying) or the final one.
    pub error: Option<String>,
    /// When it was submitted, when known (while it waits, while it is in the stream, or from
    /// its result).
    pub submitted_ms: Option<u64>,
    /// When its last attempt started.
    pub started_ms: Option<u64>,
    /// When its result was stored.
    pub finished_ms: Option<u64>,
    /// When it may run (delayed or retrying).
    pub run_at_ms: Option<u64>,
    /// When its record last changed.
    pub updated_ms: u64,
}

impl TaskInfo {
    fn unknown(id: &str) -> TaskInfo {
        TaskInfo {
            id: id.to_string(),
            status: TaskState::Unknown,
            task: None,
            queue: None,
            priority: None,
            node: None,
            attempts: 0,
            error: None,
            submitted_ms: None,
            started_ms: None,
            finished_ms: None,
            run_at_ms: None,
            updated_ms: 0,
        }
    }
}

/// Which tasks [`TaskQueue::list`] gives: by state, by queue, how many (newest first).
///
/// ```
/// use concurry::cluster::{TaskFilter, TaskState};
/// let f = TaskFilter::new().status(TaskState::Running).queue("render").limit(20);
/// # let _ = f;
/// ```
#[derive(Debug, Clone)]
pub struct TaskFilter {
    status: Option<TaskState>,
    queue: Option<String>,
    limit: usize,
}

impl Default for TaskFilter {
    fn default() -> Self {
        TaskFilter::new()
    }
}

impl TaskFilter {
    /// Every state, every queue, the 50 newest.
    pub fn new() -> Self {
        TaskFilter {
            status: None,
            queue: None,
            limit: 50,
        }
    }

    /// Only tasks in this state.
    #[must_use]
    pub fn status(mut self, status: TaskState) -> Self {
        self.status = Some(status);
        self
    }

    /// Only tasks of this queue (a task cancelled before it ran has no queue on record and
    /// is left out).
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// At most this many (the newest by last change).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

/// The depth of one priority level of one queue: [`QueuesSnapshot::levels`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueDepth {
    /// The queue's name.
    pub queue: String,
    /// The level.
    pub priority: Priority,
    /// Tasks stored at this level: waiting, delayed, retrying or running.
    pub depth: u64,
    /// Of those, never delivered to a node yet.
    pub waiting: u64,
    /// Of those, delivered and not yet acknowledged: running, or given back by a node until
    /// they are due (delayed, retrying).
    pub held: u64,
}

/// How many tasks of the namespace are in each state (their last records).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TaskCounts {
    /// Waiting for a node.
    pub pending: u64,
    /// Delayed until their ETA.
    pub scheduled: u64,
    /// Running now.
    pub running: u64,
    /// Waiting to be retried.
    pub retrying: u64,
    /// Returned.
    pub succeeded: u64,
    /// Could not run.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Dead-lettered (their results; see [`QueuesSnapshot::dead_letters`] for those kept).
    pub dead_lettered: u64,
}

impl TaskCounts {
    fn add(&mut self, s: TaskState) {
        let n = match s {
            TaskState::Pending => &mut self.pending,
            TaskState::Scheduled => &mut self.scheduled,
            TaskState::Running => &mut self.running,
            TaskState::Retrying => &mut self.retrying,
            TaskState::Succeeded => &mut self.succeeded,
            TaskState::Failed => &mut self.failed,
            TaskState::Cancelled => &mut self.cancelled,
            TaskState::DeadLettered => &mut self.dead_lettered,
            TaskState::Unknown => return,
        };
        *n += 1;
    }
}

/// The task queues of a namespace at one moment: [`TaskQueue::queues`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueuesSnapshot {
    /// Every level of every queue that has a consumer or tasks, by queue name, most urgent
    /// level first.
    pub levels: Vec<QueueDepth>,
    /// The dead letters kept, by queue.
    pub dead_letters: HashMap<String, u64>,
    /// The namespace's tasks by state (all queues).
    pub tasks: TaskCounts,
    /// When the snapshot was taken (ms since the Unix epoch).
    pub at_ms: u64,
}

impl QueuesSnapshot {
    /// The depth of `queue` at `priority` (0 if it has none).
    pub fn depth(&self, queue: &str, priority: Priority) -> u64 {
        self.levels
            .iter()
            .find(|l| l.queue == queue && l.priority == priority)
            .map_or(0, |l| l.depth)
    }

    /// The queues' names, sorted.
    pub fn queues(&self) -> Vec<&str> {
        let mut q: Vec<&str> = self.levels.iter().map(|l| l.queue.as_str()).collect();
        q.extend(self.dead_letters.keys().map(String::as_str));
        q.sort_unstable();
        q.dedup();
        q
    }
}

/// The last value of every key of `bucket` (deleted and purged keys left out), with when it
/// was stored.
async fn scan(store: &Store, bucket: &kv::Store, name: &str) -> Result<Vec<Entry>, Error> {
    let err =
        |e: &dyn fmt::Display| server_error(&format!("read the bucket `{name}`"), &store.url, e);
    let consumer = bucket
        .stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: store.js.client().new_inbox(),
            description: Some("concurry inspect".to_string()),
            filter_subject: format!("$KV.{name}.>"),
            deliver_policy: DeliverPolicy::LastPerSubject,
            replay_policy: consumer::ReplayPolicy::Instant,
            ..Default::default()
        })
        .await
        .map_err(|e| err(&e))?;
    let mut out = Vec::new();
    if consumer.cached_info().num_pending == 0 {
        return Ok(out);
    }
    let prefix = format!("$KV.{name}.");
    let mut messages = consumer.messages().await.map_err(|e| err(&e))?;
    // Keys deleted or purged while this reads (a purge of the dead letters, a result's TTL)
    // are never delivered, so the message saying nothing is pending may never come: a pause
    // of [`SCAN_IDLE`] ends the scan with what was read.
    while let Ok(Some(m)) = tokio::time::timeout(SCAN_IDLE, messages.next()).await {
        let m = m.map_err(|e| err(&e))?;
        let info = m.info().map_err(|e| err(&e))?;
        let (pending, created) = (info.pending, to_ms(info.published.into()));
        let deleted = m
            .headers
            .as_ref()
            .and_then(|h| h.get("KV-Operation"))
            .is_some_and(|v| v.as_str() == "DEL" || v.as_str() == "PURGE");
        if !deleted && let Some(key) = m.subject.as_str().strip_prefix(&prefix) {
            out.push(Entry {
                key: key.to_string(),
                value: m.payload.to_vec(),
                created,
            });
        }
        if pending == 0 {
            break;
        }
    }
    Ok(out)
}

struct Entry {
    key: String,
    value: Vec<u8>,
    created: u64,
}

/// What a task's message in the stream says about it.
pub(crate) struct InStream {
    task: Option<String>,
    queue: String,
    priority: Priority,
    submitted: u64,
    /// Its ETA, if it was submitted with one.
    not_before: Option<u64>,
}

impl InStream {
    /// The task id and what its message says, unless it is not a task's.
    pub(crate) fn read(m: &StreamMessage) -> Option<(String, InStream)> {
        let id = m.headers.get(TASK_ID)?.as_str().to_string();
        let (queue, priority) = parse_subject(m.subject.as_str())?;
        let s = InStream {
            task: m.headers.get(TASK_NAME).map(|v| v.as_str().to_string()),
            queue,
            priority,
            submitted: to_ms(m.time.into()),
            not_before: m
                .headers
                .get(NOT_BEFORE)
                .and_then(|v| v.as_str().parse().ok()),
        };
        Some((id, s))
    }

    /// Its ETA while it is still ahead (a task known only by its message is `Scheduled`
    /// until then, `Pending` after).
    pub(crate) fn eta(&self) -> Option<u64> {
        self.not_before.filter(|&at| at > super::now_ms())
    }

    /// What a task known only by its message shows: `Pending`, or `Scheduled` before its
    /// [`eta`](InStream::eta).
    fn apply(self, t: &mut TaskInfo) {
        if t.status == TaskState::Unknown {
            match self.eta() {
                Some(at) => {
                    t.status = TaskState::Scheduled;
                    t.run_at_ms = Some(at);
                }
                None => t.status = TaskState::Pending,
            }
            t.updated_ms = self.submitted;
        }
        t.task = t.task.take().or(self.task);
        t.queue = Some(self.queue);
        t.priority = Some(self.priority);
        t.submitted_ms = Some(self.submitted);
    }
}

/// The messages still in the stream (unfinished tasks), by task id, up to [`STREAM_SCAN`].
async fn stream_tasks(store: &Store) -> Result<HashMap<String, InStream>, Error> {
    let all = store.names.all();
    let mut out = HashMap::new();
    let mut seq = 1;
    while out.len() < STREAM_SCAN {
        let m = match store
            .stream
            .get_first_raw_message_by_subject(&all, seq)
            .await
        {
            Ok(m) => m,
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                break;
            }
            Err(e) => return Err(server_error("read the task stream", &store.url, e)),
        };
        seq = m.sequence + 1;
        if let Some((id, s)) = InStream::read(&m) {
            out.entry(id).or_insert(s);
        }
    }
    Ok(out)
}

/// Everything known about every task of the namespace.
async fn gather(store: &Store, with_stream: bool) -> Result<Vec<TaskInfo>, Error> {
    let names = &store.names;
    let (statuses, results, dead) = tokio::try_join!(
        scan(store, &store.status, &names.status),
        scan(store, &store.results, &names.results),
        scan(store, &store.dlq, &names.dlq),
    )?;
    let in_stream = if with_stream {
        stream_tasks(store).await?
    } else {
        HashMap::new()
    };
    let mut tasks: HashMap<String, TaskInfo> = HashMap::new();
    let mut recorded_names: HashMap<String, String> = HashMap::new();
    for e in statuses {
        if let Some(id) = e.key.strip_suffix(NAME_SUFFIX) {
            recorded_names.insert(id.to_string(), String::from_utf8_lossy(&e.value).into());
            continue;
        }
        let Ok(state) = decode::<State>(&e.value, "a task status") else {
            continue;
        };
        let mut t = TaskInfo::unknown(&e.key);
        apply_state(&mut t, state, e.created);
        tasks.insert(e.key, t);
    }
    for e in results {
        let Ok(stored) = decode::<Stored>(&e.value, "a task result") else {
            continue;
        };
        let t = tasks
            .entry(e.key.clone())
            .or_insert_with(|| TaskInfo::unknown(&e.key));
        apply_result(t, &stored, e.created);
    }
    for e in dead {
        let Ok(d) = decode::<Dead>(&e.value, "a dead letter") else {
            continue;
        };
        let t = tasks
            .entry(e.key.clone())
            .or_insert_with(|| TaskInfo::unknown(&e.key));
        apply_dead(t, d, e.created);
    }
    for (id, s) in in_stream {
        // A task with a fresh id has no record until a node runs it: its message is it.
        let t = tasks
            .entry(id)
            .or_insert_with_key(|id| TaskInfo::unknown(id));
        s.apply(t);
    }
    for (id, name) in recorded_names {
        if let Some(t) = tasks.get_mut(&id) {
            t.task.get_or_insert(name);
        }
    }
    Ok(tasks.into_values().collect())
}

fn apply_state(t: &mut TaskInfo, state: State, at: u64) {
    t.updated_ms = at;
    match state {
        State::Pending => {
            t.status = TaskState::Pending;
            t.submitted_ms = Some(at);
        }
        State::Scheduled { at_ms } => {
            t.status = TaskState::Scheduled;
            t.submitted_ms = Some(at);
            t.run_at_ms = Some(at_ms);
        }
        State::Running { node, attempt } => {
            t.status = TaskState::Running;
            t.node = Some(node);
            t.attempts = attempt;
            t.started_ms = Some(at);
        }
        State::Retrying {
            attempt,
            at_ms,
            error,
        } => {
            t.status = TaskState::Retrying;
            t.attempts = attempt;
            t.run_at_ms = Some(at_ms);
            t.error = Some(error);
        }
    }
}

fn apply_result(t: &mut TaskInfo, stored: &Stored, at: u64) {
    t.updated_ms = t.updated_ms.max(at);
    t.finished_ms = Some(stored.finished_ms);
    if stored.started_ms != 0 {
        t.started_ms = Some(stored.started_ms);
    }
    if !stored.task.is_empty() && t.task.is_none() {
        t.task = Some(stored.task.clone());
    }
    if let Some((queue, priority)) = parse_subject(&stored.subject) {
        t.queue.get_or_insert(queue);
        t.priority.get_or_insert(priority);
    }
    if stored.submitted_ms != 0 && t.submitted_ms.is_none() {
        t.submitted_ms = Some(stored.submitted_ms);
    }
    t.run_at_ms = None;
    if !stored.node.is_empty() {
        t.node = Some(stored.node.clone());
    }
    t.attempts = t.attempts.max(stored.attempt);
    t.status = match &stored.outcome {
        Outcome::Ok(_) => {
            t.error = None;
            TaskState::Succeeded
        }
        Outcome::Failed(Failure::Cancelled) => {
            t.error = None;
            TaskState::Cancelled
        }
        Outcome::Failed(f @ Failure::DeadLettered { .. }) => {
            t.error = Some(f.describe());
            TaskState::DeadLettered
        }
        Outcome::Failed(f) => {
            t.error = Some(f.describe());
            TaskState::Failed
        }
    };
}

fn apply_dead(t: &mut TaskInfo, d: Dead, at: u64) {
    t.updated_ms = t.updated_ms.max(at);
    t.task = Some(d.task);
    if let Some((q, p)) = parse_subject(&d.subject) {
        t.queue = Some(q);
        t.priority = Some(p);
    }
    if t.status == TaskState::Unknown {
        t.status = TaskState::DeadLettered;
        t.error = Some(format!("{}; last error: {}", d.reason, d.last_error));
    }
    t.attempts = t.attempts.max(d.attempts);
    if t.node.is_none() && !d.node.is_empty() {
        t.node = Some(d.node);
    }
}

async fn queues(store: &Store) -> Result<QueuesSnapshot, Error> {
    let at_ms = super::now_ms();
    let levels = depths(store).await?;
    let tasks = gather(store, false).await?;
    let mut counts = TaskCounts::default();
    for t in &tasks {
        counts.add(t.status);
    }
    // Tasks with fresh ids are recorded only by their messages until a node runs them: the
    // stream's tasks beyond those with an unfinished record are pending.
    let stored: u64 = levels.iter().map(|l| l.depth).sum();
    let recorded = counts.pending + counts.scheduled + counts.running + counts.retrying;
    counts.pending += stored.saturating_sub(recorded);
    let mut dead_letters = HashMap::new();
    for e in scan(store, &store.dlq, &store.names.dlq).await? {
        if let Ok(d) = decode::<Dead>(&e.value, "a dead letter") {
            let q = parse_subject(&d.subject).map_or_else(|| "?".to_string(), |(q, _)| q);
            *dead_letters.entry(q).or_insert(0) += 1;
        }
    }
    Ok(QueuesSnapshot {
        levels,
        dead_letters,
        tasks: counts,
        at_ms,
    })
}

/// The depth of every level of every queue: each level's consumer (never delivered +
/// delivered and unacknowledged: a work queue holds a task until it is acknowledged), and
/// only when the stream holds tasks those do not account for (a queue no node serves yet),
/// the stream's per-subject counts, one subject per task (no bucket is read: cheap enough
/// to sample every few seconds).
async fn depths(store: &Store) -> Result<Vec<QueueDepth>, Error> {
    let err = |e: &dyn fmt::Display| server_error("read the task stream", &store.url, e);
    let mut levels: HashMap<(String, Priority), QueueDepth> = HashMap::new();
    let mut consumers = store.stream.consumers();
    let mut accounted = 0;
    while let Some(c) = consumers.next().await {
        let c = c.map_err(|e| err(&e))?;
        if let Some((queue, priority)) = parse_subject(&c.config.filter_subject) {
            let l = levels
                .entry((queue.clone(), priority))
                .or_insert_with(|| empty_level(queue, priority));
            l.waiting = c.num_pending;
            l.held = c.num_ack_pending as u64;
            l.depth = l.waiting + l.held;
            accounted += l.depth;
        }
    }
    if store.queued().await? > accounted {
        let mut subjects = store
            .stream
            .info_with_subjects(store.names.all())
            .await
            .map_err(|e| err(&e))?;
        let mut counted: HashMap<(String, Priority), u64> = HashMap::new();
        while let Some(s) = subjects.next().await {
            let (subject, n) = s.map_err(|e| err(&e))?;
            if let Some(level) = parse_subject(&subject) {
                *counted.entry(level).or_default() += n as u64;
            }
        }
        for ((queue, priority), n) in counted {
            let l = levels
                .entry((queue.clone(), priority))
                .or_insert_with(|| empty_level(queue, priority));
            l.depth = l.depth.max(n);
        }
    }
    let mut levels: Vec<QueueDepth> = levels.into_values().collect();
    levels.sort_by(|a, b| (&a.queue, a.priority.level()).cmp(&(&b.queue, b.priority.level())));
    Ok(levels)
}

/// How often a node with `metrics_listen` samples the queue depths.
#[cfg(feature = "prometheus")]
pub(crate) const QUEUE_SAMPLE: Duration = Duration::from_secs(5);

/// Keeps the gauge `concurry_task_queue_depth{queue, priority}` of every level of every queue
/// of the namespace current, every [`QUEUE_SAMPLE`] (a node with `metrics_listen`).
#[cfg(feature = "prometheus")]
pub(crate) async fn keep_queue_gauges(cluster: crate::cluster::Cluster) {
    let client = cluster.client().clone();
    let store = match Store::open(
        client,
        cluster.namespace(),
        cluster.url(),
        super::TaskConfig::new(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("concurry node: no task queue gauges: {e}");
            return;
        }
    };
    let mut tick = tokio::time::interval(QUEUE_SAMPLE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match tokio::time::timeout(QUERY_TIMEOUT, depths(&store)).await {
            Ok(Ok(levels)) => {
                for l in levels {
                    ::metrics::gauge!(
                        crate::metrics::TASK_QUEUE_DEPTH,
                        "queue" => l.queue,
                        "priority" => l.priority.token()
                    )
                    .set(l.depth as f64);
                }
            }
            Ok(Err(e)) => tracing::debug!("concurry node: queue depths not sampled: {e}"),
            Err(_) => tracing::debug!("concurry node: queue depths not sampled in time"),
        }
    }
}

fn empty_level(queue: String, priority: Priority) -> QueueDepth {
    QueueDepth {
        queue,
        priority,
        depth: 0,
        waiting: 0,
        held: 0,
    }
}

/// Runs a query with the [`QUERY_TIMEOUT`].
fn query<T: Send + 'static>(
    store_url: String,
    fut: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    run(async move {
        tokio::time::timeout(QUERY_TIMEOUT, fut)
            .await
            .unwrap_or_else(|_| {
                Err(server_error(
                    "read the task stores",
                    &store_url,
                    format!("no answer within {QUERY_TIMEOUT:?}"),
                ))
            })
    })
}

impl TaskQueue {
    /// The depth of every queue of the namespace per priority, and its tasks by state.
    ///
    /// ```no_run
    /// use concurry::cluster::{Cluster, Priority};
    ///
    /// # fn main() -> Result<(), concurry::Error> {
    /// let q = Cluster::connect("nats://127.0.0.1:4222")?.tasks()?;
    /// let snap = q.queues()?;
    /// println!("{} high-priority tasks in `default`", snap.depth("default", Priority::High));
    /// println!("{} running", snap.tasks.running);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the server cannot be asked.
    pub fn queues(&self) -> Result<QueuesSnapshot, Error> {
        let inner = self.inner.clone();
        query(self.inner.store.url.clone(), async move {
            queues(&inner.store).await
        })
    }

    /// The tasks the filter selects, newest first (by their last change).
    ///
    /// ```no_run
    /// use concurry::cluster::{Cluster, TaskFilter, TaskState};
    ///
    /// # fn main() -> Result<(), concurry::Error> {
    /// let q = Cluster::connect("nats://127.0.0.1:4222")?.tasks()?;
    /// for t in q.list(&TaskFilter::new().status(TaskState::Failed).limit(10))? {
    ///     println!("{} {:?}: {:?}", t.id, t.task, t.error);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a queue name that cannot be one, or if the server cannot be
    /// asked.
    pub fn list(&self, filter: &TaskFilter) -> Result<Vec<TaskInfo>, Error> {
        if let Some(q) = &filter.queue {
            crate::cluster::check_token("queue", q)?;
        }
        let inner = self.inner.clone();
        let filter = filter.clone();
        query(self.inner.store.url.clone(), async move {
            let mut tasks = gather(&inner.store, true).await?;
            tasks.retain(|t| {
                filter.status.is_none_or(|s| t.status == s)
                    && filter
                        .queue
                        .as_ref()
                        .is_none_or(|q| t.queue.as_ref() == Some(q))
            });
            tasks.sort_by(|a, b| b.updated_ms.cmp(&a.updated_ms).then(a.id.cmp(&b.id)));
            tasks.truncate(filter.limit);
            Ok(tasks)
        })
    }

    /// Everything known about the task `id` (state [`TaskState::Unknown`] if nothing is).
    ///
    /// ```no_run
    /// use concurry::cluster::Cluster;
    ///
    /// # fn main() -> Result<(), concurry::Error> {
    /// let q = Cluster::connect("nats://127.0.0.1:4222")?.tasks()?;
    /// let t = q.info("invoice-42")?;
    /// println!("{} after {} attempt(s) on {:?}", t.status, t.attempts, t.node);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid id, or if the server cannot be asked.
    pub fn info(&self, id: &str) -> Result<TaskInfo, Error> {
        check_id(id)?;
        let inner = self.inner.clone();
        let id = id.to_string();
        query(self.inner.store.url.clone(), async move {
            info(&inner.store, &id).await
        })
    }
}

async fn entry(bucket: &kv::Store, id: &str) -> Result<Option<Entry>, String> {
    match bucket.entry(id).await {
        Ok(Some(e)) if e.operation == kv::Operation::Put => Ok(Some(Entry {
            key: e.key,
            value: e.value.to_vec(),
            created: to_ms(e.created.into()),
        })),
        Ok(_) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

async fn info(store: &Store, id: &str) -> Result<TaskInfo, Error> {
    let err = |e: String| server_error("read a task's records", &store.url, e);
    let name_key = format!("{id}{NAME_SUFFIX}");
    let (state, result, dead, name) = tokio::join!(
        entry(&store.status, id),
        entry(&store.results, id),
        entry(&store.dlq, id),
        entry(&store.status, &name_key),
    );
    let mut t = TaskInfo::unknown(id);
    if let Some(e) = state.map_err(err)?
        && let Ok(s) = decode::<State>(&e.value, "a task status")
    {
        apply_state(&mut t, s, e.created);
    }
    if let Some(e) = result.map_err(err)?
        && let Ok(s) = decode::<Stored>(&e.value, "a task result")
    {
        apply_result(&mut t, &s, e.created);
    }
    if let Some(e) = dead.map_err(err)?
        && let Ok(d) = decode::<Dead>(&e.value, "a dead letter")
    {
        apply_dead(&mut t, d, e.created);
    }
    if let Some(e) = name.map_err(err)? {
        t.task
            .get_or_insert_with(|| String::from_utf8_lossy(&e.value).into_owned());
    }
    if !t.status.is_finished() && t.queue.is_none() {
        // Still in the stream: its message says the rest (and all there is of a queued
        // task with a fresh id).
        match store.message_of(id).await? {
            Some(m) => {
                if let Some((_, s)) = InStream::read(&m) {
                    s.apply(&mut t);
                }
            }
            None if t.status == TaskState::Unknown => {
                // Its message may have left the stream after its result was read.
                if let Some(e) = entry(&store.results, id).await.map_err(err)?
                    && let Ok(s) = decode::<Stored>(&e.value, "a task result")
                {
                    apply_result(&mut t, &s, e.created);
                }
            }
            None => {}
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_into_queue_and_priority() {
        assert_eq!(
            parse_subject("cc.ns.task.render.high"),
            Some(("render".to_string(), Priority::High))
        );
        assert_eq!(
            parse_subject("cc.ns.task.a_b-c.low"),
            Some(("a_b-c".to_string(), Priority::Low))
        );
        assert_eq!(parse_subject("cc.ns.task.render.soon"), None);
        // A task's own subject ends in its id, whatever the id looks like.
        assert_eq!(
            parse_subject("cc.ns.task.render.normal.low"),
            Some(("render".to_string(), Priority::Normal))
        );
        assert_eq!(
            parse_subject("cc.ns.task.render.critical.Ab3-x_=1"),
            Some(("render".to_string(), Priority::Critical))
        );
        assert_eq!(parse_subject("cc.ns.task.render.normal.a.b"), None);
        assert_eq!(parse_subject("cc.ns.other.render.normal"), None);
    }

    #[test]
    fn states_parse_by_name_and_bad_ones_list_the_names() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>().unwrap(), s);
        }
        assert_eq!(
            "dead-lettered".parse::<TaskState>().unwrap(),
            TaskState::DeadLettered
        );
        let e = "done".parse::<TaskState>().unwrap_err();
        assert_eq!(e.option(), "status");
        assert!(e.fix().contains("`succeeded`"), "{}", e.fix());
    }

    #[test]
    fn a_result_overrides_the_state_and_keeps_the_start() {
        let mut t = TaskInfo::unknown("a");
        apply_state(
            &mut t,
            State::Running {
                node: "n1".into(),
                attempt: 2,
            },
            100,
        );
        apply_result(
            &mut t,
            &Stored {
                outcome: Outcome::Ok(vec![]),
                attempt: 2,
                node: "n1".into(),
                started_ms: 0,
                task: "double".into(),
                subject: "cc.ns.task.render.high".into(),
                submitted_ms: 90,
                finished_ms: 150,
            },
            151,
        );
        assert_eq!(t.status, TaskState::Succeeded);
        assert_eq!(
            (t.started_ms, t.finished_ms, t.attempts),
            (Some(100), Some(150), 2)
        );
        assert_eq!(t.node.as_deref(), Some("n1"));
        // What the result record keeps of a task whose message left the stream.
        assert_eq!(
            (t.task.as_deref(), t.queue.as_deref(), t.priority),
            (Some("double"), Some("render"), Some(Priority::High))
        );
        assert_eq!(t.submitted_ms, Some(90));
    }
}
