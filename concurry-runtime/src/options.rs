//! What `options()` configures: [`Mode`], [`LoadBalancing`] and the validated option set.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::ConfigError;

/// Where a pool's workers run.
///
/// Parses from the names used in config files (`"sync"`, `"thread"`, `"async"`/`"asyncio"`,
/// `"process"`):
///
/// ```
/// use concurry::Mode;
/// assert_eq!("asyncio".parse::<Mode>().unwrap(), Mode::Async);
/// assert_eq!("threads".parse::<Mode>().unwrap(), Mode::Thread);
/// assert_eq!("process".parse::<Mode>().unwrap(), Mode::Process);
/// assert!("fibers".parse::<Mode>().unwrap_err().to_string().contains("expected one of"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Mode {
    /// In-line: each call runs at submit time on the caller's thread. Deterministic; for tests
    /// and debugging.
    Sync,
    /// One OS thread per worker, owning its instance; calls to one worker run in order.
    #[default]
    Thread,
    /// One tokio task per worker on a runtime the library manages; `async fn` methods taking
    /// `&self` run concurrently on one worker, `&mut self` methods exclusively, and blocking
    /// sync methods run on tokio's blocking pool.
    Async,
    /// One child process per worker (the current executable, re-executed): crash isolation
    /// and hard timeouts. Needs a worker type that opted in with `#[worker(remote)]` or a
    /// function with `#[task(remote)]`; `init` of any other worker, task or closure pool in
    /// this mode is a [`ConfigError`].
    Process,
    /// Each worker is an instance on a node of a cluster (feature `cluster`): processes of
    /// your own binary, on any machine, meeting through a NATS server
    /// ([`crate::cluster`] when the feature is on). Needs a `#[worker(remote)]` type and the
    /// pool option `.cluster(Cluster::connect(url)?)`; instances are placed by free capacity
    /// and re-placed from their constructor arguments when a node is lost or drains.
    Cluster,
}

impl Mode {
    /// The canonical name (`"sync"`, `"thread"`, `"async"`, `"process"`, `"cluster"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Thread => "thread",
            Mode::Async => "async",
            Mode::Process => "process",
            Mode::Cluster => "cluster",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sync" | "inline" | "synchronous" => Ok(Mode::Sync),
            "thread" | "threads" | "threading" => Ok(Mode::Thread),
            "async" | "asyncio" | "tokio" => Ok(Mode::Async),
            "process" | "processes" | "multiprocessing" => Ok(Mode::Process),
            "cluster" | "nats" => Ok(Mode::Cluster),
            _ => Err(ConfigError::new(
                "mode",
                format!("{s:?}"),
                "expected one of \"sync\", \"thread\", \"async\" (or \"asyncio\"), \"process\", \"cluster\"",
            )),
        }
    }
}

/// How a pool picks the worker for each call.
///
/// ```
/// use concurry::LoadBalancing;
/// assert_eq!("rr".parse::<LoadBalancing>().unwrap(), LoadBalancing::RoundRobin);
/// assert_eq!("least_active".parse::<LoadBalancing>().unwrap(), LoadBalancing::LeastActive);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LoadBalancing {
    /// Each worker in turn.
    #[default]
    RoundRobin,
    /// The worker with the fewest calls in flight (ties go round-robin).
    LeastActive,
    /// The worker that was given the fewest calls so far.
    LeastTotal,
    /// A uniformly random worker.
    Random,
}

impl LoadBalancing {
    /// The canonical name (`"round_robin"`, `"least_active"`, `"least_total"`, `"random"`).
    pub fn as_str(self) -> &'static str {
        match self {
            LoadBalancing::RoundRobin => "round_robin",
            LoadBalancing::LeastActive => "least_active",
            LoadBalancing::LeastTotal => "least_total",
            LoadBalancing::Random => "random",
        }
    }
}

impl fmt::Display for LoadBalancing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LoadBalancing {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "round_robin" | "roundrobin" | "rr" => Ok(LoadBalancing::RoundRobin),
            "least_active" | "active" | "la" => Ok(LoadBalancing::LeastActive),
            "least_total" | "total" | "lt" => Ok(LoadBalancing::LeastTotal),
            "random" | "rand" => Ok(LoadBalancing::Random),
            _ => Err(ConfigError::new(
                "load_balancing",
                format!("{s:?}"),
                "expected one of \"round_robin\" (\"rr\"), \"least_active\", \"least_total\", \"random\"",
            )),
        }
    }
}

