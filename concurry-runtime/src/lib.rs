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

mod cancel;
mod clock;
#[cfg(feature = "cluster")]
pub mod cluster;
mod error;
mod future;
mod job;
mod limit;
#[cfg(feature = "metrics")]
pub mod metrics;
mod mode;
mod options;
mod options_builder;
mod pool;
pub mod primitives;
mod progress;
mod rand;
mod remote;
mod report;
mod retry;
mod runtime;
mod signal;
mod sync;
mod task;
pub mod wire;
mod worker;

pub use cancel::{
    CancelScope, Cancelled, CancelledFuture, ChildHandle, ChildState, RunAsync, Scope, Shield,
    TaskGroup, cancelled, check_cancelled, fail_after, fail_after_async, is_cancelled,
    move_on_after, move_on_after_async, scope, scope_async, shield, shield_async, timeout,
    timeout_async,
};
pub use clock::{Clock, FakeClock, SystemClock};
pub use error::{ConfigError, Error, ValidationOutputs};
pub use future::{Arg, PendingArg};
pub use future::{
    AsCompleted, AsCompletedStream, Completer, DoneAndPending, FirstSuccess, Gather, IntoPromise,
    Promise, Race, ReturnWhen, Settled, WaitFuture, as_completed, first_success, gather, race,
    wait, wait_async, wait_with, wrap, wrap_future, wrap_try_future,
};
pub use limit::{
    Acquisition, CallLimit, IntoLimitSet, Limit, LimitError, LimitKind, LimitPool,
    LimitPoolStrategy, LimitSet, LimitSetBuilder, LimitStats, PoolAcquisition, RateAlgorithm,
    RateLimit, ResourceLimit, limits,
};
pub use mode::process::{
    ProcessConfig, ProcessWorker, RemoteTask, RemoteWorker, TaskHost, TaskOutput,
};
pub use options::{IntoCluster, LoadBalancing, Mode};
pub use pool::{PoolStats, WorkerStats};
pub use primitives::{
    Borrower, CapacityError, CapacityLimiter, CapacityPermit, Closed, Latch, LifoQueue,
    PriorityQueue, Queue, TaskDoneError, TryGetError, TryPutError, batch_stream, buffer_stream,
    gather_limited, map_async, merge_streams, run_sync, throttle_stream, to_thread,
};
pub use progress::{LogEvery, Progress, ProgressBar, ProgressIter};
pub use retry::{Failure, RetryAlgorithm, RetryConfig};
pub use task::{
    ImplicitPool, IntoZip, TaskMap, TaskWorker, TaskWorkerHandle, TaskWorkerOptions, Zip, zip,
};

/// The indicatif crate, for [`Progress::draw_target`] and [`Progress::in_multi`].
pub use indicatif;

#[doc(hidden)]
pub mod __private;
