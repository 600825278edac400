//! [`as_completed`]: results in the order they arrive, as an iterator or a stream.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::Stream;
use futures_util::stream::FusedStream;

use super::driver::{poll_timer, start_bar};
use super::set::{Next, PromiseSet};
use crate::error::Error;
use crate::future::IntoPromise;
use crate::progress::{Progress, ProgressBar};

/// Yields each promise's result as it resolves, in completion order (those already resolved
/// when iteration starts come first, in input order).
///
/// The [`AsCompleted`] it returns is a blocking [`Iterator`];
/// [`into_stream`](AsCompleted::into_stream) makes it an async
/// [`Stream`](futures_util::Stream) ([`AsCompletedStream`]). With a [`timeout`](AsCompleted::timeout), once it passes
/// one `Err(Error::Timeout)` is yielded and the sequence ends. Promises not yet yielded when it
/// is dropped are left running.
///
/// ```
/// use concurry::{Promise, as_completed};
///
/// let (a, done_a) = Promise::<char>::pending();
/// let (b, done_b) = Promise::pending();
/// let mut results = as_completed([a, b]);
/// done_b.complete(Ok('b'));
/// assert_eq!(results.next().unwrap().unwrap(), 'b');
/// done_a.complete(Ok('a'));
/// assert_eq!(results.next().unwrap().unwrap(), 'a');
/// assert!(results.next().is_none());
/// ```
pub fn as_completed<T, E, I>(promises: I) -> AsCompleted<T, E>
where
    I: IntoIterator,
    I::Item: IntoPromise<Output = T, Error = E>,
{
    AsCompleted {
        set: PromiseSet::new(promises),
        timeout: None,
        deadline: None,
        timer: None,
        finished: false,
        progress: None,
        bar: None,
    }
}

/// Results in completion order, a blocking [`Iterator`]; made by [`as_completed`].
///
/// ```
/// let mut results = concurry::as_completed([concurry::Promise::<u8>::ready(Ok(1))]);
/// assert_eq!(results.next().unwrap().unwrap(), 1);
/// assert!(results.next().is_none());
/// ```
#[must_use = "iterators and streams are lazy and do nothing unless consumed"]
pub struct AsCompleted<T, E = Infallible> {
    set: PromiseSet<T, E>,
    timeout: Option<Duration>,
    /// For blocking use, fixed by the first `next`.
    deadline: Option<Instant>,
    /// For async use, started by the first poll that has to wait.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    finished: bool,
    /// Turned into `bar` by the first `next` (or poll).
    progress: Option<Progress>,
    bar: Option<ProgressBar>,
}

impl<T, E> AsCompleted<T, E> {
    /// Ends with one `Err(Error::Timeout)` if results are still missing after `timeout`; the
    /// clock starts at the first `next` (or poll).
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::{Error, Promise, as_completed};
    ///
    /// let (slow, _keep) = Promise::<u8>::pending();
    /// let all: Vec<_> = as_completed([Promise::ready(Ok(1)), slow])
    ///     .timeout(Duration::from_millis(10))
    ///     .collect();
    /// assert!(matches!(all[..], [Ok(1), Err(Error::Timeout)]));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Shows a progress bar while results come in, from a message or a [`Progress`]: one tick
    /// per result, successes and failures counted apart. The bar finishes when the sequence
    /// ends, or as `■ stopped` if it is dropped before.
    ///
    /// ```
    /// use concurry::{Promise, as_completed};
    ///
    /// let calls = (0..10).map(|i| Promise::<u32>::ready(Ok(i)));
    /// let total: u32 = as_completed(calls).progress("calls").map(Result::unwrap).sum();
    /// assert_eq!(total, 45);
    /// ```
    pub fn progress(mut self, progress: impl Into<Progress>) -> Self {
        self.progress = Some(progress.into());
        self
    }

    /// Creates the bar on the first `next` or poll.
    fn start(&mut self) {
        if let Some(progress) = self.progress.take() {
            self.bar = start_bar(Some(progress), self.set.len());
        }
    }

    /// Counts a result on the bar, if any, and passes it on.
    fn tick(&self, r: Result<T, Error<E>>) -> Option<Result<T, Error<E>>> {
        if let Some(bar) = &self.bar {
            bar.inc(r.is_ok());
        }
        Some(r)
    }

