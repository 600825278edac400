//! Async mode: one tokio task per worker, on the runtime the `runtime` option names, else the
//! multi-thread runtime `init` runs inside (so a caller there reaches its workers without a
//! cross-runtime wake-up), else the library's own. Sync methods run on that runtime's blocking
//! pool. `init` and `stop()` wait for the worker tasks through `runtime::blocking`, so a
//! caller on a worker thread of that runtime hands its other tasks over first; the last handle
//! dropped on a thread of that runtime does not wait at all (`PoolInner`'s `Drop`), since the
//! runtime may be shutting down and about to drop the worker tasks on this very thread. A
//! runtime that shuts down under the pool drops its worker tasks: the calls they held, queued
//! or running, fail with `Error::Stopped`, as do later calls (their mailboxes are gone).
//!
//! `async fn` methods taking `&self` run concurrently on their worker. Sync methods run on
//! tokio's blocking pool, so they never stall the runtime. A sync method taking `&self` of a
//! worker that has `async fn` methods taking `&self` (so it is `Sync`) is a shared call too:
//! such calls run one at a time, in order, on the worker's lane (a blocking job) while the
//! worker goes on serving its `&self` async calls. Anything needing the instance exclusively
//! (methods taking `&mut self`, and the other sync methods) waits until the shared calls in
//! flight, the lane's included, are done, and holds back later calls until it finishes. Sync
//! calls queued right behind one another run in one blocking job, in order (exclusive ones
//! on the worker's instance, shared ones on its lane): one hand-off per run, not per call.

use std::task::{Context, Waker};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::Span;
use tracing::instrument::{Instrument, Instrumented};

use super::{ExitGuard, InitFailure, construct};
use crate::error::Error;
use crate::job::{
    BlockingJob, Call, Job, JobFuture, JobRef, Msg, Shareable, SharedBlockingJob, SharedJob,
    run_exclusive,
};
use crate::pool::backend::{Backend, Gate, Room, Shared, Stopping};
use crate::sync::{Arc, Mutex, Ordering, lock};
use crate::worker::Worker;

/// A pool's worker tasks.
pub(crate) struct Tasks<W> {
    mailboxes: Vec<UnboundedSender<Msg<W>>>,
    /// Each task sends its index here when it ends (even by panic or abort).
    exits: crossbeam_channel::Receiver<usize>,
    /// Aborted when `stop_timeout` runs out.
    tasks: Vec<tokio::task::AbortHandle>,
    /// The runtime the tasks are on.
    runtime: tokio::runtime::Id,
}

/// Starts `n` worker tasks on `runtime` and waits until each has built its instance.
pub(crate) fn start<W: Worker>(
    n: usize,
    runtime: tokio::runtime::Handle,
    args: W::Args,
    shared: &Arc<Shared>,
) -> Result<Tasks<W>, Error<W::InitError>> {
    // Helper tasks of calls from outside a multi-thread runtime go here too.
    drop(shared.home.set(runtime.clone()));
    let (exits_tx, exits) = crossbeam_channel::unbounded();
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<super::Ready<W::InitError>>();
    let mut mailboxes = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for index in 0..n {
        let (tx, rx) = unbounded_channel();
        let (args, shared, ready) = (args.clone(), shared.clone(), ready_tx.clone());
        let guard = ExitGuard {
            index,
            exits: exits_tx.clone(),
        };
        let task = runtime.spawn(async move {
            let _exit = guard;
            // The constructor is sync user code: keep it off the async worker threads.
            let built = tokio::task::spawn_blocking(move || construct::<W>(args)).await;
            match built {
                Ok(Ok(w)) => {
                    let _ = ready.send(Ok(()));
                    drop(ready);
                    serve(index, w, rx, &shared).await;
                }
                Ok(Err(e)) => drop(ready.send(Err(e))),
                Err(e) => drop(ready.send(Err(InitFailure::Other(format!(
                    "the constructor task failed: {e}"
                ))))),
            }
        });
        tasks.push(task.abort_handle());
        mailboxes.push(tx);
    }
    drop(ready_tx);
    // On a worker thread of the runtime the tasks were spawned on, this thread's other tasks
    // (the new worker tasks among them) go to another thread while it waits.
    let failure = crate::runtime::blocking(|| super::await_ready(&ready_rx, n, "task"));
    match failure {
        None => Ok(Tasks {
            mailboxes,
            exits,
            tasks,
            runtime: runtime.id(),
        }),
        // A task ends before it reports only when its runtime drops it: it is shutting down.
        Some(InitFailure::Other(m)) if m.ends_with("ended during start-up") => {
            tasks.iter().for_each(tokio::task::AbortHandle::abort);
            Err(Error::Init {
                message: format!(
                    "{m}: the tokio runtime it was spawned on is shut down; give \
                     `options().runtime(..)` a running one, or build the pool outside it"
                ),
            })
        }
        Some(f) => {
            tasks.iter().for_each(tokio::task::AbortHandle::abort);
            Err(f.into_error())
        }
    }
}

