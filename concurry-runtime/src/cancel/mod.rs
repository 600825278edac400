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
