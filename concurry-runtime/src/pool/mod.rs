//! A pool: `max_workers` workers behind one cloneable handle, a load balancer, back-pressure,
//! and an explicit lifecycle (`stop()` drains or fails every queued call).

pub(crate) mod backend;
mod balance;
#[cfg(feature = "cluster")]
pub(crate) mod named;
mod remote;
mod retry;
mod stats;
mod submit;

use std::fmt;
use std::time::{Duration, Instant};

pub use crate::job::cell::MethodFuture;
pub use remote::Extract;
pub use retry::{MethodRetry, Validate};
pub use stats::{PoolStats, WorkerStats};

use backend::{Backend, Gate, Stopping};
use balance::Balancer;
use stats::Counters;

use crate::error::Error;
use crate::job::Call;
use crate::limit::LimitSet;
use crate::options::PoolConfig;
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, lock};
use crate::worker::Worker;

/// A running pool of `W` workers. The handle `#[worker]` generates wraps one of these.
///
/// Cloning is cheap (one `Arc`); the pool stops when `stop()` is called or the last clone is
/// dropped.
pub struct Pool<W: Worker> {
    // A plain std `Arc` (the pool is not part of the loom-modelled core): retry loops hold a
    // `Weak` to it, so dropping the last handle still stops the pool.
    inner: std::sync::Arc<PoolInner<W>>,
}

impl<W: Worker> Clone for Pool<W> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
        }
    }
}

impl<W: Worker> fmt::Debug for Pool<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("worker", &W::NAME)
            .field("mode", &self.inner.config.mode)
            .field("workers", &self.inner.shared.counters.len())
            .field("stopped", &self.inner.stopped.load(Ordering::Relaxed))
            .finish()
    }
}

/// What the workers of a pool share with it (never the pool itself, so no cycle keeps a
/// stopped pool alive).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    /// What it reports through the `metrics` facade (nothing without the feature).
    pub(crate) metrics: crate::report::PoolMetrics,
    pub(crate) counters: Box<[Counters]>,
    /// Set when `stop_timeout` ran out: workers drop what is queued instead of running it
    /// (and calls waiting for their limits give up).
    pub(crate) abort: Arc<AtomicBool>,
    /// Back-pressure: submitters wait here for a worker's in-flight count to drop.
    bounded: bool,
    space: Mutex<()>,
    space_freed: Condvar,
    waiters: AtomicUsize,
    pub(crate) on_demand_alive: AtomicUsize,
    /// Process mode: calls failed with `Error::Stopped` (counted for `stop()`'s report).
    pub(crate) failed_by_stop: AtomicU64,
    /// Fired by `stop()`: retry loops waiting out a backoff give up at once.
    pub(crate) stopped: std::sync::Arc<crate::signal::Signal>,
    /// Cancelled when `stop_timeout` runs out: running methods see it at their checkpoints.
    pub(crate) cancel: crate::cancel::Token,
    /// The runtime the workers run on (async mode), set by the backend: helper tasks of
    /// calls from outside any multi-thread runtime go there ([`crate::runtime::for_helpers`]).
    pub(crate) home: std::sync::OnceLock<tokio::runtime::Handle>,
}

impl Shared {
    /// The shared state of a pool of `workers` fixed workers named `name`.
    pub(crate) fn new(name: String, workers: usize, bounded: bool) -> Self {
        let metrics = crate::report::PoolMetrics::new(&name);
        Shared {
            counters: (0..workers.max(1))
                .map(|i| Counters::reported(metrics.worker(i)))
                .collect(),
            metrics,
            name,
            abort: Arc::new(AtomicBool::new(false)),
            bounded,
            space: Mutex::new(()),
            space_freed: Condvar::new(),
            waiters: AtomicUsize::new(0),
            on_demand_alive: AtomicUsize::new(0),
            failed_by_stop: AtomicU64::new(0),
            stopped: std::sync::Arc::default(),
            cancel: crate::cancel::Token::root(),
            home: std::sync::OnceLock::new(),
        }
    }

    /// Bookkeeping after a call of worker `idx` finished.
    pub(crate) fn finished(&self, idx: usize) {
        self.counters[idx].on_complete();
        if self.bounded {
            self.room_freed(idx);
        }
    }

