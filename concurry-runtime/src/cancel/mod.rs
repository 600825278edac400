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
//! (calls inherit the scope running where they are submitted, in every mode).
//!
//! In process mode the cancel crosses to the child: a cancelled promise, or the cancel of
//! the scope (or group) the call was submitted in, sends the call's cancel over the socket,
//! and the method in the child sees it at its next checkpoint ([`check_cancelled`],
//! [`cancelled`]) within a few milliseconds (the child reads around a call once it has run
//! for about 2 ms); a call still waiting in the child does not run. As in process, an error
//! the call returns after its scope's cancel resolves it with
//! [`Error::Cancelled`](crate::Error::Cancelled) and a value stands. A call past its
//! `call_timeout` fails with [`Error::Timeout`](crate::Error::Timeout) and its child is
//! killed (and replaced); `stop()` past its `stop_timeout` kills the children too.

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
pub(crate) use token::{Parent, Token, WakeCell};

#[cfg(test)]
mod tests {
    #[cfg(concurry_loom)]
    mod loom_token;
    #[cfg(not(concurry_loom))]
    mod token;
}
