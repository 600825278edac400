//! Durable tasks on NATS JetStream: a [`RemoteTask`] submitted by name runs
//! at least once on some node, even if the node running it dies, and its result can be
//! fetched by task id from any process until it expires.
//!
//! - [`TaskQueue`] (from [`Cluster::tasks`]): [`submit`](TaskQueue::submit) /
//!   [`submit_with`](TaskQueue::submit_with) a task with [`Submit`] options (id, [`Priority`],
//!   delay or ETA, retries), then a [`TaskHandle`] gives its id, status and typed result.
//! - [`Cluster::task_status`], [`Cluster::task_result`], [`Cluster::cancel`]: by id, from
//!   any process.
//! - Nodes ([`Node`](super::Node)) run the tasks: every node of a binary with
//!   `#[task(remote)]` functions serves the queue of its [`TaskConfig`].
//! - A `#[task(remote)]` function's pool in `Mode::Cluster`
//!   (`render::options().mode(Mode::Cluster).cluster(cluster).init()?`, or
//!   `.cluster(queue)` for another queue) submits each call as a task: `submit` returns a
//!   [`Promise`](crate::Promise) resolved by the stored result, whose
//!   [`task_id`](crate::Promise::task_id) is the task's id; `submit_with(args, Submit)` takes
//!   a [`Submit`]. The generated `render::Task` is the function as a [`RemoteTask`]
//!   (`cluster.task_result::<render::Task>(&id)`).
//! - [`TaskQueue::completions`]: `(id, status)` of every task as it finishes.
//! - Limits: a cluster-mode task pool's `.limits(..)` are what `concurry::limits()` gives
//!   inside the task on every node: one set, global across nodes, hosted by the pool's
//!   process for every run of that task (whoever submitted it). One process hosts a task's
//!   limits; while none does (the submitter exited), `limits()` in the task fails at once
//!   with a [`LimitError`](crate::LimitError) instead of waiting.
//!
//! # Guarantees
//!
//! - **At least once.** `submit` returns once JetStream stored the task (file storage). The
//!   task id is the message id, so a second submit of the same id within the duplicate window
//!   (10 min) is the same task, and after it a task whose result exists is never run again.
//!   A node holds a lease (`TaskConfig::lease`, 30 s) while it runs a task, renewed every
//!   third of it; a node that dies loses the lease and the task runs again elsewhere, with
//!   `attempt + 1`. The first stored result wins; a later run's result is dropped. Tasks
//!   should therefore be idempotent: exactly-once is not promised.
//! - **Results** live in a KV bucket for `TaskConfig::result_ttl` (1 day), bounded by
//!   `TaskConfig::result_max_bytes` (the oldest go first); after that a result is gone and
//!   the task's status is [`TaskStatus::Unknown`].
//! - **Priorities**: four levels, served weighted 8:4:2:1 among the levels that have work,
//!   so a flood of high-priority tasks slows lower ones down but never starves them.
//! - **Delays** (`Submit::delay`, `Submit::at`) never hold a message past its lease: a node
//!   that fetches a task too early gives it back with a delay below the lease, so a long
//!   delay cannot cause a duplicate run.
//! - **Retries** (`Submit::retry`, a [`RetryConfig`](crate::RetryConfig), or the task's own
//!   `#[retry]` / [`RemoteTask::retry`]) run between deliveries, with its backoff, judged on
//!   the node: the task's `retry_on` on its `Err` outputs ([`RemoteTask::inspect`]) and
//!   panics, its `retry_until` on its values. After the last attempt, or a failure judged
//!   fatal, the task is dead-lettered ([`DeadLetter`]) with its reason, attempts and last
//!   error (a typed handle still gives back the `Err` the task returned); dead letters can
//!   be listed, replayed and purged.
//! - **Call timeout** (`Submit::call_timeout`): an attempt past it has its cancel signalled
//!   and fails as a timeout at once (retried, then dead-lettered); the node frees its slot
//!   and releases the message. A function that ignores the signal keeps its thread until it
//!   returns; its late output is dropped.
//! - **Schedules** ([`TaskQueue::schedule`], [`Schedule`]): a task on every tick of an
//!   interval or a cron expression (UTC), durable in the `schedules` bucket, fired by every
//!   node's scheduler under the tick's id `<name>=<tick ms>`, so a tick runs once however
//!   many schedulers fire it.
//! - **Cancel** is persisted: a queued or delayed task that was cancelled never runs, also
//!   after nodes or the server restart.
//!
//! # Storage (namespace `ns`)
//!
//! Stream `CC_<ns>_TASKS` (work queue, file storage, subjects `cc.<ns>.task.<queue>.<prio>`,
//! one durable pull consumer `<queue>_<prio>` per level); KV buckets `CC_<ns>_results`,
//! `CC_<ns>_status`, `CC_<ns>_cancel`, `CC_<ns>_dlq` and `CC_<ns>_schedules`. They are
//! created on first use, by hand rather than through `create_key_value`, so they work on
//! nats-server 2.9 too. The first process to create them sets their limits; later ones use
//! them as they are.
//!
//! ```no_run
//! use std::time::Duration;
//! use concurry::RemoteTask;
//! use concurry::cluster::{Cluster, Priority, Submit, TaskStatus};
//!
//! struct Render;
//! impl RemoteTask for Render {
//!     const NAME: &'static str = "docs::Render";
//!     type Args = (String,);
//!     type Output = Vec<u8>;
//!     fn run((page,): (String,)) -> Vec<u8> { page.into_bytes() }
//! }
//! concurry::register_remote_task!(Render);
//!
//! # fn main() -> Result<(), concurry::Error> {
//! let cluster = Cluster::connect("nats://127.0.0.1:4222")?;
//! let q = cluster.tasks()?;
//! let t = q.submit_with::<Render>(
//!     ("invoice".to_string(),),
//!     Submit::new().id("invoice-42").priority(Priority::High).delay(Duration::from_secs(30)),
//! )?;
//! assert_eq!(t.task_id(), "invoice-42");
//! println!("{:?}", cluster.task_status("invoice-42")?); // Scheduled { .. }
//! // Later, from any process:
//! let pdf = cluster.task_result::<Render>("invoice-42")?.result()?;
//! # let _ = (pdf, TaskStatus::Pending);
//! # Ok(()) }
//! ```

