//! The seam between the pool and the modes: the [`Backend`] trait each mode implements, and
//! everything of the pool a backend may use. Files under `mode/` name `crate::pool::backend`
//! and nothing else of `pool/` (`tests/layering_pool.rs` checks it).
//!
//! The pool keeps what every mode shares: options, admission (the balancer and
//! `max_queued_tasks`), limits, retries, the stopped flag and the stats snapshot. A backend
//! keeps how calls reach its workers and how the workers end.

use std::any::Any;
use std::time::Instant;

use super::balance::Balancer;
use crate::error::Error;
use crate::job::Call;
use crate::limit::LimitSet;
use crate::sync::{Arc, MutexGuard, Ordering};

pub(crate) use super::stats::WorkerStats;
pub(crate) use super::{Admit, Room, Shared, mark_worker_thread};

/// One mode's way of running a pool's workers: the pool holds one, behind `Box<dyn _>`.
pub(crate) trait Backend<W>: Send + Sync + 'static {
    /// Sends `call` on its way (the pool is not stopped); a backend with a queue per worker
    /// asks `gate` which worker takes it. The call's promise resolves whatever happens.
    fn dispatch(&self, gate: &Gate<'_>, call: Call<W>, room: Room);

    /// Ends the workers, giving queued calls until `stop.deadline`; called once. After the
    /// deadline, calls still queued fail with [`Error::Stopped`] and the result is
    /// [`Error::StopTimeout`] saying how many failed and how many were still running.
    fn stop(&self, stop: Stopping<'_>) -> Result<(), Error>;

    /// Whether calls wait in a queue per worker, the one `max_queued_tasks` bounds (a retried
    /// call then keeps its place there between attempts).
    fn queues(&self) -> bool {
        true
    }

    /// How many workers are alive, and each fixed worker's counters (none for workers built
    /// per call).
    fn workers(&self, shared: &Shared, stopped: bool) -> (usize, Vec<WorkerStats>) {
        count_workers(shared, stopped)
    }

    /// Whether the workers are out of this process: calls must then be requests a worker
    /// can decode, never closures (generated code asks through `__private::pool_is_remote`).
    fn is_remote(&self) -> bool {
        false
    }

    /// The last handle is dropped on this thread: false if waiting here for the workers
    /// could hold up the thread they need; the pool then only [`signal_stop`]s them.
    ///
    /// [`signal_stop`]: Backend::signal_stop
    fn may_wait_here(&self) -> bool {
        true
    }

    /// Tells the workers to end after what is queued, without waiting for them.
    fn signal_stop(&self) {}

    /// For the pool's typed entry points of one mode (process mode's remote calls).
    fn as_any(&self) -> &dyn Any;
}

/// Admission, as a backend with a queue per worker sees it: which worker takes a call, and
/// the wait for a place there under `max_queued_tasks`.
pub(crate) struct Gate<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) balancer: &'a Balancer,
    /// `max_queued_tasks`, if set.
    pub(crate) limit: Option<u64>,
}

impl Gate<'_> {
    /// Picks the worker for a call and counts the call there, waiting for a place per
    /// `max_queued_tasks`: a plain thread blocks here; async code is told to wait later.
    pub(crate) fn admit(&self, room: Room) -> Admit {
        let counters = &self.shared.counters;
        if let Room::Retry(place) = &room
            && let Some(limit) = self.limit
            && let Some(idx) = place.next_attempt(self.balancer, counters, limit)
        {
            return Admit::Now(idx);
        }
        let idx = self.balancer.pick(counters);
        let Some(limit) = self.limit else {
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
        } else if self.shared.wait_for_room(idx, limit) {
            Admit::Now(idx)
        } else {
            Admit::Stopped
        }
    }

    /// Waits, in a task (see [`crate::runtime::for_helpers`]), for a place (of `limit`) on
    /// worker `idx`, then runs `then` with whether it got one (false: the pool stopped first).
    pub(crate) fn later(
        &self,
        idx: usize,
        limit: u64,
        then: impl FnOnce(&Shared, bool) + Send + 'static,
    ) {
        super::later(self.shared, idx, limit, then);
    }
}

/// What a backend's [`stop`](Backend::stop) gets from the pool.
pub(crate) struct Stopping<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    /// When queued calls stop being run (`stop_timeout` after `stop()` was called).
    pub(crate) deadline: Option<Instant>,
    pub(crate) limits: Option<&'a LimitSet>,
    /// Held while the backend stops, so a second `stop()` waits for the first.
    pub(crate) guard: Option<MutexGuard<'a, bool>>,
}

impl Stopping<'_> {
    /// Lets a concurrent `stop()` return at once instead of waiting for this one.
    pub(crate) fn release(&mut self) {
        self.guard = None;
    }

    /// The time is up: workers drop what is queued instead of running it.
    pub(crate) fn abort(&self) {
        self.shared.abort.store(true, Ordering::Release);
        // Methods still running see it at their next checkpoint.
        self.shared.cancel.cancel();
    }

    /// Calls still waiting for their limits give up now, with [`Error::Stopped`].
    pub(crate) fn wake_limits(&self) {
        if let Some(limits) = self.limits {
            limits.wake_all();
        }
    }

    /// Whether this thread is one of the pool's own workers (which must not wait for
    /// itself to exit).
    pub(crate) fn on_own_worker(&self) -> bool {
        super::CURRENT_POOL.with(|c| c.get()) == Arc::as_ptr(self.shared) as usize
    }

    /// Waits until `expected` workers sent their index on `exits`, or the deadline; true if
    /// the time ran out first. Never waits on one of the pool's own workers (nor says it
    /// timed out there).
    pub(crate) fn await_exits(
        &self,
        exits: &crossbeam_channel::Receiver<usize>,
        expected: usize,
    ) -> bool {
        if expected == 0 || self.on_own_worker() {
            return false;
        }
        // Async workers may be tasks of the runtime this thread works for (the caller's
        // own): its other tasks go to another thread while this one waits for them.
        let exited = crate::runtime::blocking(|| {
            let mut exited = 0;
            while exited < expected {
                let next = match self.deadline {
                    Some(d) => exits.recv_deadline(d).ok(),
                    None => exits.recv().ok(),
                };
                match next {
                    Some(_) => exited += 1,
                    None => break,
                }
            }
            exited
        });
        exited < expected
    }

    /// Calls queued or running on the fixed workers.
    pub(crate) fn unfinished(&self) -> u64 {
        self.shared.counters.iter().map(|c| c.in_flight()).sum()
    }
}

/// [`Backend::workers`] as most backends count them: one entry per fixed worker's counters.
pub(crate) fn count_workers(shared: &Shared, stopped: bool) -> (usize, Vec<WorkerStats>) {
    let per_worker: Vec<WorkerStats> = shared
        .counters
        .iter()
        .enumerate()
        .map(|(index, c)| WorkerStats {
            index,
            in_flight: c.in_flight(),
            dispatched: c.dispatched(),
            node: None,
        })
        .collect();
    let alive = if stopped { 0 } else { per_worker.len() };
    (alive, per_worker)
}
