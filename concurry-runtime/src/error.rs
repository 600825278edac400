//! Errors: [`Error`] for everything a call can end with, [`ConfigError`] for bad options.

use std::convert::Infallible;
use std::fmt;

/// How a call, an `init` or a wait ended when it did not produce a value.
///
/// `E` is the error type of the user's own code: a worker method returning `Result<T, E>`
/// yields `Result<T, Error<E>>`, with the method's error kept typed in [`Error::Method`].
/// Methods that cannot fail yield `Result<T, Error>` (`E = Infallible`).
///
/// ```
/// use concurry::Error;
///
/// let e: Error<std::io::Error> = Error::Stopped;
/// assert_eq!(e.to_string(), "the worker pool is stopped; no more calls are accepted");
/// assert!(e.method_error().is_none());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E = Infallible> {
    /// The user's code (a method, or the constructor during `init`) returned its own error.
    #[error("{0}")]
    Method(E),
    /// The method panicked; the worker keeps serving other calls.
    #[error("the worker method panicked: {message}")]
    Panicked {
        /// The panic payload, when it was a string.
        message: String,
    },
    /// The pool was stopped before the call could run.
    #[error("the worker pool is stopped; no more calls are accepted")]
    Stopped,
    /// A wait or a call did not finish in time.
    #[error("timed out")]
    Timeout,
    /// The call was cancelled with [`Promise::cancel`](crate::Promise::cancel).
    #[error("the call was cancelled")]
    Cancelled,
    /// The worker that held the call is gone (its thread or task ended while the call was pending).
    #[error("the worker running the call was lost: {message}")]
    WorkerLost {
        /// What happened to the worker.
        message: String,
    },
    /// The worker's constructor failed or panicked while creating an on-demand worker.
    #[error("the worker could not be created: {message}")]
    Init {
        /// The constructor's error or panic message.
        message: String,
    },
    /// A promise passed as an argument to this call failed, so the call never ran.
    #[error("a promise passed as an argument failed: {message}")]
    Upstream {
        /// The failed argument's error.
        message: String,
    },
    /// A limit could not be acquired (unknown key, a request above capacity, a timeout).
    #[error(transparent)]
    Limit(#[from] crate::limit::LimitError),
    /// The options given to `init` are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl<E> Error<E> {
    /// The user's own error, if this is [`Error::Method`].
    pub fn method_error(&self) -> Option<&E> {
        match self {
            Error::Method(e) => Some(e),
            _ => None,
        }
    }

    /// Converts the user's error with `f`, keeping every runtime failure as it is.
    ///
    /// ```
    /// use concurry::Error;
    /// let e: Error<u8> = Error::Method(7);
    /// let e: Error<String> = e.map_method(|n| format!("code {n}"));
    /// assert_eq!(e.to_string(), "code 7");
    /// ```
    pub fn map_method<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Error::Method(e) => Error::Method(f(e)),
            other => other
                .cast_runtime()
                .unwrap_or_else(|_| unreachable!("method errors are mapped above")),
        }
    }

    /// Re-types a runtime failure for another user error type; gives back `Err(e)` for
    /// [`Error::Method`], which cannot change type.
    pub(crate) fn cast_runtime<F>(self) -> Result<Error<F>, E> {
        Ok(match self {
            Error::Method(e) => return Err(e),
            Error::Panicked { message } => Error::Panicked { message },
            Error::Stopped => Error::Stopped,
            Error::Timeout => Error::Timeout,
            Error::Cancelled => Error::Cancelled,
            Error::WorkerLost { message } => Error::WorkerLost { message },
            Error::Init { message } => Error::Init { message },
            Error::Upstream { message } => Error::Upstream { message },
            Error::Limit(l) => Error::Limit(l),
            Error::Config(c) => Error::Config(c),
        })
    }

    /// True for [`Error::Stopped`].
    pub fn is_stopped(&self) -> bool {
        matches!(self, Error::Stopped)
    }

    /// True for [`Error::Panicked`].
    pub fn is_panic(&self) -> bool {
        matches!(self, Error::Panicked { .. })
    }
}

impl Error<Infallible> {
    /// Widens an error of an infallible method to any user error type.
    ///
    /// ```
    /// use concurry::Error;
    /// let e: Error<std::io::Error> = Error::Stopped.widen();
    /// assert!(e.is_stopped());
    /// ```
    pub fn widen<F>(self) -> Error<F> {
        match self.cast_runtime() {
            Ok(e) => e,
            Err(never) => match never {},
        }
    }
}

/// An invalid option, reported by `init` before any worker starts.
///
/// ```
/// use concurry::ConfigError;
/// let e = ConfigError::new("max_workers", "0", "use at least 1 worker");
/// assert_eq!(e.to_string(), "invalid option `max_workers` = 0: use at least 1 worker");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    option: &'static str,
    value: String,
    fix: String,
}

impl ConfigError {
    /// An error about `option`, which was set to `value`; `fix` tells the user what to do.
    pub fn new(option: &'static str, value: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigError {
            option,
            value: value.into(),
            fix: fix.into(),
        }
    }

    /// The name of the offending option.
    pub fn option(&self) -> &'static str {
        self.option
    }

    /// The rejected value, as text.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid option `{}` = {}: {}",
            self.option, self.value, self.fix
        )
    }
}

impl std::error::Error for ConfigError {}

/// Turns a panic payload into the message carried by [`Error::Panicked`].
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