mod batch;
mod bell;
mod cancel;
mod completions;
mod config;
mod cron;
mod dlq;
mod handle;
pub(crate) mod inspect;
pub(crate) mod json;
mod lane;
mod limits;
mod metrics;
mod periodic;
pub(crate) mod pool;
mod record;
pub(crate) mod retrying;
pub(crate) mod runner;
mod schedule;
mod setup;
mod status;
mod submit;
mod watch;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use completions::Completions;
pub use config::TaskConfig;
pub use dlq::DeadLetter;
pub use handle::TaskHandle;
pub use inspect::{QueueDepth, QueuesSnapshot, TaskCounts, TaskFilter, TaskInfo, TaskState};
pub use periodic::{Schedule, ScheduleInfo};
pub use status::TaskStatus;
pub use submit::{Priority, Submit, TaskQueue};

use super::Cluster;
use crate::error::{ConfigError, Error};
use crate::remote::RemoteTask;

impl Cluster {
    /// The durable task queue of this namespace with the default [`TaskConfig`] (queue
    /// `default`), creating its stream and buckets on first use.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the server when it has no JetStream (start it with `-js`) or
    /// refuses to create the stream or buckets.
    pub fn tasks(&self) -> Result<TaskQueue, Error> {
        self.tasks_with(TaskConfig::new())
    }

    /// The durable task queue with these settings (queue name, lease, result TTL, bounds).
    ///
    /// # Errors
    ///
    /// As [`tasks`](Cluster::tasks), and [`Error::Config`] for invalid settings.
    pub fn tasks_with(&self, config: TaskConfig) -> Result<TaskQueue, Error> {
        TaskQueue::open(self, config)
    }

    /// The status of the task `id`, from any process: see [`TaskStatus`].
    ///
    /// # Errors
    ///
    /// As [`tasks`](Cluster::tasks), and [`Error::Config`] for an id that cannot be one.
    pub fn task_status(&self, id: &str) -> Result<TaskStatus, Error> {
        self.tasks()?.status(id)
    }

    /// A handle on the task `id` of type `T`, from any process (the submitter may be gone):
    /// its `result()` waits for the result and decodes it as `T`'s output.
    ///
    /// # Errors
    ///
    /// As [`task_status`](Cluster::task_status).
    pub fn task_result<T: RemoteTask>(&self, id: &str) -> Result<TaskHandle<T>, Error> {
        self.tasks()?.handle::<T>(id)
    }

    /// Cancels (revokes) the task `id`: a queued or delayed task never runs, also after
    /// restarts; a running one's result is dropped. True if this cancel decided the outcome,
    /// false if the task had already finished.
    ///
    /// # Errors
    ///
    /// As [`task_status`](Cluster::task_status).
    pub fn cancel(&self, id: &str) -> Result<bool, Error> {
        self.tasks()?.cancel(id)
    }
}

/// Runs `fut` to its end on the calling thread when that thread is outside any runtime
/// (the library's entered for timers; the connection's I/O runs there anyway): one thread
/// hop less each way than [`run`](crate::cluster::run), which the submit and wait paths
/// pay per task. Inside a runtime, as `run`.
pub(crate) fn here<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        crate::runtime::block_on(fut)
    } else {
        crate::cluster::run(fut)
    }
}

/// Headers of a task message.
pub(crate) const TASK_ID: &str = "Cc-Task-Id";
pub(crate) const NOT_BEFORE: &str = "Cc-Not-Before";
pub(crate) const TASK_NAME: &str = "Cc-Task";
/// The inbox a node sends a task's stored result to, for the queue handle that submitted it.
pub(crate) const REPLY: &str = "Cc-Reply";

/// Checks a task id: 1 to 128 ASCII letters, digits, `-`, `_` or `=` (it is a KV key).
pub(crate) fn check_id(id: &str) -> Result<(), ConfigError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "task id",
            format!("{id:?}"),
            "use 1 to 128 ASCII letters, digits, `-`, `_` or `=` (it becomes a KV key)",
        ))
    }
}

/// A fresh task id: 128 random bits in hex.
pub(crate) fn new_id() -> String {
    format!("{:016x}{:016x}", crate::rand::id(), crate::rand::id())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    to_ms(SystemTime::now())
}

pub(crate) fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// An error of the server while storing or reading task state, as a user can act on it.
pub(crate) fn server_error(what: &str, url: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(ConfigError::new(
        "cluster",
        url.to_string(),
        format!(
            "could not {what} ({e}); check that the server runs JetStream (`nats-server -js`) \
             and is reachable"
        ),
    ))
}
