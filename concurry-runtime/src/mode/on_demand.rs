//! On-demand workers: each call gets a freshly built instance on a new thread (async mode: a
//! blocking-pool thread of the runtime fixed workers would run on, so `async fn` methods use
//! the caller's runtime), at most `max_workers` at a time; a worker retires when the queue is
//! empty. A runtime that shuts down before a worker starts fails the queued calls with
//! `Error::Stopped`.

use crossbeam_channel::{Receiver, Sender};

use super::construct;
use crate::error::Error;
use crate::job::Call;
use crate::options::Mode;
use crate::pool::backend::{
    Backend, Gate, Room, Shared, Stopping, WorkerStats, mark_worker_thread,
};
use crate::sync::{Arc, Mutex, Ordering, lock};
use crate::worker::Worker;

pub(crate) struct OnDemand<W: Worker> {
    mode: Mode,
    max: usize,
    /// Behind a lock only so the pool is `Sync` whatever the arguments are (they need only
    /// be `Send`); it is held just to clone them.
    args: Mutex<W::Args>,
    shared: Arc<Shared>,
    queue_tx: Sender<Call<W>>,
    queue_rx: Receiver<Call<W>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Mirrors `shared.on_demand_alive` for `stop()`: each retiring worker sends one unit.
    exits: Sender<usize>,
    exited: Receiver<usize>,
    spawned: crate::sync::AtomicUsize,
    /// Async mode: the runtime whose blocking pool the workers run on.
    runtime: Option<tokio::runtime::Handle>,
}

