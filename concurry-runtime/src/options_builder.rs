//! [`Options`]: the builder behind every worker's `options()`.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use crate::error::Error;
use crate::options::{LoadBalancing, Mode, PoolConfig};
use crate::pool::Pool;
use crate::worker::Worker;

/// Options of a pool of `W` workers. `#[worker]` wraps this in a `{Type}Options` builder whose
/// `init` takes the constructor's arguments.
pub struct Options<W> {
    config: PoolConfig,
    worker: PhantomData<fn() -> W>,
}

impl<W> fmt::Debug for Options<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("config", &self.config)
            .finish()
    }
}

impl<W: Worker> Default for Options<W> {
    fn default() -> Self {
        Options {
            config: PoolConfig::default(),
            worker: PhantomData,
        }
    }
}

impl<W: Worker> Options<W> {
    /// Where the workers run.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.config.mode = mode;
        self
    }

    /// How many workers the pool has (on-demand: at most this many at once). Default: 1 for
    /// a stateful worker type, the number of CPUs for a task pool and for on-demand pools.
    pub fn max_workers(mut self, n: usize) -> Self {
        self.config.max_workers = Some(n);
        self
    }

    /// How calls are spread over the workers.
    pub fn load_balancing(mut self, algorithm: LoadBalancing) -> Self {
        self.config.load_balancing = algorithm;
        self
    }

    /// Build a fresh worker for each call (at most `max_workers` at once) instead of a fixed
    /// pool.
    pub fn on_demand(mut self, on: bool) -> Self {
        self.config.on_demand = on;
        self
    }

    /// The most calls each worker holds, queued or running; submitting more waits
    /// (back-pressure).
    ///
    /// A plain thread blocks until a place is free; async code (any thread inside a tokio
    /// runtime) is never blocked: its call waits for a place inside the promise it gets. A
    /// retried call takes one place when submitted and keeps it between attempts until it
    /// resolves; its later attempts never wait (they go to a worker with room, else back to
    /// the one whose place they hold), so retries cannot deadlock a full pool. Not used by
    /// `on_demand` pools or sync mode, which run calls as they come.
    pub fn max_queued_tasks(mut self, n: usize) -> Self {
        self.config.max_queued_tasks = Some(n);
        self
    }

    /// How long `stop()` lets queued calls finish before failing them.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.config.stop_timeout = timeout;
        self
    }

    /// The pool's name, used for thread names, tracing spans and stats; in `Mode::Cluster`
    /// also the name the pool is looked up by, unique per namespace.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Some(name.into());
        self
    }

    /// How failed calls are retried.
    pub fn retry(mut self, retry: crate::retry::RetryConfig) -> Self {
        self.config.retry = Some(std::sync::Arc::new(retry));
        self
    }

    /// Limits shared by every worker of the pool: a list of limits (a new set for this pool)
    /// or a [`LimitSet`](crate::LimitSet) (shared with whoever else holds it).
    pub fn limits(mut self, limits: impl crate::limit::IntoLimitSet) -> Self {
        self.config.limits = Some(limits.into_limit_set());
        self
    }

    /// Process mode: the hard deadline of each call.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.config.call_timeout = Some(timeout);
        self
    }

    /// Marks the workers stateless (task pools): an unset `max_workers` then means the
    /// number of CPUs instead of one instance.
    pub(crate) fn stateless(mut self) -> Self {
        self.config.stateless = true;
        self
    }

    /// Process mode: the largest request or reply, in bytes (default 16 MiB, at least
    /// 1 KiB, below 4 GiB); a value outside is an [`Error::Config`] from `init`.
    ///
    /// ```
    /// use concurry::Error;
    ///
    /// struct Echo;
    ///
    /// #[concurry::worker]
    /// impl Echo {
    ///     pub fn new() -> Self {
    ///         Echo
    ///     }
    /// }
    ///
    /// let e = Echo::options().max_message_size(10).init().unwrap_err();
    /// assert!(matches!(&e, Error::Config(_)), "{e}");
    /// assert!(e.to_string().contains("max_message_size"), "{e}");
    /// ```
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// Process mode: how many times in a row a worker process may die and be respawned
    /// (a call it answers resets the count); past it, its calls fail with
    /// [`Error::WorkerLost`](crate::Error::WorkerLost). Default 10.
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.config.max_restarts = n;
        self
    }

    /// Process mode: the wait before the `n`-th respawn in a row, `min · 2^(n-1)` capped at
    /// `max` (defaults 10 ms and 2 s); `min` above `max` is an [`Error::Config`] from `init`.
    pub fn restart_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.restart_backoff = (min, max);
        self
    }

    /// Async mode: the tokio runtime the workers run on (their sync methods run on its
    /// blocking pool, as do on-demand workers). Default: the runtime `init` runs inside, if
    /// it is a multi-thread one, else the library's own. The handle must be of a
    /// multi-thread runtime and the pool an async one, or `init` fails with
    /// [`Error::Config`]; a runtime that shuts down under the pool fails its calls with
    /// [`Error::Stopped`]. Retry loops and waits for room (`max_queued_tasks`) of calls made
    /// outside any multi-thread runtime run here too (made inside one, they run there).
    ///
    /// ```
    /// use concurry::prelude::*;
    ///
    /// struct Echo;
    ///
    /// #[concurry::worker]
    /// impl Echo {
    ///     pub fn new() -> Self {
    ///         Echo
    ///     }
    ///     pub async fn runtime_id(&self) -> String {
    ///         tokio::runtime::Handle::current().id().to_string()
    ///     }
    /// }
    ///
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let pool = Echo::options()
    ///     .mode(Mode::Async)
    ///     .runtime(rt.handle().clone())
    ///     .init()
    ///     .unwrap();
    /// assert_eq!(pool.runtime_id().result().unwrap(), rt.handle().id().to_string());
    /// pool.stop().unwrap();
    /// ```
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.config.runtime = Some(handle);
        self
    }

    /// Where the workers will run.
    pub(crate) fn get_mode(&self) -> Mode {
        self.config.mode
    }

    /// Cluster mode: the cluster whose nodes host the workers.
    pub fn cluster(mut self, cluster: impl crate::options::IntoCluster) -> Self {
        cluster.set_on(&mut self.config);
        self
    }

    /// Validates the options and starts the pool with the constructor's arguments as a tuple.
    pub fn init_with(self, args: W::Args) -> Result<Pool<W>, Error<W::InitError>> {
        Pool::start(self.config, args)
    }
}

