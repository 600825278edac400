//! A call on its way to a worker ([`Call`], [`Job`], the messages of a mailbox), the code
//! that runs one (`cell.rs`: limits, catching panics, completing the promise) and the four
//! kinds of method call one submission path is generic over (`kind.rs`).

pub(crate) mod cell;
pub(crate) mod kind;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::Error;
use crate::sync::DynArc;

/// The rest of a job that did not finish at its first poll, borrowing the instance for `'a`.
pub(crate) type JobFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One call on its way to a worker: what to run and how it may touch the instance.
pub(crate) struct Call<W> {
    pub(crate) method: &'static str,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub(crate) attempt: u32,
    pub(crate) job: Job<W>,
}

/// How a call uses the worker instance.
///
/// A job is the worker's half of the call's [`PromiseCell`](crate::future::PromiseCell):
/// running it resolves the promise with the method's outcome; failing it (or dropping it
/// unrun) resolves the promise with the reason the call could not run.
pub(crate) enum Job<W> {
    /// A sync method: runs to completion with exclusive access.
    Blocking(JobRef<dyn BlockingJob<W>>),
    /// A sync method taking `&self` of a `Sync` worker: in async mode it runs off the
    /// worker's task while the worker goes on serving its shared calls.
    SharedBlocking(JobRef<dyn SharedBlockingJob<W>>),
    /// An `async fn` taking `&mut self`: runs exclusively.
    Exclusive(JobRef<dyn ExclusiveJob<W>>),
    /// An `async fn` taking `&self`: may run concurrently with other shared calls (async mode).
    Shared(JobRef<dyn SharedJob<W>>),
}

/// What every job can do without the instance.
pub(crate) trait FailJob: Send + Sync {
    /// Resolves the promise with `error` unless it is resolved already; the method never runs.
    fn fail(&self, error: Error);
}

/// A sync method call.
pub(crate) trait BlockingJob<W>: FailJob {
    /// Runs the method on `w` and resolves the promise.
    fn run(self: DynArc<Self>, w: &mut W);
}

/// A sync method call taking `&self`, on a worker that is `Sync` (the kind requires it).
pub(crate) trait SharedBlockingJob<W>: FailJob {
    /// Runs the method on `w` and resolves the promise.
    fn run(self: DynArc<Self>, w: &W);

    /// `w`, held so that it can be lent to another thread while its task keeps using it: the
    /// proof that `W: Sync` travels with the call, so the worker's task needs no such bound.
    fn share(&self, w: W) -> Box<dyn Shareable<W>>;
}

/// A worker's instance shared between its task and the thread running its sync `&self`
/// calls (behind a `Box<dyn _>`, which is `Send` whether or not `W` is `Sync`).
pub(crate) trait Shareable<W>: Send {
    /// The instance.
    fn get(&self) -> &W;
    /// The instance, exclusively: `None` while it is lent.
    fn get_mut(&mut self) -> Option<&mut W>;
    /// The instance once more, for another thread.
    fn lend(&self) -> Box<dyn Shareable<W>>;
}

// A plain std `Arc`: the instance is not part of the loom-modelled core.
impl<W: Send + Sync + 'static> Shareable<W> for std::sync::Arc<W> {
    fn get(&self) -> &W {
        self
    }

    fn get_mut(&mut self) -> Option<&mut W> {
        std::sync::Arc::get_mut(self)
    }

    fn lend(&self) -> Box<dyn Shareable<W>> {
        Box::new(self.clone())
    }
}

/// An `async fn` call taking `&mut self`.
pub(crate) trait ExclusiveJob<W>: FailJob {
    /// Starts the method on `w` and polls it once with `cx`; returns the rest if it is not
    /// done (most calls finish at their first poll, and then cost no future of their own).
    fn start<'a>(self: DynArc<Self>, w: &'a mut W, cx: &mut Context<'_>) -> Option<JobFuture<'a>>;
}

/// An `async fn` call taking `&self`.
pub(crate) trait SharedJob<W>: FailJob {
    /// As [`ExclusiveJob::start`], sharing the instance.
    fn start<'a>(self: DynArc<Self>, w: &'a W, cx: &mut Context<'_>) -> Option<JobFuture<'a>>;
}

/// A job on its way to a worker: dropped unrun, it resolves its promise with
/// [`Error::Stopped`], so a call thrown away with its queue never leaves its caller waiting.
pub(crate) struct JobRef<J: ?Sized + FailJob>(Option<DynArc<J>>);

impl<J: ?Sized + FailJob> JobRef<J> {
    pub(crate) fn new(job: DynArc<J>) -> Self {
        JobRef(Some(job))
    }

    /// The job, still in its place.
    pub(crate) fn get(&self) -> &J {
        self.0.as_deref().expect("a job is taken once")
    }

    /// The job, to run now.
    pub(crate) fn take(mut self) -> DynArc<J> {
        self.0.take().expect("a job is taken once")
    }

    /// Resolves the promise with `error` without running the method.
    pub(crate) fn fail(self, error: Error) {
        self.take().fail(error);
    }
}

impl<J: ?Sized + FailJob> Drop for JobRef<J> {
    fn drop(&mut self) {
        if let Some(job) = self.0.take() {
            job.fail(Error::Stopped);
        }
    }
}

/// Runs an exclusive job to completion in the current async context.
pub(crate) async fn run_exclusive<W>(job: DynArc<dyn ExclusiveJob<W>>, w: &mut W) {
    let mut first = Some((job, w));
    let rest = std::future::poll_fn(|cx| {
        let (job, w) = first.take().expect("polled once");
        Poll::Ready(job.start(w, cx))
    })
    .await;
    if let Some(rest) = rest {
        rest.await;
    }
}

/// Runs a shared job to completion in the current async context.
pub(crate) async fn run_shared<W>(job: DynArc<dyn SharedJob<W>>, w: &W) {
    let mut first = Some(job);
    let rest = std::future::poll_fn(|cx| {
        let job = first.take().expect("polled once");
        Poll::Ready(job.start(w, cx))
    })
    .await;
    if let Some(rest) = rest {
        rest.await;
    }
}

impl<W> Call<W> {
    /// Resolves the call's promise with `error` without running it.
    pub(crate) fn fail(self, error: Error) {
        match self.job {
            Job::Blocking(j) => j.fail(error),
            Job::SharedBlocking(j) => j.fail(error),
            Job::Exclusive(j) => j.fail(error),
            Job::Shared(j) => j.fail(error),
        }
    }
}

impl<W> fmt::Debug for Call<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.job {
            Job::Blocking(_) => "blocking",
            Job::SharedBlocking(_) => "shared blocking",
            Job::Exclusive(_) => "exclusive",
            Job::Shared(_) => "shared",
        };
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("kind", &kind)
            .finish()
    }
}

/// A message in a worker's mailbox.
pub(crate) enum Msg<W> {
    Call(Call<W>),
    /// Finish what is queued before this, then exit.
    Stop,
}
