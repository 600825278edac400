//! Retries: attempts, backoff and which failures and outputs to retry.
//!
//! - [`RetryConfig`]: the settings (`options().retry(..)`, overridden by `#[retry(..)]`).
//! - [`RetryAlgorithm`]: exponential (default), linear or Fibonacci growth of the wait.
//! - [`Failure`]: a failed attempt as `retry_on` predicates see it.

mod algorithm;
mod config;
mod failure;
pub(crate) mod run;

pub use algorithm::RetryAlgorithm;
pub use config::RetryConfig;
pub use failure::Failure;
