//! What runs a job: one cell holding the promise's slot and the job that takes the call's
//! limits, runs the method, catches its panic, and resolves the promise whatever happens.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;

use super::kind::Limits;
use super::{
    BlockingJob, ExclusiveJob, FailJob, JobFuture, Shareable, SharedBlockingJob, SharedJob,
};
use crate::cancel::context::{CallView, InCall, finish, in_call};
use crate::error::{Error, panic_message};
use crate::future::slot::Slot;
use crate::future::{Completer, PromiseCell};
use crate::limit::context::{WithLimits, with_limits, without_limits};
use crate::limit::{Acquisition, LimitSet, WaitError};
use crate::report::{LimitWait, Outcome};
use crate::sync::{Arc, AtomicBool, DynArc, Mutex, Ordering, lock};

/// The future an `async fn` method call becomes, borrowing the instance for `'a`.
pub type MethodFuture<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, Error<E>>> + Send + 'a>>;

fn panicked<T, E>(payload: Box<dyn std::any::Any + Send>) -> Result<T, Error<E>> {
    Err(Error::Panicked {
        message: panic_message(&*payload),
    })
}

/// The limits a call takes on its worker just before its method runs: one unit of each call
/// and resource limit of the pool's set, held until the method returns.
pub(crate) struct CallLimits {
    /// The pool's set, as the running call sees it (its automatic units already held).
    set: LimitSet,
    /// Set when the pool's `stop_timeout` ran out: a call waiting for its units gives up.
    abort: Arc<AtomicBool>,
    /// Reports how long the call waited (feature `metrics`; nothing without it).
    wait: LimitWait,
}

/// What ends a call's wait for its limits early.
enum NotAcquired<E> {
    /// The call was cancelled: its promise is resolved already.
    Cancelled,
    /// Resolve the promise with this.
    Fail(Error<E>),
}

impl CallLimits {
    /// The units of `set` for one call, waited for unless `abort` is set.
    pub(crate) fn new(set: &LimitSet, abort: &Arc<AtomicBool>, wait: LimitWait) -> Box<Self> {
        Box::new(CallLimits {
            set: set.for_call(),
            abort: abort.clone(),
            wait,
        })
    }

    fn stopping(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }

    fn outcome<E>(
        &self,
        r: Result<Option<Acquisition>, WaitError>,
        cancelled: bool,
    ) -> Result<Option<Acquisition>, NotAcquired<E>> {
        match r {
            Ok(held) => Ok(held),
            Err(WaitError::Cancelled) if cancelled => Err(NotAcquired::Cancelled),
            Err(WaitError::Cancelled) => Err(NotAcquired::Fail(Error::Stopped)),
            Err(WaitError::Limit(e)) => Err(NotAcquired::Fail(Error::Limit(e))),
        }
    }

    /// Waits (blocking this thread) for the call's units; gives up if the call is cancelled
    /// or the pool aborts its queue.
    fn acquire<T, E>(&self, c: &Completer<T, E>) -> Result<Option<Acquisition>, NotAcquired<E>> {
        let started = self.wait.start();
        let r = self
            .set
            .acquire_call(&|| c.is_cancelled() || self.stopping());
        self.wait.done(started);
        self.outcome(r, c.is_cancelled())
    }

    /// As `acquire`, without blocking the thread.
    async fn acquire_async<T, E>(
        &self,
        c: &Completer<T, E>,
    ) -> Result<Option<Acquisition>, NotAcquired<E>> {
        let started = self.wait.start();
        let r = self
            .set
            .acquire_call_async(|| c.is_cancelled() || self.stopping())
            .await;
        self.wait.done(started);
        self.outcome(r, c.is_cancelled())
    }
}

/// The worker's half of a call's [`PromiseCell`]: the method and the limits it takes, until
/// a worker takes them to run (or the call fails without running).
///
/// The limits are boxed: most pools have none, and the cell stays smaller without them.
pub(crate) struct CallJob<F> {
    run: Mutex<Option<(F, Option<Box<CallLimits>>)>>,
}