impl<W: Worker> Backend<W> for Tasks<W> {
    fn dispatch(&self, gate: &Gate<'_>, call: Call<W>, room: Room) {
        super::route(gate, room, call, &self.mailboxes);
    }

    fn stop(&self, stop: Stopping<'_>) -> Result<(), Error> {
        self.signal_stop();
        if !stop.await_exits(&self.exits, self.mailboxes.len()) {
            return Ok(());
        }
        stop.abort();
        let unfinished = stop.unfinished();
        let in_blocking = stop
            .shared
            .counters
            .iter()
            .filter(|c| c.is_blocking())
            .count() as u64;
        stop.wake_limits();
        self.tasks.iter().for_each(tokio::task::AbortHandle::abort);
        // Aborting a worker's task ends the calls it had (its queue is dropped on the
        // runtime), but not a sync method running on the blocking pool.
        Err(Error::StopTimeout {
            failed: unfinished.saturating_sub(in_blocking),
            running: in_blocking,
        })
    }

    /// Not on a thread of the runtime the workers are tasks of (dropped by one of its tasks,
    /// or while it shuts down and drops its tasks, the workers among them, perhaps later on
    /// this very thread): waiting there could hold up the thread they need.
    fn may_wait_here(&self) -> bool {
        !tokio::runtime::Handle::try_current().is_ok_and(|h| h.id() == self.runtime)
    }

