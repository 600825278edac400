//! [`wrap`], [`wrap_future`], [`wrap_try_future`]: turning other handles and futures into a
//! [`Promise`].
//!
//! Two entry points, because Rust cannot have both: a blanket impl for every `Future` would
//! overlap the impls that flatten a tokio `JoinHandle`, a oneshot `Receiver` or a `Promise`
//! (they are futures too), and could never cover a std `JoinHandle` (not a future).
//!
//! - [`wrap`] converts something that already stands for a running computation (a join handle,
//!   a oneshot receiver, a promise) and folds its failure into [`Error`].
//! - [`wrap_future`] and [`wrap_try_future`] start a future on the library runtime.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::Promise;
use crate::error::{Error, panic_message};
use crate::runtime::runtime;

/// Something [`wrap`] can turn into a [`Promise`]: a tokio or std join handle, a tokio oneshot
/// receiver, or a promise (which wraps to itself).
///
/// | source | failure becomes |
/// |---|---|
/// | [`tokio::task::JoinHandle<T>`] | a panic: [`Error::Panicked`]; an aborted task: [`Error::Cancelled`] |
/// | [`std::thread::JoinHandle<T>`] | a panic: [`Error::Panicked`] with its message |
/// | [`tokio::sync::oneshot::Receiver<T>`] | the sender dropped without sending: [`Error::Stopped`] |
/// | [`Promise<T, E>`] | unchanged |
///
/// Implement it for your own handle types to make them usable with [`wrap`] and with every
/// combinator ([`gather`](crate::gather), [`race`](crate::race), ...), which take anything
/// `IntoPromise`. Plain futures are not `IntoPromise`: start them with [`wrap_future`].
///
/// ```
/// use concurry::{IntoPromise, Promise};
///
/// let p: Promise<u8> = std::thread::spawn(|| 7).into_promise();
/// assert_eq!(p.result().unwrap(), 7);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be turned into a `concurry::Promise` by `wrap`",
    label = "not a join handle, a oneshot receiver or a promise",
    note = "to run a future (an `async` block, say), use `concurry::wrap_future(fut)`"
)]
pub trait IntoPromise {
    /// The value the promise resolves with.
    type Output;
    /// The user error type kept in [`Error::Method`].
    type Error;

    /// Converts `self` into a promise of its outcome.
    fn into_promise(self) -> Promise<Self::Output, Self::Error>;
}

/// Turns a tokio or std join handle, a tokio oneshot receiver or a [`Promise`] into a
/// [`Promise`], folding the source's own failure into [`Error`] (see [`IntoPromise`] for the
/// mapping).
///
/// Nothing is spawned for a promise. The others are watched from the library runtime (a std
/// thread is joined on its blocking pool). Cancelling the returned promise aborts a tokio
/// task and closes a oneshot receiver; a std thread cannot be stopped and runs to its end.
/// To run a plain future, use [`wrap_future`].
///
/// ```
/// use concurry::{Error, wrap};
///
/// let from_thread = wrap(std::thread::spawn(|| 2 + 2));
/// assert_eq!(from_thread.result().unwrap(), 4);
///
/// let crashed = wrap(std::thread::spawn(|| -> u8 { panic!("boom") }));
/// assert!(matches!(crashed.result(), Err(Error::Panicked { message }) if message == "boom"));
///
/// let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
/// drop(tx);
/// assert!(matches!(wrap(rx).result(), Err(Error::Stopped)));
/// ```
pub fn wrap<X: IntoPromise>(source: X) -> Promise<X::Output, X::Error> {
    source.into_promise()
}

/// Runs `future` on the library runtime and returns a promise of its output.
///
/// A panic in the future resolves the promise with [`Error::Panicked`]; cancelling the promise
/// drops the future at its next `.await`.
///
/// ```
/// let p = concurry::wrap_future(async { 5 });
/// assert_eq!(p.result().unwrap(), 5);
/// ```
pub fn wrap_future<F>(future: F) -> Promise<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    forward(future.map(Ok))
}

/// Like [`wrap_future`] for a future returning `Result<T, E>`: its `Err(e)` becomes
/// [`Error::Method(e)`](Error::Method), so the promise is a `Promise<T, E>`.
///
/// ```
/// use concurry::Error;
///
/// let p = concurry::wrap_try_future(async { "x".parse::<u8>() });
/// assert!(matches!(p.result(), Err(Error::Method(_))));
/// ```
pub fn wrap_try_future<F, T, E>(future: F) -> Promise<T, E>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    forward(future.map(|r| r.map_err(Error::Method)))
}

/// Spawns `future` on the library runtime, completing the promise with its output (or
/// `Panicked`), and aborts the task when the promise is cancelled.
fn forward<T, E, F>(future: F) -> Promise<T, E>
where
    F: Future<Output = Result<T, Error<E>>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let (promise, completer) = Promise::pending();
    let task = runtime().spawn(async move {
        let outcome = AssertUnwindSafe(future).catch_unwind().await;
        completer.complete(outcome.unwrap_or_else(|payload| {
            Err(Error::Panicked {
                message: panic_message(&*payload),
            })
        }));
    });
    abort_on_cancel(&promise, task.abort_handle());
    promise
}

fn abort_on_cancel<T, E>(promise: &Promise<T, E>, task: tokio::task::AbortHandle) {
    promise.on_done(move |r| {
        if matches!(r, Err(Error::Cancelled)) {
            task.abort();
        }
    });
}

impl<T, E> IntoPromise for Promise<T, E> {
    type Output = T;
    type Error = E;

    fn into_promise(self) -> Promise<T, E> {
        self
    }
}

impl<T: Send + 'static> IntoPromise for tokio::task::JoinHandle<T> {
    type Output = T;
    type Error = Infallible;

    fn into_promise(self) -> Promise<T> {
        let task = self.abort_handle();
        let promise = forward(self.map(|r| {
            r.map_err(|e| match e.try_into_panic() {
                Ok(payload) => Error::Panicked {
                    message: panic_message(&*payload),
                },
                Err(_) => Error::Cancelled,
            })
        }));
        abort_on_cancel(&promise, task);
        promise
    }
}

impl<T: Send + 'static> IntoPromise for std::thread::JoinHandle<T> {
    type Output = T;
    type Error = Infallible;

    fn into_promise(self) -> Promise<T> {
        let (promise, completer) = Promise::pending();
        runtime().spawn_blocking(move || {
            completer.complete(self.join().map_err(|payload| Error::Panicked {
                message: panic_message(&*payload),
            }))
        });
        promise
    }
}

impl<T: Send + 'static> IntoPromise for tokio::sync::oneshot::Receiver<T> {
    type Output = T;
    type Error = Infallible;

    fn into_promise(self) -> Promise<T> {
        forward(self.map(|r| r.map_err(|_| Error::Stopped)))
    }
}
