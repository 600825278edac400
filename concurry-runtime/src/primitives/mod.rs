//! Primitives beside the pools, and where each name from the toolcase and mtaio seeds lives.
//!
//! Written here, only where tokio, tokio-stream, futures and crossbeam lack them:
//!
//! - [`CapacityLimiter`]: Trio's capacity limiter (tracked borrowers, a total that changes at
//!   run time, fair), async and blocking, with RAII [`CapacityPermit`]s.
//! - [`Latch`]: a count-down latch, async and blocking, with timeouts.
//! - [`Queue`], [`LifoQueue`], [`PriorityQueue`]: bounded queues with back-pressure, fair
//!   and cancel-safe, `task_done` / `join` / `close`, async and blocking.
//! - [`map_async`], [`gather_limited`]: many plain futures, at most `limit` at a time.
//! - [`run_sync`], [`to_thread`]: sync/async bridges that are safe on any thread.
//! - [`merge_streams`], [`throttle_stream`], [`batch_stream`], [`buffer_stream`]: thin,
//!   checked wrappers over futures and tokio-stream.
//!
//! # The seeds' names
//!
//! The names for task groups, cancel scopes, `shield` and `checkpoint` are mapped on the
//! facade's `concurry::seed_names` page; the rest are here.
//!
//! | seed name | in Rust | whose |
//! |---|---|---|
//! | `Lock` | [`tokio::sync::Mutex`] (async; `tokio::time::timeout` for a timed acquire), `std::sync::Mutex` or `parking_lot::Mutex` (blocking) | tokio / std |
//! | `RLock` | none async (tokio has no re-entrant lock: take the lock once and pass the guard down); `parking_lot::ReentrantMutex` for threads | — |
//! | `Semaphore` | [`tokio::sync::Semaphore`] | tokio |
//! | `Event` | [`Latch::new(1)`](Latch) (one-shot, async and blocking); [`tokio::sync::watch`] when it must be cleared again | ours / tokio |
//! | `Barrier` | [`tokio::sync::Barrier`] (async), `std::sync::Barrier` (threads) | tokio / std |
//! | `CapacityLimiter` | [`CapacityLimiter`] | ours |
//! | `ThreadPool` | [`TaskWorker`](crate::TaskWorker) (closures) or a `#[worker]` type, in `Mode::Thread` | ours (concurry's pools) |
//! | `ProcessPool` | a `#[task(remote)]` function or `#[worker(remote)]` type in `Mode::Process` | ours (concurry's pools) |
//! | `run_in_thread` | [`to_thread`] (tokio's blocking pool), or `TaskWorker::submit` on a pool you size | ours |
//! | `run_in_process` | a `#[task(remote)]` function's pool in `Mode::Process` | ours (concurry's pools) |
//! | `race`, `gather`, `first_success` | [`race`](crate::race), [`gather`](crate::gather), [`first_success`](crate::first_success) over promises (plain futures: [`wrap_future`](crate::wrap_future) them, or futures' `select_all` / `join_all` / `select_ok`) | ours |
//! | `map_async` | [`map_async`] | ours, over futures' `buffered` |
//! | `TaskExecutor` (`gather(.., limit=)`, `map`, `run_in_thread`, `run(.., timeout=)`) | [`gather_limited`], [`map_async`], [`to_thread`], `tokio::time::timeout` | ours / tokio |
//! | `merge_streams` | [`merge_streams`] | futures' `select_all` |
//! | `throttle_stream` | [`throttle_stream`] | tokio-stream's `throttle` |
//! | `batch_stream` | [`batch_stream`] | tokio-stream's `chunks_timeout` |
//! | `buffer_stream` | [`buffer_stream`] | ours, over a tokio channel |
//! | `run_sync` | [`run_sync`] | ours |
//! | `to_thread` | [`to_thread`] | ours, over tokio's `spawn_blocking` |
//! | `AsyncQueue` | [`Queue`]; `tokio::sync::mpsc` when one async consumer is all you need | ours / tokio |
//! | `PriorityQueue` | [`PriorityQueue`] | ours |
//! | `LIFOQueue` | [`LifoQueue`] | ours |
//! | `Latch` | [`Latch`] | ours |
//!
//! Everything of ours is also at the crate root (`concurry::Latch`, ...).
//!
//! # One example each
//!
//! `Lock`: tokio's mutex, with a timeout.
//!
//! ```
//! # #[tokio::main] async fn main() {
//! use std::time::Duration;
//! let lock = std::sync::Arc::new(tokio::sync::Mutex::new(0));
//! *lock.lock().await += 1;
//! let guard = tokio::time::timeout(Duration::from_secs(5), lock.lock()).await.unwrap();
//! assert_eq!(*guard, 1);
//! # }
//! ```
//!
//! `RLock`: take the lock once, pass what it guards down the recursion.
//!
//! ```
//! # #[tokio::main] async fn main() {
//! fn walk(depth: u32, total: &mut u32) {
//!     *total += depth;
//!     if depth > 0 {
//!         walk(depth - 1, total); // "re-entered" without locking again
//!     }
//! }
//! let lock = tokio::sync::Mutex::new(0);
//! walk(3, &mut *lock.lock().await);
//! assert_eq!(*lock.lock().await, 6);
//! # }
//! ```
//!
//! `Semaphore`: tokio's.
//!
//! ```
//! # #[tokio::main] async fn main() {
//! let db = tokio::sync::Semaphore::new(5);
//! let _conn = db.acquire().await.unwrap();
//! assert_eq!(db.available_permits(), 4);
//! # }
//! ```
//!
//! `Event`: a [`Latch`] of 1 is a one-shot event, for tasks and threads alike.
//!
//! ```
//! # #[tokio::main] async fn main() {
//! let ready = concurry::Latch::new(1);
//! let r2 = ready.clone();
//! let waiter = tokio::spawn(async move { r2.wait().await });
//! ready.count_down(); // "set": releases every waiter
//! waiter.await.unwrap();
//! assert!(ready.is_open());
//! # }
//! ```
//!
//! `Barrier`: tokio's.
//!
//! ```
//! # #[tokio::main] async fn main() {
//! let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(3));
//! let tasks: Vec<_> = (0..3)
//!     .map(|_| {
//!         let b = barrier.clone();
//!         tokio::spawn(async move { b.wait().await.is_leader() })
//!     })
//!     .collect();
//! let mut leaders = 0;
//! for t in tasks {
//!     leaders += usize::from(t.await.unwrap());
//! }
//! assert_eq!(leaders, 1);
//! # }
//! ```
//!
//! `CapacityLimiter`: usage tracking, as in the seed.
//!
//! ```
//! # #[tokio::main] async fn main() {
//! let limiter = concurry::CapacityLimiter::new(10).unwrap();
//! let _permit = limiter.acquire().await.unwrap();
//! assert_eq!(format!("{}/{}", limiter.borrowed(), limiter.total()), "1/10");
//! # }
//! ```
//!
//! `ThreadPool` and `run_in_thread`: a pool of threads, or a one-off on tokio's blocking pool.
//!
//! ```
//! use concurry::prelude::*;
//! # #[tokio::main] async fn main() -> Result<(), concurry::Error> {
//! let pool = TaskWorker::options().mode(Mode::Thread).max_workers(4).init()?;
//! let sizes = concurry::gather((0..4).map(|i| pool.submit(move || i * 2))).await?;
//! assert_eq!(sizes, vec![0, 2, 4, 6]);
//! let data = concurry::to_thread(|| std::env::current_dir().is_ok()).await?;
//! assert!(data);
//! pool.stop()?;
//! # Ok(())
//! # }
//! ```
//!
//! `ProcessPool` and `run_in_process`: a `#[task(remote)]` function in child processes.
//!
//! ```
//! use concurry::prelude::*;
//!
//! #[concurry::task(remote)]
//! fn heavy(x: u64) -> u64 {
//!     (0..=x).sum()
//! }
//!
//! # fn main() -> Result<(), concurry::Error> {
//! let pool = heavy::options().mode(Mode::Process).max_workers(2).init()?;
//! assert_eq!(pool.submit(100).result()?, 5050);
//! pool.stop()?;
//! # Ok(())
//! # }
//! ```
//!
//! `race`, `gather`, `first_success`: over promises; plain futures become promises with
//! [`wrap_future`](crate::wrap_future).
//!
//! ```
//! # #[tokio::main] async fn main() {
//! use concurry::{first_success, gather, race, wrap_future};
//! let fast = wrap_future(async { 1 });
//! let slow = wrap_future(async {
//!     tokio::time::sleep(std::time::Duration::from_secs(60)).await;
//!     2
//! });
//! assert_eq!(race([fast, slow]).await.unwrap(), 1);
//! let all = gather([wrap_future(async { 1 }), wrap_future(async { 2 })]).await.unwrap();
//! assert_eq!(all, vec![1, 2]);
//! let failed = concurry::Promise::<u8>::ready(Err(concurry::Error::Stopped));
//! assert_eq!(first_success([failed, wrap_future(async { 3 })]).await.unwrap(), 3);
//! # }
//! ```
//!
//! `map_async` and `TaskExecutor`: at most `limit` at a time, results in order.
//!
//! ```
//! # #[tokio::main] async fn main() {
//! let urls = ["a", "b", "c"];
//! let fetched = concurry::map_async(|u: &str| async move { u.len() }, urls, 10).await.unwrap();
//! assert_eq!(fetched, vec![1, 1, 1]);
//! let coros = (0..4).map(|i| async move { i + 1 });
//! assert_eq!(concurry::gather_limited(coros, 2).await.unwrap(), vec![1, 2, 3, 4]);
//! let one = tokio::time::timeout(std::time::Duration::from_secs(5), async { "run" }).await;
//! assert_eq!(one.unwrap(), "run");
//! # }
//! ```
//!
//! `merge_streams`, `throttle_stream`, `batch_stream`, `buffer_stream`:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use std::time::Duration;
//! use futures_util::{StreamExt, stream};
//! let merged = concurry::merge_streams([stream::iter(vec![1, 2]), stream::iter(vec![3])]);
//! assert_eq!(merged.count().await, 3);
//! let throttled = concurry::throttle_stream(stream::iter(0..3), 10.0).unwrap();
//! assert_eq!(throttled.collect::<Vec<_>>().await, vec![0, 1, 2]);
//! let batches = concurry::batch_stream(stream::iter(0..5), 2, Duration::from_secs(5)).unwrap();
//! assert_eq!(batches.collect::<Vec<_>>().await, vec![vec![0, 1], vec![2, 3], vec![4]]);
//! let buffered = concurry::buffer_stream(stream::iter(0..3), 100).unwrap();
//! assert_eq!(buffered.collect::<Vec<_>>().await, vec![0, 1, 2]);
//! # }
//! ```
//!
//! `run_sync` and `to_thread`: crossing between sync and async code.
//!
//! ```
//! # #[tokio::main] async fn main() {
//! fn sync_code() -> usize {
//!     // Called from a task: no panic, no deadlock.
//!     concurry::run_sync(async { tokio::task::yield_now().await; 42 })
//! }
//! let n = concurry::to_thread(sync_code).await.unwrap();
//! assert_eq!(n, 42);
//! assert_eq!(sync_code(), 42);
//! # }
//! ```
//!
//! `AsyncQueue`, `PriorityQueue`, `LIFOQueue`:
//!
//! ```
//! # #[tokio::main] async fn main() {
//! let queue = concurry::Queue::bounded(10).unwrap();
//! queue.put("item").await.unwrap();
//! assert_eq!(queue.get().await, Some("item"));
//! queue.task_done().unwrap();
//! queue.join().await;
//!
//! let prio = concurry::PriorityQueue::unbounded();
//! prio.put("normal task", 2).await.unwrap();
//! prio.put("urgent task", 1).await.unwrap();
//! assert_eq!(prio.get().await, Some("urgent task"));
//!
//! let stack = concurry::LifoQueue::unbounded();
//! stack.put("first").await.unwrap();
//! stack.put("second").await.unwrap();
//! assert_eq!(stack.get().await, Some("second"));
//! # }
//! ```
//!
//! `Latch`:
//!
//! ```
//! # #[tokio::main] async fn main() {
//! let latch = concurry::Latch::new(3);
//! for _ in 0..3 {
//!     latch.count_down();
//! }
//! assert!(latch.wait_timeout(std::time::Duration::from_secs(5)).await);
//! # }
//! ```

mod bridge;
mod capacity;
mod gather;
mod latch;
mod queue;
mod stream;
mod waiters;

#[cfg(all(test, concurry_loom))]
mod tests {
    mod loom_capacity;
    mod loom_latch;
    mod loom_queue;
}

#[cfg(test)]
mod unit_tests;

pub use bridge::{run_sync, to_thread};
pub use capacity::{Borrower, CapacityError, CapacityLimiter, CapacityPermit};
pub use gather::{gather_limited, map_async};
pub use latch::Latch;
pub use queue::{Closed, LifoQueue, PriorityQueue, Queue, TaskDoneError, TryGetError, TryPutError};
pub use stream::{batch_stream, buffer_stream, merge_streams, throttle_stream};
