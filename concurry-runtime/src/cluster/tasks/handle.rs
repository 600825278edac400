//! [`TaskHandle`]: a durable task by id, typed by its [`RemoteTask`]: status, result, cancel.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use super::record::{Outcome, Stored};
use super::server_error;
use super::setup::Store;
use super::status::{TaskStatus, lookup, stored};
use super::submit::TaskQueue;
use crate::cluster::run;
use crate::error::Error;
use crate::future::Promise;
use crate::remote::RemoteTask;

/// How often a wait for a result also reads it directly (a watch that missed an update
/// while reconnecting) and checks the task still exists.
const RECHECK: Duration = Duration::from_secs(1);

/// A durable task of type `T` by its id: from [`TaskQueue::submit`] or, in any process,
/// [`Cluster::task_result`](crate::cluster::Cluster::task_result). Cheap to clone; dropping
/// it changes nothing (the task runs anyway).
///
/// ```no_run
/// use std::time::Duration;
/// use concurry::RemoteTask;
/// use concurry::cluster::Cluster;
///
/// struct Double;
/// impl RemoteTask for Double {
///     const NAME: &'static str = "docs::handle::Double";
///     type Args = (u64,);
///     type Output = u64;
///     fn run((x,): (u64,)) -> u64 { 2 * x }
/// }
/// concurry::register_remote_task!(Double);
///
/// # fn main() -> Result<(), concurry::Error> {
/// let cluster = Cluster::connect("nats://127.0.0.1:4222")?;
/// let t = cluster.tasks()?.submit::<Double>((21,))?;
/// let id = t.task_id().to_string();
/// // Elsewhere, later:
/// let again = cluster.task_result::<Double>(&id)?;
/// assert_eq!(again.result_timeout(Duration::from_secs(60))?, 42);
/// # Ok(()) }
/// ```
pub struct TaskHandle<T> {
    queue: TaskQueue,
    id: String,
    _task: PhantomData<fn() -> T>,
}

impl<T> Clone for TaskHandle<T> {
    fn clone(&self) -> Self {
        TaskHandle {
            queue: self.queue.clone(),
            id: self.id.clone(),
            _task: PhantomData,
        }
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.id)
            .field("task", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: RemoteTask> TaskHandle<T> {
    pub(crate) fn new(queue: TaskQueue, id: String) -> Self {
        TaskHandle {
            queue,
            id,
            _task: PhantomData,
        }
    }

    /// The task's id.
    pub fn task_id(&self) -> &str {
        &self.id
    }

    /// Its status now.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the server cannot be asked.
    pub fn status(&self) -> Result<TaskStatus, Error> {
        self.queue.status(&self.id)
    }

    /// Cancels it; see [`TaskQueue::cancel`].
    ///
    /// # Errors
    ///
    /// As [`TaskQueue::cancel`].
    pub fn cancel(&self) -> Result<bool, Error> {
        self.queue.cancel(&self.id)
    }

    /// Waits for its result and decodes it: the task's output, or why there is none
    /// ([`Error::Panicked`], [`Error::Cancelled`], [`Error::RetriesExhausted`] after its
    /// attempts, [`Error::Config`] when no node knows the task or its schema differs).
    ///
    /// # Errors
    ///
    /// As above, and [`Error::Config`] when the task is unknown (never submitted, or its
    /// records expired) or the server cannot be asked.
    pub fn result(&self) -> Result<T::Output, Error> {
        let inner = self.queue.inner.clone();
        let id = self.id.clone();
        super::here(async move { wait(&inner.store, &id).await }).and_then(typed::<T>)
    }

    /// As [`result`](TaskHandle::result), giving up after `timeout` with [`Error::Timeout`]
    /// (the task is not affected).
    ///
    /// # Errors
    ///
    /// As [`result`](TaskHandle::result), and [`Error::Timeout`].
    pub fn result_timeout(&self, timeout: Duration) -> Result<T::Output, Error> {
        let inner = self.queue.inner.clone();
        let id = self.id.clone();
        super::here(async move {
            tokio::time::timeout(timeout, wait(&inner.store, &id))
                .await
                .unwrap_or(Err(Error::Timeout))
        })
        .and_then(typed::<T>)
    }

    /// Its result if it has one now, without waiting.
    ///
    /// # Errors
    ///
    /// As [`result`](TaskHandle::result) (the task's own failure included).
    pub fn try_result(&self) -> Result<Option<T::Output>, Error> {
        let inner = self.queue.inner.clone();
        let id = self.id.clone();
        match run(async move { stored(&inner.store, &id).await })? {
            Some(s) => typed::<T>(s).map(Some),
            None => Ok(None),
        }
    }

    /// A [`Promise`] of its result, resolved on the library runtime (`.result()`, `.await`,
    /// `on_done`, as every promise).
    pub fn promise(&self) -> Promise<T::Output>
    where
        T::Output: Send,
    {
        let (promise, completer) = Promise::pending();
        let inner = self.queue.inner.clone();
        let id = self.id.clone();
        crate::runtime::runtime().spawn(async move {
            completer.complete(wait(&inner.store, &id).await.and_then(typed::<T>));
        });
        promise
    }
}

/// The task's output, or the error its stored failure stands for.
pub(crate) fn typed<T: RemoteTask>(stored: Stored) -> Result<T::Output, Error> {
    match stored.outcome {
        Outcome::Ok(bytes) => {
            crate::wire::decode::<T::Output>(&bytes, "task output").map_err(Error::Transport)
        }
        Outcome::Failed(f) => super::retrying::typed_failure::<T>(f),
    }
}

/// Waits until `id` has a result: a task of a batch submitted from here through the queue
/// handle's replies inbox, any other through its shared results watch ([`super::watch`]),
/// after one direct read unless it was submitted from here while the watch ran; and every [`RECHECK`] a direct read (and a check that the task still
/// exists, so a wait on an unknown or expired id ends).
pub(crate) async fn wait(store: &Store, id: &str) -> Result<Stored, Error> {
    let mut waiter = store.watcher.register(id);
    if let Some(s) = waiter.ready.take() {
        return Ok(s);
    }
    if !waiter.replied {
        // Started before the read: a result stored after it comes through the watch.
        store
            .watcher
            .start(&store.results)
            .await
            .map_err(|e| server_error("watch the task results", &store.url, e))?;
    }
    if !waiter.expected
        && let Some(s) = stored(store, id).await?
    {
        return Ok(s);
    }
    loop {
        let delivered = async {
            match waiter.rx.as_mut() {
                Some(rx) => rx.await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            s = delivered => match s {
                Some(s) => return Ok(s),
                // The watch is gone (its queue handle dropped): the rechecks go on.
                None => waiter.rx = None,
            },
            () = tokio::time::sleep(RECHECK) => {
                if let Some(s) = stored(store, id).await? {
                    return Ok(s);
                }
                if lookup(store, id).await? == TaskStatus::Unknown {
                    return Err(crate::error::ConfigError::new(
                        "task id",
                        format!("{id:?}"),
                        "no such task in this namespace: never submitted, or its result \
                         expired (TaskConfig::result_ttl)",
                    )
                    .into());
                }
                // A watch that ended (idle, or the server went away) starts again.
                if !waiter.replied {
                    let _ = store.watcher.start(&store.results).await;
                }
            }
        }
    }
}