    /// Wakes a submitter waiting for a place on worker `idx`.
    fn room_freed(&self, idx: usize) {
        // One place freed, one async waiter woken (or a permit kept for the next one).
        self.counters[idx].room.notify_one();
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = lock(&self.space);
            self.space_freed.notify_all();
        }
    }

    /// `stop()` was called: every submitter waiting for a place gives up.
    fn wake_all_waiters(&self) {
        for c in &self.counters {
            c.room.notify_waiters();
        }
        let _guard = lock(&self.space);
        self.space_freed.notify_all();
    }

    /// Blocks this thread until worker `idx` has a place (fewer than `limit` taken) and
    /// takes it; false if the pool stopped first.
    fn wait_for_room(&self, idx: usize, limit: u64) -> bool {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let mut guard = lock(&self.space);
        let got = loop {
            if self.stopped.is_fired() {
                break false;
            }
            if self.counters[idx].try_dispatch(limit) {
                break true;
            }
            // The timeout only guards against a missed notification; normally
            // `finished` wakes us.
            guard = match self
                .space_freed
                .wait_timeout(guard, Duration::from_millis(50))
            {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        };
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        got
    }

    /// As [`wait_for_room`](Shared::wait_for_room), without blocking a thread.
    async fn room(&self, idx: usize, limit: u64) -> bool {
        let counters = &self.counters[idx];
        loop {
            let notified = counters.room.notified();
            let mut notified = std::pin::pin!(notified);
            // Register before checking, so a place freed between the check and the await
            // is not missed.
            notified.as_mut().enable();
            if self.stopped.is_fired() {
                return false;
            }
            if counters.try_dispatch(limit) {
                return true;
            }
            tokio::select! {
                () = notified => {}
                () = self.stopped.wait() => return false,
            }
        }
    }
}

/// Where a call may go and whether it waits for a place (`max_queued_tasks`).
pub(crate) enum Room {
    /// A new call: the balancer picks a worker, and the call waits there for a place.
    Wait,
    /// An attempt of a retried call, which holds its place in the queue between attempts.
    Retry(std::sync::Arc<retry::Place>),
}

/// Where [`Gate::admit`](backend::Gate::admit) put a call.
pub(crate) enum Admit {
    /// Worker `idx`, counted there: send it now.
    Now(usize),
    /// Worker `idx` is full and the caller is async code: wait for a place (of `limit`)
    /// without blocking, then send.
    Later(usize, u64),
    /// The pool stopped while the call waited for a place.
    Stopped,
}

struct PoolInner<W: Worker> {
    config: PoolConfig,
    /// The pool's limits, if it has any (shared by every worker).
    limits: Option<LimitSet>,
    balancer: Balancer,
    shared: Arc<Shared>,
    /// The mode: how calls reach the workers and how the workers end.
    backend: Box<dyn Backend<W>>,
    stopped: AtomicBool,
    /// True until the first `stop()` takes it (held while that one stops the backend).
    running: Mutex<bool>,
}

