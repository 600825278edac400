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
    /// `stop()` ran out of its `stop_timeout` before every queued call finished: the calls
    /// still queued were failed with [`Error::Stopped`], and the calls still running were
    /// left to finish on their own (a thread cannot be killed; process mode kills its
    /// children instead, so their calls count as failed).
    ///
    /// ```
    /// let e: concurry::Error = concurry::Error::StopTimeout { failed: 3, running: 1 };
    /// assert_eq!(
    ///     e.to_string(),
    ///     "stop_timeout ran out before the pool drained: 3 calls failed with Error::Stopped, \
    ///      1 still running (left to finish on its own); to let queued calls finish, raise \
    ///      `options().stop_timeout(..)` or await their promises before `stop()`; to end \
    ///      running methods sooner, check `concurry::check_cancelled()` in them"
    /// );
    /// ```
    #[error(
        "stop_timeout ran out before the pool drained: {failed} calls failed with Error::Stopped, \
         {running} still running (left to finish on {}); to let queued calls finish, raise \
         `options().stop_timeout(..)` or await their promises before `stop()`; to end running \
         methods sooner, check `concurry::check_cancelled()` in them",
        if *running == 1 { "its own" } else { "their own" }
    )]
    StopTimeout {
        /// Calls that were queued (or running, where they can be ended) and were failed with
        /// [`Error::Stopped`].
        failed: u64,
        /// Calls still running when `stop()` returned.
        running: u64,
    },
    /// The call was cancelled: with [`Promise::cancel`](crate::Promise::cancel), or it
    /// failed (or was skipped) after a cancel of the scope it was submitted in
    /// ([`CancelScope`](crate::CancelScope), a [`TaskGroup`](crate::TaskGroup)'s
    /// fail-fast) or of `stop()` past its `stop_timeout`.
    #[error("the call was cancelled")]
    Cancelled,
    /// A child of a [`TaskGroup`](crate::TaskGroup) failed, so the group cancelled the
    /// others: the first failure, by the index of the child in spawn order. The child's own
    /// error, still typed, is in its [`ChildHandle`](crate::ChildHandle).
    ///
    /// ```
    /// let e: concurry::Error = concurry::Error::ChildFailed { child: 2, message: "boom".into() };
    /// assert_eq!(e.to_string(), "child 2 of the task group failed: boom");
    /// ```
    #[error("child {child} of the task group failed: {message}")]
    ChildFailed {
        /// The child's index, in spawn order from 0.
        child: usize,
        /// The child's error.
        message: String,
    },
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
        /// The failed argument's own method error, type-erased (`None` when it failed in
        /// the runtime, e.g. a panic). [`Error::method_error`] gives it back typed.
        error: Option<Box<dyn std::any::Any + Send + Sync>>,
    },
    /// A limit could not be acquired (unknown key, a request above capacity, a timeout).
    #[error(transparent)]
    Limit(#[from] crate::limit::LimitError),
    /// The method kept failing with a retryable error until its attempts ran out.
    #[error(
        "`{method}` gave up after {attempts} attempts; the last one failed: {}",
        DisplayBoxed(last)
    )]
    RetriesExhausted {
        /// The method (or `#[task]` function) that was retried.
        method: &'static str,
        /// How many attempts ran.
        attempts: u32,
        /// The last attempt's error, still typed.
        last: Box<Error<E>>,
    },
    /// Every attempt returned an output that a `retry_until` validator rejected.
    #[error("all {attempts} attempts of `{method}` returned an output rejected by {reason}")]
    Validation {
        /// The method (or `#[task]` function) whose outputs were rejected.
        method: &'static str,
        /// How many attempts ran.
        attempts: u32,
        /// The last rejecting validator.
        reason: String,
        /// Every rejected output, in attempt order.
        outputs: ValidationOutputs,
    },
    /// The options given to `init` are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The call could not cross the channel to a worker process: its request or reply could
    /// not be encoded or decoded, or the far side sent something that is not this protocol.
    /// (A worker process that died is [`Error::WorkerLost`] instead.)
    #[error("the call could not cross the channel to the worker process: {0}")]
    Transport(#[source] crate::wire::WireError),
}

