//! [`Completions`]: every task that finishes, as `(id, status)`, when its result is stored.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{Operation, Watch};
use futures_util::StreamExt;

use super::record::{Stored, decode};
use super::server_error;
use super::status::{TaskStatus, from_stored};
use super::submit::{QueueInner, TaskQueue};
use crate::cluster::run;
use crate::error::Error;

/// How long the watch waits before it is made again after an error or its end.
const REWATCH: Duration = Duration::from_secs(1);

/// The tasks that finish, in the order their results are stored: `(task id, status)`,
/// the status one of the finished ones ([`TaskStatus::is_finished`]: succeeded, failed,
/// cancelled, dead-lettered). From [`TaskQueue::completions`].
///
/// It watches the namespace's results bucket, which every queue of the namespace shares: a
/// completion is any task of the namespace (use a namespace per independent set of queues
/// to keep them apart). Each task finishes once (the first stored result wins), so its id
/// comes once; a dead letter replayed later comes again when it finishes again. The watch
/// survives reconnects and resumes where it was. Iterating blocks until the next one;
/// dropping it ends the watch.
///
/// ```no_run
/// use concurry::cluster::{Cluster, TaskStatus};
///
/// #[concurry::task(remote)]
/// fn double(x: u64) -> u64 { 2 * x }
///
/// # fn main() -> Result<(), concurry::Error> {
/// let q = Cluster::connect("nats://127.0.0.1:4222")?.tasks()?;
/// let done = q.completions()?; // before submitting: results from now on
/// let ids: Vec<String> = (0..3)
///     .map(|x| q.submit::<double::Task>((x,)).map(|t| t.task_id().to_string()))
///     .collect::<Result<_, _>>()?;
/// for (id, status) in done.take(3) {
///     assert!(ids.contains(&id));
///     assert!(matches!(status, TaskStatus::Succeeded { .. }));
/// }
/// # Ok(()) }
/// ```
pub struct Completions {
    rx: crossbeam_channel::Receiver<(String, TaskStatus)>,
    task: tokio::task::JoinHandle<()>,
}

impl TaskQueue {
    /// A stream of the tasks that finish from now on (results stored after this returns),
    /// as `(id, status)`: see [`Completions`]. A result stored before is not in it (read it
    /// by id).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the server cannot start the watch.
    pub fn completions(&self) -> Result<Completions, Error> {
        let inner = self.inner.clone();
        let watch = run(async move {
            inner
                .store
                .results
                .watch_all()
                .await
                .map_err(|e| server_error("watch the task results", &inner.store.url, e))
        })?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let task = crate::runtime::runtime().spawn(forward(self.inner.clone(), watch, tx));
        Ok(Completions { rx, task })
    }
}

/// Hands each stored result to `tx` until the receiver is gone; makes the watch again,
/// from the revision after the last one seen, when it ends.
async fn forward(
    inner: Arc<QueueInner>,
    mut watch: Watch,
    tx: crossbeam_channel::Sender<(String, TaskStatus)>,
) {
    let results = &inner.store.results;
    let mut last = None;
    loop {
        match watch.next().await {
            Some(Ok(entry)) => {
                last = Some(entry.revision);
                if entry.operation != Operation::Put {
                    continue;
                }
                match decode::<Stored>(&entry.value, "a task result") {
                    Ok(stored) => {
                        if tx.send((entry.key, from_stored(&stored))).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(task = entry.key, "concurry tasks: {e}"),
                }
            }
            Some(Err(e)) => {
                tracing::warn!("concurry tasks: completions watch: {e}");
                tokio::time::sleep(REWATCH).await;
            }
            None => {
                tokio::time::sleep(REWATCH).await;
                let again = match last {
                    Some(rev) => results.watch_all_from_revision(rev + 1).await,
                    None => results.watch_all().await,
                };
                match again {
                    Ok(w) => watch = w,
                    Err(e) => tracing::warn!("concurry tasks: completions watch: {e}"),
                }
            }
        }
    }
}

impl Completions {
    /// The next task that finishes, waiting for it; `None` only if the watch ended for
    /// good (the library's runtime shut down).
    pub fn recv(&self) -> Option<(String, TaskStatus)> {
        crate::runtime::blocking(|| self.rx.recv().ok())
    }

    /// As [`recv`](Completions::recv), waiting at most `timeout`: `None` if no task
    /// finished in that time.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<(String, TaskStatus)> {
        crate::runtime::blocking(|| self.rx.recv_timeout(timeout).ok())
    }

    /// A task that already finished and was not taken yet, without waiting.
    pub fn try_recv(&self) -> Option<(String, TaskStatus)> {
        self.rx.try_recv().ok()
    }
}

impl Iterator for Completions {
    type Item = (String, TaskStatus);

    /// Blocks until the next task finishes (see [`recv`](Completions::recv)).
    fn next(&mut self) -> Option<Self::Item> {
        self.recv()
    }
}

impl Drop for Completions {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for Completions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completions")
            .field("ready", &self.rx.len())
            .finish_non_exhaustive()
    }
}