/// The options of a pool, as set through a worker's `options()` builder.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub(crate) mode: Mode,
    pub(crate) max_workers: Option<usize>,
    pub(crate) load_balancing: LoadBalancing,
    pub(crate) on_demand: bool,
    pub(crate) max_queued_tasks: Option<usize>,
    pub(crate) stop_timeout: Duration,
    pub(crate) name: Option<String>,
    /// How calls are retried (`None`: each call runs once, unless a method says otherwise).
    pub(crate) retry: Option<std::sync::Arc<crate::retry::RetryConfig>>,
    /// Limits shared by every worker of the pool (`None`: no limits).
    pub(crate) limits: Option<Result<crate::limit::LimitSet, crate::limit::LimitError>>,
    /// Process mode: the hard deadline of each call (`None`: none).
    pub(crate) call_timeout: Option<Duration>,
    /// Whether the pool's workers hold no state (`TaskWorker`, `#[task]`): then calls can go
    /// to any of many workers, and an unset `max_workers` means the number of CPUs. A
    /// `#[worker]` type is stateful, so by default it gets one instance.
    pub(crate) stateless: bool,
    /// Process mode: the largest request or reply, in bytes.
    pub(crate) max_message_size: usize,
    /// Process mode: how many times in a row a worker process may die and be respawned.
    pub(crate) max_restarts: u32,
    /// Process mode: the wait before the first respawn in a row, and its cap (doubling).
    pub(crate) restart_backoff: (Duration, Duration),
    /// Async mode: the tokio runtime the workers run on (on-demand ones on its blocking pool;
    /// `None`: the runtime `init` runs inside, if it is a multi-thread one, else the
    /// library's own).
    pub(crate) runtime: Option<tokio::runtime::Handle>,
    /// Cluster mode: the cluster whose nodes host the workers.
    #[cfg(feature = "cluster")]
    pub(crate) cluster: Option<crate::cluster::Cluster>,
    /// Cluster mode, `#[task(remote)]` pools: the task queue their tasks go to, when given
    /// as `.cluster(queue)` (else the cluster's default queue).
    #[cfg(feature = "cluster")]
    pub(crate) task_queue: Option<crate::cluster::TaskQueue>,
}

/// What the `cluster` pool option takes: a [`Cluster`](crate::cluster::Cluster) connection
/// (feature `cluster`; without it nothing implements this, and `Mode::Cluster` is refused at
/// `init`).
pub trait IntoCluster {
    /// Puts the cluster into the pool's options.
    #[doc(hidden)]
    fn set_on(self, config: &mut PoolConfig);
}

#[cfg(feature = "cluster")]
impl IntoCluster for crate::cluster::Cluster {
    fn set_on(self, config: &mut PoolConfig) {
        config.cluster = Some(self);
    }
}

/// A task queue: its cluster, and for a `#[task(remote)]` pool the queue (and its
/// `TaskConfig`) its tasks go to.
#[cfg(feature = "cluster")]
impl IntoCluster for crate::cluster::TaskQueue {
    fn set_on(self, config: &mut PoolConfig) {
        config.cluster = Some(self.cluster().clone());
        config.task_queue = Some(self);
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            mode: Mode::Thread,
            max_workers: None,
            load_balancing: LoadBalancing::RoundRobin,
            on_demand: false,
            max_queued_tasks: None,
            stop_timeout: Duration::from_secs(30),
            name: None,
            limits: None,
            retry: None,
            call_timeout: None,
            stateless: false,
            max_message_size: crate::wire::DEFAULT_MAX_FRAME,
            max_restarts: 10,
            restart_backoff: (Duration::from_millis(10), Duration::from_secs(2)),
            runtime: None,
            #[cfg(feature = "cluster")]
            cluster: None,
            #[cfg(feature = "cluster")]
            task_queue: None,
        }
    }
}

/// The bounds of `max_message_size`: room for a small call, and what a frame's `u32` length
/// prefix can say.
pub(crate) const MESSAGE_SIZE_MIN: usize = 1 << 10;
pub(crate) const MESSAGE_SIZE_MAX: usize = u32::MAX as usize;

/// Checks a `runtime` handle: async-mode pools only, and a multi-thread runtime (a
/// current-thread runtime runs its tasks only while its one thread polls it, so a caller
/// blocking that thread in `init`, `stop()` or `blocking()` would wait forever).
pub(crate) fn check_runtime(
    mode: Mode,
    handle: &tokio::runtime::Handle,
) -> Result<(), ConfigError> {
    if mode != Mode::Async {
        return Err(ConfigError::new(
            "runtime",
            format!("{:?}", handle.id()),
            format!(
                "a runtime hosts async-mode workers, and this pool is `Mode::{mode:?}`: use \
                 `Mode::Async`, or leave the option unset"
            ),
        ));
    }
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err(ConfigError::new(
            "runtime",
            format!("{:?} ({:?})", handle.id(), handle.runtime_flavor()),
            "give a handle of a multi-thread runtime (`tokio::runtime::Builder::new_multi_thread`, \
             or `#[tokio::main]` without `flavor = \"current_thread\"`): a current-thread \
             runtime stalls whenever its one thread waits in `init`, `stop()` or `blocking()`; \
             or leave the option unset to use the library's own runtime",
        ));
    }
    Ok(())
}

