//! [`TaskWorker`]: a pool that runs whatever closure it is given.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::map::{Chunked, Results, RunItems, TaskMap, Values};
use crate::error::Error;
use crate::future::Promise;
use crate::options::Mode;
use crate::options_builder::Options;
use crate::pool::{MethodFuture, Pool, PoolStats};
use crate::worker::Worker;

/// The name calls of a task pool carry in tracing spans.
const CALL: &str = "task";

/// A stateless worker that runs the closures submitted to it.
///
/// Build a pool with [`TaskWorker::options`]; the [`TaskWorkerHandle`] it returns submits
/// closures (`submit`, `submit_async`) and maps functions over iterators (`map`,
/// `map_unordered`), in every [`Mode`](crate::Mode).
///
/// ```
/// use concurry::prelude::*;
/// use concurry::TaskWorker;
///
/// let pool = TaskWorker::options().mode(Mode::Thread).max_workers(4).init()?;
/// assert_eq!(pool.submit(|| 6 * 7).result()?, 42);
/// let squares: Vec<u64> = pool.map(|x: u64| x * x, 0..5).collect::<Result<_, _>>()?;
/// assert_eq!(squares, [0, 1, 4, 9, 16]);
/// pool.stop()?;
/// # Ok::<(), concurry::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskWorker;

impl Worker for TaskWorker {
    type Args = ();
    type InitError = Infallible;
    const NAME: &'static str = "TaskWorker";

    fn construct((): ()) -> Result<Self, Infallible> {
        Ok(TaskWorker)
    }
}

impl TaskWorker {
    /// Options of a task pool (`mode`, `max_workers`, `load_balancing`, ...); finish with
    /// [`init`](TaskWorkerOptions::init). A task pool holds no state, so `max_workers`
    /// defaults to the number of CPUs.
    ///
    /// ```
    /// use concurry::prelude::*;
    /// let pool = concurry::TaskWorker::options().mode(Mode::Sync).init()?;
    /// assert_eq!(pool.submit(|| "in-line").result()?, "in-line");
    /// # Ok::<(), concurry::Error>(())
    /// ```
    #[must_use]
    pub fn options() -> TaskWorkerOptions {
        TaskWorkerOptions(Options::default().stateless())
    }
}

/// Options of a [`TaskWorker`] pool, from [`TaskWorker::options`].
///
/// ```
/// use concurry::prelude::*;
/// let pool = concurry::TaskWorker::options()
///     .mode(Mode::Async)
///     .max_workers(2)
///     .name("fetchers")
///     .init()?;
/// assert_eq!(pool.stats().name, "fetchers");
/// # Ok::<(), concurry::Error>(())
/// ```
pub struct TaskWorkerOptions(pub(super) Options<TaskWorker>);

impl fmt::Debug for TaskWorkerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TaskWorkerOptions").field(&self.0).finish()
    }
}

impl TaskWorkerOptions {
    crate::__options_builder_methods!();

    /// Starts the pool.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for invalid options, and for [`Mode::Process`](crate::Mode::Process):
    /// a closure cannot cross to a child process (put `#[concurry::task(remote)]` on a
    /// function instead).
    ///
    /// ```
    /// use concurry::prelude::*;
    /// let pool = concurry::TaskWorker::options().max_workers(2).init()?;
    /// assert_eq!(pool.stats().workers, 2);
    /// let in_children = concurry::TaskWorker::options().mode(Mode::Process).init();
    /// assert!(matches!(in_children, Err(Error::Config(_))));
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn init(self) -> Result<TaskWorkerHandle, Error> {
        if self.0.get_mode() == Mode::Process {
            return Err(super::remote::closures_stay_in_process().into());
        }
        if self.0.get_mode() == Mode::Cluster {
            return Err(super::remote::closures_stay_on_this_side().into());
        }
        self.0.init_with(()).map(TaskWorkerHandle::new)
    }
}

/// A handle to a pool of [`TaskWorker`]s, from [`TaskWorkerOptions::init`].
///
/// Clones share the pool; it stops when [`stop`](Self::stop) is called or the last clone is
/// dropped.
///
/// Sync closures run one at a time per worker (in async mode on tokio's blocking pool), so
/// `max_workers` is the parallelism; async closures (`submit_async`, `map_async`) run
/// concurrently on each worker in async mode.
///
/// Limits given to [`TaskWorker::options`] apply to every closure (and are reachable inside
/// with [`limits()`](crate::limits)). A closure is an `FnOnce` that cannot be sent twice, so
/// the pool's `retry` option does not apply to `submit` and `map`: put `#[concurry::task]` on
/// a function to have its calls retried.
#[derive(Clone)]
pub struct TaskWorkerHandle {
    pub(super) pool: Pool<TaskWorker>,
    /// Process mode: calls go to children by name (`#[task(remote)]`), never as closures.
    pub(super) process: bool,
}

