//! [`wait`] and [`wait_async`]: split promises into the done and the not yet done.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::driver::{Collect, Driver};
use super::gather::debug_wait;
use super::set::PromiseSet;
use crate::error::Error;
use crate::future::{IntoPromise, Promise};
use crate::progress::Progress;

/// When [`wait`] returns, as in Python's `concurrent.futures.wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReturnWhen {
    /// When every promise has resolved.
    #[default]
    AllCompleted,
    /// When any promise resolves.
    FirstCompleted,
    /// When any promise resolves with an error; like `AllCompleted` if none does.
    FirstError,
}

/// Done and not-done promises, as returned by [`wait`] and [`wait_async`].
pub type DoneAndPending<T, E = Infallible> = (Vec<Promise<T, E>>, Vec<Promise<T, E>>);

/// Blocks until `return_when` is met or `timeout` passes, and splits the promises into
/// `(done, not_done)`, like Python's `concurrent.futures.wait`.
///
/// `done` holds every promise resolved by then, as ready promises: first in the order they
/// resolved (those already resolved when the wait starts in input order), then any found
/// resolved at the end. `not_done` holds the rest, untouched, in
/// input order, so they can go into the next `wait`. With nothing to wait on, both are empty.
/// Inside an async task, use [`wait_async`].
///
/// ```
/// use concurry::{Promise, ReturnWhen, wait};
///
/// let (slow, finish_slow) = Promise::<u8>::pending();
/// let (done, not_done) = wait([slow, Promise::ready(Ok(1))], ReturnWhen::FirstCompleted, None);
/// assert_eq!((done.len(), not_done.len()), (1, 1));
/// assert_eq!(done.into_iter().next().unwrap().result().unwrap(), 1);
///
/// finish_slow.complete(Ok(2));
/// let (done, not_done) = wait(not_done, ReturnWhen::AllCompleted, None);
/// assert_eq!((done.len(), not_done.len()), (1, 0));
/// ```
pub fn wait<T, E, I>(
    promises: I,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> DoneAndPending<T, E>
where
    I: IntoIterator,
    I::Item: IntoPromise<Output = T, Error = E>,
{
    wait_async(promises, return_when, timeout).driver.run()
}

/// [`wait`] with a progress bar, from a message or a [`Progress`]: one tick per promise that
/// resolves during the wait, successes and failures counted apart. The bar ends `■ stopped`
/// when the wait returns before every promise resolved. For the async form, use
/// [`WaitFuture::progress`].
///
/// ```
/// use concurry::{Promise, ReturnWhen, wait_with};
///
/// let calls: Vec<_> = (0..10).map(|i| Promise::<u32>::ready(Ok(i))).collect();
/// let (done, not_done) = wait_with(calls, ReturnWhen::AllCompleted, None, "calls");
/// assert_eq!((done.len(), not_done.len()), (10, 0));
/// ```
pub fn wait_with<T, E, I>(
    promises: I,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
    progress: impl Into<Progress>,
) -> DoneAndPending<T, E>
where
    I: IntoIterator,
    I::Item: IntoPromise<Output = T, Error = E>,
{
    wait_async(promises, return_when, timeout)
        .progress(progress)
        .driver
        .run()
}

/// The async form of [`wait`]: a future of `(done, not_done)`; the timeout starts when it is
/// first polled.
///
/// ```
/// use std::time::Duration;
/// use concurry::{Error, Promise, ReturnWhen, wait_async};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (slow, _keep) = Promise::<u8>::pending();
/// let failed = Promise::ready(Err(Error::Stopped));
/// let (done, not_done) = wait_async([slow, failed], ReturnWhen::FirstError, None).await;
/// assert_eq!((done.len(), not_done.len()), (1, 1));
///
/// let (done, not_done) =
///     wait_async(not_done, ReturnWhen::AllCompleted, Some(Duration::from_millis(10))).await;
/// assert_eq!((done.len(), not_done.len()), (0, 1));
/// # });
/// ```
pub fn wait_async<T, E, I>(
    promises: I,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> WaitFuture<T, E>
where
    I: IntoIterator,
    I::Item: IntoPromise<Output = T, Error = E>,
{
    let mut driver = Driver::new(
        PromiseSet::new(promises),
        Split {
            return_when,
            done: Vec::new(),
        },
    );
    driver.options.timeout = timeout;
    WaitFuture { driver }
}

/// The future returned by [`wait_async`].
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct WaitFuture<T, E = Infallible> {
    driver: Driver<T, E, Split<T, E>>,
}

impl<T, E> WaitFuture<T, E> {
    /// Shows a progress bar while waiting, from a message or a [`Progress`], as
    /// [`wait_with`] does for the blocking form.
    ///
    /// ```
    /// use concurry::{Promise, ReturnWhen, wait_async};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let calls: Vec<_> = (0..10).map(|i| Promise::<u32>::ready(Ok(i))).collect();
    /// let (done, _) = wait_async(calls, ReturnWhen::AllCompleted, None).progress("calls").await;
    /// assert_eq!(done.len(), 10);
    /// # });
    /// ```
    pub fn progress(mut self, progress: impl Into<Progress>) -> Self {
        self.driver.options.progress = Some(progress.into());
        self
    }
}

impl<T, E> Future for WaitFuture<T, E> {
    type Output = DoneAndPending<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().driver.poll_run(cx)
    }
}

impl<T, E> fmt::Debug for WaitFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_wait(f, "WaitFuture", &self.driver)
    }
}

struct Split<T, E> {
    return_when: ReturnWhen,
    done: Vec<Promise<T, E>>,
}

impl<T, E> Collect<T, E> for Split<T, E> {
    type Output = DoneAndPending<T, E>;

    fn feed(&mut self, _index: usize, result: Result<T, Error<E>>) -> ControlFlow<()> {
        let stop = match self.return_when {
            ReturnWhen::AllCompleted => false,
            ReturnWhen::FirstCompleted => true,
            ReturnWhen::FirstError => result.is_err(),
        };
        self.done.push(Promise::ready(result));
        if stop {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn finish(mut self, rest: PromiseSet<T, E>, _timed_out: bool) -> Self::Output {
        let mut not_done = Vec::new();
        for (_, mut p) in rest.into_pending() {
            match p.try_result() {
                Some(r) => self.done.push(Promise::ready(r)),
                None => not_done.push(p),
            }
        }
        (self.done, not_done)
    }
}