    /// Marks the sequence ended and finishes the bar.
    fn end(&mut self) {
        self.finished = true;
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }

    /// The same results as an async [`Stream`](futures_util::Stream), for use inside a task.
    ///
    /// A separate type, so `StreamExt` and `Iterator` methods never clash.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use concurry::{Promise, as_completed};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut results = as_completed([Promise::<u8>::ready(Ok(1))]).into_stream();
    /// assert_eq!(results.next().await.unwrap().unwrap(), 1);
    /// assert!(results.next().await.is_none());
    /// # });
    /// ```
    pub fn into_stream(self) -> AsCompletedStream<T, E> {
        AsCompletedStream { inner: self }
    }

    /// How many results are still to come (not counting a timeout).
    ///
    /// ```
    /// let mut it = concurry::as_completed([concurry::Promise::<u8>::ready(Ok(1))]);
    /// assert_eq!(it.remaining(), 1);
    /// it.next();
    /// assert_eq!(it.remaining(), 0);
    /// ```
    pub fn remaining(&self) -> usize {
        if self.finished { 0 } else { self.set.pending() }
    }
}

impl<T, E> Iterator for AsCompleted<T, E> {
    type Item = Result<T, Error<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if self.deadline.is_none() {
            self.deadline = self.timeout.and_then(|d| Instant::now().checked_add(d));
        }
        self.start();
        match self.set.next_blocking(self.deadline) {
            Next::Ready(_, r) => self.tick(r),
            Next::Exhausted => {
                self.end();
                None
            }
            Next::TimedOut => {
                self.end();
                Some(Err(Error::Timeout))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        match self.timeout {
            Some(_) if n > 0 => (1, Some(n + 1)),
            _ => (n, Some(n)),
        }
    }
}

/// Results in completion order, an async [`Stream`](futures_util::Stream); made by
/// [`AsCompleted::into_stream`].
///
/// ```
/// use futures_util::StreamExt;
/// use concurry::{Promise, as_completed};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (slow, finish_slow) = Promise::<u8>::pending();
/// let mut results = as_completed([slow, Promise::ready(Ok(1))]).into_stream();
/// assert_eq!(results.next().await.unwrap().unwrap(), 1);
/// finish_slow.complete(Ok(2));
/// assert_eq!(results.next().await.unwrap().unwrap(), 2);
/// # });
/// ```
#[must_use = "streams are lazy and do nothing unless polled"]
pub struct AsCompletedStream<T, E = Infallible> {
    inner: AsCompleted<T, E>,
}

impl<T, E> AsCompletedStream<T, E> {
    /// How many results are still to come (not counting a timeout).
    ///
    /// ```
    /// let s = concurry::as_completed([concurry::Promise::<u8>::ready(Ok(1))]).into_stream();
    /// assert_eq!(s.remaining(), 1);
    /// ```
    pub fn remaining(&self) -> usize {
        self.inner.remaining()
    }
}

impl<T, E> Stream for AsCompletedStream<T, E> {
    type Item = Result<T, Error<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut self.get_mut().inner;
        if this.finished {
            return Poll::Ready(None);
        }
        this.start();
        match this.set.poll_next(cx) {
            Poll::Ready(Some((_, r))) => Poll::Ready(this.tick(r)),
            Poll::Ready(None) => {
                this.end();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if poll_timer(this.timeout, &mut this.timer, cx) {
                    this.end();
                    return Poll::Ready(Some(Err(Error::Timeout)));
                }
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T, E> FusedStream for AsCompletedStream<T, E> {
    fn is_terminated(&self) -> bool {
        self.inner.finished
    }
}

impl<T, E> std::iter::FusedIterator for AsCompleted<T, E> {}

impl<T, E> Unpin for AsCompleted<T, E> {}

impl<T, E> fmt::Debug for AsCompletedStream<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AsCompletedStream")
            .field(&self.inner)
            .finish()
    }
}

impl<T, E> fmt::Debug for AsCompleted<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.remaining())
            .field("timeout", &self.timeout)
            .field("progress", &self.progress)
            .field("bar", &self.bar)
            .finish()
    }
}
