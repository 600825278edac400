//! [`gather`]: every result, in input order.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::driver::{Collect, Driver};
use super::set::PromiseSet;
use crate::error::Error;
use crate::future::IntoPromise;
use crate::progress::Progress;

/// Waits for every promise and gives their values in input order.
///
/// Returns a [`Gather`]: block on it with [`wait`](Gather::wait) or `.await` it. The first
/// error to arrive ends the wait and is returned (errors already there when the wait starts
/// count in input order); the other calls are left running and their results dropped. [`settled`](Gather::settled) keeps every outcome
/// instead, and [`timeout`](Gather::timeout) bounds the wait. Gathering nothing gives
/// `Ok(vec![])`.
///
/// Takes anything [`IntoPromise`]: promises, join handles, oneshot receivers.
///
/// ```
/// use concurry::{Promise, gather};
///
/// let (a, done_a) = Promise::<u32>::pending();
/// let (b, done_b) = Promise::<u32>::pending();
/// done_b.complete(Ok(2)); // finishing out of order does not change the output order
/// done_a.complete(Ok(1));
/// assert_eq!(gather([a, b]).wait().unwrap(), vec![1, 2]);
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let handles = (0..3).map(|i| std::thread::spawn(move || i * 10));
/// assert_eq!(gather(handles).await.unwrap(), vec![0, 10, 20]);
/// # });
/// ```
pub fn gather<T, E, I>(promises: I) -> Gather<T, E>
where
    I: IntoIterator,
    I::Item: IntoPromise<Output = T, Error = E>,
{
    let set = PromiseSet::new(promises);
    let values = (0..set.len()).map(|_| None).collect();
    Gather {
        driver: Driver::new(
            set,
            AllValues {
                values,
                error: None,
            },
        ),
    }
}

/// The wait built by [`gather`]: every value in input order, or the first error.
///
/// Block with [`wait`](Gather::wait), or `.await` it (it is a [`Future`]) on any executor.
#[must_use = "a gather does nothing unless you `.wait()` or `.await` it"]
pub struct Gather<T, E = Infallible> {
    driver: Driver<T, E, AllValues<T, E>>,
}

impl<T, E> Gather<T, E> {
    /// Gives up after `timeout` with [`Error::Timeout`]; the clock starts when you call
    /// [`wait`](Gather::wait) or first poll.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::{Error, Promise, gather};
    ///
    /// let (slow, _keep) = Promise::<u8>::pending();
    /// let out = gather([Promise::ready(Ok(1)), slow]).timeout(Duration::from_millis(10)).wait();
    /// assert!(matches!(out, Err(Error::Timeout)));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.driver.options.timeout = Some(timeout);
        self
    }

    /// Shows a progress bar while waiting, from a message or a [`Progress`]: one tick per
    /// result, successes and failures counted apart (`✓ 95 ✗ 5`), drawn only when stderr is a
    /// terminal. The bar finishes when the wait ends: `✔ done`, or `✘ failed` at the first
    /// error.
    ///
    /// ```
    /// use concurry::{Promise, gather};
    ///
    /// let calls = (0..100).map(|i| Promise::<u32>::ready(Ok(i)));
    /// let answers = gather(calls).progress("LLM calls").wait().unwrap();
    /// assert_eq!(answers.len(), 100);
    /// ```
    pub fn progress(mut self, progress: impl Into<Progress>) -> Self {
        self.driver.options.progress = Some(progress.into());
        self
    }

    /// Keeps every outcome instead of stopping at the first error: see [`Settled`].
    ///
    /// ```
    /// use concurry::{Error, Promise, gather};
    ///
    /// let out = gather([Promise::<u8>::ready(Ok(1)), Promise::ready(Err(Error::Cancelled))])
    ///     .settled()
    ///     .wait();
    /// assert!(matches!(out[..], [Ok(1), Err(Error::Cancelled)]));
    /// ```
    pub fn settled(self) -> Settled<T, E> {
        Settled {
            driver: self.driver.with_collect(|set| AllOutcomes {
                outcomes: (0..set.len()).map(|_| None).collect(),
            }),
        }
    }

    /// Blocks the calling thread until every value is in (input order) or the first error.
    ///
    /// Inside an async task, `.await` the gather instead.
    ///
    /// # Errors
    ///
    /// The first error a promise resolved with, or [`Error::Timeout`].
    ///
    /// ```
    /// use concurry::{Error, Promise, gather};
    ///
    /// let (never, _keep) = Promise::<u8>::pending();
    /// let out = gather([never, Promise::ready(Err(Error::Stopped))]).wait();
    /// assert!(matches!(out, Err(Error::Stopped)));
    /// ```
    pub fn wait(self) -> Result<Vec<T>, Error<E>> {
        self.driver.run()
    }
}

