//! [`ImplicitPool`]: the pool behind a `#[task]` function, created on first use.

use std::fmt;

use super::map::TaskMap;
use super::task_worker::TaskWorkerHandle;
use crate::error::Error;
use crate::future::Promise;
use crate::sync::{Mutex, OnceLock, lock};

/// A lazily started [`TaskWorkerHandle`] in a `static`: `#[task]` keeps one per function.
///
/// The first call starts the pool with `init`; [`stop`](Self::stop) stops it, and the next
/// call starts a fresh one. Rust runs no destructors for statics, so a pool still running
/// when `main` returns is not drained: its threads end with the process and calls still
/// queued are lost. Call `stop()` before exiting to let them finish.
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
