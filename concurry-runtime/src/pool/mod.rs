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
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, lock};
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
    /// Process mode: calls failed with `Error::Stopped` (counted for `stop()`'s report).
    pub(crate) failed_by_stop: AtomicU64,
    /// Fired by `stop()`: retry loops waiting out a backoff give up at once.
    pub(crate) stopped: std::sync::Arc<crate::signal::Signal>,
    /// Cancelled when `stop_timeout` runs out: running methods see it at their checkpoints.
    pub(crate) cancel: crate::cancel::Token,
}

impl Shared {
    /// The shared state of a pool of `workers` fixed workers named `name`.
    pub(crate) fn new(name: String, workers: usize, bounded: bool) -> Self {
        Shared {
            name,
            counters: (0..workers.max(1)).map(|_| Counters::default()).collect(),
            abort: AtomicBool::new(false),
            bounded,
            space: Mutex::new(()),
            space_freed: Condvar::new(),
            waiters: AtomicUsize::new(0),
            on_demand_alive: AtomicUsize::new(0),
            failed_by_stop: AtomicU64::new(0),
            stopped: std::sync::Arc::default(),
            cancel: crate::cancel::Token::root(),
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

/// Where [`Pool::admit`] put a call.
enum Admit {
    /// Worker `idx`, counted there: send it now.
    Now(usize),
    /// Worker `idx` is full and the caller is async code: wait for a place (of `limit`)
    /// without blocking, then send.
    Later(usize, u64),
    /// The pool stopped while the call waited for a place.
    Stopped,
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
    /// Async mode: the runtime whose tasks the workers are.
    runtime: Option<tokio::runtime::Id>,
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
    crate::cancel::context::set_worker_token(shared.cancel.clone());
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
        let shared = Arc::new(Shared::new(name, fixed, config.max_queued_tasks.is_some()));
        let (exit_tx, exits) = crossbeam_channel::unbounded();
        let runtime = (config.mode == Mode::Async && !config.on_demand)
            .then(|| crate::runtime::pick(config.runtime.as_ref()));
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
                    runtime
                        .as_ref()
                        .unwrap_or_else(|| crate::runtime::runtime().handle()),
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
                runtime: runtime.map(|h| h.id()),
                stopped: AtomicBool::new(false),
                lifecycle: Mutex::new(Some(lifecycle)),
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
            Backend::Thread(mailboxes) => self.route(room, call, mailboxes),
            Backend::Async(mailboxes) => self.route(room, call, mailboxes),
        }
    }

    /// Sends `call` to the mailbox of the worker [`admit`](Pool::admit) chose.
    fn route<M: Mailbox<W>>(&self, room: Room, call: Call<W>, mailboxes: &[M]) {
        let shared = &self.inner.shared;
        match self.admit(room) {
            Admit::Now(idx) => mailboxes[idx].deliver(shared, idx, call),
            Admit::Stopped => call.fail(Error::Stopped),
            Admit::Later(idx, limit) => {
                let tx = mailboxes[idx].clone();
                later(shared, idx, limit, move |shared, placed| match placed {
                    true => tx.deliver(shared, idx, call),
                    false => call.fail(Error::Stopped),
                });
            }
        }
    }

    /// Picks the worker for a call and counts the call there, waiting for a place per
    /// `max_queued_tasks` (see [`dispatch`](Pool::dispatch)).
    fn admit(&self, room: Room) -> Admit {
        let inner = &*self.inner;
        let counters = &inner.shared.counters;
        let limit = inner.config.max_queued_tasks.map(|n| n as u64);
        if let Room::Retry(place) = &room
            && let Some(limit) = limit
            && let Some(idx) = place.next_attempt(&inner.balancer, counters, limit)
        {
            return Admit::Now(idx);
        }
        let idx = inner.balancer.pick(counters);
        let Some(limit) = limit else {
            counters[idx].on_dispatch();
            return Admit::Now(idx);
        };
        if let Room::Retry(place) = &room {
            // The first attempt of a retried call: the place it takes is its own.
            place.home(idx, false);
        }
        if counters[idx].try_dispatch(limit) {
            Admit::Now(idx)
        } else if crate::runtime::in_async_context() {
            Admit::Later(idx, limit)
        } else if inner.shared.wait_for_room(idx, limit) {
            Admit::Now(idx)
        } else {
            Admit::Stopped
        }
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

/// A worker's mailbox, in thread or async mode.
trait Mailbox<W>: Clone + Send + 'static {
    /// Sends `call` (already counted on worker `idx`); fails it if the worker is gone.
    fn deliver(&self, shared: &Shared, idx: usize, call: Call<W>);
}

impl<W: Worker> Mailbox<W> for crossbeam_channel::Sender<Msg<W>> {
    fn deliver(&self, shared: &Shared, idx: usize, call: Call<W>) {
        if let Err(crossbeam_channel::SendError(msg)) = self.send(Msg::Call(call)) {
            shared.finished(idx);
            fail_msg(msg, Error::Stopped);
        }
    }
}

impl<W: Worker> Mailbox<W> for tokio::sync::mpsc::UnboundedSender<Msg<W>> {
    fn deliver(&self, shared: &Shared, idx: usize, call: Call<W>) {
        if let Err(tokio::sync::mpsc::error::SendError(msg)) = self.send(Msg::Call(call)) {
            shared.finished(idx);
            fail_msg(msg, Error::Stopped);
        }
    }
}

/// Waits, in a task on the library runtime, for a place (of `limit`) on worker `idx`, then
/// runs `then` with whether it got one (false: the pool stopped first).
pub(crate) fn later(
    shared: &Arc<Shared>,
    idx: usize,
    limit: u64,
    then: impl FnOnce(&Shared, bool) + Send + 'static,
) {
    let shared = shared.clone();
    crate::runtime::runtime().spawn(async move {
        let placed = shared.room(idx, limit).await;
        then(&shared, placed);
    });
}

fn fail_msg<W>(msg: Msg<W>, error: Error) {
    if let Msg::Call(call) = msg {
        call.fail(error);
    }
}

impl<W: Worker> PoolInner<W> {
    /// Async mode: as [`stop`](PoolInner::stop) without waiting for the workers: they run
    /// what is queued and end on their own (or with their runtime).
    fn stop_without_waiting(&self) {
        let mut guard = lock(&self.lifecycle);
        self.stopped.store(true, Ordering::Release);
        self.shared.stopped.fire();
        self.shared.wake_all_waiters();
        if guard.take().is_some()
            && let Backend::Async(mailboxes) = &self.backend
        {
            mailboxes.iter().for_each(|m| drop(m.send(Msg::Stop)));
        }
    }

    fn stop(&self) -> Result<(), Error> {
        // `stop_timeout` counts from the call, not from when the workers were told.
        let deadline = Instant::now().checked_add(self.config.stop_timeout);
        let mut guard = lock(&self.lifecycle);
        self.stopped.store(true, Ordering::Release);
        self.shared.stopped.fire();
        self.shared.wake_all_waiters();
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
                return remote.stop().map_err(|e| match e {
                    // A child had to be killed: every call it had failed.
                    Error::Timeout => Error::StopTimeout {
                        failed: self.shared.failed_by_stop.load(Ordering::Acquire),
                        running: 0,
                    },
                    other => other,
                });
            }
        };
        let own = CURRENT_POOL.with(|c| c.get()) == Arc::as_ptr(&self.shared) as usize;
        // Async workers may be tasks of the runtime this thread works for (the caller's own):
        // its other tasks go to another thread while this one waits for them.
        let wait = || {
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
            exited
        };
        let exited = if expected == 0 || own {
            0
        } else {
            crate::runtime::blocking(wait)
        };
        let timed_out = exited < expected && !own;
        // Calls queued or running on the fixed workers when the time ran out.
        let (mut unfinished, mut in_blocking) = (0, 0);
        if timed_out {
            self.shared.abort.store(true, Ordering::Release);
            // Methods still running see it at their next checkpoint.
            self.shared.cancel.cancel();
            unfinished = self.shared.counters.iter().map(Counters::in_flight).sum();
            in_blocking = self
                .shared
                .counters
                .iter()
                .filter(|c| c.is_blocking())
                .count() as u64;
            // Calls still waiting for their limits give up now, with `Error::Stopped`.
            if let Some(limits) = &self.limits {
                limits.wake_all();
            }
            lifecycle
                .tasks
                .iter()
                .for_each(tokio::task::AbortHandle::abort);
        }
        // Whatever is still queued (queued after the stop, or left by an abort) fails now;
        // a long queue left by the timeout is failed on a thread of its own, so `stop`
        // returns on time.
        drain(
            &self.shared.name,
            lifecycle.drains,
            timed_out && unfinished > 0,
        );
        let (mut failed, mut running) = (0, 0);
        if let Backend::OnDemand(od) = &self.backend
            && timed_out
        {
            failed = od.fail_queued();
            running = self.shared.on_demand_alive.load(Ordering::Acquire) as u64;
        }
        let me = std::thread::current().id();
        let threads = lifecycle.threads.len() as u64;
        let mut left = 0;
        for t in lifecycle.threads {
            if t.thread().id() != me && (!timed_out || t.is_finished()) {
                let _ = t.join();
            } else {
                left += 1;
            }
        }
        if let Backend::OnDemand(od) = &self.backend {
            od.join(timed_out);
        }
        if !timed_out {
            return Ok(());
        }
        if threads > 0 {
            // Thread mode: a thread not finished is still in its call.
            running = left;
            failed = unfinished.saturating_sub(left);
        } else if !matches!(self.backend, Backend::OnDemand(_)) {
            // Async mode: aborting a worker's task ends the calls it had, but not a sync
            // method running on the blocking pool.
            running = in_blocking;
            failed = unfinished.saturating_sub(in_blocking);
        }
        Err(Error::StopTimeout { failed, running })
    }
}