thread_local! {
    /// The `Shared` of the pool whose worker runs on this thread, if any: a pool dropped by
    /// one of its own workers must not wait for that worker to exit.
    static CURRENT_POOL: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

pub(crate) fn mark_worker_thread(shared: &Arc<Shared>) {
    CURRENT_POOL.with(|c| c.set(Arc::as_ptr(shared) as usize));
    crate::cancel::context::set_worker_token(shared.cancel.clone());
}

impl<W: Worker> Pool<W> {
    /// Starts a pool: validates `config`, starts every worker and waits until each has built
    /// its instance (the constructor's error, if any, is returned).
    pub fn start(config: PoolConfig, args: W::Args) -> Result<Self, Error<W::InitError>> {
        Self::launch(config, |config, shared| {
            crate::mode::start::<W>(config, args, shared)
        })
    }

    /// Starts a pool on the backend `backend` builds (after `config` is validated).
    pub(crate) fn launch<IE>(
        config: PoolConfig,
        backend: impl FnOnce(&PoolConfig, &Arc<Shared>) -> Result<Box<dyn Backend<W>>, Error<IE>>,
    ) -> Result<Self, Error<IE>> {
        config.validate()?;
        let name = config.name.clone().unwrap_or_else(|| W::NAME.to_string());
        let fixed = if config.on_demand {
            0
        } else {
            config.workers()
        };
        let shared = Arc::new(Shared::new(name, fixed, config.max_queued_tasks.is_some()));
        let backend = backend(&config, &shared)?;
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
                backend,
                stopped: AtomicBool::new(false),
                running: Mutex::new(true),
            }),
        })
    }

    /// Sends `call` to a worker; if the pool is stopped the call's promise gets
    /// [`Error::Stopped`].
    ///
    /// In a bounded pool (`max_queued_tasks`) a call waits for a place on its worker: a
    /// plain thread blocks here; async code (any thread inside a tokio runtime) never does:
    /// the call waits for its place in a task of its own, and its promise covers the wait.
    pub(crate) fn dispatch(&self, call: Call<W>, room: Room) {
        let inner = &*self.inner;
        if inner.stopped.load(Ordering::Acquire) {
            return call.fail(Error::Stopped);
        }
        inner.backend.dispatch(&self.gate(), call, room);
    }

    /// Admission: the balancer and `max_queued_tasks`.
    fn gate(&self) -> Gate<'_> {
        let inner = &*self.inner;
        Gate {
            shared: &inner.shared,
            balancer: &inner.balancer,
            limit: inner.config.max_queued_tasks.map(|n| n as u64),
        }
    }

    /// Picks the worker for a call and counts the call there, waiting for a place per
    /// `max_queued_tasks` (see [`dispatch`](Pool::dispatch)).
    fn admit(&self, room: Room) -> Admit {
        self.gate().admit(room)
    }

    /// The backend, if it is a `B` (a mode's own entry points, as process mode's).
    pub(crate) fn backend_as<B: 'static>(&self) -> Option<&B> {
        self.inner.backend.as_any().downcast_ref::<B>()
    }

    /// Whether the workers are out of this process, so calls must be requests (see
    /// `__private::pool_is_remote`).
    pub(crate) fn is_remote(&self) -> bool {
        self.inner.backend.is_remote()
    }

    /// The runtime a helper task of a call submitted here goes on (see
    /// [`crate::runtime::for_helpers`]): the caller's multi-thread runtime, else the one the
    /// workers run on (async mode), else the library's.
    pub(crate) fn helper_runtime(&self) -> tokio::runtime::Handle {
        crate::runtime::for_helpers(self.inner.shared.home.get())
    }

    /// A reference that does not keep the pool alive (for retry loops).
    pub(crate) fn downgrade(&self) -> WeakPool<W> {
        WeakPool {
            inner: std::sync::Arc::downgrade(&self.inner),
        }
    }

    /// How long `stop` waits for queued calls (the `stop_timeout` option).
    pub(crate) fn stop_timeout(&self) -> Duration {
        self.inner.config.stop_timeout
    }

    /// Whether the pool has limits (each call takes a unit of them).
    pub(crate) fn has_limits(&self) -> bool {
        self.inner.limits.is_some()
    }

    /// Whether the current thread is one of this pool's worker threads.
    pub(crate) fn is_worker_thread(&self) -> bool {
        CURRENT_POOL.with(|c| c.get()) == Arc::as_ptr(&self.inner.shared) as usize
    }

    /// A snapshot of the pool's workers and counters.
    pub fn stats(&self) -> PoolStats {
        let inner = &*self.inner;
        let stopped = inner.stopped.load(Ordering::Acquire);
        let (workers, per_worker) = inner.backend.workers(&inner.shared, stopped);
        PoolStats {
            name: inner.shared.name.clone(),
            mode: inner.config.mode,
            workers,
            max_workers: inner.config.workers(),
            on_demand: inner.config.on_demand,
            on_demand_alive: inner.shared.on_demand_alive.load(Ordering::Relaxed),
            load_balancing: inner.balancer.algorithm(),
            stopped,
            per_worker,
        }
    }

    /// True once `stop()` was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Acquire)
    }

    /// Stops the pool: new calls fail with [`Error::Stopped`] at once; queued calls run to
    /// completion for up to `stop_timeout`, after which those still queued fail with
    /// [`Error::Stopped`]; every worker thread and task is joined.
    ///
    /// Returns [`Error::StopTimeout`] if `stop_timeout` ran out first: it says how many calls
    /// were failed with [`Error::Stopped`] and how many were still running (a thread busy
    /// with its call is left to finish it and exit on its own). `stop` then returns on time:
    /// a long queue is failed on a helper thread right after. Calling `stop` again is a no-op.
    pub fn stop(&self) -> Result<(), Error> {
        self.inner.stop()
    }
}