impl<F: Send> crate::future::Tail for CallJob<F> {}

/// A call: its result slot and its job, in one allocation.
pub(crate) type CallCell<T, E, F> = PromiseCell<Result<T, Error<E>>, CallJob<F>>;

/// A call's cell holding `f` (the method bound to its arguments), its `limits` and its
/// metrics (`report`, read once by whoever resolves the promise).
pub(crate) fn new<T, E, F>(f: F, limits: Limits) -> DynArc<CallCell<T, E, F>>
where
    T: Send + 'static,
    E: Send + 'static,
    F: Send + 'static,
{
    let Limits(limits, report) = limits;
    DynArc::new(PromiseCell {
        slot: Slot::new(),
        cancel: crate::cancel::context::current_parent(),
        report,
        tail: CallJob {
            run: Mutex::new(Some((f, limits))),
        },
    })
}

impl<T, E, F> CallCell<T, E, F> {
    fn take_job(&self) -> Option<(F, Option<Box<CallLimits>>)> {
        lock(&self.tail.run).take()
    }
}

impl<T: Send, E: Send, F: Send> FailJob for CallCell<T, E, F> {
    fn fail(&self, error: Error) {
        let error = Err(error.widen());
        let how = Outcome::of(&error);
        let done = self.slot.complete(error);
        self.report
            .done(if done { how } else { Outcome::CANCELLED });
        drop(self.take_job());
    }
}

impl<W, T, E, F> BlockingJob<W> for CallCell<T, E, F>
where
    T: Send + 'static,
    E: Send + 'static,
    F: FnOnce(&mut W) -> Result<T, Error<E>> + Send + 'static,
{
    fn run(self: DynArc<Self>, w: &mut W) {
        run_sync(self, |f| f(w));
    }
}

impl<W, T, E, F> SharedBlockingJob<W> for CallCell<T, E, F>
where
    W: Send + Sync + 'static,
    T: Send + 'static,
    E: Send + 'static,
    F: FnOnce(&W) -> Result<T, Error<E>> + Send + 'static,
{
    fn run(self: DynArc<Self>, w: &W) {
        run_sync(self, |f| f(w));
    }

    fn share(&self, w: W) -> Box<dyn Shareable<W>> {
        Box::new(std::sync::Arc::new(w))
    }
}

/// Runs a sync call (exclusive or shared) on this thread: takes its job out of the cell,
/// skips it if cancelled, takes its limits (blocking), runs `call` under `catch_unwind` and
/// resolves the promise.
fn run_sync<T, E, F>(cell: DynArc<CallCell<T, E, F>>, call: impl FnOnce(F) -> Result<T, Error<E>>)
where
    T: Send + 'static,
    E: Send + 'static,
    F: Send + 'static,
{
    let job = cell.take_job();
    let view: DynArc<dyn CallView> = cell.clone();
    let c = Completer::from_cell(cell);
    let Some((f, limits)) = job else { return };
    if c.is_cancelled() {
        return;
    }
    let out = match limits {
        None => catch_unwind(AssertUnwindSafe(|| {
            in_call(view, || without_limits(|| call(f)))
        }))
        .unwrap_or_else(panicked),
        Some(limits) => {
            let held = match limits.acquire(&c) {
                Ok(held) => held,
                Err(NotAcquired::Cancelled) => return,
                Err(NotAcquired::Fail(e)) => {
                    c.complete(Err(e));
                    return;
                }
            };
            let out = catch_unwind(AssertUnwindSafe(|| {
                in_call(view, || with_limits(&limits.set, || call(f)))
            }))
            .unwrap_or_else(panicked);
            drop(held);
            out
        }
    };
    finish(c, out);
}

impl<W, T, E, F> ExclusiveJob<W> for CallCell<T, E, F>
where
    T: Send + 'static,
    E: Send + 'static,
    F: for<'a> FnOnce(&'a mut W) -> MethodFuture<'a, T, E> + Send + 'static,
{
    fn start<'a>(self: DynArc<Self>, w: &'a mut W, cx: &mut Context<'_>) -> Option<JobFuture<'a>> {
        start_async(self, cx, |f| f(w))
    }
}