/// Fails every call still in `drains` with [`Error::Stopped`]; on a thread of its own if
/// `elsewhere` (and a thread can be had), so a long queue does not hold up `stop()`.
fn drain<W: Worker>(name: &str, drains: Vec<crossbeam_channel::Receiver<Msg<W>>>, elsewhere: bool) {
    // Async mode has none: aborting a worker's task drops its queue on the runtime.
    let elsewhere = elsewhere && !drains.is_empty();
    let fail_all = move || {
        for rx in &drains {
            rx.try_iter().for_each(|m| fail_msg(m, Error::Stopped));
        }
    };
    if !elsewhere {
        return fail_all();
    }
    let fail_all = std::sync::Arc::new(Mutex::new(Some(fail_all)));
    let mine = fail_all.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("{name}-drain"))
        .spawn(move || {
            if let Some(f) = lock(&mine).take() {
                f();
            }
        });
    if spawned.is_err()
        && let Some(f) = lock(&fail_all).take()
    {
        f();
    }
}

impl<W: Worker> Drop for PoolInner<W> {
    fn drop(&mut self) {
        // Dropped on a thread of the runtime the workers are tasks of (by one of its tasks,
        // or while it shuts down and drops its tasks, the workers among them, perhaps later
        // on this very thread): the workers are told to stop, finish what is queued and end
        // on their own; waiting for them here could hold up the thread they need.
        if let Some(id) = self.runtime
            && tokio::runtime::Handle::try_current().is_ok_and(|h| h.id() == id)
        {
            return self.stop_without_waiting();
        }
        let _ = self.stop();
    }
}