impl<T, E> Future for Gather<T, E> {
    type Output = Result<Vec<T>, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().driver.poll_run(cx)
    }
}

impl<T, E> fmt::Debug for Gather<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_wait(f, "Gather", &self.driver)
    }
}

/// The wait built by [`Gather::settled`]: every promise's outcome, value or error, in input
/// order.
///
/// Block with [`wait`](Settled::wait), or `.await` it. With a [`timeout`](Settled::timeout),
/// the promises still unresolved when it passes are given as [`Error::Timeout`].
#[must_use = "a gather does nothing unless you `.wait()` or `.await` it"]
pub struct Settled<T, E = Infallible> {
    driver: Driver<T, E, AllOutcomes<T, E>>,
}

impl<T, E> Settled<T, E> {
    /// Stops waiting after `timeout`; the unresolved promises become `Err(Error::Timeout)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::{Error, Promise, gather};
    ///
    /// let (slow, _keep) = Promise::<u8>::pending();
    /// let out = gather([Promise::ready(Ok(1)), slow])
    ///     .settled()
    ///     .timeout(Duration::from_millis(10))
    ///     .wait();
    /// assert!(matches!(out[..], [Ok(1), Err(Error::Timeout)]));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.driver.options.timeout = Some(timeout);
        self
    }

    /// Shows a progress bar while waiting, as [`Gather::progress`]; failures are counted and
    /// the wait goes on.
    ///
    /// ```
    /// use concurry::{Error, Progress, Promise, gather};
    ///
    /// let outcomes = gather([Promise::<u8>::ready(Ok(1)), Promise::ready(Err(Error::Cancelled))])
    ///     .settled()
    ///     .progress(Progress::new("checks").log_every(1).log_to(std::io::sink()))
    ///     .wait();
    /// assert_eq!(outcomes.len(), 2);
    /// ```
    pub fn progress(mut self, progress: impl Into<Progress>) -> Self {
        self.driver.options.progress = Some(progress.into());
        self
    }

    /// Blocks the calling thread until every promise has resolved (or the timeout passed).
    ///
    /// ```
    /// let outcomes = concurry::gather([concurry::Promise::<u8>::ready(Ok(3))]).settled().wait();
    /// assert_eq!(outcomes.len(), 1);
    /// ```
    pub fn wait(self) -> Vec<Result<T, Error<E>>> {
        self.driver.run()
    }
}

impl<T, E> Future for Settled<T, E> {
    type Output = Vec<Result<T, Error<E>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().driver.poll_run(cx)
    }
}

impl<T, E> fmt::Debug for Settled<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_wait(f, "Settled", &self.driver)
    }
}

pub(super) fn debug_wait<T, E, C>(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    driver: &Driver<T, E, C>,
) -> fmt::Result {
    let mut s = f.debug_struct(name);
    if let Some(set) = driver.set() {
        s.field("len", &set.len()).field("pending", &set.pending());
    }
    s.field("timeout", &driver.options.timeout)
        .field("progress", &driver.options.progress)
        .finish()
}

struct AllValues<T, E> {
    values: Vec<Option<T>>,
    error: Option<Error<E>>,
}

impl<T, E> Collect<T, E> for AllValues<T, E> {
    type Output = Result<Vec<T>, Error<E>>;

    fn feed(&mut self, index: usize, result: Result<T, Error<E>>) -> ControlFlow<()> {
        match result {
            Ok(v) => {
                self.values[index] = Some(v);
                ControlFlow::Continue(())
            }
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }

    fn finish(self, _rest: PromiseSet<T, E>, timed_out: bool) -> Self::Output {
        if let Some(e) = self.error {
            return Err(e);
        }
        if timed_out {
            return Err(Error::Timeout);
        }
        Ok(self
            .values
            .into_iter()
            .map(|v| v.expect("every promise of a finished gather has a value"))
            .collect())
    }
}

struct AllOutcomes<T, E> {
    outcomes: Vec<Option<Result<T, Error<E>>>>,
}

impl<T, E> Collect<T, E> for AllOutcomes<T, E> {
    type Output = Vec<Result<T, Error<E>>>;

    fn feed(&mut self, index: usize, result: Result<T, Error<E>>) -> ControlFlow<()> {
        self.outcomes[index] = Some(result);
        ControlFlow::Continue(())
    }

    fn finish(mut self, rest: PromiseSet<T, E>, _timed_out: bool) -> Self::Output {
        // Those that resolved just as the deadline passed still count.
        for (i, mut p) in rest.into_pending() {
            self.outcomes[i] = p.try_result();
        }
        self.outcomes
            .into_iter()
            .map(|r| r.unwrap_or(Err(Error::Timeout)))
            .collect()
    }
}