    fn signal_stop(&self) {
        self.mailboxes.iter().for_each(|m| drop(m.send(Msg::Stop)));
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The worker task. Shared calls go into a set polled concurrently, and sync calls taking
/// `&self` (of a `Sync` worker) into its [`Lane`]; an exclusive call waits for both to drain
/// (later messages wait behind it, preserving order).
async fn serve<W: Worker>(index: usize, w: W, rx: UnboundedReceiver<Msg<W>>, shared: &Arc<Shared>) {
    let mut rx = Mailbox {
        rx,
        batch: Vec::new(),
    };
    let mut inst = Instance::Owned(w);
    let mut lane = Lane::new();
    let mut held: Option<Msg<W>> = None;
    loop {
        let msg = match held.take() {
            Some(m) => m,
            None => match rx.recv().await {
                Some(m) => m,
                None => return,
            },
        };
        let Msg::Call(call) = msg else { return };
        let Call {
            method,
            attempt,
            job,
        } = call;
        let span =
            tracing::debug_span!("concurry.call", worker = %shared.name, method, attempt, index);
        match job {
            Job::Blocking(j) => {
                // Marked for `stop()`: a sync method cannot be aborted with the task.
                shared.counters[index].set_blocking(true);
                // The instance and the mailbox go to the blocking pool: the sync calls queued
                // behind this one run there in the same job, in order, and the first message
                // that is not a sync call comes back. The mailbox is lent through `Reclaim`,
                // so a task aborted by `stop()` fails what is queued at once, even while a
                // sync call still runs.
                let lent = Reclaim(Arc::new(Mutex::new(Some(rx))));
                let (on_pool, slot) = (shared.clone(), lent.0.clone());
                let moved = tokio::task::spawn_blocking(move || {
                    let next = match inst.get_mut() {
                        Some(w) => {
                            crate::cancel::context::with_worker_token(&on_pool.cancel, || {
                                run_blocking(index, w, &slot, j, span, &on_pool)
                            })
                        }
                        None => {
                            j.fail(still_lent());
                            on_pool.finished(index);
                            None
                        }
                    };
                    (inst, next)
                })
                .await;
                shared.counters[index].set_blocking(false);
                let back = lock(&lent.0).take();
                match (moved, back) {
                    // `stop_timeout` ran out during the run: what is queued fails (dropped
                    // with the mailbox) instead of running.
                    (Ok(_), Some(_)) if shared.abort.load(Ordering::Acquire) => return,
                    (Ok((back_w, next)), Some(back_rx)) => {
                        (inst, rx, held) = (back_w, back_rx, next);
                    }
                    // The job catches the methods' panics, so this is a runtime shutdown: the
                    // instance is gone, and with it the worker. (Cancelled before it started,
                    // the job dropped its first call, failing it: counted as finished here.)
                    (Err(e), _) if e.is_cancelled() => {
                        shared.finished(index);
                        return;
                    }
                    _ => return,
                }
            }
            Job::Exclusive(j) => {
                match inst.get_mut() {
                    Some(w) => run_exclusive(j.take(), w).instrument(span).await,
                    None => j.fail(still_lent()),
                }
                shared.finished(index);
            }
            job => {
                // A sync call taking `&self` proves `W: Sync`: from now on the instance is
                // shared with the lane (a plain `W` cannot be lent to another thread).
                if let Job::SharedBlocking(j) = &job {
                    inst = inst.share(j.get());
                }
                // Created only when a call does not finish at its first poll (most do).
                let mut running = None;
                let first = Call {
                    method,
                    attempt,
                    job,
                };
                held = begin(
                    first,
                    || span,
                    &inst,
                    &mut running,
                    &mut lane,
                    shared,
                    index,
                );
                while running.as_ref().is_some_and(|r| !r.is_empty()) || lane.busy() {
                    tokio::select! {
                        biased;
                        Some(()) = next_done(&mut running) => shared.finished(index),
                        () = lane.ended(), if lane.busy() => lane.restart(&inst, shared, index),
                        m = rx.recv(), if held.is_none() => match m {
                            Some(Msg::Call(call)) => {
                                // The span is made only if the call starts here: one held back
                                // gets its span when the loop above takes it.
                                let (method, attempt) = (call.method, call.attempt);
                                let span = || tracing::debug_span!("concurry.call", worker = %shared.name, method, attempt, index);
                                held = begin(call, span, &inst, &mut running, &mut lane, shared, index);
                            }
                            Some(other) => held = Some(other),
                            None => held = Some(Msg::Stop),
                        },
                    }
                }
            }
        }
    }
}

/// A worker's instance: owned by its task until the first sync call taking `&self` (whose
/// kind proves `W: Sync`) shares it with the worker's [`Lane`], for good.
enum Instance<W> {
    Owned(W),
    Shared(Box<dyn Shareable<W>>),
}

impl<W> Instance<W> {
    fn get(&self) -> &W {
        match self {
            Instance::Owned(w) => w,
            Instance::Shared(s) => s.get(),
        }
    }

    /// The instance, exclusively: `None` only while the lane still holds it, which `serve`
    /// never lets an exclusive call see (it waits for the lane to end first).
    fn get_mut(&mut self) -> Option<&mut W> {
        match self {
            Instance::Owned(w) => Some(w),
            Instance::Shared(s) => s.get_mut(),
        }
    }

    /// The instance shared the way `job`'s kind allows, if it is not yet.
    fn share(self, job: &dyn SharedBlockingJob<W>) -> Self {
        match self {
            Instance::Owned(w) => Instance::Shared(job.share(w)),
            shared => shared,
        }
    }
}

/// Why an exclusive call found the instance still lent (a bug; never a panic).
fn still_lent() -> Error {
    Error::WorkerLost {
        message: "the worker's instance was still lent to its sync `&self` calls".into(),
    }
}

/// Starts `call` alongside the shared calls running on the worker: an `async fn` taking
/// `&self` joins `running`, a sync method taking `&self` the lane. Returns the message to
/// hold back until both drain: an exclusive call, or a sync `&self` call that came while the
/// instance was not shared yet (it is shared at the start of the next run).
fn begin<'a, W: Worker>(
    call: Call<W>,
    span: impl FnOnce() -> Span,
    inst: &'a Instance<W>,
    running: &mut Option<FuturesUnordered<Instrumented<JobFuture<'a>>>>,
    lane: &mut Lane<W>,
    shared: &Arc<Shared>,
    index: usize,
) -> Option<Msg<W>> {
    match (call.job, inst) {
        (Job::Shared(j), _) => start_shared(j, span(), inst.get(), running, shared, index),
        (Job::SharedBlocking(j), Instance::Shared(w)) => lane.push(j, span(), &**w, shared, index),
        (job, _) => {
            return Some(Msg::Call(Call {
                method: call.method,
                attempt: call.attempt,
                job,
            }));
        }
    }
    None
}

/// The next shared call of `running` to finish (`None` at once if none is running).
async fn next_done<F: std::future::Future<Output = ()>>(
    running: &mut Option<FuturesUnordered<F>>,
) -> Option<()> {
    match running {
        Some(set) => set.next().await,
        None => None,
    }
}

/// A queued sync call taking `&self`, with its span.
type LaneJob<W> = (JobRef<dyn SharedBlockingJob<W>>, Span);

/// A worker's sync calls taking `&self`: they run in order on the blocking pool while the
/// worker's task goes on serving its `async fn` calls taking `&self`. One blocking job runs
/// what is queued and ends when the queue is empty; the task starts another for later calls.
struct Lane<W> {
    tx: crossbeam_channel::Sender<LaneJob<W>>,
    rx: crossbeam_channel::Receiver<LaneJob<W>>,
    /// The blocking job running the queue, if one is.
    run: Option<tokio::task::JoinHandle<()>>,
}

impl<W: Worker> Lane<W> {
    fn new() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Lane { tx, rx, run: None }
    }