impl fmt::Debug for TaskWorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskWorkerHandle")
            .field("pool", &self.pool)
            .finish()
    }
}

impl TaskWorkerHandle {
    pub(super) fn new(pool: Pool<TaskWorker>) -> Self {
        let process = pool.is_remote();
        TaskWorkerHandle { pool, process }
    }

    /// Runs `f` on a worker of the pool; the promise resolves to what it returns (or
    /// [`Error::Panicked`] if it panics, [`Error::Stopped`] if the pool is stopped).
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let name = String::from("world");
    /// assert_eq!(pool.submit(move || format!("hello {name}")).result()?, "hello world");
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn submit<T, F>(&self, f: F) -> Promise<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.pool
            .submit_blocking(CALL, move |_: &mut TaskWorker| Ok(f()))
    }

    /// Like [`submit`](Self::submit) for a closure returning `Result<T, E>`: its error stays
    /// typed in [`Error::Method`].
    ///
    /// ```
    /// use concurry::Error;
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let p = pool.try_submit(|| "x".parse::<u32>());
    /// assert!(matches!(p.result(), Err(Error::Method(e)) if e.to_string().contains("invalid digit")));
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn try_submit<T, E, F>(&self, f: F) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        self.pool
            .submit_blocking(CALL, move |_: &mut TaskWorker| f().map_err(Error::Method))
    }

    /// Runs the future `f` returns on a worker of the pool. In async mode several run at once
    /// on each worker; in thread and sync mode each runs to completion on its worker.
    ///
    /// ```
    /// use concurry::prelude::*;
    /// let pool = concurry::TaskWorker::options().mode(Mode::Async).init()?;
    /// let p = pool.submit_async(|| async { tokio::task::yield_now().await; 7 });
    /// assert_eq!(p.result()?, 7);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn submit_async<T, F, Fut>(&self, f: F) -> Promise<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.pool.submit_shared(
            CALL,
            move |_: &TaskWorker| -> MethodFuture<'_, T, Infallible> {
                // `f` is called inside the future, so a panic in it is caught like one in
                // the future.
                Box::pin(async move { Ok(f().await) })
            },
        )
    }

    /// [`submit_async`](Self::submit_async) for a future returning `Result<T, E>`: its error
    /// stays typed in [`Error::Method`].
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let p = pool.try_submit_async(|| async { Err::<u8, _>("nope") });
    /// assert!(matches!(p.result(), Err(concurry::Error::Method("nope"))));
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn try_submit_async<T, E, F, Fut>(&self, f: F) -> Promise<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.pool
            .submit_shared(CALL, move |_: &TaskWorker| -> MethodFuture<'_, T, E> {
                Box::pin(async move { f().await.map_err(Error::Method) })
            })
    }

    /// Calls `f` on every item, spread over every worker of the pool, and yields the results
    /// in input order. Lazy and bounded: nothing runs before the first `next()`, and at most
    /// [`window`](TaskMap::window) calls are in flight (default: twice the workers). Cheap
    /// items travel in chunks, many per call (automatic, or fixed with
    /// [`chunk_size`](TaskMap::chunk_size)). Each item's failure (a panic, a stopped pool) is
    /// that item's `Err`.
    ///
    /// To map a function of several arguments, pass [`zip`](crate::zip)`((xs, ys))` and take a
    /// tuple.
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().max_workers(2).init()?;
    /// let total: u64 = pool.map(|x: u64| x * 2, 0..1_000).map(Result::unwrap).sum();
    /// assert_eq!(total, 999_000);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn map<'a, I, T, F>(&self, f: F, items: I) -> TaskMap<'a, T>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'a,
        I::Item: Send + 'static,
        T: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
    {
        self.map_chunked(items, Values(f))
    }

    /// [`map`](Self::map), yielding results as they complete instead of in input order.
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().max_workers(2).init()?;
    /// let mut out: Vec<u32> = pool.map_unordered(|x: u32| x + 1, [1, 2, 3]).map(Result::unwrap).collect();
    /// out.sort();
    /// assert_eq!(out, [2, 3, 4]);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn map_unordered<'a, I, T, F>(&self, f: F, items: I) -> TaskMap<'a, T>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'a,
        I::Item: Send + 'static,
        T: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
    {
        self.map(f, items).unordered()
    }

    /// [`map`](Self::map) for a function returning `Result<T, E>`: each item's error stays
    /// typed in [`Error::Method`].
    ///
    /// ```
    /// use concurry::Error;
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let out: Vec<_> = pool.try_map(|s: &'static str| s.parse::<u8>(), ["1", "x"]).collect();
    /// assert_eq!(*out[0].as_ref().unwrap(), 1);
    /// assert!(matches!(out[1], Err(Error::Method(_))));
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn try_map<'a, I, T, E, F>(&self, f: F, items: I) -> TaskMap<'a, T, E>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'a,
        I::Item: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(I::Item) -> Result<T, E> + Send + Sync + 'static,
    {
        self.map_chunked(items, Results(move |x| f(x).map_err(Error::Method)))
    }

    /// A map sending `items` in chunks, each one call running `run` on its items.
    fn map_chunked<'a, I, T, E, R>(&self, items: I, run: R) -> TaskMap<'a, T, E>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'a,
        I::Item: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        R: RunItems<I::Item, T, E>,
    {
        TaskMap::chunked(
            Chunked::new(items.into_iter(), self.clone(), run),
            self.default_window(),
        )
    }

    /// Twice the workers: enough to keep every worker busy while results are consumed.
    fn default_window(&self) -> usize {
        2 * self.pool.stats().max_workers
    }

    /// [`map`](Self::map) for an async function: each item's future runs on a worker (in
    /// async mode, several per worker at once).
    ///
    /// ```
    /// use concurry::prelude::*;
    /// let pool = concurry::TaskWorker::options().mode(Mode::Async).max_workers(2).init()?;
    /// let out: Vec<u32> = pool
    ///     .map_async(|x: u32| async move { x * 10 }, 1..=3)
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(out, [10, 20, 30]);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn map_async<'a, I, T, F, Fut>(&self, f: F, items: I) -> TaskMap<'a, T>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'a,
        I::Item: Send + 'static,
        T: Send + 'static,
        F: Fn(I::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let f = Arc::new(f);
        let this = self.clone();
        self.map_with(items, move |x| {
            let f = f.clone();
            this.submit_async(move || f(x))
        })
    }

    /// [`map_async`](Self::map_async) for an async function returning `Result<T, E>`.
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let out: Vec<_> = pool
    ///     .try_map_async(|x: i32| async move { if x < 0 { Err("negative") } else { Ok(x) } }, [1, -1])
    ///     .collect();
    /// assert!(out[0].is_ok() && out[1].is_err());
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn try_map_async<'a, I, T, E, F, Fut>(&self, f: F, items: I) -> TaskMap<'a, T, E>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'a,
        I::Item: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        F: Fn(I::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        let this = self.clone();
        self.map_with(items, move |x| {
            let f = f.clone();
            this.try_submit_async(move || f(x))
        })
    }

    /// A [`TaskMap`] over `items`, each submitted by `submit` when the map pulls it. The
    /// building block of every `map` (and of `#[task]`'s `map`).
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().init()?;
    /// let p = pool.clone();
    /// let out: Vec<u8> = pool
    ///     .map_with(0..3u8, move |x| p.submit(move || x + 1))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(out, [1, 2, 3]);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn map_with<'a, I, T, E, S>(&self, items: I, submit: S) -> TaskMap<'a, T, E>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'a,
        T: Send + 'static,
        E: Send + 'static,
        S: FnMut(I::Item) -> Promise<T, E> + Send + 'a,
    {
        TaskMap::new(items.into_iter().map(submit), self.default_window())
    }

    /// A `#[task]` function's `map`: in chunks, each item running `run` inline, when its
    /// calls run once in this process; else each item submitted by `submit` (retried per
    /// `retry` and the pool's option, or sent to a child process).
    #[doc(hidden)]
    pub fn __map_task<'a, I, T, E, S, R>(
        &self,
        items: I,
        retry: &crate::pool::MethodRetry<T, E>,
        submit: S,
        run: R,
    ) -> TaskMap<'a, T, E>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'a,
        I::Item: Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        S: FnMut(I::Item) -> Promise<T, E> + Send + 'a,
        R: Fn(I::Item) -> Result<T, Error<E>> + Send + Sync + 'static,
    {
        if self.process || self.pool.retry_for(retry).is_some() {
            self.map_with(items, submit)
        } else {
            self.map_chunked(items, Results(run))
        }
    }

    /// The pool behind the handle (what `#[task]` expansions submit to, with retries).
    #[doc(hidden)]
    pub fn __pool(&self) -> &Pool<TaskWorker> {
        &self.pool
    }

    /// Stops the pool: no new calls are accepted, queued calls finish (or fail with
    /// [`Error::Stopped`] after the stop timeout), and every worker is joined. Also happens
    /// when the last clone of the handle is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::StopTimeout`] (how many calls failed, how many still ran) if the stop timeout
    /// ran out.
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().init()?;
    /// pool.stop()?;
    /// assert!(pool.submit(|| 1).result().unwrap_err().is_stopped());
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn stop(&self) -> Result<(), Error> {
        self.pool.stop()
    }

    /// A snapshot of the pool's counters, per worker.
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().max_workers(3).init()?;
    /// assert_eq!(pool.stats().per_worker.len(), 3);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Whether [`stop`](Self::stop) was called.
    ///
    /// ```
    /// let pool = concurry::TaskWorker::options().init()?;
    /// assert!(!pool.is_stopped());
    /// # Ok::<(), concurry::Error>(())
    /// ```
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.pool.is_stopped()
    }
}
