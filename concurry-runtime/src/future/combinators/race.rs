//! [`race`] and [`first_success`]: the first result wins, the rest are cancelled.

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
use crate::future::IntoPromise;

/// The first promise to resolve wins, value or error; the others are then cancelled
/// ([`Promise::cancel`](crate::Promise::cancel)).
///
/// If several are already resolved when the wait starts, the first of them in input order
/// wins.
///
/// Returns a [`Race`]: block with [`wait`](Race::wait) or `.await` it. When it returns, every
/// promise it was given has resolved or been cancelled, also on timeout.
///
/// A race of nothing resolves at once with [`Error::Cancelled`] (there was no contestant).
///
/// ```
/// use concurry::{Promise, race};
///
/// let (slow, slow_call) = Promise::<&str>::pending();
/// let (fast, fast_call) = Promise::pending();
/// fast_call.complete(Ok("fast"));
/// assert_eq!(race([slow, fast]).wait().unwrap(), "fast");
/// assert!(slow_call.is_cancelled());
/// ```
pub fn race<T, E, I>(promises: I) -> Race<T, E>
where
    I: IntoIterator,
    I::Item: IntoPromise<Output = T, Error = E>,
{
    Race {
        driver: Driver::new(PromiseSet::new(promises), First { winner: None }),
    }
}

/// The first promise to resolve with `Ok` wins; the others are then cancelled. Failures are
/// skipped; if every promise fails, the error of the last to fail is returned.
///
/// Returns a [`FirstSuccess`]: block with [`wait`](FirstSuccess::wait) or `.await` it. When it
/// returns, every promise it was given has resolved or been cancelled, also on timeout. With
/// nothing to wait on it resolves at once with [`Error::Cancelled`].
///
/// ```
/// use concurry::{Error, Promise, first_success};
///
/// let failed = Promise::<u8>::ready(Err(Error::Stopped));
/// let (slow, slow_call) = Promise::pending();
/// let worked = Promise::ready(Ok(7));
/// assert_eq!(first_success([failed, slow, worked]).wait().unwrap(), 7);
/// assert!(slow_call.is_cancelled());
/// ```
pub fn first_success<T, E, I>(promises: I) -> FirstSuccess<T, E>
where
    I: IntoIterator,
    I::Item: IntoPromise<Output = T, Error = E>,
{
    FirstSuccess {
        driver: Driver::new(
            PromiseSet::new(promises),
            FirstOk {
                winner: None,
                last_error: None,
            },
        ),
    }
}

/// The wait built by [`race`]; a [`Future`] as well.
#[must_use = "a race does nothing unless you `.wait()` or `.await` it"]
pub struct Race<T, E = Infallible> {
    driver: Driver<T, E, First<T, E>>,
}

impl<T, E> Race<T, E> {
    /// Gives up after `timeout` with [`Error::Timeout`], cancelling every promise; the clock
    /// starts when you call [`wait`](Race::wait) or first poll.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::{Error, Promise, race};
    ///
    /// let (p, call) = Promise::<u8>::pending();
    /// assert!(matches!(race([p]).timeout(Duration::from_millis(5)).wait(), Err(Error::Timeout)));
    /// assert!(call.is_cancelled());
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.driver.options.timeout = Some(timeout);
        self
    }

    /// Blocks the calling thread until the first promise resolves.
    ///
    /// # Errors
    ///
    /// The winner's error, [`Error::Timeout`], or [`Error::Cancelled`] for an empty race.
    ///
    /// ```
    /// let r = concurry::race(Vec::<concurry::Promise<u8>>::new()).wait();
    /// assert!(matches!(r, Err(concurry::Error::Cancelled)));
    /// ```
    pub fn wait(self) -> Result<T, Error<E>> {
        self.driver.run()
    }
}

impl<T, E> Future for Race<T, E> {
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().driver.poll_run(cx)
    }
}

impl<T, E> fmt::Debug for Race<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_wait(f, "Race", &self.driver)
    }
}

/// The wait built by [`first_success`]; a [`Future`] as well.
#[must_use = "a first_success does nothing unless you `.wait()` or `.await` it"]
pub struct FirstSuccess<T, E = Infallible> {
    driver: Driver<T, E, FirstOk<T, E>>,
}

impl<T, E> FirstSuccess<T, E> {
    /// Gives up after `timeout` with [`Error::Timeout`], cancelling the promises still running;
    /// the clock starts when you call [`wait`](FirstSuccess::wait) or first poll.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurry::{Error, Promise, first_success};
    ///
    /// let (p, _call) = Promise::<u8>::pending();
    /// let r = first_success([p]).timeout(Duration::from_millis(5)).wait();
    /// assert!(matches!(r, Err(Error::Timeout)));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.driver.options.timeout = Some(timeout);
        self
    }

    /// Blocks the calling thread until a promise succeeds or all have failed.
    ///
    /// # Errors
    ///
    /// The last failure when every promise failed, [`Error::Timeout`], or
    /// [`Error::Cancelled`] when given nothing.
    ///
    /// ```
    /// use concurry::{Error, Promise, first_success};
    ///
    /// let r = first_success([
    ///     Promise::<u8>::ready(Err(Error::Stopped)),
    ///     Promise::ready(Err(Error::Timeout)),
    /// ])
    /// .wait();
    /// assert!(matches!(r, Err(Error::Timeout)));
    /// ```
    pub fn wait(self) -> Result<T, Error<E>> {
        self.driver.run()
    }
}

impl<T, E> Future for FirstSuccess<T, E> {
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().driver.poll_run(cx)
    }
}

impl<T, E> fmt::Debug for FirstSuccess<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_wait(f, "FirstSuccess", &self.driver)
    }
}

struct First<T, E> {
    winner: Option<Result<T, Error<E>>>,
}

impl<T, E> Collect<T, E> for First<T, E> {
    type Output = Result<T, Error<E>>;

    fn feed(&mut self, _index: usize, result: Result<T, Error<E>>) -> ControlFlow<()> {
        self.winner = Some(result);
        ControlFlow::Break(())
    }

    fn finish(self, rest: PromiseSet<T, E>, timed_out: bool) -> Self::Output {
        rest.cancel_pending();
        match self.winner {
            Some(r) => r,
            None if timed_out => Err(Error::Timeout),
            None => Err(Error::Cancelled),
        }
    }
}

struct FirstOk<T, E> {
    winner: Option<T>,
    last_error: Option<Error<E>>,
}

impl<T, E> Collect<T, E> for FirstOk<T, E> {
    type Output = Result<T, Error<E>>;

    fn feed(&mut self, _index: usize, result: Result<T, Error<E>>) -> ControlFlow<()> {
        match result {
            Ok(v) => {
                self.winner = Some(v);
                ControlFlow::Break(())
            }
            Err(e) => {
                self.last_error = Some(e);
                ControlFlow::Continue(())
            }
        }
    }

    fn finish(self, rest: PromiseSet<T, E>, timed_out: bool) -> Self::Output {
        rest.cancel_pending();
        match (self.winner, self.last_error) {
            (Some(v), _) => Ok(v),
            (None, _) if timed_out => Err(Error::Timeout),
            (None, Some(e)) => Err(e),
            (None, None) => Err(Error::Cancelled),
        }
    }
}
