//! The [`Worker`] trait that `#[worker]` implements. The calls a pool sends its workers are
//! in `job/`.

use std::fmt;

/// A type whose instances can run as workers of a pool.
///
/// Implemented by `#[worker]`; you do not implement it by hand. The constructor arguments
/// travel to every worker as [`Worker::Args`], and each worker builds its own instance with
/// [`Worker::construct`].
pub trait Worker: Send + Sized + 'static {
    /// The constructor's arguments, as a tuple.
    type Args: Clone + Send + 'static;
    /// The constructor's error (`Infallible` for a constructor returning `Self`).
    type InitError: fmt::Display + Send + 'static;
    /// The type's name, used in tracing spans, thread names and stats.
    const NAME: &'static str;

    /// Builds one instance (runs the user's constructor).
    fn construct(args: Self::Args) -> Result<Self, Self::InitError>;
}