impl<W, T, E, F> SharedJob<W> for CallCell<T, E, F>
where
    T: Send + 'static,
    E: Send + 'static,
    F: for<'a> FnOnce(&'a W) -> MethodFuture<'a, T, E> + Send + 'static,
{
    fn start<'a>(self: DynArc<Self>, w: &'a W, cx: &mut Context<'_>) -> Option<JobFuture<'a>> {
        start_async(self, cx, |f| f(w))
    }
}

/// Starts an `async fn` call (exclusive or shared): takes its job out of the cell, skips it
/// if cancelled, and makes the method's future with `call` for its first poll.
fn start_async<'a, T, E, F>(
    cell: DynArc<CallCell<T, E, F>>,
    cx: &mut Context<'_>,
    call: impl FnOnce(F) -> MethodFuture<'a, T, E>,
) -> Option<JobFuture<'a>>
where
    T: Send + 'static,
    E: Send + 'static,
    F: Send + 'static,
{
    let job = cell.take_job();
    let view: DynArc<dyn CallView> = cell.clone();
    let c = Completer::from_cell(cell);
    let (f, limits) = job?;
    if c.is_cancelled() {
        return None;
    }
    first_poll(c, view, limits, call(f), cx)
}

/// Polls a method's future once, right where the worker took the call: most finish at once,
/// and only those still pending become a boxed [`JobFuture`].
fn first_poll<'a, T, E>(
    c: Completer<T, E>,
    view: DynArc<dyn CallView>,
    limits: Option<Box<CallLimits>>,
    fut: MethodFuture<'a, T, E>,
    cx: &mut Context<'_>,
) -> Option<JobFuture<'a>>
where
    T: Send + 'a,
    E: Send + 'a,
{
    match limits {
        None => {
            let mut run = Unlimited {
                fut,
                view,
                c: Some(c),
            };
            match Pin::new(&mut run).poll(cx) {
                Poll::Ready(()) => None,
                Poll::Pending => Some(Box::pin(run)),
            }
        }
        Some(limits) => {
            let mut run: JobFuture<'a> = Box::pin(run_limited(c, view, *limits, fut));
            match run.as_mut().poll(cx) {
                Poll::Ready(()) => None,
                Poll::Pending => Some(run),
            }
        }
    }
}

/// A method's future that resolves its promise when it finishes (or panics).
struct Unlimited<'a, T, E> {
    fut: MethodFuture<'a, T, E>,
    /// The call as its method sees it ([`crate::check_cancelled`]).
    view: DynArc<dyn CallView>,
    /// Taken when the promise is resolved.
    c: Option<Completer<T, E>>,
}

impl<T, E> Future for Unlimited<'_, T, E> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let poll = || {
            in_call(this.view.clone(), || {
                without_limits(|| this.fut.as_mut().poll(cx))
            })
        };
        let out = match catch_unwind(AssertUnwindSafe(poll)) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(out)) => out,
            Err(payload) => panicked(payload),
        };
        if let Some(c) = this.c.take() {
            finish(c, out);
        }
        Poll::Ready(())
    }
}

/// A method's future that first takes its call limits and holds them until it finishes.
async fn run_limited<T, E>(
    c: Completer<T, E>,
    view: DynArc<dyn CallView>,
    limits: CallLimits,
    fut: MethodFuture<'_, T, E>,
) {
    let held = match limits.acquire_async(&c).await {
        Ok(held) => held,
        Err(NotAcquired::Cancelled) => return,
        Err(NotAcquired::Fail(e)) => {
            c.complete(Err(e));
            return;
        }
    };
    let fut = WithLimits {
        set: limits.set.clone(),
        fut: InCall { view, fut },
    };
    let out = AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(panicked);
    drop(held);
    finish(c, out);
}
