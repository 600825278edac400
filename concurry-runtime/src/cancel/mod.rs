//! Cancellation that reaches running work, task groups and cancel scopes (Trio's semantics).
//!
//! - [`check_cancelled`], [`is_cancelled`], [`cancelled`]: checkpoints inside a method, a
//!   scope's body or a group's child; [`Cancelled`] is what a failed checkpoint returns.
//! - [`shield`], [`shield_async`]: cleanup that no cancel from outside reaches.
//! - [`CancelScope`], [`move_on_after`], [`fail_after`], [`timeout`] (and `_async` forms):
//!   scopes with deadlines, level-triggered, nested with the earliest deadline winning.
//! - [`TaskGroup`], [`scope`], [`scope_async`], [`Scope`], [`ChildHandle`]: every child
//!   waited for; the first failure cancels the others (or `.settled()` collects all).
//!
//! What is cancelled: a pool call's method sees its own [`Promise::cancel`](crate::Promise::cancel),
//! `stop()` past its `stop_timeout`, and the cancel of the scope the call was submitted in
//! (calls inherit the scope running where they are submitted, in Sync, Thread and Async
//! modes).
//!
//! In process mode the cancel crosses to the child: a cancelled promise (by
//! [`Promise::cancel`](crate::Promise::cancel), or a [`TaskGroup`]'s fail-fast, which cancels
//! its children's promises) sends the call's cancel over the socket, and the method in the
//! child sees it at its next checkpoint ([`check_cancelled`], [`cancelled`]), within a few
//! milliseconds (a call is read around only once it has run for about 2 ms); a call still
//! waiting in the child is not run. A call past its `call_timeout` fails with
//! [`Error::Timeout`](crate::Error::Timeout) and its child is killed (and replaced), as
//! before; `stop()` past its `stop_timeout` kills the children too. Not yet: a scope's own
//! cancel (its deadline) does not reach calls submitted in it on a process-mode pool.

pub(crate) mod context;
mod group;
mod scope;
mod token;

pub use context::{
    Cancelled, CancelledFuture, Shield, cancelled, check_cancelled, is_cancelled, shield,
    shield_async,
};
pub use group::{ChildHandle, ChildState, Scope, TaskGroup, scope, scope_async};
pub use scope::{
    CancelScope, RunAsync, fail_after, fail_after_async, move_on_after, move_on_after_async,
    timeout, timeout_async,
};
pub(crate) use token::{Parent, Token};

#[cfg(test)]
mod tests {
    #[cfg(concurry_loom)]
    mod loom_token;
    #[cfg(not(concurry_loom))]
    mod token;
}