    fn busy(&self) -> bool {
        self.run.is_some()
    }

    /// Queues `job`, starting a blocking job for the queue if none runs.
    fn push(
        &mut self,
        job: JobRef<dyn SharedBlockingJob<W>>,
        span: Span,
        w: &dyn Shareable<W>,
        shared: &Arc<Shared>,
        index: usize,
    ) {
        // Never fails: `self` holds a receiver.
        drop(self.tx.send((job, span)));
        if self.run.is_none() {
            self.start(w, shared, index);
        }
    }

    fn start(&mut self, w: &dyn Shareable<W>, shared: &Arc<Shared>, index: usize) {
        // Marked for `stop()`: a sync method cannot be aborted with the task.
        shared.counters[index].set_blocking(true);
        let (w, rx, shared) = (w.lend(), self.rx.clone(), shared.clone());
        self.run = Some(tokio::task::spawn_blocking(move || {
            crate::cancel::context::with_worker_token(&shared.cancel, || {
                while let Ok((job, span)) = rx.try_recv() {
                    // `stop_timeout` ran out: what is queued fails (dropped) instead.
                    if shared.abort.load(Ordering::Acquire) {
                        return;
                    }
                    {
                        let _entered = span.enter();
                        // Catches the method's panic: the call fails, the lane goes on.
                        job.take().run(w.get());
                    }
                    shared.finished(index);
                }
            });
        }));
    }

    /// Resolves when the blocking job ends (the queue was empty, or the runtime dropped it).
    async fn ended(&mut self) {
        if let Some(run) = self.run.as_mut() {
            drop(run.await);
        }
    }

