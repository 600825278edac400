//! The [`Worker`] trait that `#[worker]` implements, and the messages a pool sends its workers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::error::Error;

/// A future a job produces, borrowing the worker instance for `'a`.
pub(crate) type JobFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A type whose instances can run as workers of a pool.
///
/// Implemented by `#[worker]`; you do not implement it by hand. The constructor arguments
/// travel to every worker as [`Worker::Args`], and each worker builds its own instance with
/// [`Worker::construct`].
pub trait Worker: Send + Sized + 'static {
    /// The constructor's arguments, as a tuple.
    type Args: Clone + Send + 'static;
    /// The constructor's error (`Infallible` for a constructor returning `Self`).
    type InitError: fmt::Display + Send + 'static;
    /// The type's name, used in tracing spans, thread names and stats.
    const NAME: &'static str;

    /// Builds one instance (runs the user's constructor).
    fn construct(args: Self::Args) -> Result<Self, Self::InitError>;
}

/// One call on its way to a worker: what to run and how it may touch the instance.
pub(crate) struct Call<W> {
    pub(crate) method: &'static str,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub(crate) attempt: u32,
    pub(crate) job: Job<W>,
}

/// How a call uses the worker instance.
///
/// Each job is given the instance, or the reason there is none (`Err`), and always resolves
/// its promise: with the method's outcome, or with that reason.
pub(crate) enum Job<W> {
    /// A sync method: runs to completion with exclusive access.
    Blocking(BlockingJob<W>),
    /// An `async fn` taking `&mut self`: runs exclusively.
    Exclusive(ExclusiveJob<W>),
    /// An `async fn` taking `&self`: may run concurrently with other shared calls (async mode).
    Shared(SharedJob<W>),
}

pub(crate) type BlockingJob<W> = Box<dyn FnOnce(Result<&mut W, Error>) + Send>;
pub(crate) type ExclusiveJob<W> =
    Box<dyn for<'a> FnOnce(Result<&'a mut W, Error>) -> JobFuture<'a> + Send>;
pub(crate) type SharedJob<W> =
    Box<dyn for<'a> FnOnce(Result<&'a W, Error>) -> JobFuture<'a> + Send>;

impl<W> Call<W> {
    /// Resolves the call's promise with `error` without running it.
    pub(crate) fn fail(self, error: Error) {
        match self.job {
            Job::Blocking(f) => f(Err(error)),
            // The future of a failed job is ready at once: it only completes the promise.
            Job::Exclusive(f) => crate::runtime::run_ready(f(Err(error))),
            Job::Shared(f) => crate::runtime::run_ready(f(Err(error))),
        }
    }
}

impl<W> fmt::Debug for Call<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.job {
            Job::Blocking(_) => "blocking",
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
