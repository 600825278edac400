//! A pool: `max_workers` workers behind one cloneable handle, a load balancer, back-pressure,
//! and an explicit lifecycle (`stop()` drains or fails every queued call).

mod balance;
mod remote;
mod retry;
mod stats;
mod submit;

use std::fmt;
use std::time::{Duration, Instant};

pub use remote::Extract;
pub use retry::{MethodRetry, Validate};
pub use stats::{PoolStats, WorkerStats};
pub use submit::MethodFuture;

use balance::Balancer;
use stats::Counters;

use crate::error::Error;
use crate::limit::LimitSet;
use crate::mode::{asyncio, on_demand::OnDemand, sync::Inline, thread};
use crate::options::{Mode, PoolConfig};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Condvar, Mutex, Ordering, lock};
use crate::worker::{Call, Msg, Worker};

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
    pub(crate) counters: Box<[Counters]>,
    /// Set when `stop_timeout` ran out: workers drop what is queued instead of running it.
    pub(crate) abort: AtomicBool,
    /// Back-pressure: submitters wait here for a worker's in-flight count to drop.
    bounded: bool,
    space: Mutex<()>,
    space_freed: Condvar,
    waiters: AtomicUsize,
    pub(crate) on_demand_alive: AtomicUsize,
    /// Fired by `stop()`: retry loops waiting out a backoff give up at once.
    pub(crate) stopped: std::sync::Arc<crate::signal::Signal>,
}

impl Shared {
    /// Bookkeeping after a call of worker `idx` finished.
    pub(crate) fn finished(&self, idx: usize) {
        self.counters[idx].on_complete();
        if self.bounded {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            if self.waiters.load(Ordering::SeqCst) > 0 {
                let _guard = lock(&self.space);
                self.space_freed.notify_all();
            }
        }
    }