    /// After [`ended`](Lane::ended): starts another blocking job if calls came meanwhile.
    fn restart(&mut self, inst: &Instance<W>, shared: &Arc<Shared>, index: usize) {
        self.run = None;
        shared.counters[index].set_blocking(false);
        if let Instance::Shared(w) = inst
            && !self.rx.is_empty()
            && !shared.abort.load(Ordering::Acquire)
        {
            self.start(&**w, shared, index);
        }
    }
}

/// A worker's mailbox while its sync calls run on the blocking pool. Dropped with the
/// worker's task (aborted by `stop()` after `stop_timeout`), it drops the mailbox if it is
/// still lent, failing every queued call with `Error::Stopped`.
struct Reclaim<W>(Arc<Mutex<Option<Mailbox<W>>>>);

impl<W> Drop for Reclaim<W> {
    fn drop(&mut self) {
        let left = lock(&self.0).take();
        drop(left);
    }
}

/// Runs the sync call `job`, then every sync call queued right behind it, in order, on this
/// (blocking-pool) thread: one hand-off to the blocking pool per run of queued sync calls
/// instead of one per call. Returns the first message that is not a sync call (`None` if the
/// mailbox is empty or was reclaimed, or if `stop_timeout` ran out and the rest must not run).
fn run_blocking<W: Worker>(
    index: usize,
    w: &mut W,
    rx: &Mutex<Option<Mailbox<W>>>,
    mut job: JobRef<dyn BlockingJob<W>>,
    mut span: Span,
    shared: &Shared,
) -> Option<Msg<W>> {
    loop {
        {
            let _entered = span.enter();
            // Catches the method's panic: the call fails, the run and the worker go on.
            job.take().run(w);
        }
        shared.finished(index);
        if shared.abort.load(Ordering::Acquire) {
            return None;
        }
        let next = lock(rx).as_mut()?.try_recv()?;
        match next {
            Msg::Call(Call {
                method,
                attempt,
                job: Job::Blocking(next),
            }) => {
                job = next;
                span = tracing::debug_span!("concurry.call", worker = %shared.name, method, attempt, index);
            }
            other => return Some(other),
        }
    }
}

/// How many queued messages a worker takes from its channel at once.
const BATCH: usize = 64;

/// A worker's mailbox, drained in batches: one channel operation (and one check of the task's
/// cooperative budget) per batch of queued calls instead of per call.
struct Mailbox<W> {
    rx: UnboundedReceiver<Msg<W>>,
    /// Received and not handled yet, the next one last.
    batch: Vec<Msg<W>>,
}

impl<W> Mailbox<W> {
    /// The next message, or `None` once every sender is gone. Cancel-safe: a message is
    /// taken from the batch only in the poll that returns it.
    async fn recv(&mut self) -> Option<Msg<W>> {
        if let Some(m) = self.batch.pop() {
            return Some(m);
        }
        if self.rx.recv_many(&mut self.batch, BATCH).await == 0 {
            return None;
        }
        self.batch.reverse();
        self.batch.pop()
    }

    /// The next message if one is queued, without waiting.
    fn try_recv(&mut self) -> Option<Msg<W>> {
        self.batch.pop().or_else(|| self.rx.try_recv().ok())
    }
}

/// Starts a shared call right here, polling it once: most finish at once (no await inside,
/// or a ready resource), and only those still pending join the set polled concurrently.
///
/// The first poll gets a no-op waker: a call still pending is polled again, with the set's
/// waker, as soon as it joins the set. (Taking this task's waker would mean holding `&W`
/// across an await, and this task must be `Send` whether or not `W` is `Sync`.)
fn start_shared<'a, W>(
    job: JobRef<dyn SharedJob<W>>,
    span: Span,
    w: &'a W,
    running: &mut Option<FuturesUnordered<Instrumented<JobFuture<'a>>>>,
    shared: &Shared,
    index: usize,
) {
    let rest = {
        let _entered = span.enter();
        job.take().start(w, &mut Context::from_waker(Waker::noop()))
    };
    match rest {
        None => shared.finished(index),
        Some(rest) => running
            .get_or_insert_with(FuturesUnordered::new)
            .push(rest.instrument(span)),
    }
}
