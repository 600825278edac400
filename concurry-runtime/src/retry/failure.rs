//! [`Failure`]: a failed attempt as `retry_on` predicates see it, whatever the method's
//! error type.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;

/// A failed attempt of a worker method, as seen by [`RetryConfig::retry_on`](super::RetryConfig::retry_on).
///
/// The method's own error is reachable by type with [`downcast_ref`](Failure::downcast_ref);
/// [`find_error`](Failure::find_error) and [`is`](Failure::is) also look inside
/// `Box<dyn Error + Send + Sync>` errors (and `anyhow::Error` with the `anyhow` feature),
/// along their `source()` chain.
///
/// ```
/// use concurry::Failure;
///
/// let err: Box<dyn std::error::Error + Send + Sync> = std::io::Error::other("down").into();
/// let f = Failure::method_error(&err, 1, "call");
/// assert!(f.is::<std::io::Error>());
/// assert!(!f.is::<std::fmt::Error>());
/// assert_eq!(f.attempt(), 1);
/// ```
#[derive(Clone, Copy)]
pub struct Failure<'a> {
    kind: Kind<'a>,
    attempt: u32,
    method: &'static str,
}

#[derive(Clone, Copy)]
enum Kind<'a> {
    Method(&'a (dyn Any + Send)),
    Panicked(&'a str),
    WorkerLost(&'a str),
}

impl<'a> Failure<'a> {
    /// A failure with the method's own error `error`, on attempt `attempt` (1-based).
    pub fn method_error<E: Any + Send>(error: &'a E, attempt: u32, method: &'static str) -> Self {
        Failure {
            kind: Kind::Method(error),
            attempt,
            method,
        }
    }

    /// A failure with an error already behind `dyn Any` (a durable task's, on its node).
    #[cfg(feature = "cluster")]
    pub(crate) fn method_dyn(
        error: &'a (dyn Any + Send),
        attempt: u32,
        method: &'static str,
    ) -> Self {
        Failure {
            kind: Kind::Method(error),
            attempt,
            method,
        }
    }

    /// A failure by panic, with its message.
    pub fn panic(message: &'a str, attempt: u32, method: &'static str) -> Self {
        Failure {
            kind: Kind::Panicked(message),
            attempt,
            method,
        }
    }

    /// A failure because the worker running the attempt was lost (in process mode: its
    /// child process died), with what happened to it.
    pub fn worker_lost(message: &'a str, attempt: u32, method: &'static str) -> Self {
        Failure {
            kind: Kind::WorkerLost(message),
            attempt,
            method,
        }
    }

    /// Which attempt failed (1 for the first call).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The method's name.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// True if the attempt panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, Kind::Panicked(_))
    }

    /// The panic message, if the attempt panicked.
    pub fn panic_message(&self) -> Option<&'a str> {
        match self.kind {
            Kind::Panicked(m) => Some(m),
            Kind::Method(_) | Kind::WorkerLost(_) => None,
        }
    }

    /// True if the worker running the attempt was lost (a child process that died).
    ///
    /// ```
    /// use concurry::{Failure, RetryConfig};
    ///
    /// let f = Failure::worker_lost("worker process 42 ended (signal: 9)", 1, "embed");
    /// assert!(f.is_worker_lost() && !f.is_panic());
    /// // Retry lost workers only, never the method's own errors:
    /// let retry = RetryConfig::attempts(4)
    ///     .retry_on_worker_lost(true)
    ///     .retry_on(|f| f.is_worker_lost());
    /// # let _ = retry;
    /// ```
    pub fn is_worker_lost(&self) -> bool {
        matches!(self.kind, Kind::WorkerLost(_))
    }

    /// True if the method's error is a `T`, or for a boxed `dyn Error` (or `anyhow::Error`)
    /// has a `T` along its `source()` chain.
    pub fn is<T: StdError + 'static>(&self) -> bool {
        self.find_error::<T>().is_some()
    }

    /// The method's own error, if it is a `T` (any type: typed error enums need not
    /// implement `std::error::Error`).
    pub fn downcast_ref<T: Any>(&self) -> Option<&'a T> {
        match self.kind {
            Kind::Method(error) => error.downcast_ref::<T>(),
            Kind::Panicked(_) | Kind::WorkerLost(_) => None,
        }
    }

    /// The method's error as a `T`: the error itself, or for a boxed `dyn Error` (or
    /// `anyhow::Error`) the first error of type `T` along its `source()` chain.
    pub fn find_error<T: StdError + 'static>(&self) -> Option<&'a T> {
        let Kind::Method(error) = self.kind else {
            return None;
        };
        if let Some(t) = error.downcast_ref::<T>() {
            return Some(t);
        }
        let mut next = as_std_error(error);
        while let Some(e) = next {
            if let Some(t) = e.downcast_ref::<T>() {
                return Some(t);
            }
            next = e.source();
        }
        None
    }
}

/// The error as a `dyn Error`, for the boxed error types users return.
fn as_std_error<'a>(error: &'a (dyn Any + Send)) -> Option<&'a (dyn StdError + 'static)> {
    if let Some(b) = error.downcast_ref::<Box<dyn StdError + Send + Sync>>() {
        return Some(&**b);
    }
    if let Some(b) = error.downcast_ref::<Box<dyn StdError + Send>>() {
        return Some(&**b);
    }
    #[cfg(feature = "anyhow")]
    if let Some(a) = error.downcast_ref::<anyhow::Error>() {
        let e: &(dyn StdError + Send + Sync + 'static) = a.as_ref();
        return Some(e);
    }
    None
}

impl fmt::Debug for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Failure");
        d.field("method", &self.method)
            .field("attempt", &self.attempt);
        match self.kind {
            Kind::Method(_) => d.field("kind", &"method error"),
            Kind::Panicked(m) => d.field("panic", &m),
            Kind::WorkerLost(m) => d.field("worker_lost", &m),
        };
        d.finish()
    }
}