impl<W: Worker> OnDemand<W> {
    pub(crate) fn new(
        mode: Mode,
        max: usize,
        args: W::Args,
        shared: Arc<Shared>,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Self {
        let (queue_tx, queue_rx) = crossbeam_channel::unbounded();
        let (exits, exited) = crossbeam_channel::unbounded();
        OnDemand {
            mode,
            max,
            args: Mutex::new(args),
            shared,
            queue_tx,
            queue_rx,
            threads: Mutex::new(Vec::new()),
            exits,
            exited,
            spawned: crate::sync::AtomicUsize::new(0),
            runtime,
        }
    }

    fn submit(&self, call: Call<W>) {
        self.shared.counters[0].on_dispatch();
        if self.mode == Mode::Sync {
            // In-line: build, run, retire, all on the caller's thread.
            let args = lock(&self.args).clone();
            run_fresh(call, &args, &self.shared);
            return;
        }
        if let Err(crossbeam_channel::SendError(call)) = self.queue_tx.send(call) {
            self.shared.finished(0);
            return call.fail(Error::Stopped);
        }
        self.grow();
    }

    /// Starts a worker if fewer than `max` are alive.
    fn grow(&self) {
        let alive = &self.shared.on_demand_alive;
        let mut n = alive.load(Ordering::SeqCst);
        while n < self.max {
            match alive.compare_exchange(n, n + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return self.spawn(),
                Err(now) => n = now,
            }
        }
    }

    fn spawn(&self) {
        self.spawned.fetch_add(1, Ordering::SeqCst);
        let (rx, args, shared, exits) = (
            self.queue_rx.clone(),
            lock(&self.args).clone(),
            self.shared.clone(),
            self.exits.clone(),
        );
        let max = self.max;
        let body = move || drain(&rx, &args, &shared, max, &exits);
        match &self.runtime {
            Some(runtime) => {
                // Dropped unrun if the runtime is shut down: `Unrun` then retires the worker.
                let unrun = Unrun {
                    rx: self.queue_rx.clone(),
                    shared: self.shared.clone(),
                    exits: self.exits.clone(),
                    armed: true,
                };
                runtime.spawn_blocking(move || {
                    unrun.disarm();
                    body();
                });
            }
            _ => {
                let mut threads = lock(&self.threads);
                threads.retain(|t| !t.is_finished());
                match std::thread::Builder::new()
                    .name(format!("{}-od", self.shared.name))
                    .spawn(body)
                {
                    Ok(t) => threads.push(t),
                    Err(_) => {
                        // No thread: undo, and fail what this worker would have taken.
                        self.shared.on_demand_alive.fetch_sub(1, Ordering::SeqCst);
                        let _ = self.exits.send(usize::MAX);
                        if let Ok(call) = self.queue_rx.try_recv() {
                            self.shared.finished(0);
                            call.fail(Error::WorkerLost {
                                message: "could not spawn an on-demand worker thread".into(),
                            });
                        }
                    }
                }
            }
        }
    }

    /// Fails every call still queued (after `stop_timeout`); returns how many.
    fn fail_queued(&self) -> u64 {
        let mut failed = 0;
        for call in self.queue_rx.try_iter() {
            self.shared.finished(0);
            call.fail(Error::Stopped);
            failed += 1;
        }
        failed
    }

    fn join(&self, timed_out: bool) {
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            if !timed_out || t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

impl<W: Worker> Backend<W> for OnDemand<W> {
    fn dispatch(&self, _: &Gate<'_>, call: Call<W>, _: Room) {
        self.submit(call);
    }

    fn stop(&self, stop: Stopping<'_>) -> Result<(), Error> {
        // Every worker ever spawned sends exactly one exit notice.
        let expected = self.spawned.load(Ordering::SeqCst);
        let timed_out = stop.await_exits(&self.exited, expected);
        let (mut failed, mut running) = (0, 0);
        if timed_out {
            stop.abort();
            stop.wake_limits();
            failed = self.fail_queued();
            running = self.shared.on_demand_alive.load(Ordering::Acquire) as u64;
        }
        self.join(timed_out);
        match timed_out {
            false => Ok(()),
            true => Err(Error::StopTimeout { failed, running }),
        }
    }

    fn queues(&self) -> bool {
        false
    }

    /// Workers are built per call: no fixed workers to report.
    fn workers(&self, shared: &Shared, _: bool) -> (usize, Vec<WorkerStats>) {
        (shared.on_demand_alive.load(Ordering::Relaxed), Vec::new())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// An on-demand worker whose blocking job was dropped before it ran (its runtime is shut
/// down): it retires, failing what is queued with [`Error::Stopped`], since no worker of
/// that runtime will take it.
struct Unrun<W> {
    rx: Receiver<Call<W>>,
    shared: Arc<Shared>,
    exits: Sender<usize>,
    /// Cleared once the job runs.
    armed: bool,
}

impl<W> Unrun<W> {
    /// The job runs: the worker retires the usual way. (Taking `self` makes the job's closure
    /// own the whole guard, not a copy of its flag.)
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<W> Drop for Unrun<W> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.shared.on_demand_alive.fetch_sub(1, Ordering::SeqCst);
        for call in self.rx.try_iter() {
            self.shared.finished(0);
            call.fail(Error::Stopped);
        }
        let _ = self.exits.send(usize::MAX);
    }
}

/// An on-demand worker: takes calls from the shared queue, each with a fresh instance, until
/// the queue is empty; then retires (re-checking, so a call queued meanwhile is not stranded).
fn drain<W: Worker>(
    rx: &Receiver<Call<W>>,
    args: &W::Args,
    shared: &Arc<Shared>,
    max: usize,
    exits: &Sender<usize>,
) {
    mark_worker_thread(shared);
    let alive = &shared.on_demand_alive;
    loop {
        while let Ok(call) = rx.try_recv() {
            if shared.abort.load(Ordering::Acquire) {
                call.fail(Error::Stopped);
            } else {
                run_fresh(call, args, shared);
            }
        }
        alive.fetch_sub(1, Ordering::SeqCst);
        // A submitter that saw us alive may have queued a call without starting a worker.
        if rx.is_empty() || !try_rejoin(alive, max) {
            break;
        }
    }
    let _ = exits.send(0);
}

fn try_rejoin(alive: &crate::sync::AtomicUsize, max: usize) -> bool {
    let mut n = alive.load(Ordering::SeqCst);
    while n < max {
        match alive.compare_exchange(n, n + 1, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return true,
            Err(now) => n = now,
        }
    }
    false
}

/// Builds an instance for one call, runs the call, and drops the instance.
fn run_fresh<W: Worker>(call: Call<W>, args: &W::Args, shared: &Shared) {
    match construct::<W>(args.clone()) {
        Ok(mut w) => super::sync::run_call(call, &mut w, shared, 0),
        Err(e) => call.fail(e.into_call_error()),
    }
    shared.finished(0);
}
