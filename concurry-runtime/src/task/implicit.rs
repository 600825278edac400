//! [`ImplicitPool`]: the pool behind a `#[task]` function, created on first use.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use super::map::TaskMap;
use super::task_worker::{TaskWorker, TaskWorkerHandle};
use crate::error::Error;
use crate::future::Promise;
use crate::pool::{Pool, WeakPool};
use crate::sync::{Mutex, OnceLock, lock, os};

/// Every implicit pool started in this process (dead ones pruned on each start): what the
/// exit handler drains.
static STARTED: os::Mutex<Vec<WeakPool<TaskWorker>>> = os::Mutex::new(Vec::new());

/// What the exit waits beyond the longest `stop_timeout`: the bookkeeping of the stops.
const EXIT_SLACK: Duration = Duration::from_millis(200);

/// A lazily started [`TaskWorkerHandle`] in a `static`: `#[task]` keeps one per function.
///
/// The first call starts the pool with `init`; [`stop`](Self::stop) stops it, and the next
/// call starts a fresh one.
///
/// A pool still running when the process exits (`main` returns, or `std::process::exit`) is
/// drained then, as `stop()` would: its queued calls finish, so fire-and-forget submissions
/// are not lost. The exit waits at most the longest `stop_timeout` of the pools still running
/// (default 30 s); calls still queued past it are dropped with the process. An exit called
/// from inside one of a pool's own calls does not wait for that pool (its worker is the
/// thread exiting). A process killed by a signal or `abort` runs no exit handlers.
///
/// ```
/// use concurry::{ImplicitPool, TaskWorker};
/// static POOL: ImplicitPool = ImplicitPool::new();
///
/// let pool = POOL.get_or_init(|| TaskWorker::options().max_workers(2).init())?;
/// assert_eq!(pool.submit(|| 1).result()?, 1);
/// POOL.stop()?;
/// assert!(pool.is_stopped());
/// # Ok::<(), concurry::Error>(())
/// ```
pub struct ImplicitPool {
    slot: OnceLock<Mutex<Option<TaskWorkerHandle>>>,
}

impl ImplicitPool {
    /// An empty slot; nothing starts until [`get_or_init`](Self::get_or_init).
    ///
    /// ```
    /// static POOL: concurry::ImplicitPool = concurry::ImplicitPool::new();
    /// assert!(!POOL.is_running());
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        ImplicitPool {
            slot: OnceLock::new(),
        }
    }

    fn slot(&self) -> &Mutex<Option<TaskWorkerHandle>> {
        self.slot.get_or_init(|| Mutex::new(None))
    }

    /// The running pool, started with `init` if there is none (first use, or after
    /// [`stop`](Self::stop)).
    ///
    /// # Errors
    ///
    /// What `init` returns, when it fails.
    ///
    /// ```
    /// static POOL: concurry::ImplicitPool = concurry::ImplicitPool::new();
    /// let a = POOL.get_or_init(|| concurry::TaskWorker::options().init())?;
    /// let b = POOL.get_or_init(|| unreachable!("already running"))?;
    /// assert_eq!(a.stats().name, b.stats().name);
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn get_or_init(
        &self,
        init: impl FnOnce() -> Result<TaskWorkerHandle, Error>,
    ) -> Result<TaskWorkerHandle, Error> {
        let mut slot = lock(self.slot());
        match &*slot {
            Some(handle) if !handle.is_stopped() => Ok(handle.clone()),
            _ => {
                let handle = init()?;
                let mut started = os::lock(&STARTED);
                started.retain(|w| w.upgrade().is_some_and(|p| !p.is_stopped()));
                started.push(handle.pool.downgrade());
                drop(started);
                *slot = Some(handle.clone());
                Ok(handle)
            }
        }
    }

    /// Whether a pool is running.
    ///
    /// ```
    /// static POOL: concurry::ImplicitPool = concurry::ImplicitPool::new();
    /// POOL.get_or_init(|| concurry::TaskWorker::options().init())?;
    /// assert!(POOL.is_running());
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn is_running(&self) -> bool {
        self.slot
            .get()
            .is_some_and(|m| lock(m).as_ref().is_some_and(|h| !h.is_stopped()))
    }

    /// Stops the running pool, if any (queued calls finish first, as with
    /// [`TaskWorkerHandle::stop`]); the next use starts a new one. Maps still iterating over
    /// the stopped pool yield `Err(Error::Stopped)` for their remaining items.
    ///
    /// # Errors
    ///
    /// [`Error::StopTimeout`] (how many calls failed, how many still ran) if the stop timeout
    /// ran out.
    ///
    /// ```
    /// static POOL: concurry::ImplicitPool = concurry::ImplicitPool::new();
    /// POOL.stop()?; // nothing running: a no-op
    /// # Ok::<(), concurry::Error>(())
    /// ```
    pub fn stop(&self) -> Result<(), Error> {
        let handle = self.slot.get().and_then(|m| lock(m).take());
        match handle {
            Some(h) => h.stop(),
            None => Ok(()),
        }
    }
}

