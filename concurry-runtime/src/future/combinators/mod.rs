//! Waiting on many promises at once, blocking or async.
//!
//! - [`gather`]: every value in input order ([`Gather`]), or every outcome ([`Settled`]).
//! - [`wait`] / [`wait_async`]: split into done and not done, per [`ReturnWhen`]; [`wait_with`]
//!   shows a progress bar.
//! - [`as_completed`]: results in completion order, an iterator ([`AsCompleted`]) or a stream
//!   ([`AsCompletedStream`]).
//! - [`race`] / [`first_success`]: the first result or the first success, the rest cancelled
//!   ([`Race`], [`FirstSuccess`]).
//!
//! All of them take anything [`IntoPromise`](crate::IntoPromise), never busy-wait, and accept
//! a timeout; `gather`, `wait` and `as_completed` also take a
//! [`progress`](crate::Gather::progress) bar. "Completion order" is the order in which promises resolve once the wait has
//! started (its first `wait`, `next` or poll); promises that were already resolved by then
//! come first, in input order.

mod as_completed;
mod driver;
mod gather;
mod race;
mod set;
mod wait;

pub use as_completed::{AsCompleted, AsCompletedStream, as_completed};
pub use gather::{Gather, Settled, gather};
pub use race::{FirstSuccess, Race, first_success, race};
pub use wait::{DoneAndPending, ReturnWhen, WaitFuture, wait, wait_async, wait_with};