/// Checks a `max_message_size`.
pub(crate) fn check_message_size(bytes: usize) -> Result<(), ConfigError> {
    if (MESSAGE_SIZE_MIN..=MESSAGE_SIZE_MAX).contains(&bytes) {
        return Ok(());
    }
    Err(ConfigError::new(
        "max_message_size",
        bytes.to_string(),
        format!(
            "give between {MESSAGE_SIZE_MIN} bytes and {MESSAGE_SIZE_MAX} bytes (4 GiB - 1, what \
             a frame's length can say); the default is 16 MiB"
        ),
    ))
}

/// Largest pool we accept: far above any sane thread count, low enough to catch a typo.
const MAX_WORKERS_LIMIT: usize = 100_000;

impl PoolConfig {
    /// The number of workers: the explicit `max_workers`, or the default: 1 in sync mode; 1
    /// for a stateful worker type in a fixed pool, so its state is never split over instances
    /// (a `put` then a `get` reach the same one); the number of CPUs for a stateless task pool,
    /// and as the bound of an on-demand pool (each call gets a fresh instance anyway).
    pub(crate) fn workers(&self) -> usize {
        match (self.max_workers, self.mode) {
            (Some(n), _) => n,
            (None, Mode::Sync) => 1,
            (None, _) if self.stateless || self.on_demand => {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            }
            (None, _) => 1,
        }
    }

    /// Checks every option; the first problem is reported with its fix.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(n) = self.max_workers {
            if n == 0 {
                return Err(ConfigError::new(
                    "max_workers",
                    "0",
                    "a pool needs at least 1 worker",
                ));
            }
            if n > MAX_WORKERS_LIMIT {
                return Err(ConfigError::new(
                    "max_workers",
                    n.to_string(),
                    format!("use at most {MAX_WORKERS_LIMIT} workers"),
                ));
            }
            if self.mode == Mode::Sync && n > 1 && !self.on_demand {
                return Err(ConfigError::new(
                    "max_workers",
                    n.to_string(),
                    "sync mode runs calls in-line on the caller's thread and has exactly 1 worker; \
                     use `Mode::Thread` for a pool of several",
                ));
            }
        }
        if self.max_queued_tasks == Some(0) {
            return Err(ConfigError::new(
                "max_queued_tasks",
                "0",
                "allow at least 1 call in flight per worker, or leave it unset for no bound",
            ));
        }
        if self.stop_timeout > Duration::from_secs(365 * 24 * 3600) {
            return Err(ConfigError::new(
                "stop_timeout",
                format!("{:?}", self.stop_timeout),
                "use at most one year",
            ));
        }
        if let Some(name) = &self.name
            && name.trim().is_empty()
        {
            return Err(ConfigError::new(
                "name",
                "\"\"",
                "give a non-empty name, or leave it unset",
            ));
        }
        if let Some(retry) = &self.retry {
            retry.validate()?;
        }
        if let Some(t) = self.call_timeout {
            if !matches!(self.mode, Mode::Process | Mode::Cluster) {
                return Err(ConfigError::new(
                    "call_timeout",
                    format!("{t:?}"),
                    format!(
                        "a hard call timeout kills the worker process running the call, so it \
                         needs `Mode::Process` or `Mode::Cluster` (this pool is `Mode::{:?}`); to stop waiting \
                         without stopping the call, use `result_timeout` on its promise",
                        self.mode
                    ),
                ));
            }
            if t.is_zero() {
                return Err(ConfigError::new(
                    "call_timeout",
                    "0s",
                    "give each call a positive time, or leave it unset for no deadline",
                ));
            }
        }
        check_message_size(self.max_message_size)?;
        let (min, max) = self.restart_backoff;
        if min > max {
            return Err(ConfigError::new(
                "restart_backoff",
                format!("{min:?}..{max:?}"),
                "the first wait must not exceed the cap; e.g. `.restart_backoff(Duration::from_millis(10), Duration::from_secs(2))`",
            ));
        }
        if let Some(handle) = &self.runtime {
            check_runtime(self.mode, handle)?;
        }
        if let Some(Err(e)) = &self.limits {
            return Err(ConfigError::new(
                "limits",
                e.to_string(),
                "fix the limit named above, or build the set with `LimitSet::new` to see the error early",
            ));
        }
        Ok(())
    }
}
