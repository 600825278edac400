//! A pool's process backend: `max_workers` supervised children of one remote worker type,
//! kept type-erased so the pool's backend enum needs no `RemoteWorker` bound.

use std::any::Any;
use std::fmt;

use super::{ProcessConfig, ProcessWorker, RemoteWorker};
use crate::error::Error;
use crate::options::PoolConfig;
use crate::remote::{Handle, Lane, LaneRoom};

/// The children of a pool in process mode.
pub(crate) struct Remote {
    /// A `Vec<Handle<W>>`.
    workers: Box<dyn Any + Send + Sync>,
    stop: fn(&(dyn Any + Send + Sync)) -> Result<(), Error>,
    /// Where each worker runs now ([`Handle::location`]: a cluster node's name).
    locations: fn(&(dyn Any + Send + Sync)) -> Vec<Option<String>>,
    /// The pool's calls that left the caller's thread, in submission order.
    pub(crate) lane: crate::sync::os::Arc<Lane>,
    /// The room for calls on `lane` (bounded with `max_queued_tasks`).
    pub(crate) lane_room: crate::sync::os::Arc<LaneRoom>,
    /// Run first thing at `stop()` (a cluster pool leaves the registry); dropped with it.
    on_stop: std::sync::Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Remote")
    }
}

impl Remote {
    /// Starts `n` children serving `W`, supervised with the pool's `stop_timeout` and
    /// limits; fails (stopping those already started) if any cannot start.
    pub(crate) fn start<W: RemoteWorker>(
        n: usize,
        args: &W::Args,
        config: &PoolConfig,
    ) -> Result<Self, Error<W::InitError>> {
        let process = process_config(config);
        Self::start_with(n, config, || {
            ProcessWorker::<W>::start(args, process.clone())
        })
    }

    /// As [`start`](Remote::start), with the `n` instances placed on `transport` instead of
    /// in child processes (cluster mode; the loopback transport's pool tests).
    #[cfg(any(test, feature = "cluster"))]
    pub(crate) fn start_on<W: RemoteWorker>(
        transport: &crate::sync::os::Arc<dyn crate::remote::Transport>,
        n: usize,
        args: &W::Args,
        config: &PoolConfig,
    ) -> Result<Self, Error<W::InitError>> {
        let supervision = process_config(config).supervision();
        Self::start_with(n, config, || {
            Handle::<W>::start(transport.clone(), args, supervision.clone())
        })
    }

    /// One worker on `transport` with no constructor arguments: a looked-up cluster pool,
    /// whose transport reaches the owner's instances.
    #[cfg(feature = "cluster")]
    pub(crate) fn attach<W: RemoteWorker>(
        transport: &crate::sync::os::Arc<dyn crate::remote::Transport>,
        config: &PoolConfig,
    ) -> Result<Self, Error<W::InitError>> {
        let supervision = process_config(config).supervision();
        Self::start_with(1, config, || {
            Handle::<W>::start_encoded(transport.clone(), Vec::new(), supervision.clone())
        })
    }

    /// `n` instances, each made by `start`; fails (stopping those already started) if any
    /// cannot start.
    fn start_with<W: RemoteWorker>(
        n: usize,
        config: &PoolConfig,
        start: impl Fn() -> Result<Handle<W>, Error<W::InitError>>,
    ) -> Result<Self, Error<W::InitError>> {
        let mut workers: Vec<Handle<W>> = Vec::with_capacity(n);
        for _ in 0..n {
            match start() {
                Ok(w) => workers.push(w),
                Err(e) => {
                    workers.iter().for_each(|w| drop(w.stop()));
                    return Err(e);
                }
            }
        }
        Ok(Remote {
            workers: Box::new(workers),
            stop: stop_all::<W>,
            locations: |w| {
                w.downcast_ref::<Vec<Handle<W>>>()
                    .map_or_else(Vec::new, |w| w.iter().map(Handle::location).collect())
            },
            lane: crate::sync::os::Arc::default(),
            lane_room: crate::sync::os::Arc::new(LaneRoom::new(
                config.max_queued_tasks.map(|q| q.saturating_mul(n)),
            )),
            on_stop: std::sync::Mutex::default(),
        })
    }

    /// Runs `f` first thing at `stop()` (or drops it unrun with the backend).
    #[cfg(feature = "cluster")]
    pub(crate) fn on_stop(&self, f: Box<dyn FnOnce() + Send>) {
        crate::sync::os::lock(&self.on_stop).push(f);
    }

    /// The children, if they serve `W`.
    pub(crate) fn workers<W: RemoteWorker>(&self) -> Option<&[Handle<W>]> {
        self.workers
            .downcast_ref::<Vec<Handle<W>>>()
            .map(Vec::as_slice)
    }

    /// Where each worker runs now (a cluster node's name; `None` for a child process).
    pub(crate) fn locations(&self) -> Vec<Option<String>> {
        (self.locations)(&*self.workers)
    }

    /// Stops every child; [`Error::Timeout`] if one had to be killed.
    pub(crate) fn stop(&self) -> Result<(), Error> {
        let first: Vec<_> = std::mem::take(&mut *crate::sync::os::lock(&self.on_stop));
        first.into_iter().for_each(|f| f());
        (self.stop)(&*self.workers)
    }
}

/// How each instance of a pool is supervised: the pool's restart limit, backoff,
/// `stop_timeout`, message size and limits.
fn process_config(config: &PoolConfig) -> ProcessConfig {
    let (min, max) = config.restart_backoff;
    let mut process = ProcessConfig::default()
        .stop_timeout(config.stop_timeout)
        .max_message_size(config.max_message_size)
        .max_restarts(config.max_restarts)
        .backoff(min, max);
    if let Some(Ok(set)) = &config.limits {
        process = process.limits(set.clone());
    }
    process
}

fn stop_all<W: RemoteWorker>(workers: &(dyn Any + Send + Sync)) -> Result<(), Error> {
    let Some(workers) = workers.downcast_ref::<Vec<Handle<W>>>() else {
        return Ok(());
    };
    // The children finish their calls in parallel.
    std::thread::scope(|s| {
        let stops: Vec<_> = workers.iter().map(|w| s.spawn(|| w.stop())).collect();
        let results: Vec<_> = stops
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(Error::Timeout)))
            .collect();
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    })
}

/// The error of a closure-based call that reached a pool in process mode: only calls made
/// through the worker's remote requests can cross to a child.
pub(crate) fn not_a_remote_call(worker: &str, method: &str) -> Error {
    Error::Config(crate::error::ConfigError::new(
        "mode",
        "process",
        format!(
            "`{worker}::{method}` was called in a way that cannot cross to a child process; \
             calls of a `#[worker(remote)]` type go through its generated requests"
        ),
    ))
}