    /// Blocks while worker `idx` has `limit` calls or more in flight.
    fn wait_for_space(&self, idx: usize, limit: u64, stopped: &AtomicBool) {
        if self.counters[idx].in_flight() < limit {
            return;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = lock(&self.space);
        while self.counters[idx].in_flight() >= limit && !stopped.load(Ordering::Acquire) {
            // The timeout only guards against a missed notification; normally
            // `finished` wakes us.
            guard = match self
                .space_freed
                .wait_timeout(guard, Duration::from_millis(50))
            {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How calls reach the workers, per mode.
enum Backend<W: Worker> {
    Inline(Inline<W>),
    Thread(Vec<crossbeam_channel::Sender<Msg<W>>>),
    Async(Vec<tokio::sync::mpsc::UnboundedSender<Msg<W>>>),
    OnDemand(OnDemand<W>),
    /// Process mode: children of a `#[worker(remote)]` type (see `pool/remote.rs`).
    Process(crate::mode::process::backend::Remote),
}

/// What `stop()` needs to end the workers: taken (under the lock) by the first `stop()`.
pub(crate) struct Lifecycle<W> {
    /// Each worker sends its index here when it ends (even by panic).
    pub(crate) exits: crossbeam_channel::Receiver<usize>,
    /// Thread mode: the threads, joined by `stop()`.
    pub(crate) threads: Vec<std::thread::JoinHandle<()>>,
    /// Thread mode: a receiver per mailbox, to fail what is queued when `stop_timeout` runs out.
    pub(crate) drains: Vec<crossbeam_channel::Receiver<Msg<W>>>,
    /// Async mode: the worker tasks, aborted when `stop_timeout` runs out.
    pub(crate) tasks: Vec<tokio::task::AbortHandle>,
}

struct PoolInner<W: Worker> {
    config: PoolConfig,
    /// The pool's limits, if it has any (shared by every worker).
    limits: Option<LimitSet>,
    balancer: Balancer,
    shared: Arc<Shared>,
    backend: Backend<W>,
    stopped: AtomicBool,
    lifecycle: Mutex<Option<Lifecycle<W>>>,
}

thread_local! {
    /// The `Shared` of the pool whose worker runs on this thread, if any: a pool dropped by
    /// one of its own workers must not wait for that worker to exit.
    static CURRENT_POOL: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

pub(crate) fn mark_worker_thread(shared: &Arc<Shared>) {
    CURRENT_POOL.with(|c| c.set(Arc::as_ptr(shared) as usize));
}

impl<W: Worker> Pool<W> {
    /// Starts a pool: validates `config`, starts every worker and waits until each has built
    /// its instance (the constructor's error, if any, is returned).
    pub fn start(config: PoolConfig, args: W::Args) -> Result<Self, Error<W::InitError>> {
        config.validate()?;
        if config.mode == Mode::Process {
            return Err(crate::mode::process::not_remote(W::NAME).into());
        }
        let workers = config.workers();
        let name = config.name.clone().unwrap_or_else(|| W::NAME.to_string());
        let fixed = if config.on_demand { 0 } else { workers };
        let shared = Arc::new(Shared {
            name,
            counters: (0..fixed.max(1)).map(|_| Counters::default()).collect(),
            abort: AtomicBool::new(false),
            bounded: config.max_queued_tasks.is_some(),
            space: Mutex::new(()),
            space_freed: Condvar::new(),
            waiters: AtomicUsize::new(0),
            on_demand_alive: AtomicUsize::new(0),
            stopped: std::sync::Arc::default(),
        });
        let (exit_tx, exits) = crossbeam_channel::unbounded();
        let mut lifecycle = Lifecycle {
            exits,
            threads: Vec::new(),
            drains: Vec::new(),
            tasks: Vec::new(),
        };
        let backend = if config.on_demand {
            Backend::OnDemand(OnDemand::new(
                config.mode,
                workers,
                args,
                shared.clone(),
                exit_tx,
            ))
        } else {
            match config.mode {
                Mode::Sync => Backend::Inline(Inline::new(args)?),
                Mode::Process => unreachable!("refused above"),
                Mode::Thread => Backend::Thread(thread::start(
                    workers,
                    args,
                    &shared,
                    exit_tx,
                    &mut lifecycle,
                )?),
                Mode::Async => Backend::Async(asyncio::start(
                    workers,
                    args,
                    &shared,
                    exit_tx,
                    &mut lifecycle,
                )?),
            }
        };
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
                lifecycle: Mutex::new(Some(lifecycle)),
            }),
        })
    }

    /// Sends `call` to a worker; if the pool is stopped the call's promise gets
    /// [`Error::Stopped`].
    pub(crate) fn dispatch(&self, call: Call<W>) {
        let inner = &*self.inner;
        if inner.stopped.load(Ordering::Acquire) {
            return call.fail(Error::Stopped);
        }
        match &inner.backend {
            Backend::Inline(inline) => inline.run(call, &inner.shared),
            Backend::OnDemand(od) => od.submit(call),
            Backend::Process(_) => {
                let method = call.method;
                call.fail(crate::mode::process::backend::not_a_remote_call(
                    W::NAME,
                    method,
                ));
            }
            Backend::Thread(mailboxes) => {
                let idx = self.pick();
                inner.shared.counters[idx].on_dispatch();
                if let Err(crossbeam_channel::SendError(msg)) = mailboxes[idx].send(Msg::Call(call))
                {
                    inner.shared.finished(idx);
                    fail_msg(msg, Error::Stopped);
                }
            }
            Backend::Async(mailboxes) => {
                let idx = self.pick();
                inner.shared.counters[idx].on_dispatch();
                if let Err(tokio::sync::mpsc::error::SendError(msg)) =
                    mailboxes[idx].send(Msg::Call(call))
                {
                    inner.shared.finished(idx);
                    fail_msg(msg, Error::Stopped);
                }
            }
        }
    }

    fn pick(&self) -> usize {
        let inner = &*self.inner;
        let idx = inner.balancer.pick(&inner.shared.counters);
        if let Some(limit) = inner.config.max_queued_tasks {
            inner
                .shared
                .wait_for_space(idx, limit as u64, &inner.stopped);
        }
        idx
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
        let on_demand_alive = inner.shared.on_demand_alive.load(Ordering::Relaxed);
        let per_worker = if inner.config.on_demand {
            Vec::new()
        } else {
            inner
                .shared
                .counters
                .iter()
                .enumerate()
                .map(|(index, c)| WorkerStats {
                    index,
                    in_flight: c.in_flight(),
                    dispatched: c.dispatched(),
                })
                .collect()
        };
        let stopped = inner.stopped.load(Ordering::Acquire);
        PoolStats {
            name: inner.shared.name.clone(),
            mode: inner.config.mode,
            workers: match (inner.config.on_demand, stopped) {
                (true, _) => on_demand_alive,
                (false, true) => 0,
                (false, false) => per_worker.len(),
            },
            max_workers: inner.config.workers(),
            on_demand: inner.config.on_demand,
            on_demand_alive,
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
    /// Returns [`Error::Timeout`] if a call was still running when `stop_timeout` ran out (its
    /// thread is then left to finish that call and exit on its own). Calling `stop` again is a
    /// no-op.
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

fn fail_msg<W>(msg: Msg<W>, error: Error) {
    if let Msg::Call(call) = msg {
        call.fail(error);
    }
}

impl<W: Worker> PoolInner<W> {
    fn stop(&self) -> Result<(), Error> {
        let mut guard = lock(&self.lifecycle);
        self.stopped.store(true, Ordering::Release);
        self.shared.stopped.fire();
        let Some(lifecycle) = guard.take() else {
            return Ok(());
        };
        let expected = match &self.backend {
            Backend::Inline(inline) => {
                inline.stop();
                0
            }
            Backend::Thread(mailboxes) => {
                mailboxes.iter().for_each(|m| drop(m.send(Msg::Stop)));
                mailboxes.len()
            }
            Backend::Async(mailboxes) => {
                mailboxes.iter().for_each(|m| drop(m.send(Msg::Stop)));
                mailboxes.len()
            }
            Backend::OnDemand(od) => od.stop(),
            Backend::Process(remote) => {
                drop(guard);
                // Calls still waiting here for their limits are not in a child yet: they
                // fail with `Error::Stopped`; the children finish the calls they have.
                self.shared.abort.store(true, Ordering::Release);
                if let Some(limits) = &self.limits {
                    limits.wake_all();
                }
                return remote.stop();
            }
        };
        let own = CURRENT_POOL.with(|c| c.get()) == Arc::as_ptr(&self.shared) as usize;
        let deadline = Instant::now().checked_add(self.config.stop_timeout);
        let mut exited = 0;
        while exited < expected && !own {
            let next = match deadline {
                Some(d) => lifecycle.exits.recv_deadline(d).ok(),
                None => lifecycle.exits.recv().ok(),
            };
            match next {
                Some(_) => exited += 1,
                None => break,
            }
        }
        let timed_out = exited < expected && !own;
        if timed_out {
            self.shared.abort.store(true, Ordering::Release);
            // Calls still waiting for their limits give up now, with `Error::Stopped`.
            if let Some(limits) = &self.limits {
                limits.wake_all();
            }
            lifecycle
                .tasks
                .iter()
                .for_each(tokio::task::AbortHandle::abort);
            if let Backend::OnDemand(od) = &self.backend {
                od.fail_queued();
            }
        }
        // Whatever is still queued (queued after the stop, or left by an abort) fails now.
        for rx in &lifecycle.drains {
            rx.try_iter().for_each(|m| fail_msg(m, Error::Stopped));
        }
        drop(lifecycle.drains);
        let me = std::thread::current().id();
        for t in lifecycle.threads {
            if t.thread().id() != me && (!timed_out || t.is_finished()) {
                let _ = t.join();
            }
        }
        if let Backend::OnDemand(od) = &self.backend {
            od.join(timed_out);
        }
        if timed_out {
            Err(Error::Timeout)
        } else {
            Ok(())
        }
    }
}

impl<W: Worker> Drop for PoolInner<W> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