impl<W> Options<W>
where
    W: Worker + crate::RemoteWorker<Args = <W as Worker>::Args>,
    <W as crate::RemoteWorker>::InitError: Into<<W as Worker>::InitError>,
{
    /// As [`init_with`](Options::init_with), for a type that can also run in child processes
    /// (`#[worker(remote)]`): in `Mode::Process` each worker is a child.
    pub fn init_remote_with(
        self,
        args: <W as Worker>::Args,
    ) -> Result<Pool<W>, Error<<W as Worker>::InitError>> {
        Pool::start_remote(self.config, args)
    }
}

/// Expands to the builder methods of a generated `{Type}Options(Options<Type>)` newtype,
/// each forwarding to [`Options`], so the option list lives here and not in the macro.
#[doc(hidden)]
#[macro_export]
macro_rules! __options_builder_methods {
    () => {
        /// Where the workers run: `Mode::Sync`, `Mode::Thread` (default), `Mode::Async`,
        /// `Mode::Process` (child processes; the type needs `#[worker(remote)]`), or
        /// `Mode::Cluster` (nodes over NATS, feature `cluster`; also `#[worker(remote)]`).
        #[must_use]
        pub fn mode(self, mode: $crate::Mode) -> Self {
            Self(self.0.mode(mode))
        }

        /// How many workers the pool has. Default: 1 for a `#[worker]` type, which holds
        /// state (so two calls always reach the same instance; raise it to spread calls over
        /// several instances, each with its own state); the number of CPUs for a stateless
        /// `#[task]` or `TaskWorker` pool; 1 in sync mode. With `on_demand(true)`, the most
        /// that exist at once (default: the number of CPUs).
        #[must_use]
        pub fn max_workers(self, n: usize) -> Self {
            Self(self.0.max_workers(n))
        }

        /// How calls are spread over the workers (default `LoadBalancing::RoundRobin`).
        #[must_use]
        pub fn load_balancing(self, algorithm: $crate::LoadBalancing) -> Self {
            Self(self.0.load_balancing(algorithm))
        }

        /// Build a fresh worker for each call and retire it afterwards, at most `max_workers`
        /// at once (default `false`: a fixed pool).
        #[must_use]
        pub fn on_demand(self, on: bool) -> Self {
            Self(self.0.on_demand(on))
        }

        /// The most calls in flight (queued or running) per worker; submitting more blocks
        /// the caller until one finishes (back-pressure). Default: no bound.
        #[must_use]
        pub fn max_queued_tasks(self, n: usize) -> Self {
            Self(self.0.max_queued_tasks(n))
        }

        /// How long `stop()` lets queued calls finish before failing the rest with
        /// `Error::Stopped` (default 30 s).
        #[must_use]
        pub fn stop_timeout(self, timeout: ::core::time::Duration) -> Self {
            Self(self.0.stop_timeout(timeout))
        }

        /// How failed calls are retried: attempts, backoff, which errors and which outputs
        /// (see `RetryConfig`). The wait between attempts never occupies a worker. Methods
        /// override it with `#[retry(..)]`. Default: each call runs once.
        #[must_use]
        pub fn retry(self, retry: $crate::RetryConfig) -> Self {
            Self(self.0.retry(retry))
        }

        /// Limits shared by every worker of the pool: a list such as
        /// `[CallLimit::per_minute(500), RateLimit::per_minute("tokens", 50_000)]` (a new set
        /// for this pool), or a `LimitSet` shared with other pools. Each call takes one unit
        /// of every call and resource limit before its method runs; inside the method,
        /// `concurry::limits()` gives the set for rate-limited requests. An invalid limit
        /// makes `init` fail with `Error::Config`.
        #[must_use]
        pub fn limits(self, limits: impl $crate::IntoLimitSet) -> Self {
            Self(self.0.limits(limits))
        }

        /// Process mode: a hard deadline for each call, counted from its submission (the
        /// encoding of its arguments included). A call not answered by then fails
        /// with `Error::Timeout`, and its worker process is killed (its other calls in flight
        /// fail with `Error::WorkerLost`) and respawned. Default: no deadline. Other modes
        /// cannot stop a running call, so `init` rejects this option there.
        #[must_use]
        pub fn call_timeout(self, timeout: ::core::time::Duration) -> Self {
            Self(self.0.call_timeout(timeout))
        }

        /// Process mode: the largest message, in bytes, that crosses to or from a worker
        /// process: a call's encoded arguments, or its encoded result. Default 16 MiB
        /// (`concurry::wire::DEFAULT_MAX_FRAME`); at least 1 KiB, below 4 GiB. A larger call
        /// or result fails (only that call) with `Error::Transport(WireError::TooLarge)`,
        /// whose message names this option. Other modes send nothing, so they ignore it.
        #[must_use]
        pub fn max_message_size(self, bytes: usize) -> Self {
            Self(self.0.max_message_size(bytes))
        }

        /// Process mode: how many times in a row a worker process may die (a crash, a
        /// kill, a `call_timeout`) and be respawned; a call it answers resets the count.
        /// Past it, the worker's calls fail with `Error::WorkerLost` and no process is
        /// started again. Default 10. Other modes respawn nothing, so they ignore it.
        #[must_use]
        pub fn max_restarts(self, n: u32) -> Self {
            Self(self.0.max_restarts(n))
        }

        /// Process mode: the wait before the `n`-th respawn in a row: `min · 2^(n-1)`, at
        /// most `max` (defaults 10 ms and 2 s). `min` above `max` is an `Error::Config`
        /// from `init`. Other modes ignore it.
        #[must_use]
        pub fn restart_backoff(
            self,
            min: ::core::time::Duration,
            max: ::core::time::Duration,
        ) -> Self {
            Self(self.0.restart_backoff(min, max))
        }

        /// Async mode: the tokio runtime whose tasks the workers are (their sync methods run
        /// on its blocking pool). Default: the runtime `init` runs inside, if it is a
        /// multi-thread one (a task, `block_on`, or `Runtime::enter`), so a caller there
        /// reaches its workers without crossing runtimes; else the library's own runtime.
        /// The handle must be of a multi-thread runtime, and the pool an async one (fixed or
        /// on demand; on-demand workers run on its blocking pool): otherwise `init` fails
        /// with `Error::Config`. Dropping the last handle on a thread
        /// of that runtime stops the pool without waiting there: the workers finish what is
        /// queued on their own. If the runtime shuts down under the pool, its workers end
        /// with it: every queued call and every running `async fn` call fails with
        /// `Error::Stopped`, as do later calls, and `stop()` returns at once (a sync method
        /// already running finishes: tokio's shutdown waits for its blocking pool).
        /// (Example: the crate docs, *Async mode on your runtime*.)
        #[must_use]
        pub fn runtime(self, handle: $crate::__private::tokio::runtime::Handle) -> Self {
            Self(self.0.runtime(handle))
        }

        /// `Mode::Cluster` (feature `cluster`): the cluster whose nodes host the workers,
        /// `.cluster(concurry::cluster::Cluster::connect("nats://host:4222")?)`. Required in
        /// that mode (`init` without it is `Error::Config`), ignored in the others.
        #[must_use]
        pub fn cluster(self, cluster: impl $crate::IntoCluster) -> Self {
            Self(self.0.cluster(cluster))
        }

        /// The pool's name for thread names, tracing spans and stats (default: the type's name).
        /// In `Mode::Cluster` also the name other processes find it by (`Type::lookup`),
        /// unique per namespace (see `concurry::cluster`, *Named pools*).
        #[must_use]
        pub fn name(self, name: impl ::core::convert::Into<::std::string::String>) -> Self {
            Self(self.0.name(name))
        }
    };
}