/// A [`Pool`] that may have been dropped.
pub(crate) struct WeakPool<W: Worker> {
    inner: std::sync::Weak<PoolInner<W>>,
}

impl<W: Worker> WeakPool<W> {
    /// The pool, if a handle still holds it.
    pub(crate) fn upgrade(&self) -> Option<Pool<W>> {
        self.inner.upgrade().map(|inner| Pool { inner })
    }
}

/// Waits, in a task (on the caller's multi-thread runtime, else the workers', else the
/// library's: [`crate::runtime::for_helpers`]), for a place (of `limit`) on worker `idx`,
/// then runs `then` with whether it got one (false: the pool stopped first). If that runtime
/// shuts down first, `then` is dropped unrun (a call in it fails with `Error::Stopped`).
pub(crate) fn later(
    shared: &Arc<Shared>,
    idx: usize,
    limit: u64,
    then: impl FnOnce(&Shared, bool) + Send + 'static,
) {
    let runtime = crate::runtime::for_helpers(shared.home.get());
    let shared = shared.clone();
    runtime.spawn(async move {
        let placed = shared.room(idx, limit).await;
        then(&shared, placed);
    });
}

impl<W: Worker> PoolInner<W> {
    /// Marks the pool stopped and wakes every submitter waiting for a place; the guard that
    /// says whether this is the first stop (`true` in it, taken by the caller).
    fn mark_stopped(&self) -> crate::sync::MutexGuard<'_, bool> {
        let guard = lock(&self.running);
        self.stopped.store(true, Ordering::Release);
        self.shared.stopped.fire();
        self.shared.wake_all_waiters();
        guard
    }

    /// As [`stop`](PoolInner::stop) without waiting for the workers: they run what is
    /// queued and end on their own (or with their runtime).
    fn stop_without_waiting(&self) {
        let mut guard = self.mark_stopped();
        if std::mem::take(&mut *guard) {
            self.backend.signal_stop();
        }
    }

    fn stop(&self) -> Result<(), Error> {
        // `stop_timeout` counts from the call, not from when the workers were told.
        let deadline = Instant::now().checked_add(self.config.stop_timeout);
        let mut guard = self.mark_stopped();
        if !std::mem::take(&mut *guard) {
            return Ok(());
        }
        self.backend.stop(Stopping {
            shared: &self.shared,
            deadline,
            limits: self.limits.as_ref(),
            guard: Some(guard),
        })
    }
}

impl<W: Worker> Drop for PoolInner<W> {
    fn drop(&mut self) {
        // Dropped on a thread of the runtime the workers are tasks of (by one of its tasks,
        // or while it shuts down and drops its tasks, the workers among them, perhaps later
        // on this very thread): the workers are told to stop, finish what is queued and end
        // on their own; waiting for them here could hold up the thread they need.
        if !self.backend.may_wait_here() {
            return self.stop_without_waiting();
        }
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call from async code waiting for room under `max_queued_tasks` waits in a task on
    /// the caller's runtime, not the library's.
    #[test]
    fn a_wait_for_room_runs_on_the_callers_runtime() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Shared::new("t".into(), 1, true));
        assert!(shared.counters[0].try_dispatch(1));
        let (tx, rx) = std::sync::mpsc::channel();
        rt.block_on(async {
            later(&shared, 0, 1, move |_, placed| {
                let id = tokio::runtime::Handle::current().id();
                tx.send((placed, id)).unwrap();
            });
        });
        // The place frees: the waiting task takes it.
        shared.finished(0);
        let (placed, id) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(placed);
        assert_eq!(id, rt.handle().id());
    }
}
