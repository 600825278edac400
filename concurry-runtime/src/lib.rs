//! The runtime of [concurry](https://docs.rs/concurry): futures, worker pools and execution
//! modes. Use it through the `concurry` crate, which re-exports everything public here.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![doc(test(attr(deny(warnings))))]

mod error;
mod future;
mod mode;
mod options;
mod options_builder;
mod pool;
mod runtime;
mod sync;
mod worker;

pub use error::{ConfigError, Error};
pub use future::{Arg, PendingArg};
pub use future::{
    AsCompleted, AsCompletedStream, Completer, DoneAndPending, FirstSuccess, Gather, IntoPromise,
    Promise, Race, ReturnWhen, Settled, WaitFuture, as_completed, first_success, gather, race,
    wait, wait_async, wrap, wrap_future, wrap_try_future,
};
pub use options::{LoadBalancing, Mode};
pub use pool::{PoolStats, WorkerStats};

#[doc(hidden)]
pub mod __private;
