//! The one future type and the ways to wait on many.
//!
//! - [`Promise`]: the result of a call; blocking (`result`) or `.await`, cancel, callbacks.
//! - [`wrap`]: turns a tokio or std join handle or a oneshot receiver into one;
//!   [`wrap_future`] and [`wrap_try_future`] run any `Future` on the library runtime.
//! - [`Arg`]: a method argument given as a value or as a promise of one (awaited first).
//! - [`gather`], [`wait`], [`as_completed`], [`race`], [`first_success`]: waiting on many.

pub(crate) mod arg;
mod combinators;
mod promise;
pub(crate) mod slot;
mod wrap;

#[cfg(all(test, concurry_loom))]
mod tests {
    mod loom_slot;
}

pub use arg::{Arg, PendingArg};
pub use combinators::{
    AsCompleted, AsCompletedStream, DoneAndPending, FirstSuccess, Gather, Race, ReturnWhen,
    Settled, WaitFuture, as_completed, first_success, gather, race, wait, wait_async, wait_with,
};
pub(crate) use promise::{CancelWatch, PromiseCell, Tail};
pub use promise::{Completer, Promise};
pub use wrap::{IntoPromise, wrap, wrap_future, wrap_try_future};
