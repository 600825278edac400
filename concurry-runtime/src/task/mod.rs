//! Running plain closures and functions on a pool, without writing a worker type.
//!
//! - [`TaskWorker`]: a stateless worker; `TaskWorker::options()...init()` gives a
//!   [`TaskWorkerHandle`] whose `submit(closure)` runs the closure on a worker of the pool.
//! - [`TaskMap`]: the lazy, bounded iterator (and `Stream`) that `map` and `map_unordered`
//!   return: at most a window of calls in flight, spread over every worker, each call
//!   carrying one item or a chunk of cheap items, one result per item (a failure is that
//!   item's `Err`, never lost).
//! - [`zip`]: several iterables as one iterator of tuples (shortest wins), to map a
//!   function of several arguments.
//! - `#[concurry::task]` on a free function builds on these: a module of the same name
//!   (`fetch::submit(..)`, `fetch::map(..)`, `fetch::options()`, `fetch::stop()`) over a
//!   [`TaskWorkerHandle`] that calls the function. With `#[task(remote)]` the function can
//!   also run in child processes (`Mode::Process`): the pool's workers are then children that
//!   run it by name (see [`RemoteTask`](crate::RemoteTask)).

mod implicit;
mod map;
pub(crate) mod remote;
mod task_worker;
mod zip;

pub use implicit::ImplicitPool;
pub use implicit::failed_map;
pub use map::TaskMap;
pub use task_worker::{TaskWorker, TaskWorkerHandle, TaskWorkerOptions};
pub use zip::{IntoZip, Zip, zip};

#[cfg(test)]
mod tests;
