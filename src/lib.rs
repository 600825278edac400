//! # concurry: declarative concurrency
//!
//! Put `#[worker]` on the `impl` block of a plain struct and get a pool of workers behind a
//! cloneable handle whose methods return [`Promise`]s. The same code runs in-line
//! ([`Mode::Sync`]), on OS threads ([`Mode::Thread`], the default) or on a tokio runtime
//! ([`Mode::Async`]).
//!
//! ## A tour
//!
//! ```
//! use concurry::prelude::*;
//!
//! pub struct Echo {
//!     prefix: String,
//!     calls: u64,
//! }
//!
//! #[concurry::worker]
//! impl Echo {
//!     /// `init(..)` calls this once inside every worker.
//!     pub fn new(prefix: String) -> Self {
//!         Echo { prefix, calls: 0 }
//!     }
//!
//!     /// A sync method: runs on the worker's thread.
//!     pub fn ping(&self, msg: String) -> String {
//!         format!("{}{msg}", self.prefix)
//!     }
//!
//!     /// `&mut self`: each worker's state is its own.
//!     pub fn count(&mut self) -> u64 {
//!         self.calls += 1;
//!         self.calls
//!     }
//!
//!     /// Methods returning `Result` keep their error type.
//!     pub fn parse(&self, s: String) -> Result<u32, std::num::ParseIntError> {
//!         s.parse()
//!     }
//!
//!     /// `async fn` methods work in every mode.
//!     pub async fn later(&self, x: u32) -> u32 {
//!         x * 2
//!     }
//! }
//!
//! # fn main() -> Result<(), concurry::Error> {
//! // The struct is still plain Rust.
//! assert_eq!(Echo::new("> ".into()).ping("hi".into()), "> hi");
//!
//! // A pool of 4 thread workers, built with the constructor's typed arguments.
//! let echo = Echo::options().mode(Mode::Thread).max_workers(4).init("> ".into())?;
//!
//! let promise = echo.ping("hello"); // returns at once
//! assert_eq!(promise.result()?, "> hello"); // blocks until the worker answered
//!
//! // The method's own error stays typed inside `concurry::Error`.
//! match echo.parse("x").result() {
//!     Err(concurry::Error::Method(e)) => assert_eq!(e.to_string(), "invalid digit found in string"),
//!     other => panic!("{other:?}"),
//! }
//!
//! // A blocking view returns results directly.
//! assert_eq!(echo.blocking().later(21)?, 42);
//!
//! echo.stop()?; // also happens when the last handle is dropped
//! assert!(echo.ping("late").result().unwrap_err().is_stopped());
//! # Ok(())
//! # }
//! ```
//!
//! ## Async mode on your runtime
//!
//! In [`Mode::Async`] each worker is a tokio task. `init` inside a multi-thread tokio runtime
//! (a task, `block_on`, `#[tokio::main]`) puts the workers on *that* runtime, so a call from
//! your tasks is a wake-up on the same scheduler, not a hop to another runtime;
//! `options().runtime(handle)` names a runtime explicitly. Outside any runtime, or inside a
//! current-thread one (whose one thread a blocking caller would stall), the workers run on a
//! runtime the library manages. `stop()`, `blocking()` and dropping the last handle work from
//! anywhere; if the runtime shuts down under the pool, its calls fail with [`Error::Stopped`].
//!
//! ```
//! use concurry::prelude::*;
//!
//! pub struct Counter;
//!
//! #[concurry::worker]
//! impl Counter {
//!     pub fn new() -> Self {
//!         Counter
//!     }
//!     pub async fn runtime(&self) -> tokio::runtime::Id {
//!         tokio::runtime::Handle::current().id()
//!     }
//! }
//!
//! let rt = tokio::runtime::Runtime::new().unwrap();
//! rt.block_on(async {
//!     // Built inside the runtime: its workers are tasks of this runtime.
//!     let pool = Counter::options().mode(Mode::Async).init().unwrap();
//!     assert_eq!(pool.runtime().await.unwrap(), tokio::runtime::Handle::current().id());
//!     pool.stop().unwrap();
//! });
//!
//! // Built anywhere, on a runtime named explicitly.
//! let pool = Counter::options()
//!     .mode(Mode::Async)
//!     .runtime(rt.handle().clone())
//!     .init()
//!     .unwrap();
//! assert_eq!(pool.blocking().runtime().unwrap(), rt.handle().id());
//! ```
//!
//! ## Where to go next
//!
//! - [`worker`]: the macro, what it generates, and the rules it checks at compile time.
//! - [`task`] and [`TaskWorker`]: the same pools for free functions and closures, with a
//!   lazy, bounded `map`.
//! - [`gather`], [`wait`], [`as_completed`], [`race`], [`first_success`]: waiting on many
//!   promises, with [`Progress`] bars.
//! - [`LimitSet`], [`RateLimit`], [`CallLimit`], [`ResourceLimit`]: limits shared by a pool,
//!   reached inside methods with [`limits()`].
//! - [`RetryConfig`] and `#[retry(..)]`: retries that never occupy a worker while waiting.
//! - [`Promise`]: waiting, `.await`, cancelling, callbacks.
//! - [`gather`], [`wait`], [`as_completed`]: waiting on many, with an optional
//!   [`progress`](Gather::progress) bar ([`ProgressBar`], [`Progress`]).
//! - [`Mode`] and [`LoadBalancing`]: where workers run and how calls are spread.
//! - [`primitives`]: [`CapacityLimiter`], [`Latch`], bounded [`Queue`] / [`PriorityQueue`] /
//!   [`LifoQueue`], [`map_async`], [`run_sync`] / [`to_thread`], stream helpers, and where
//!   every other name from the toolcase and mtaio seeds lives in tokio or std.
//! - [`Error`]: every way a call can end without a value.
//! - [`scope`], [`TaskGroup`], [`CancelScope`], [`move_on_after`], [`shield`],
//!   [`check_cancelled`]: structured concurrency, and cancellation that reaches running
//!   methods; [`seed_names`] maps the seeds' names (toolcase, mtaio) to these.
//! - `cluster` (feature `cluster`): nodes on other machines meeting through a NATS server;
//!   membership by heartbeat and placement by free capacity.
//! - `metrics` (feature `metrics`): every pool reports its calls, latencies, retries and
//!   limit waits through the `metrics` facade; with feature `prometheus` a node serves them
//!   as Prometheus text at `/metrics`. The `concurry` command line (crate `concurry-cli`)
//!   lists a cluster's nodes.
#![forbid(unsafe_code)]

pub use concurry_macros::{task, worker};
pub use concurry_runtime::*;

/// Every Rust snippet of `README.md`, compiled and run as a doc test, so the README stays
/// true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The seeds' names (toolcase's and mtaio's `TaskGroup`, `CancelScope`, `shield`,
/// `checkpoint`, ...) mapped to concurry's or tokio's, each with a runnable example.
#[doc = include_str!("../docs/seed-names.md")]
pub mod seed_names {}

/// The names most programs need: `use concurry::prelude::*;`.
pub mod prelude {
    pub use concurry_runtime::{
        CallLimit, Error, LimitSet, LoadBalancing, Mode, Progress, ProgressBar, Promise,
        RateAlgorithm, RateLimit, ResourceLimit, RetryConfig, TaskWorker,
    };
}
