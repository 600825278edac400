//! [`RetryConfig`]: how many attempts, how long to wait between them, which failures to retry
//! and which outputs to accept.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::fmt;
// Immutable shared configuration, outside the loom-modelled core: plain std `Arc`.
use std::sync::Arc;
use std::time::Duration;

use super::algorithm::{RetryAlgorithm, backoff};
use super::failure::Failure;
use crate::error::{ConfigError, Error};

type Predicate = Arc<dyn Fn(&Failure<'_>) -> bool + Send + Sync>;
type Check = Arc<dyn Fn(&dyn Any) -> bool + Send + Sync>;

/// A check on a method's output; the call is retried until every validator for its output
/// type accepts it.
#[derive(Clone)]
pub(crate) struct Validator {
    output: TypeId,
    name: Cow<'static, str>,
    check: Check,
}

/// Retry settings of a pool (`options().retry(..)`), overridable per method with
/// `#[retry(..)]`.
///
/// Counts are *attempts*, as in `#[retry(attempts = n)]`: [`RetryConfig::attempts`]`(n)` tries
/// a call at most `n` times in all, the first call included (`attempts(1)`: no retries;
/// `attempts(4)`: the first call and up to 3 retries, Python Concurry's `num_retries = 3`).
/// Between attempts it waits `min(wait * factor(n), max_wait)` (see [`RetryAlgorithm`]),
/// jittered: with jitter `j` the wait is drawn uniformly from `[(1 - j) * d, d]` (`j = 1` is
/// full jitter, uniform in `[0, d]`; the default is `0.3`). The wait happens off the worker:
/// other calls run meanwhile.
///
/// What is retried: by default every error the method returns (never a panic, a lost
/// worker, and never `Stopped`, `Cancelled`, `Timeout`, `Transport` or a config error).
/// `retry_on` narrows that to failures a predicate accepts (any of them);
/// `retry_on_panic(true)` lets panics be retried too, and `retry_on_worker_lost(true)` calls
/// whose worker process died under them.
/// `retry_until` validators make a successful output that fails a check count as a failed
/// attempt; they run whenever they are set, even with no retries, and when attempts run out
/// the call ends with [`Error::Validation`] holding every rejected output.
///
/// ```
/// use std::time::Duration;
/// use concurry::{RetryAlgorithm, RetryConfig};
///
/// let retry = RetryConfig::attempts(5)
///     .algorithm(RetryAlgorithm::Exponential)
///     .wait(Duration::from_millis(100))
///     .max_wait(Duration::from_secs(5))
///     .jitter(0.3)
///     .retry_on_error::<std::io::Error>()
///     .retry_until(|answer: &String| !answer.is_empty());
/// assert_eq!(retry.max_attempts(), 5);
/// assert_eq!(retry.num_retries(), 4);
/// ```
#[derive(Clone)]
pub struct RetryConfig {
    attempts: u32,
    algorithm: RetryAlgorithm,
    wait: Duration,
    max_wait: Duration,
    jitter: f64,
    retry_on: Vec<Predicate>,
    on_panic: bool,
    on_worker_lost: bool,
    validators: Vec<Validator>,
}

impl Default for RetryConfig {
    /// One attempt (no retries), with the waits of [`RetryConfig::attempts`]: exponential
    /// from 1 s, capped at 60 s, jitter 0.3. A method's `#[retry(attempts = n)]` in a pool
    /// without a `retry` option starts from this config.
    fn default() -> Self {
        RetryConfig::attempts(1)
    }
}

/// The most attempts a config accepts: beyond this a loop is almost certainly a mistake.
const MAX_ATTEMPTS: u32 = 10_000;

impl RetryConfig {
    /// Up to `attempts` tries in all (the first call included, so `1` means no retries),
    /// waiting between them with exponential backoff from a 1 s base wait, capped at 60 s,
    /// jitter 0.3. `attempts` must be at least 1 (`init` reports 0 as a config error).
    ///
    /// ```
    /// let retry = concurry::RetryConfig::attempts(3); // the first call and up to 2 retries
    /// assert_eq!(retry.max_attempts(), 3);
    /// assert_eq!(retry.num_retries(), 2);
    /// ```
    pub fn attempts(attempts: u32) -> Self {
        RetryConfig {
            attempts,
            algorithm: RetryAlgorithm::Exponential,
            wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
            jitter: 0.3,
            retry_on: Vec::new(),
            on_panic: false,
            on_worker_lost: false,
            validators: Vec::new(),
        }
    }

    /// The same config with `n` attempts in all.
    pub(crate) fn with_attempts(mut self, n: u32) -> Self {
        self.attempts = n;
        self
    }

    /// The same config without `retry_on` predicates (every method error is retried).
    pub(crate) fn clear_retry_on(mut self) -> Self {
        self.retry_on.clear();
        self
    }

    /// How the wait grows between attempts.
    #[must_use]
    pub fn algorithm(mut self, algorithm: RetryAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The base wait (before the first retry, without jitter). Default 1 s.
    #[must_use]
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The longest wait between two attempts (before jitter). Default 60 s.
    #[must_use]
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Jitter in `[0, 1]`: the share of each wait that is randomised. Default 0.3.
    #[must_use]
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Retries only failures `predicate` accepts (several `retry_on` accept if any does).
    #[must_use]
    pub fn retry_on(
        mut self,
        predicate: impl Fn(&Failure<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.retry_on.push(Arc::new(predicate));
        self
    }

    /// Retries failures whose error is a `T` (directly, or inside a boxed `dyn Error` or an
    /// `anyhow::Error` along its source chain). For a typed error that does not implement
    /// `std::error::Error`, use `retry_on(|f| f.downcast_ref::<MyError>().is_some())`.
    #[must_use]
    pub fn retry_on_error<T: std::error::Error + 'static>(self) -> Self {
        self.retry_on(|f| f.is::<T>())
    }

    /// Whether a panic in the method may be retried (default `false`: a panic ends the call).
    #[must_use]
    pub fn retry_on_panic(mut self, on: bool) -> Self {
        self.on_panic = on;
        self
    }

    /// Whether a call whose worker was lost may be retried (default `false`). In process
    /// mode that is a call in flight on a child process that died (a crash, `abort`, a
    /// kill): the retry runs on the respawned child or another one. Only retry calls that
    /// are safe to run twice, since the lost attempt may have done part of its work.
    ///
    /// ```
    /// let retry = concurry::RetryConfig::attempts(3).retry_on_worker_lost(true);
    /// # let _ = retry;
    /// ```
    #[must_use]
    pub fn retry_on_worker_lost(mut self, on: bool) -> Self {
        self.on_worker_lost = on;
        self
    }

    /// Accepts an output of type `T` only if `check` returns true; outputs of other types are
    /// not checked. Every validator of the output's type must pass.
    #[must_use]
    pub fn retry_until<T: Any>(self, check: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        let name = format!(
            "retry_until validator {} for `{}`",
            self.validators.len() + 1,
            std::any::type_name::<T>()
        );
        self.retry_until_named(name, check)
    }

    /// Like [`retry_until`](RetryConfig::retry_until), with the reason reported when it rejects.
    #[must_use]
    pub fn retry_until_named<T: Any>(
        mut self,
        name: impl Into<Cow<'static, str>>,
        check: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.validators.push(Validator {
            output: TypeId::of::<T>(),
            name: name.into(),
            check: Arc::new(move |out: &dyn Any| out.downcast_ref::<T>().is_none_or(&check)),
        });
        self
    }

    /// The most attempts a call gets, the first call included.
    ///
    /// ```
    /// let config = concurry::RetryConfig::attempts(3);
    /// assert_eq!(config.max_attempts(), 3); // the first call and two retries
    /// assert_eq!(config.num_retries(), 2);
    /// ```
    pub fn max_attempts(&self) -> u32 {
        self.attempts.max(1)
    }

    /// How many retries a call may get after its first attempt: `max_attempts() - 1`.
    pub fn num_retries(&self) -> u32 {
        self.max_attempts() - 1
    }

    /// Checks the values; `init` reports the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ConfigError::new(
                "retry jitter",
                self.jitter.to_string(),
                "use a value in [0, 1]",
            ));
        }
        if self.attempts == 0 {
            return Err(ConfigError::new(
                "retry attempts",
                "0",
                "attempts count the first call too: use at least 1 (1 = no retries)",
            ));
        }
        if self.attempts > MAX_ATTEMPTS {
            return Err(ConfigError::new(
                "retry attempts",
                self.attempts.to_string(),
                format!("use at most {MAX_ATTEMPTS} attempts"),
            ));
        }
        if self.max_wait < self.wait {
            return Err(ConfigError::new(
                "retry max_wait",
                format!("{:?}", self.max_wait),
                format!("make it at least the base wait ({:?})", self.wait),
            ));
        }
        Ok(())
    }

    /// True if this config can ever run a call more than once.
    pub(crate) fn retries(&self) -> bool {
        self.attempts > 1
    }

    /// The wait before retry `n` (1-based), with `unit` a uniform sample of `[0, 1)`.
    pub(crate) fn wait_before(&self, n: u32, unit: f64) -> Duration {
        backoff(
            self.algorithm,
            self.wait,
            self.max_wait,
            self.jitter,
            n,
            unit,
        )
    }

    /// Whether panics may be retried (durable tasks apply it on their nodes).
    #[cfg(feature = "cluster")]
    pub(crate) fn on_panic(&self) -> bool {
        self.on_panic
    }

    /// Whether the failed `outcome` of attempt `attempt` may be retried.
    pub(crate) fn should_retry<E: Any + Send>(
        &self,
        error: &Error<E>,
        attempt: u32,
        method: &'static str,
    ) -> bool {
        let failure = match error {
            Error::Method(e) => Failure::method_error(e, attempt, method),
            Error::Panicked { message } if self.on_panic => {
                Failure::panic(message, attempt, method)
            }
            Error::WorkerLost { message } if self.on_worker_lost => {
                Failure::worker_lost(message, attempt, method)
            }
            _ => return false,
        };
        self.retry_on.is_empty() || self.retry_on.iter().any(|p| p(&failure))
    }

    /// Whether `retry_on` lets `failure` be retried (no predicate: every failure may be).
    #[cfg(feature = "cluster")]
    pub(crate) fn accepts(&self, failure: &Failure<'_>) -> bool {
        self.retry_on.is_empty() || self.retry_on.iter().any(|p| p(failure))
    }

    /// The name of the first validator of `output`'s type rejecting it, if any (an output
    /// known only as `dyn Any`: a durable task's, on its node).
    #[cfg(feature = "cluster")]
    pub(crate) fn rejects_any(&self, output: &dyn Any) -> Option<Cow<'static, str>> {
        let ty = output.type_id();
        self.validators
            .iter()
            .filter(|v| v.output == ty)
            .find(|v| !(v.check)(output))
            .map(|v| v.name.clone())
    }

    /// The name of the first validator rejecting `output`, if any.
    pub(crate) fn rejects<T: Any>(&self, output: &T) -> Option<Cow<'static, str>> {
        let ty = TypeId::of::<T>();
        self.validators
            .iter()
            .filter(|v| v.output == ty)
            .find(|v| !(v.check)(output))
            .map(|v| v.name.clone())
    }

    /// True if any validator checks outputs of type `T`.
    pub(crate) fn validates<T: Any>(&self) -> bool {
        let ty = TypeId::of::<T>();
        self.validators.iter().any(|v| v.output == ty)
    }
}

impl fmt::Debug for RetryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryConfig")
            .field("attempts", &self.attempts)
            .field("algorithm", &self.algorithm)
            .field("wait", &self.wait)
            .field("max_wait", &self.max_wait)
            .field("jitter", &self.jitter)
            .field("retry_on", &self.retry_on.len())
            .field("retry_on_panic", &self.on_panic)
            .field("retry_on_worker_lost", &self.on_worker_lost)
            .field(
                "validators",
                &self.validators.iter().map(|v| &v.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}
