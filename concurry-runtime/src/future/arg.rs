//! [`Arg`]: a worker method's argument given as a value or as a [`Promise`] of one.
//!
//! Handle methods accept either, so results chain from worker to worker without blocking the
//! caller: a promise argument is awaited first (in a task on the caller's multi-thread tokio
//! runtime if it has one, else on the library's), then the call is submitted. Plain values take the direct path, with no extra cost.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::error::Error;
use crate::future::Promise;

/// A worker method argument of type `T`: the value itself, a [`Promise`] of it (awaited
/// before the call is submitted), or a borrowed string for a `String` parameter.
///
/// Because a parameter accepts several types, `"text".into()` cannot pick one: pass `"text"`
/// (or a `String`) directly.
///
/// A promise that fails fails the call with [`Error::Upstream`] (its error type must be
/// `Send + Sync`); [`Error::method_error`] gives back the argument's own typed error when it
/// has the call's error type.
///
/// ```
///
/// pub struct Math;
///
/// #[concurry::worker]
/// impl Math {
///     pub fn new() -> Self { Math }
///     pub fn double(&self, x: u64) -> u64 { x * 2 }
///     pub fn greet(&self, name: String) -> String { format!("hi {name}") }
/// }
///
/// let math = Math::options().max_workers(2).init()?;
/// let two = math.double(1);             // a Promise<u64>
/// let four = math.double(two);          // chained: waits for `two`, caller never blocks
/// assert_eq!(four.result()?, 4);
/// assert_eq!(math.greet("ann").result()?, "hi ann"); // &str for a String parameter
/// # Ok::<(), concurry::Error>(())
/// ```
pub trait Arg<T> {
    /// The value now, or the work that produces it.
    fn into_arg(self) -> Result<T, PendingArg<T>>;
}

/// An argument whose value is not there yet: a promise still running.
pub struct PendingArg<T> {
    value: Pin<Box<dyn Future<Output = Result<T, Error>> + Send>>,
}

impl<T> PendingArg<T> {
    /// Waits for the value; a failed promise becomes [`Error::Upstream`].
    pub async fn resolve(self) -> Result<T, Error> {
        self.value.await
    }
}

impl<T> fmt::Debug for PendingArg<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingArg")
    }
}

impl<T> Arg<T> for T {
    #[inline]
    fn into_arg(self) -> Result<T, PendingArg<T>> {
        Ok(self)
    }
}

impl<T, E> Arg<T> for Promise<T, E>
where
    T: Send + 'static,
    E: fmt::Display + Send + Sync + 'static,
{
    fn into_arg(mut self) -> Result<T, PendingArg<T>> {
        let value: Pin<Box<dyn Future<Output = Result<T, Error>> + Send>> = match self.try_result()
        {
            Some(Ok(v)) => return Ok(v),
            Some(Err(e)) => Box::pin(std::future::ready(Err(upstream(e)))),
            None => Box::pin(async move { self.await.map_err(upstream) }),
        };
        Err(PendingArg { value })
    }
}

/// The failure of an argument promise, as [`Error::Upstream`] keeping its typed error.
fn upstream<E: fmt::Display + Send + Sync + 'static>(e: Error<E>) -> Error {
    let message = e.to_string();
    let error = e
        .into_method_error()
        .map(|e| Box::new(e) as Box<dyn std::any::Any + Send + Sync>);
    Error::Upstream { message, error }
}

impl Arg<String> for &str {
    #[inline]
    fn into_arg(self) -> Result<String, PendingArg<String>> {
        Ok(self.to_owned())
    }
}

impl Arg<String> for &String {
    #[inline]
    fn into_arg(self) -> Result<String, PendingArg<String>> {
        Ok(self.clone())
    }
}

/// Resolves an argument that may still be pending (generated code's slow path).
#[doc(hidden)]
pub async fn resolve<T>(arg: Result<T, PendingArg<T>>) -> Result<T, Error> {
    match arg {
        Ok(v) => Ok(v),
        Err(pending) => pending.resolve().await,
    }
}

/// Runs `submit` once its arguments are resolved, in a task on the caller's multi-thread
/// runtime (else the library's), and forwards the call's outcome to the returned promise
/// (generated code's slow path for a `#[task]`). If that runtime shuts down first, the
/// promise resolves with [`Error::Stopped`].
#[doc(hidden)]
pub fn chain<T, E, F>(submit: F) -> Promise<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
    F: Future<Output = Result<Promise<T, E>, Error>> + Send + 'static,
{
    chain_on(&crate::runtime::for_helpers(None), submit)
}

/// As [`chain`], for a call on `pool`: the task goes to the caller's multi-thread runtime,
/// else to the one the pool's workers run on (async mode), else to the library's (generated
/// code's slow path for a `#[worker]` handle).
#[doc(hidden)]
pub fn chain_in<W, T, E, F>(pool: &crate::pool::Pool<W>, submit: F) -> Promise<T, E>
where
    W: crate::worker::Worker,
    T: Send + 'static,
    E: Send + 'static,
    F: Future<Output = Result<Promise<T, E>, Error>> + Send + 'static,
{
    chain_on(&pool.helper_runtime(), submit)
}

/// Runs `submit` in a task on `runtime`, forwarding the call's outcome to the returned
/// promise; a task dropped unfinished (its runtime shut down) fails it with `Stopped`.
fn chain_on<T, E, F>(runtime: &tokio::runtime::Handle, submit: F) -> Promise<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
    F: Future<Output = Result<Promise<T, E>, Error>> + Send + 'static,
{
    let (promise, completer) = Promise::pending();
    runtime.spawn(async move {
        let outcome = match submit.await {
            Ok(call) => call.await,
            Err(e) => Err(e.widen()),
        };
        completer.complete(outcome);
    });
    promise
}