/// At process exit (`main` returned or `exit` was called): drains every implicit pool still
/// running.
///
/// Soundness: this runs from the C runtime's `atexit` list, on the exiting thread, whose
/// thread-locals may already be destroyed; the other threads (pool workers, the tokio
/// runtime, which statics never drop) still run. So the stops run on a fresh thread and
/// this one only waits for it, with a deadline. Nothing may unwind out of here (it would
/// abort the process): every panic is caught.
#[ctor::dtor]
fn drain_at_exit() {
    let _ = catch_unwind(drain_implicit_pools);
}

/// Stops every running implicit pool, all at once, waiting at most the longest of their
/// `stop_timeout`s (plus [`EXIT_SLACK`]). Skips a pool whose worker is the current thread:
/// that worker cannot finish while it waits here. Returns how many pools it stopped.
pub(crate) fn drain_implicit_pools() -> usize {
    let pools: Vec<Pool<TaskWorker>> = os::lock(&STARTED)
        .iter()
        .filter_map(WeakPool::upgrade)
        .filter(|p| !p.is_stopped() && !p.is_worker_thread())
        .collect();
    let Some(longest) = pools.iter().map(Pool::stop_timeout).max() else {
        return 0;
    };
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let for_drainer = pools.clone();
    let drainer = std::thread::Builder::new()
        .name("concurry-exit-drain".into())
        .spawn(move || {
            stop_all(&for_drainer);
            drop(done_tx);
        });
    match drainer {
        // Returns when the drainer finishes (the sender is dropped) or the deadline passes.
        Ok(_) => drop(done_rx.recv_timeout(longest.saturating_add(EXIT_SLACK))),
        // No thread to spare: stop them here, one by one (each still bounded by its own
        // `stop_timeout`).
        Err(_) => pools.iter().for_each(stop_one),
    }
    pools.len()
}

/// Stops `pools` concurrently (a thread each, or in turn when threads cannot start).
fn stop_all(pools: &[Pool<TaskWorker>]) {
    std::thread::scope(|s| {
        for pool in pools {
            let spawned = std::thread::Builder::new()
                .name("concurry-exit-stop".into())
                .spawn_scoped(s, || stop_one(pool));
            if spawned.is_err() {
                stop_one(pool);
            }
        }
    });
}

fn stop_one(pool: &Pool<TaskWorker>) {
    match catch_unwind(AssertUnwindSafe(|| pool.stop())) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(
            pool = %pool.stats().name,
            "draining an implicit pool at exit: {e} (calls still running when its \
             `stop_timeout` ran out end with the process)"
        ),
        Err(_) => tracing::warn!(
            pool = %pool.stats().name,
            "draining an implicit pool at exit panicked"
        ),
    }
}

impl Default for ImplicitPool {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ImplicitPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImplicitPool")
            .field("running", &self.is_running())
            .finish()
    }
}

/// A map whose every item fails with `error` (as `Error::Init`): what a `#[task]` function's
/// `map` returns when its implicit pool cannot start, so each item still gets its `Err`.
#[doc(hidden)]
pub fn failed_map<'a, I, T, E>(items: I, error: &Error) -> TaskMap<'a, T, E>
where
    I: IntoIterator,
    I::IntoIter: Send + 'a,
    T: Send + 'static,
    E: Send + 'static,
{
    let message = error.to_string();
    TaskMap::new(
        items.into_iter().map(move |_| {
            Promise::ready(Err(Error::Init {
                message: message.clone(),
            }))
        }),
        1,
    )
}