impl<E: std::any::Any> Error<E> {
    /// The user's own error wherever it sits: in [`Error::Method`], in the last attempt of
    /// [`Error::RetriesExhausted`], or in [`Error::Upstream`] when the failed argument's
    /// promise has the same error type `E`. `None` for runtime failures (a panic, a timeout,
    /// a stopped pool, ...).
    ///
    /// ```
    /// use concurry::Error;
    ///
    /// let direct: Error<u8> = Error::Method(7);
    /// assert_eq!(direct.method_error(), Some(&7));
    /// let retried: Error<u8> = Error::RetriesExhausted {
    ///     method: "fetch",
    ///     attempts: 3,
    ///     last: Box::new(Error::Method(7)),
    /// };
    /// assert_eq!(retried.method_error(), Some(&7));
    /// let upstream: Error<u8> = Error::Upstream {
    ///     message: "7".into(),
    ///     error: Some(Box::new(7u8)),
    /// };
    /// assert_eq!(upstream.method_error(), Some(&7));
    /// assert_eq!(Error::<u8>::Timeout.method_error(), None);
    /// ```
    pub fn method_error(&self) -> Option<&E> {
        match self {
            Error::Method(e) => Some(e),
            Error::RetriesExhausted { last, .. } => last.method_error(),
            Error::Upstream { error, .. } => error.as_deref()?.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// The user's own error by value, found as [`method_error`](Error::method_error) finds it.
    ///
    /// ```
    /// use concurry::Error;
    ///
    /// let retried: Error<String> = Error::RetriesExhausted {
    ///     method: "fetch",
    ///     attempts: 2,
    ///     last: Box::new(Error::Method("busy".to_string())),
    /// };
    /// assert_eq!(retried.into_method_error().as_deref(), Some("busy"));
    /// ```
    pub fn into_method_error(self) -> Option<E> {
        match self {
            Error::Method(e) => Some(e),
            Error::RetriesExhausted { last, .. } => last.into_method_error(),
            Error::Upstream { error, .. } => error?.downcast::<E>().ok().map(|e| *e),
            _ => None,
        }
    }
}

impl<E> Error<E> {
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
            Error::RetriesExhausted {
                method,
                attempts,
                last,
            } => Error::RetriesExhausted {
                method,
                attempts,
                last: Box::new(last.map_method(f)),
            },
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
            Error::StopTimeout { failed, running } => Error::StopTimeout { failed, running },
            Error::Cancelled => Error::Cancelled,
            Error::ChildFailed { child, message } => Error::ChildFailed { child, message },
            Error::WorkerLost { message } => Error::WorkerLost { message },
            Error::Init { message } => Error::Init { message },
            Error::Upstream { message, error } => Error::Upstream { message, error },
            Error::Limit(l) => Error::Limit(l),
            Error::RetriesExhausted {
                method,
                attempts,
                last,
            } => Error::RetriesExhausted {
                method,
                attempts,
                last: Box::new(last.cast_runtime()?),
            },
            Error::Validation {
                method,
                attempts,
                reason,
                outputs,
            } => Error::Validation {
                method,
                attempts,
                reason,
                outputs,
            },
            Error::Config(c) => Error::Config(c),
            Error::Transport(w) => Error::Transport(w),
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

    /// What to do about it (the message without the option and value).
    ///
    /// ```
    /// let e = concurry::ConfigError::new("max_workers", "0", "use at least 1 worker");
    /// assert_eq!(e.fix(), "use at least 1 worker");
    /// ```
    pub fn fix(&self) -> &str {
        &self.fix
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

/// The outputs a `retry_until` validator rejected, carried by [`Error::Validation`].
///
/// ```
/// use concurry::ValidationOutputs;
/// let outputs = ValidationOutputs::from_vec(vec![String::new(), "x".to_string()]);
/// assert_eq!(outputs.len(), 2);
/// assert_eq!(outputs.into_vec::<String>().unwrap(), ["", "x"]);
/// ```
pub struct ValidationOutputs {
    // A mutex only to make the type `Sync` whatever the output type is (it is never contended).
    outputs: Vec<std::sync::Mutex<Box<dyn std::any::Any + Send>>>,
}

impl ValidationOutputs {
    pub(crate) fn new(outputs: Vec<Box<dyn std::any::Any + Send>>) -> Self {
        ValidationOutputs {
            outputs: outputs.into_iter().map(std::sync::Mutex::new).collect(),
        }
    }

    /// Outputs of one type (mostly for tests and docs).
    pub fn from_vec<T: std::any::Any + Send>(outputs: Vec<T>) -> Self {
        Self::new(
            outputs
                .into_iter()
                .map(|o| Box::new(o) as Box<dyn std::any::Any + Send>)
                .collect(),
        )
    }

    /// How many outputs were rejected.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// The outputs as `T`s, in attempt order; `None` if they are not `T`s.
    pub fn into_vec<T: std::any::Any>(self) -> Option<Vec<T>> {
        self.outputs
            .into_iter()
            .map(|m| {
                let b = m
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                b.downcast::<T>().ok().map(|t| *t)
            })
            .collect()
    }
}

impl fmt::Debug for ValidationOutputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValidationOutputs({} outputs)", self.outputs.len())
    }
}

/// Displays a boxed nested error without making thiserror require `Box<Error<E>>: Display`
/// (a bound that would refer to the impl being defined).
struct DisplayBoxed<'a, E>(&'a Error<E>);

impl<E: fmt::Display> fmt::Display for DisplayBoxed<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}
