//! Metrics (feature `metrics`): every pool reports its calls through the
//! [`metrics`](https://docs.rs/metrics) facade, to whatever recorder the program installs
//! (Prometheus, StatsD, OpenTelemetry, an in-memory one in tests). Without a recorder the
//! reports go nowhere; without the feature they are not compiled at all.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `concurry_calls_total` | counter | `pool`, `method`, `outcome` | calls that resolved, by how (see below) |
//! | `concurry_call_duration_seconds` | histogram | `pool`, `method` | from submission to resolution: queueing, limits, every attempt and the backoffs between them |
//! | `concurry_retries_total` | counter | `pool`, `method` | attempts after the first (one per retry) |
//! | `concurry_calls_in_flight` | gauge | `pool` | calls submitted and not resolved yet |
//! | `concurry_worker_in_flight` | gauge | `pool`, `worker` | calls dispatched to one worker (its index, `0`..; an on-demand pool's workers share `0`) and not finished yet: queued there or running (calls a stop drops unrun when its `stop_timeout` ran out stay counted, as in `PoolStats::per_worker`) |
//! | `concurry_limit_wait_seconds` | histogram | `pool` | how long each attempt of a pool with limits waited for its units (0 when they were free) |
//!
//! `pool` is the pool's name (the `name` option, else the worker type's name, as in
//! [`PoolStats::name`](crate::PoolStats)); `method` is the method's name (`#[task]` functions and
//! closures report as method `task`). `outcome` is one of [`OUTCOMES`]: `ok`, `error` (the method
//! returned its own error), `panicked`, `cancelled`, `timeout`, `stopped`, `worker_lost`, `limit`
//! (a limit could not be acquired), `rejected` (a `retry_until` validator rejected every output),
//! `upstream` (a promise given as an argument failed), `transport` (process mode: the call could
//! not cross to the child), `other`. A call that ran out of retries counts under the outcome of its
//! last attempt.
//!
//! The handles are registered when a pool starts (and at a method's first call), with the
//! recorder in force then: install the recorder before starting the pools it should see.
//!
//! Cost: with the feature, each call takes a clock read when submitted and another when it
//! resolves (whether a recorder is installed or not); what it reports rides in the call's own
//! promise cell and is recorded by whoever resolves it, with no callback (a retried call's, a
//! validated call's and a process-mode call's final promise carry a callback instead).
//! With no recorder installed, a no-op method's pipelined thread-mode rate was about 0.8-0.9x
//! of the rate without the feature on our 2-core machine (a callback per call made it about
//! 0.45x). Without the feature nothing is compiled in.
//!
//! Nodes (feature `prometheus`, `Node::metrics_listen`) serve all of the above for their
//! process as Prometheus text at `/metrics`, with their own gauges (label `node`, the node's
//! name):
//!
//! | name | kind | what |
//! |---|---|---|
//! | `concurry_node_capacity` | gauge | instances it hosts at most |
//! | `concurry_node_free` | gauge | instances it would take now |
//! | `concurry_node_instances` | gauge | instances it hosts now (capacity less free) |
//! | `concurry_node_draining` | gauge | 1 once it drains, else 0 |
//!
//! and, when their binary has remote tasks, the depth of the namespace's task queues, sampled
//! every 5 s: `concurry_task_queue_depth` (gauge, labels `queue` and `priority`: `critical`,
//! `high`, `normal`, `low`), the tasks stored at that level (waiting, delayed, retrying or
//! running). A node also counts the durable tasks it runs (`cluster/tasks/metrics.rs`):
//! `concurry_tasks_total{task, outcome}` (`ok`, `retrying`, `dead_lettered`, `timeout`,
//! `cancelled`, `failed`), `concurry_task_duration_seconds{task}` (each attempt's run) and
//! `concurry_task_retries_total{task}`.
//!
//! ```
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//!
//! struct Echo;
//! #[concurry::worker]
//! impl Echo {
//!     pub fn new() -> Self { Echo }
//!     pub fn ping(&self) -> u8 { 1 }
//! }
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshot = recorder.snapshotter();
//! metrics::with_local_recorder(&recorder, || {
//!     let pool = Echo::options().mode(concurry::Mode::Thread).init().unwrap();
//!     pool.ping().result().unwrap();
//!     pool.stop().unwrap();
//! });
//! let calls = snapshot.snapshot().into_vec().into_iter().find(|(k, ..)| {
//!     k.key().name() == concurry::metrics::CALLS
//!         && k.key().labels().any(|l| l.key() == "outcome" && l.value() == "ok")
//! });
//! assert!(matches!(calls, Some((.., DebugValue::Counter(1)))));
//! ```

/// Counter `concurry_calls_total{pool, method, outcome}`: calls that resolved.
pub const CALLS: &str = "concurry_calls_total";

/// Histogram `concurry_call_duration_seconds{pool, method}`: submission to resolution.
pub const CALL_DURATION: &str = "concurry_call_duration_seconds";

/// Counter `concurry_retries_total{pool, method}`: attempts after the first.
pub const RETRIES: &str = "concurry_retries_total";

/// Gauge `concurry_calls_in_flight{pool}`: calls submitted and not resolved yet.
pub const IN_FLIGHT: &str = "concurry_calls_in_flight";

/// Gauge `concurry_worker_in_flight{pool, worker}`: calls dispatched to one worker and not
/// finished yet.
pub const WORKER_IN_FLIGHT: &str = "concurry_worker_in_flight";

/// Histogram `concurry_limit_wait_seconds{pool}`: an attempt's wait for the pool's limits.
pub const LIMIT_WAIT: &str = "concurry_limit_wait_seconds";

/// Every value the `outcome` label of [`CALLS`] takes.
pub const OUTCOMES: [&str; 12] = [
    "ok",
    "error",
    "panicked",
    "cancelled",
    "timeout",
    "stopped",
    "worker_lost",
    "limit",
    "rejected",
    "upstream",
    "transport",
    "other",
];

/// Gauge `concurry_node_capacity{node}`: instances a node hosts at most (feature `prometheus`).
pub const NODE_CAPACITY: &str = "concurry_node_capacity";

/// Gauge `concurry_node_free{node}`: instances a node would take now.
pub const NODE_FREE: &str = "concurry_node_free";

/// Gauge `concurry_node_instances{node}`: instances a node hosts now.
pub const NODE_INSTANCES: &str = "concurry_node_instances";

/// Gauge `concurry_node_draining{node}`: 1 once a node drains, else 0.
pub const NODE_DRAINING: &str = "concurry_node_draining";

/// Gauge `concurry_task_queue_depth{queue, priority}`: tasks stored at that level of a task
/// queue (waiting, delayed, retrying or running), sampled every 5 s by nodes with
/// `metrics_listen` whose binary has remote tasks.
pub const TASK_QUEUE_DEPTH: &str = "concurry_task_queue_depth";
