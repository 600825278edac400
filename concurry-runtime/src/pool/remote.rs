//! Pools of `#[worker(remote)]` types: [`Pool::start_remote`] and [`Pool::remote_call`], the
//! entry points process mode gives generated code.

use std::time::Duration;

use super::{Backend, Balancer, Counters, Lifecycle, Pool, PoolInner, Shared};
use crate::error::{ConfigError, Error};
use crate::future::Promise;
use crate::mode::process::RemoteWorker;
use crate::mode::process::backend::Remote;
use crate::options::{Mode, PoolConfig};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Condvar, Mutex};
use crate::worker::Worker;

impl<W> Pool<W>
where
    W: Worker + RemoteWorker<Args = <W as Worker>::Args>,
{
    /// Starts a pool of a type that can also run out of process: as [`start`](Pool::start)
    /// in every mode but [`Mode::Process`], where each worker is a child process serving
    /// the type (see [`ProcessWorker`](crate::ProcessWorker)) and calls go through
    /// [`remote_call`](Pool::remote_call).
    ///
    /// # Errors
    ///
    /// As `start`; in process mode, [`Error::Init`] (with the constructor's error as text)
    /// if a child could not be started, and [`Error::Config`] for `on_demand`.
    pub fn start_remote(
        config: PoolConfig,
        args: <W as Worker>::Args,
    ) -> Result<Self, Error<<W as Worker>::InitError>> {
        if config.mode != Mode::Process {
            return Self::start(config, args);
        }
        config.validate()?;
        if config.on_demand {
            return Err(ConfigError::new(
                "on_demand",
                "true",
                "process mode keeps a fixed set of child processes; drop `on_demand`, or use \
                 `Mode::Thread` for on-demand workers",
            )
            .into());
        }
        let workers = config.workers();
        let remote = Remote::start::<W>(workers, &args, &config).map_err(Error::widen)?;
        let name = config
            .name
            .clone()
            .unwrap_or_else(|| <W as Worker>::NAME.to_string());
        let shared = Arc::new(Shared {
            name,
            counters: (0..workers).map(|_| Counters::default()).collect(),
            abort: AtomicBool::new(false),
            bounded: config.max_queued_tasks.is_some(),
            space: Mutex::new(()),
            space_freed: Condvar::new(),
            waiters: AtomicUsize::new(0),
            on_demand_alive: AtomicUsize::new(0),
            stopped: std::sync::Arc::default(),
        });
        let (_, exits) = crossbeam_channel::unbounded();
        let limits = match &config.limits {
            Some(Ok(set)) if !set.is_empty() => Some(set.clone()),
            _ => None,
        };
        Ok(Pool {
            inner: std::sync::Arc::new(PoolInner {
                limits,
                balancer: Balancer::new(config.load_balancing),
                config,
                shared,
                backend: Backend::Process(remote),
                stopped: AtomicBool::new(false),
                lifecycle: Mutex::new(Some(Lifecycle {
                    exits,
                    threads: Vec::new(),
                    drains: Vec::new(),
                    tasks: Vec::new(),
                })),
            }),
        })
    }

    /// In [`Mode::Process`]: sends `request` to the child the load balancer picks, with a
    /// hard `timeout` if given (see [`ProcessWorker::call_timeout`](crate::ProcessWorker::call_timeout)).
    /// `None` in any other mode: the caller then takes the in-process path.
    pub fn remote_call(
        &self,
        request: <W as RemoteWorker>::Request,
        timeout: Option<Duration>,
    ) -> Option<Promise<<W as RemoteWorker>::Response>> {
        let inner = &*self.inner;
        let Backend::Process(remote) = &inner.backend else {
            return None;
        };
        if self.is_stopped() {
            return Some(Promise::ready(Err(Error::Stopped)));
        }
        let workers = remote.workers::<W>()?;
        let idx = self.pick();
        inner.shared.counters[idx].on_dispatch();
        let promise = match timeout {
            Some(t) => workers[idx].call_timeout(request, t),
            None => workers[idx].call(request),
        };
        let shared = inner.shared.clone();
        promise.on_done(move |_| shared.finished(idx));
        Some(promise)
    }
}
